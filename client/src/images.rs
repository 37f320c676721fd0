//! Member images as the group operations see them: names from `rbd_directory`, features and
//! data pool from `cls_rbd`, snapshots, opened through librbd. One place for these lookups,
//! shared by snapshots, clones and membership.

use crate::error::Result;
use crate::snapshots::reserve::free_snap_id;
use rbd_cg_contract::names::parse_image_snap_name;
use rbd_cg_contract::records::ImageRef;
use rbd_cg_rados::ceph::cls_rbd::{self, GetFeatures};
use rbd_cg_rados::ceph::objects::{self, RBD_DIRECTORY};
use rbd_cg_rados::cls::ReadBatch;
use rbd_cg_rados::exclusive_lock::{write_snapshot_map, Acquired, ExclusiveLock, LockConfig, LockTarget};
use rbd_cg_rados::image::{Image, FEATURE_EXCLUSIVE_LOCK, FEATURE_FAST_DIFF, FEATURE_OBJECT_MAP};
use rbd_cg_rados::{Cluster, IoCtx};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What one image holds now: its snapshots (name, id), every namespace.
#[derive(Clone)]
pub(crate) struct ImageSnaps {
    pub(crate) snaps: Vec<(String, u64)>,
}

/// Opens a member image read-write by id.
pub(crate) fn open_member(cluster: &Cluster, image: &ImageRef) -> Result<Image> {
    Ok(Image::open_by_id(&cluster.ioctx_in(image.pool_id, &image.namespace)?, &image.image_id)?)
}

/// How long [`cut_unfenced`] waits for a member's exclusive lock.
const UNFENCED_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Snapshots one image on its own, not fenced together with the other members (`--no-fence`,
/// or `--allow-unfenced` for an image without the exclusive-lock feature), through the same
/// cut as the fenced path (`ExclusiveLock::add_snapshot`, so the snapshot goes into the group
/// namespace): as librbd would, under the image's exclusive lock when it has the feature,
/// else straight. A rerun finding the snapshot already there is fine.
pub(crate) fn cut_unfenced(cluster: &Cluster, image_ref: &ImageRef, snap_name: &str) -> Result<u64> {
    if let Some(existing) = crate::member_snaps::by_name(cluster, image_ref, snap_name)?.first() {
        return Ok(existing.id());
    }
    let ioctx = cluster.ioctx_in(image_ref.pool_id, &image_ref.namespace)?;
    let (features, data_pool_id) = inspect(&ioctx, image_ref)?;
    let fenced = features & FEATURE_EXCLUSIVE_LOCK != 0;
    let target = LockTarget {
        image: image_ref.clone(),
        label: label_of(cluster, image_ref, None),
        object_map: fenced && features & FEATURE_OBJECT_MAP != 0,
        fast_diff: fenced && features & FEATURE_FAST_DIFF != 0,
    };
    let config = LockConfig {
        watch_timeout_secs: 30,
        lock_duration_secs: 60,
        description: format!("rbd-cg snapshot {snap_name}"),
        refuse_with: libc::EBUSY,
    };
    let mut lock = ExclusiveLock::watch(cluster, target, &config)?;
    if fenced {
        let deadline = Instant::now() + UNFENCED_LOCK_WAIT;
        while lock.acquire(deadline)? == Acquired::Contended {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let data_pool = cluster.ioctx_by_id(data_pool_id)?;
    let cut = |lock: &ExclusiveLock, id: u64| -> rbd_cg_rados::RadosResult<()> {
        if let Some((map_io, image_id)) = lock.snapshot_map_job()? {
            write_snapshot_map(&map_io, &image_id, id)?;
        }
        let added = if fenced { lock.add_snapshot(snap_name, id) } else { lock.add_snapshot_unfenced(snap_name, id) };
        if added.is_err() {
            lock.drop_snapshot_map(id);
            free_snap_id(&data_pool, id);
        }
        added
    };
    let mut id = data_pool.selfmanaged_snap_create()?;
    if let Err(e) = cut(&lock, id) {
        if e.errno != libc::ESTALE {
            return Err(e.into());
        }
        id = data_pool.selfmanaged_snap_create()?;
        cut(&lock, id)?;
    }
    lock.finish_cut()?;
    lock.release();
    Ok(id)
}

/// An image's snapshots in every namespace (`None`: the image or its pool is gone),
/// through a read-only open (no watch; works with read-only caps).
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

/// Most member-snapshot probes batched into one read op.
const PROBES_PER_OP: usize = 256;

/// Whether each image snapshot `(snap_id, snap_name)` exists on `image` with that name (or,
/// for a member snapshot, its exposed name), in one read op (`cls_rbd.get_snapshot_name`
/// per snapshot). A gone pool or image has none.
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
                Ok(name) => name == *snap_name || is_exposed_form(&name, snap_name),
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e.into()),
            });
        }
    }
    Ok(present)
}

/// Whether `name` is the exposed form of member snapshot name `snap_name`.
fn is_exposed_form(name: &str, snap_name: &str) -> bool {
    match (parse_image_snap_name(name), parse_image_snap_name(snap_name)) {
        (Some(a), Some(b)) => {
            a.exposed
                && !b.exposed
                && (a.group_pool_id, a.group_id, a.snap_id) == (b.group_pool_id, b.group_id, b.snap_id)
        }
        _ => false,
    }
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
