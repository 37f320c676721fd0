//! `clone`: a new group whose members are RBD clones of a group snapshot's member snapshots.
//!
//! (Implementation in progress: the public types and the signature below are the API.)

use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::spec::ImageSpec;
use rbd_cg_contract::records::ImageRef;

/// Which RBD clone format to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloneFormat {
    /// Clone v2 when the cluster requires Mimic or newer clients (no protect needed), else
    /// v1 (the member snapshots are protected first) — librbd's own `auto` rule.
    #[default]
    Auto,
    /// Clone v1: parent snapshots are protected.
    V1,
    /// Clone v2: no protection; old clients cannot open the clones.
    V2,
}

/// How the cloned images are named (each is created in its source image's pool and namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneNaming {
    /// A pattern with `{image}` (source image name), `{group}` (the new group's name),
    /// `{snap}` (the group snapshot's name) and `{source_group}`.
    Format(String),
    /// One new name per source image; every member of the snapshot must be listed. A source
    /// spec without a pool means the source group's pool and namespace.
    Explicit(Vec<(ImageSpec, String)>),
}

impl Default for CloneNaming {
    fn default() -> Self {
        CloneNaming::Format(DEFAULT_IMAGE_NAME_FORMAT.to_owned())
    }
}

/// The default `--image-name-format`.
pub const DEFAULT_IMAGE_NAME_FORMAT: &str = "{group}-{image}";

/// Options of [`Groups::clone_group`].
#[derive(Debug, Clone, Default)]
pub struct CloneOptions {
    /// How the clones are named.
    pub naming: CloneNaming,
    /// Which clone format.
    pub format: CloneFormat,
}

/// One member of the new group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClonedImage {
    /// The source member image.
    pub source: ImageRef,
    /// The source image's name.
    pub source_name: String,
    /// The member image snapshot it was cloned from.
    pub source_snap: String,
    /// The clone.
    pub image: ImageRef,
    /// Pool name of the clone.
    pub pool: String,
    /// The clone's name.
    pub name: String,
}

impl Groups {
    /// Creates group `new_group` (in this pool and namespace) whose members are clones of the
    /// member snapshots of group snapshot `group@snap`. Crash-safe: a rerun or `repair` of
    /// `new_group` finishes it, `rm --force` of `new_group` undoes it.
    pub fn clone_group(
        &self,
        group: &str,
        snap: &str,
        new_group: &str,
        options: &CloneOptions,
    ) -> Result<Vec<ClonedImage>> {
        let _ = (group, snap, new_group, options);
        Err(Error::new("clone", libc::EOPNOTSUPP))
    }
}
