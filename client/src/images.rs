//! Member images as the group operations see them: names from `rbd_directory`, features and
//! data pool from `cls_rbd`, snapshots, opened through librbd. One place for these lookups,
//! shared by snapshots, clones and membership.

use crate::error::{ignore_missing, Error, Result};
use rbd_cg_contract::records::ImageRef;
use rbd_cg_rados::ceph::cls_rbd::{self, GetFeatures};
use rbd_cg_rados::ceph::objects::{self, RBD_DIRECTORY};
use rbd_cg_rados::cls::ReadBatch;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::{Cluster, IoCtx};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What one image holds now: its snapshots (name → id).
#[derive(Clone)]
pub(crate) struct ImageSnaps {
    pub(crate) snaps: HashMap<String, u64>,
}

/// Opens a member image read-write by id.
pub(crate) fn open_member(cluster: &Cluster, image: &ImageRef) -> Result<Image> {
    Ok(Image::open_by_id(&cluster.ioctx_in(image.pool_id, &image.namespace)?, &image.image_id)?)
}

/// Snapshots one image through librbd (a rerun finding it already there is fine).
pub(crate) fn cut_with_librbd(cluster: &Cluster, image_ref: &ImageRef, snap_name: &str) -> Result<u64> {
    let mut image = open_member(cluster, image_ref)?;
    match image.snap_create(snap_name) {
        Ok(()) => {}
        Err(e) if e.errno == libc::EEXIST => {}
        Err(e) => return Err(e.into()),
    }
    image
        .snap_list()?
        .iter()
        .find(|s| s.name == snap_name)
        .map(|s| s.id)
        .ok_or_else(|| Error::new(format!("snapshot {snap_name} vanished"), libc::ENOENT))
}

/// An image's snapshots (`None`: the image or its pool is gone), through a
/// read-only open (no watch; works with read-only caps).
pub(crate) fn fetch_image_snaps(cluster: &Cluster, image: &ImageRef) -> Result<Option<ImageSnaps>> {
    let opened = cluster
        .ioctx_in(image.pool_id, &image.namespace)
        .and_then(|ioctx| Image::open_by_id_read_only(&ioctx, &image.image_id));
    match opened {
        Ok(opened) => {
            let snaps = opened.snap_list()?.into_iter().map(|s| (s.name, s.id)).collect();
            Ok(Some(ImageSnaps { snaps }))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How long removing a member snapshot waits out another client's exclusive lock: a group
/// snapshot being cut on a shared image holds its fence (and refuses lock requests with
/// `EBUSY`) for at most its fence timeout, so a `snap rm` racing one waits instead of leaving
/// its snapshot half removed.
const LOCK_BUSY_WAIT: Duration = Duration::from_secs(60);

/// Removes image snapshot `snap_name` of one member; a gone image, pool or snapshot is fine.
/// `EBUSY` from a lock owner refusing to let go is retried for [`LOCK_BUSY_WAIT`]; `EBUSY`
/// for a protected snapshot is not (it stays protected until someone unprotects it); a
/// snapshot found gone after an `EBUSY` (its lock owner removed it) is fine.
pub(crate) fn remove_image_snapshot(cluster: &Cluster, image_ref: &ImageRef, snap_name: &str) -> Result<()> {
    let mut image = match open_member(cluster, image_ref) {
        Ok(image) => image,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + LOCK_BUSY_WAIT;
    let mut pause = Duration::from_millis(20);
    loop {
        match image.snap_remove(snap_name) {
            Err(e) if e.errno == libc::EBUSY && Instant::now() < deadline => {
                match image.snap_is_protected(snap_name) {
                    Ok(false) => {}
                    // Gone meanwhile (another client removed it, e.g. `image rm` of the
                    // member or a concurrent `snap rm`): what we wanted.
                    Err(p) if p.is_not_found() => return Ok(()),
                    Ok(true) | Err(_) => return Err(e.into()),
                }
                log::debug!("removing {snap_name}: the image's lock owner is busy; retrying in {pause:?}");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            result => return ignore_missing(result.map_err(Error::from)),
        }
    }
}

/// Most member-snapshot probes batched into one read op.
const PROBES_PER_OP: usize = 256;

/// Whether each image snapshot `(snap_id, snap_name)` exists on `image` with that name,
/// in one read op (`cls_rbd.get_snapshot_name` per snapshot). A gone pool or image has none.
pub(crate) fn image_snapshots_are(cluster: &Cluster, image: &ImageRef, snaps: &[(u64, String)]) -> Result<Vec<bool>> {
    let ioctx = match cluster.ioctx_in(image.pool_id, &image.namespace) {
        Ok(ioctx) => ioctx,
        Err(e) if e.is_not_found() => return Ok(vec![false; snaps.len()]),
        Err(e) => return Err(e.into()),
    };
    let header = objects::image_header(&image.image_id);
    let mut present = Vec::with_capacity(snaps.len());
    for chunk in snaps.chunks(PROBES_PER_OP) {
        let ids: Vec<u64> = chunk.iter().map(|(id, _)| *id).collect();
        let names = match ioctx.call_many(&header, &cls_rbd::GET_SNAPSHOT_NAME, &ids) {
            Ok(names) => names,
            Err(e) if e.is_not_found() => return Ok(vec![false; snaps.len()]),
            Err(e) => return Err(e.into()),
        };
        for ((_, snap_name), name) in chunk.iter().zip(names) {
            present.push(match name {
                Ok(name) => name == *snap_name,
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e.into()),
            });
        }
    }
    Ok(present)
}

/// A member's features and data pool, read straight from `cls_rbd` in one read op (a
/// librbd open costs several round trips more and serializes when many run).
pub(crate) fn inspect(ioctx: &IoCtx, image: &ImageRef) -> Result<(u64, i64)> {
    let header = objects::image_header(&image.image_id);
    let mut batch = ReadBatch::new();
    let features = batch.add(&cls_rbd::GET_FEATURES, &GetFeatures::HEAD_READ_ONLY)?;
    let data_pool = batch.add(&cls_rbd::GET_DATA_POOL, &())?;
    let mut replies = ioctx.read_batch(&header, &batch)?;
    let features = features.take(&mut replies)?.features;
    let data_pool = data_pool.take(&mut replies)?.0.unwrap_or(image.pool_id);
    Ok((features, data_pool))
}

/// Most calls batched into one read op by [`directory_names`].
const NAMES_PER_OP: usize = 256;

/// The names of `images` from their pools' `rbd_directory`, one read op per pool and
/// namespace (and per 256 images); `None` for an image the directory does not have
/// (deleted, or in the trash) or whose pool is gone.
pub(crate) fn directory_names(cluster: &Cluster, images: &[ImageRef]) -> Result<HashMap<ImageRef, Option<String>>> {
    let mut by_location: BTreeMap<(i64, &str), Vec<&ImageRef>> = BTreeMap::new();
    for image in images {
        by_location.entry((image.pool_id, image.namespace.as_str())).or_default().push(image);
    }
    let mut names = HashMap::with_capacity(images.len());
    for ((pool_id, namespace), images) in by_location {
        let ioctx = match cluster.ioctx_in(pool_id, namespace) {
            Ok(ioctx) => ioctx,
            Err(e) if e.is_not_found() => {
                names.extend(images.into_iter().map(|i| (i.clone(), None)));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for chunk in images.chunks(NAMES_PER_OP) {
            let ids: Vec<String> = chunk.iter().map(|i| i.image_id.clone()).collect();
            let replies = match ioctx.call_many(RBD_DIRECTORY, &cls_rbd::DIR_GET_NAME, &ids) {
                Ok(replies) => replies,
                Err(e) if e.is_not_found() => vec![Err(e); chunk.len()],
                Err(e) => return Err(e.into()),
            };
            for (image, reply) in chunk.iter().zip(replies) {
                let name = match reply {
                    Ok(name) => Some(name),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e.into()),
                };
                names.insert((*image).clone(), name);
            }
        }
    }
    Ok(names)
}

/// The name of image `image_id` in `ioctx`'s `rbd_directory` (`cls_rbd.dir_get_name`);
/// `None` when the directory has no such image (deleted, or in the trash).
pub(crate) fn directory_name(ioctx: &IoCtx, image_id: &str) -> Result<Option<String>> {
    match ioctx.call(RBD_DIRECTORY, &cls_rbd::DIR_GET_NAME, &image_id.to_owned()) {
        Ok(name) => Ok(Some(name)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `pool/[namespace/]image` of a member, for messages.
pub(crate) fn label_of(cluster: &Cluster, image: &ImageRef, name: Option<&str>) -> String {
    let pool = cluster.pool_name(image.pool_id).unwrap_or_else(|_| image.pool_id.to_string());
    let name = name.map_or_else(|| format!("id {}", image.image_id), str::to_owned);
    if image.namespace.is_empty() {
        format!("{pool}/{name}")
    } else {
        format!("{pool}/{}/{name}", image.namespace)
    }
}
