//! The members of a journaled group, as the writer holds them: each one's exclusive lock
//! (answering lock requests with `EROFS`, so no librbd client can take the image while the
//! writer runs) and its image opened for writing at the RADOS level.
//!
//! While journaling is enabled the member images carry librbd's `non-primary` feature (set by
//! `rbd-cg journal enable`), so stock writers get `EROFS` whether or not a writer runs;
//! librbd therefore cannot write them for us either, and the writer writes their RADOS objects
//! itself ([`rbd_cg_rados::direct::DirectImage`]), keeping object maps and snapshots right.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rbd_cg_contract::journal::JournalRecord;
use rbd_cg_contract::records::ImageRef;
use rbd_cg_rados::ceph::cls_rbd;
use rbd_cg_rados::ceph::objects::{self, RBD_DIRECTORY};
use rbd_cg_rados::direct::DirectImage;
use rbd_cg_rados::exclusive_lock::{Acquired, ExclusiveLock, LockConfig, LockTarget};
use rbd_cg_rados::image::{FEATURE_FAST_DIFF, FEATURE_OBJECT_MAP};
use rbd_cg_rados::{Cluster, RadosError, RadosResult};

use crate::apply::{BoxFuture, Target};

/// How long taking a member's lock may take.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// The watch timeout of the member locks' watches.
const WATCH_TIMEOUT_SECS: u32 = 10;

/// One member of a journaled group, held by the writer.
pub struct Member {
    /// Its journal tag.
    pub tag: u32,
    /// The image.
    pub image: ImageRef,
    /// `pool/[namespace/]name`, for messages and NBD export names.
    pub label: String,
    /// The image's name (`None`: not in its directory, e.g. in the trash).
    pub name: Option<String>,
    /// Our exclusive lock on it.
    pub lock: ExclusiveLock,
    /// The image, written at the RADOS level.
    pub image_io: Arc<ImageSlot>,
    /// Its data pool, where its snapshot ids are allocated.
    pub data_pool: rbd_cg_rados::IoCtx,
}

/// `pool/[namespace/]name` of an image, and its name.
pub fn label(cluster: &Cluster, image: &ImageRef) -> (String, Option<String>) {
    let pool = cluster.pool_name(image.pool_id).unwrap_or_else(|_| image.pool_id.to_string());
    let name = cluster
        .ioctx_in(image.pool_id, &image.namespace)
        .and_then(|io| io.call(RBD_DIRECTORY, &cls_rbd::DIR_GET_NAME, &image.image_id))
        .ok();
    let shown = name.clone().unwrap_or_else(|| format!("id {}", image.image_id));
    let label = match image.namespace.as_str() {
        "" => format!("{pool}/{shown}"),
        ns => format!("{pool}/{ns}/{shown}"),
    };
    (label, name)
}

/// Takes every member of `record`: its exclusive lock (and object-map lock), then opens it
/// for RADOS-level writes. On error, what was taken is released (dropped).
pub fn open_members(cluster: &Cluster, record: &JournalRecord, description: &str) -> RadosResult<Vec<Member>> {
    let mut members = Vec::with_capacity(record.members.len());
    for member in &record.members {
        let (label, name) = label(cluster, &member.image);
        // Opened once before the lock for its features (and to refuse what cannot be
        // written directly before taking anything), once more under it.
        let features =
            DirectImage::open(cluster, &member.image).map_err(|e| e.context(format!("opening {label}")))?.features();
        let target = LockTarget {
            image: member.image.clone(),
            label: label.clone(),
            object_map: features & FEATURE_OBJECT_MAP != 0,
            fast_diff: features & FEATURE_FAST_DIFF != 0,
        };
        let config = LockConfig {
            watch_timeout_secs: WATCH_TIMEOUT_SECS,
            lock_duration_secs: 0,
            description: description.to_owned(),
            refuse_with: libc::EROFS,
        };
        let mut lock = ExclusiveLock::watch(cluster, target, &config)?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            match lock.acquire(deadline)? {
                Acquired::Owned => break,
                Acquired::Contended => {
                    if Instant::now() >= deadline {
                        return Err(RadosError::new(
                            format!("{label}: its lock stays held by another fence"),
                            libc::ETIMEDOUT,
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        // What the image is like now that nobody else can change it.
        let image_io = ImageSlot::open(cluster, &member.image).map_err(|e| e.context(format!("opening {label}")))?;
        let meta = cluster.ioctx_in(member.image.pool_id, &member.image.namespace)?;
        let header = objects::image_header(&member.image.image_id);
        let data_pool_id = meta.call(&header, &cls_rbd::GET_DATA_POOL, &())?.0.unwrap_or(member.image.pool_id);
        let data_pool = cluster.ioctx_in(data_pool_id, &member.image.namespace)?;
        members.push(Member { tag: member.tag, image: member.image.clone(), label, name, lock, image_io, data_pool });
    }
    Ok(members)
}

/// A member image opened for RADOS-level writes, opened again after each snapshot the
/// writer cuts: writes must carry the new snapshot context (a stale one silently corrupts the
/// snapshot), and fast-diff turned the head's objects `EXISTS_CLEAN`, so the object-map cache
/// starts over. Reopening is one OSD read; it happens only while nothing is being applied
/// (the applier is drained before a cut), so no write runs with the old context.
pub struct ImageSlot {
    cluster: Cluster,
    current: Mutex<Arc<DirectImage>>,
}

impl ImageSlot {
    /// Opens `image`.
    pub fn open(cluster: &Cluster, image: &ImageRef) -> RadosResult<Arc<ImageSlot>> {
        let opened = DirectImage::open(cluster, image)?;
        Ok(Arc::new(ImageSlot { cluster: cluster.clone(), current: Mutex::new(Arc::new(opened)) }))
    }

    /// The image as opened last.
    pub fn get(&self) -> Arc<DirectImage> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Opens it again (after a snapshot); requests already running keep the old one.
    pub fn reopen(&self) -> RadosResult<()> {
        let image = self.get().image().clone();
        let opened = DirectImage::open(&self.cluster, &image)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(opened);
        Ok(())
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.get().size()
    }
}

impl Target for ImageSlot {
    fn object_size(&self) -> u64 {
        self.get().object_size()
    }

    fn write(self: Arc<Self>, offset: u64, data: Arc<[u8]>) -> BoxFuture<()> {
        let image = self.get();
        Box::pin(async move { image.write(offset, &data).await })
    }

    fn discard(self: Arc<Self>, offset: u64, len: u64) -> BoxFuture<()> {
        let image = self.get();
        Box::pin(async move { image.discard(offset, len).await })
    }

    fn write_zeroes(self: Arc<Self>, offset: u64, len: u64) -> BoxFuture<()> {
        let image = self.get();
        Box::pin(async move { image.write_zeroes(offset, len).await })
    }
}
