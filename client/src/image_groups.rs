//! Which groups an image belongs to, and a group's name from its id: what callers that
//! start from an image (the Cinder driver, an operator) need, without knowing how the
//! class stores back-references.
//!
//! Every member image carries a back-reference to each of its groups (pool, namespace and
//! group id, `docs/FORMAT.md`), read with the class's `image_group_list`; a group id turns
//! into a name through its pool's `cg_directory` (`dir_get_name`).

use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::spec::ImageSpec;
use rbd_cg_contract::methods::{Empty, IdRequest, DIR_GET_NAME, IMAGE_GROUP_LIST};
use rbd_cg_contract::names::DIRECTORY_OBJECT;
use rbd_cg_contract::records::GroupRef;
use rbd_cg_rados::ceph::objects;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::{Cluster, IoCtx};

/// A group an image belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGroup {
    /// The group's pool, by name (its id as text if the pool is gone).
    pub pool: String,
    /// The group's pool id.
    pub pool_id: i64,
    /// The group's RBD namespace ("" = default).
    pub namespace: String,
    /// The group id.
    pub group_id: String,
    /// The group's name; `None` when its directory no longer knows the id (the group is
    /// being removed, or was removed behind the image's back).
    pub name: Option<String>,
}

/// The name of group `group_id` in the pool and namespace of `ioctx`; `None` when the
/// directory does not know it.
pub fn group_name_in(ioctx: &IoCtx, group_id: &str) -> Result<Option<String>> {
    match ioctx.call(DIRECTORY_OBJECT, &DIR_GET_NAME, &IdRequest { id: group_id.into() }) {
        Ok(entry) => Ok(Some(entry.name)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("looking up group id {group_id}"))),
    }
}

/// The groups image `spec` belongs to, with their names, in back-reference order.
/// `ENOENT` when the image does not exist.
pub fn groups_of_image(cluster: &Cluster, spec: &ImageSpec) -> Result<Vec<ImageGroup>> {
    let context = || format!("groups of image {spec}");
    let ioctx = cluster
        .ioctx(&spec.location.pool)
        .and_then(|mut ioctx| ioctx.set_namespace(&spec.location.namespace).map(|()| ioctx))
        .map_err(|e| Error::from(e).context(context()))?;
    let image_id = Image::open_read_only(&ioctx, &spec.name)
        .and_then(|image| image.id())
        .map_err(|e| Error::from(e).context(context()))?;
    groups_of_image_id(cluster, &ioctx, &image_id).map_err(|e| e.context(context()))
}

/// The groups of the image with id `image_id` in the pool and namespace of `ioctx`.
pub fn groups_of_image_id(cluster: &Cluster, ioctx: &IoCtx, image_id: &str) -> Result<Vec<ImageGroup>> {
    let refs: Vec<GroupRef> = ioctx.call(&objects::image_header(image_id), &IMAGE_GROUP_LIST, &Empty {})?.groups;
    let mut groups = Vec::with_capacity(refs.len());
    for group in refs {
        let (pool, name) = match cluster.ioctx_in(group.pool_id, &group.namespace) {
            Ok(directory) => (directory.pool_name()?, group_name_in(&directory, &group.group_id)?),
            Err(e) if e.is_not_found() => (group.pool_id.to_string(), None),
            Err(e) => return Err(e.into()),
        };
        groups.push(ImageGroup {
            pool,
            pool_id: group.pool_id,
            namespace: group.namespace,
            group_id: group.group_id,
            name,
        });
    }
    Ok(groups)
}

impl Groups {
    /// The name of group `group_id` here; `None` when the directory does not know it.
    pub fn group_name(&self, group_id: &str) -> Result<Option<String>> {
        group_name_in(&self.ioctx, group_id)
    }
}
