//! Copying one member image from a snapshot of the primary to the secondary's member.
//!
//! The primary's image is read through librbd at the snapshot (by id: group snapshots live
//! in cls_rbd's group namespace); only extents that hold data there are read
//! (`diff_iterate2`), and chunks that read as zeros are discarded rather than written. Every
//! chunk of the secondary is written or discarded, so a copy over an old copy (a resync)
//! leaves nothing of it behind. Chunks are one object each, [`IN_FLIGHT`] at a time; the
//! progress callback gets the offset below which everything is copied, so an interrupted
//! copy resumes there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rbd_cg_rados::aio::AioImage;
use rbd_cg_rados::direct::DirectImage;
use rbd_cg_rados::image::Image;
use rbd_cg_rados::{IoCtx, RadosError, RadosResult};

/// Chunks copied at once per member.
pub const IN_FLIGHT: usize = 8;

/// Copies image `image_id` (in `peer_io`) at snapshot `snap_id` onto `target`, from offset
/// `from` on; `progress(copied_up_to, bytes_read)` after every round. Stops early (`Ok`)
/// when `stop` is set. With `bandwidth` (bytes per second of this member's copy), rounds are
/// spaced out to stay below it (`--sync-bandwidth`).
#[allow(clippy::too_many_arguments)]
pub fn copy_member(
    peer_io: &IoCtx,
    image_id: &str,
    snap_id: u64,
    target: Arc<DirectImage>,
    from: u64,
    stop: &AtomicBool,
    bandwidth: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> RadosResult<()> {
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let mut image = Image::open_by_id_read_only(peer_io, image_id)?;
    image.set_snap_by_id(Some(snap_id))?;
    let size = image.size()?;
    if size != target.size() {
        return Err(RadosError::new(
            format!("image {image_id} is {size} bytes at the snapshot, the copy {}", target.size()),
            libc::EINVAL,
        ));
    }
    let chunk = target.object_size().max(4096);
    let start = from - from % chunk;
    let allocated = image.allocated_extents(start, size - start.min(size))?;
    let source = Arc::new(AioImage::new(image));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RadosError::new(format!("starting a runtime: {e}"), libc::EIO))?;
    let mut offset = start;
    while offset < size {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let round: Vec<(u64, u64)> = (0..IN_FLIGHT as u64)
            .map(|i| offset + i * chunk)
            .take_while(|o| *o < size)
            .map(|o| (o, chunk.min(size - o)))
            .collect();
        let read_bytes = runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (o, len) in round.iter().copied() {
                let has_data = allocated.iter().any(|(a, l)| *a < o + len && o < a + l);
                let (source, target) = (Arc::clone(&source), Arc::clone(&target));
                set.spawn(async move {
                    if !has_data {
                        return target.discard(o, len).await.map(|()| 0u64);
                    }
                    let data = source.aio_read(o, len as usize).await?;
                    if data.iter().all(|b| *b == 0) {
                        target.discard(o, len).await.map(|()| len)
                    } else {
                        target.write(o, &data).await.map(|()| len)
                    }
                });
            }
            let mut bytes = 0u64;
            while let Some(done) = set.join_next().await {
                bytes += done.map_err(|_| RadosError::new("copying a chunk panicked", libc::EIO))??;
            }
            Ok::<u64, RadosError>(bytes)
        })?;
        offset = round.last().map_or(size, |(o, l)| o + l);
        progress(offset, read_bytes);
        sent += round.iter().map(|(_, l)| l).sum::<u64>();
        if let Some(limit) = bandwidth.filter(|l| *l > 0) {
            let due = std::time::Duration::from_secs_f64(sent as f64 / limit as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok(())
}
