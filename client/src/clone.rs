//! `clone`: a new group whose members are RBD clones of a group snapshot's member snapshots.
//!
//! A clone touches many objects (a new group, one RBD clone and one back-reference per
//! member), so it is a documented sequence of atomic steps (`docs/OPERATIONS.md`) whose
//! first durable act records the whole *plan* on the new group's header (`clone_begin`):
//!
//! 1. `dir_add` on `cg_directory`: the new name, `creating` (hidden from `ls`)
//! 2. `clone_begin` on `cg_header.<new id>`: the header and the plan (parent snapshot and
//!    name of every clone), in one atomic step
//! 3. clone every member snapshot (clone v1: protect it first), in parallel
//! 4. add every clone as a member (`image add`'s three steps each)
//! 5. `id_create` on `cg_id.<new name>`
//! 6. `clone_finish` on `cg_header.<new id>`: plan dropped (every clone is a member)
//! 7. `dir_set_ready` on `cg_directory`: the group is complete
//!
//! Until step 7 the group is `creating`: invisible to `ls`, refused by every other
//! command. While the plan is recorded (steps 2-5), a rerun of the same `clone`, or
//! `repair`, finishes it from the plan (an existing image counts as made only if it is a
//! clone of the planned parent snapshot), and `rm --force` undoes it, deleting only images
//! that are such clones; `create` and plain `rm` are refused. After step 6 the group is
//! whole and finishing it is finishing a `create`. After step 1 only the name exists: a
//! rerun of the clone continues; `repair` cannot know a clone was meant and completes an
//! empty group (as for an interrupted `create`), which `rm` removes.

use crate::error::{ignore_missing, Error, Result};
use crate::faults::{FaultPlan, Steps};
use crate::groups::{new_group_id, now_ms, Groups};
use crate::images::directory_name;
use crate::member_snaps;
use crate::parallel;
use crate::spec::ImageSpec;
use rbd_cg_contract::methods::{
    CloneBeginRequest, Empty, IdRequest, NameAndId, CLONE_BEGIN, CLONE_FINISH, DIR_ADD, DIR_SET_READY, IMAGE_GROUP_LIST,
};
use rbd_cg_contract::names::{
    header_object, validate_group_name, validate_image_name, validate_snap_name, DIRECTORY_OBJECT, MAX_GROUP_MEMBERS,
};
use rbd_cg_contract::records::{CloneImagePlan, ClonePlan, DirEntry, DirState, GroupRef, ImageRef, MemberState};
use rbd_cg_rados::ceph::objects;
use rbd_cg_rados::image::{image_clone, image_remove, Image};
use rbd_cg_rados::{Cluster, IoCtx};

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
    /// One new name per source image (by spec); every member of the snapshot must be listed.
    Explicit(Vec<(ImageSpec, String)>),
}

impl Default for CloneNaming {
    fn default() -> Self {
        CloneNaming::Format(DEFAULT_IMAGE_NAME_FORMAT.to_owned())
    }
}

/// The default `--image-name-format`.
pub const DEFAULT_IMAGE_NAME_FORMAT: &str = "{group}-{image}";

/// Ceph release number of Mimic, the first whose clients understand clone v2.
const CEPH_RELEASE_MIMIC: i8 = 13;

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

/// A planned clone with what its making found out.
struct Made {
    plan: CloneImagePlan,
    parent_name: String,
    image_id: String,
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
        validate_group_name(new_group)?;
        validate_snap_name(snap)?;
        let context = || format!("cloning group snapshot {}@{snap} as {}", self.spec(group), self.spec(new_group));
        let (id, resumed_plan) = match self.dir_entry(new_group).map_err(|e| e.context(context()))? {
            None => (None, None),
            Some(DirEntry { id, state: DirState::Creating }) => {
                let plan = self.clone_plan(&id).map_err(|e| e.context(context()))?;
                (Some(id), plan)
            }
            Some(DirEntry { state: DirState::Ready, .. }) => return Err(Error::new(context(), libc::EEXIST)),
            Some(DirEntry { state, .. }) => {
                return Err(Error::new(format!("{}: group is {state:?}", context()), libc::EBUSY)
                    .with_hint("An earlier operation on it was interrupted: run `rbd-cg repair`."))
            }
        };
        let plan = self.make_plan(group, snap, new_group, options).map_err(|e| e.context(context()))?;
        if let Some(recorded) = &resumed_plan {
            // Only the same clone may be continued: a different command must not finish
            // someone else's plan and report success.
            if *recorded != plan {
                return Err(Error::new(format!("{}: another clone is building it", context()), libc::EEXIST)
                    .with_hint(
                    "Rerun that clone with its own arguments or `rbd-cg repair` it to finish it, or `rm --force` it \
                     to undo it.",
                ));
            }
            log::info!("resuming the interrupted clone into {}", self.spec(new_group));
        }
        let id = match id {
            Some(id) => id,
            None => new_group_id()?,
        };
        let group_ref = self.group_ref(&id);
        // Interrupted after step 6 (plan dropped, every clone a member): only the last steps
        // are left. Anything else in a `creating` group with members is not this clone.
        if resumed_plan.is_none() && self.header(&id)?.is_some_and(|h| h.member_count > 0) {
            for image in &plan.images {
                let ioctx = self.cluster.ioctx_in(image.source.pool_id, &image.source.namespace)?;
                if existing_clone(&ioctx, image, &group_ref)?.is_none() {
                    return Err(Error::new(format!("{}: the group already has other members", context()), libc::EBUSY));
                }
            }
            return self.finish_clone(new_group, &id, &plan).map_err(|e| e.context(context()));
        }
        // Names must be free unless a recorded plan owns them (then existing images are
        // checked one by one as the plan is finished).
        if resumed_plan.is_none() {
            self.check_names_free(&plan).map_err(|e| e.context(context()))?;
        }
        self.clone_steps(new_group, &id, &plan).map_err(|e| e.context(context()))
    }

    /// Works out every clone's parent and name, before anything is written.
    fn make_plan(&self, group: &str, snap: &str, new_group: &str, options: &CloneOptions) -> Result<ClonePlan> {
        let group_id = self.ready_group_id(group, "cloning")?;
        let info = self.snap_info(group, snap)?;
        if info.state != "complete" {
            return Err(Error::new(format!("group snapshot {snap} is {}", info.state), libc::EINVAL)
                .with_hint("Only a complete group snapshot can be cloned (`rbd-cg snap info` tells why not)."));
        }
        if info.images.len() > MAX_GROUP_MEMBERS as usize {
            return Err(Error::new("too many members", libc::ERANGE));
        }
        let clone_format = match options.format {
            CloneFormat::V1 => 1,
            CloneFormat::V2 => 2,
            CloneFormat::Auto => {
                if self.cluster.require_min_compat_client()? >= CEPH_RELEASE_MIMIC {
                    2
                } else {
                    1
                }
            }
        };
        let mut explicit: Vec<(ImageRef, String)> = Vec::new();
        if let CloneNaming::Explicit(names) = &options.naming {
            for (spec, new_name) in names {
                explicit.push((self.resolve_image(spec)?, new_name.clone()));
            }
        }
        let mut images = Vec::with_capacity(info.images.len());
        for member in &info.images {
            let (Some(source_name), Some(snap_id), true) = (&member.image_name, member.snap_id, member.present) else {
                return Err(Error::new(
                    format!("member {} of group snapshot {snap} is gone", member.image.image_id),
                    libc::ENOENT,
                ));
            };
            let name = match &options.naming {
                CloneNaming::Format(format) => expand_name_format(
                    format,
                    &[("image", source_name), ("group", new_group), ("snap", snap), ("source_group", group)],
                ),
                CloneNaming::Explicit(_) => {
                    let found = explicit.iter().find(|(image, _)| *image == member.image);
                    let Some((_, name)) = found else {
                        return Err(Error::new(format!("no new name given for member {source_name}"), libc::EINVAL));
                    };
                    name.clone()
                }
            };
            validate_image_name(&name)?;
            images.push(CloneImagePlan {
                source: member.image.clone(),
                source_snap_id: snap_id,
                source_snap_name: member.snap_name.clone(),
                name,
            });
        }
        if explicit.len() != images.len() && matches!(options.naming, CloneNaming::Explicit(_)) {
            return Err(Error::new("new names given for images that are not members of the snapshot", libc::EINVAL));
        }
        let plan = ClonePlan {
            source_group: GroupRef {
                pool_id: self.ioctx.pool_id(),
                namespace: self.location.namespace.clone(),
                group_id,
            },
            source_snap_id: info.id,
            source_snap_name: snap.into(),
            clone_format,
            images,
        };
        // What `clone_begin` would refuse is refused before anything is written.
        plan.validate()?;
        rbd_cg_contract::encode(&plan)?;
        Ok(plan)
    }

    /// `EEXIST` when a planned name is taken (before anything is written).
    fn check_names_free(&self, plan: &ClonePlan) -> Result<()> {
        for image in &plan.images {
            let ioctx = self.cluster.ioctx_in(image.source.pool_id, &image.source.namespace)?;
            if ioctx.stat(&objects::image_id_object(&image.name))?.is_some() {
                return Err(Error::new(format!("image {} exists", image.name), libc::EEXIST)
                    .with_hint("Pick other names (--image-name-format) or remove that image."));
            }
        }
        Ok(())
    }

    fn clone_steps(&self, name: &str, id: &str, plan: &ClonePlan) -> Result<Vec<ClonedImage>> {
        let pair = NameAndId { name: name.into(), id: id.into() };
        let header = header_object(id);
        let mut steps = Steps::new("clone", &self.faults);
        steps.run("reserve the name", || self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_ADD, &pair))?;
        steps.run("create the header with the plan", || {
            let request =
                CloneBeginRequest { group_id: id.into(), name: name.into(), created_ms: now_ms(), plan: plan.clone() };
            self.ioctx.call_write(&header, &CLONE_BEGIN, &request)
        })?;
        self.finish_clone_steps(name, id, plan, steps)
    }

    /// Steps 3 to 7, also what `repair` runs on an interrupted clone.
    pub(crate) fn finish_clone(&self, name: &str, id: &str, plan: &ClonePlan) -> Result<Vec<ClonedImage>> {
        let mut steps = Steps::new("clone", &self.faults);
        steps.skip(2);
        self.finish_clone_steps(name, id, plan, steps)
    }

    fn finish_clone_steps(
        &self,
        name: &str,
        id: &str,
        plan: &ClonePlan,
        mut steps: Steps<'_>,
    ) -> Result<Vec<ClonedImage>> {
        let pair = NameAndId { name: name.into(), id: id.into() };
        let header = header_object(id);
        let group_ref = self.group_ref(id);
        let made = steps.run("clone the member snapshots", || {
            let (cluster, faults) = (&self.cluster, &self.faults);
            let results = parallel::map(&plan.images, parallel::DEFAULT_WORKERS, |_, image| {
                make_clone(cluster, image, plan.clone_format, &group_ref, faults)
            });
            results.into_iter().collect::<Result<Vec<Made>>>()
        })?;
        steps.run("add the clones as members", || {
            let attached: Vec<ImageRef> = self
                .member_records(id)?
                .into_iter()
                .filter(|m| m.state == MemberState::Attached)
                .map(|m| m.image)
                .collect();
            for clone in &made {
                let image = ImageRef {
                    pool_id: clone.plan.source.pool_id,
                    namespace: clone.plan.source.namespace.clone(),
                    image_id: clone.image_id.clone(),
                };
                if !attached.contains(&image) {
                    self.add_steps(id, &image, MAX_GROUP_MEMBERS)?;
                }
            }
            Ok::<_, Error>(())
        })?;
        steps.run("create the id object", || self.create_id_object(name, id))?;
        steps.run("drop the plan", || self.ioctx.call_write(&header, &CLONE_FINISH, &IdRequest { id: id.into() }))?;
        steps.run("mark ready", || self.ioctx.call_write(DIRECTORY_OBJECT, &DIR_SET_READY, &pair))?;
        Ok(made
            .into_iter()
            .map(|clone| ClonedImage {
                pool: self
                    .cluster
                    .pool_name(clone.plan.source.pool_id)
                    .unwrap_or_else(|_| clone.plan.source.pool_id.to_string()),
                image: ImageRef {
                    pool_id: clone.plan.source.pool_id,
                    namespace: clone.plan.source.namespace.clone(),
                    image_id: clone.image_id,
                },
                source: clone.plan.source,
                source_name: clone.parent_name,
                source_snap: clone.plan.source_snap_name,
                name: clone.plan.name,
            })
            .collect())
    }

    /// Undoes an unfinished clone into group `id` (`rm --force`): its clones leave the group
    /// and are deleted (only images that are clones of the planned parent), then the plan
    /// is dropped. The caller then removes the (empty) group.
    pub(crate) fn undo_clone(&self, id: &str, plan: &ClonePlan) -> Result<()> {
        let mut steps = Steps::new("clone-undo", &self.faults);
        let members = self.member_records(id)?;
        let group_ref = self.group_ref(id);
        steps.run("remove the clones from the group", || {
            for member in &members {
                self.image_remove_steps(id, &member.image)?;
            }
            Ok::<_, Error>(())
        })?;
        steps.run("delete the clones", || {
            let cluster = &self.cluster;
            let results = parallel::map(&plan.images, parallel::DEFAULT_WORKERS, |_, image| {
                delete_clone(cluster, image, &group_ref)
            });
            results.into_iter().collect::<Result<Vec<()>>>().map(drop)
        })?;
        steps.run("drop the plan", || {
            ignore_missing(self.ioctx.call_write(&header_object(id), &CLONE_FINISH, &IdRequest { id: id.into() }))
        })
    }
}

/// Expands `{key}` placeholders in one pass (an inserted value is never expanded again);
/// anything else, including unknown `{…}`, is kept as written.
fn expand_name_format(format: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(format.len());
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let key = &after[..close];
            values.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether image `name` in `ioctx` is this clone's to finish or undo: `Some(id)` if it is a
/// clone of `plan`'s parent snapshot that belongs to no group but `group` (the one being
/// built), `None` if there is no such image, `EEXIST` if it is something else — never
/// adopted, never deleted.
fn existing_clone(ioctx: &IoCtx, plan: &CloneImagePlan, group: &GroupRef) -> Result<Option<String>> {
    let image = match Image::open_read_only(ioctx, &plan.name) {
        Ok(image) => image,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let parent = image.parent()?;
    let ours = parent.is_some_and(|p| {
        p.pool_id == plan.source.pool_id
            && p.namespace == plan.source.namespace
            && p.image_id == plan.source.image_id
            && p.snap_id == plan.source_snap_id
    });
    if !ours {
        return Err(Error::new(
            format!("image {} exists and is not a clone of {}", plan.name, plan.source_snap_name),
            libc::EEXIST,
        )
        .with_hint(
            "Another image has the planned name; if a crash interrupted librbd while it made this clone (an \
             image without parent), check and remove it by hand (`rbd rm`), then rerun.",
        ));
    }
    let image_id = image.id()?;
    let groups = match ioctx.call(&objects::image_header(&image_id), &IMAGE_GROUP_LIST, &Empty {}) {
        Ok(list) => list.groups,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if let Some(other) = groups.iter().find(|g| *g != group) {
        return Err(Error::new(
            format!("image {} is a member of another group ({})", plan.name, other.group_id),
            libc::EEXIST,
        ));
    }
    Ok(Some(image_id))
}

/// Makes one planned clone (nothing to do if it exists already).
fn make_clone(
    cluster: &Cluster,
    plan: &CloneImagePlan,
    format: u8,
    group: &GroupRef,
    faults: &FaultPlan,
) -> Result<Made> {
    let context = || format!("cloning image {} as {}", plan.source.image_id, plan.name);
    let ioctx =
        cluster.ioctx_in(plan.source.pool_id, &plan.source.namespace).map_err(|e| Error::from(e).context(context()))?;
    let parent_name = directory_name(&ioctx, &plan.source.image_id)?
        .ok_or_else(|| Error::new(format!("{}: source image is gone", context()), libc::ENOENT))?;
    let made = |image_id| Made { plan: plan.clone(), parent_name: parent_name.clone(), image_id };
    if let Some(image_id) = existing_clone(&ioctx, plan, group)? {
        return Ok(made(image_id));
    }
    let mut parent = member_snaps::by_id(cluster, &plan.source, &plan.source_snap_name, plan.source_snap_id)?
        .ok_or_else(|| Error::new(format!("{}: the member snapshot is gone", context()), libc::ENOENT))?;
    // librbd clones only from a user-namespace snapshot named by name: a group-namespace
    // member snapshot is exposed for the call (the clone refers to its parent by id).
    member_snaps::with_exposed(cluster, &mut parent, faults, |image, snap_name| {
        if format == 1 {
            image.snap_protect(snap_name)?;
        }
        match image_clone(&ioctx, &parent_name, snap_name, &ioctx, &plan.name, u64::from(format)) {
            Ok(()) => Ok(()),
            Err(e) if e.errno == libc::EEXIST => Ok(()), // a concurrent rerun made it: checked below
            Err(e) => Err(e.into()),
        }
    })
    .map_err(|e| e.context(context()))?;
    match existing_clone(&ioctx, plan, group)? {
        Some(image_id) => Ok(made(image_id)),
        None => Err(Error::new(format!("{}: the clone vanished", context()), libc::ENOENT)),
    }
}

/// Deletes one planned clone if it exists and is ours.
fn delete_clone(cluster: &Cluster, plan: &CloneImagePlan, group: &GroupRef) -> Result<()> {
    // The clone lives in its source image's pool and namespace.
    let ioctx = match cluster.ioctx_in(plan.source.pool_id, &plan.source.namespace) {
        Err(e) if e.is_not_found() => return Ok(()),
        other => other?,
    };
    match existing_clone(&ioctx, plan, group) {
        Ok(Some(_)) => ignore_missing(image_remove(&ioctx, &plan.name).map_err(Error::from)),
        Ok(None) => Ok(()),
        Err(e) if e.errno() == libc::EEXIST => {
            // Not provably ours: never deleted. Said loudly, since a crash inside librbd's
            // clone can leave a parentless image under the planned name.
            eprintln!("WARNING: {e}: left alone; if it is a half-made clone, remove it by hand (`rbd rm`)");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::expand_name_format;

    #[test]
    fn name_format_expands_once_and_keeps_the_rest() {
        let values = [("image", "x{group}"), ("group", "copy"), ("snap", "s"), ("source_group", "db")];
        assert_eq!(expand_name_format("{group}-{image}", &values), "copy-x{group}");
        assert_eq!(expand_name_format("{image}.{snap}.{source_group}", &values), "x{group}.s.db");
        assert_eq!(expand_name_format("{nope}-{image", &values), "{nope}-{image");
        assert_eq!(expand_name_format("plain", &values), "plain");
        assert_eq!(expand_name_format("{{group}}", &values), "{copy}");
    }
}
