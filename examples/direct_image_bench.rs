//! 4 KiB random writes at queue depth 16: `DirectImage` (RADOS level, under our exclusive
//! lock) against `AioImage` (librbd), on the same image of a running cluster.
//!
//! ```text
//! eval "$(scripts/cluster.sh env /tmp/di-cluster)"
//! cargo run --release --example direct_image_bench -- [POOL [SIZE_MIB [SECONDS [librbd-first]]]]
//! ```
//!
//! Each side writes its own fresh image `POOL/direct-bench-<pid>-<side>` (default features,
//! 4 MiB objects; default 256 MiB), removed afterwards: on one OSD, overwriting blocks that
//! are already allocated is much slower than the first writes, so sharing an image would
//! favour whichever side runs first. Each of the 16 workers writes only objects `n` with
//! `n % 16 == worker`, so no two writes in flight share an object (`DirectImage`'s contract);
//! both sides get the same pattern. A warm-up of one write per object (librbd and
//! `DirectImage` then both know every object exists) precedes the timed run.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbd_cg_contract::records::ImageRef;
use rbd_cg_rados::aio::AioImage;
use rbd_cg_rados::direct::DirectImage;
use rbd_cg_rados::exclusive_lock::{ExclusiveLock, LockConfig, LockTarget};
use rbd_cg_rados::image::Image;
use rbd_cg_rados::{Cluster, ConnectOptions, RadosResult};

const QUEUE_DEPTH: u64 = 16;
const BLOCK: u64 = 4096;
const OBJECT: u64 = 4 << 20;

fn rbd(args: &[&str]) -> String {
    let out = Command::new("rbd").args(args).output().expect("running rbd");
    assert!(out.status.success(), "rbd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The offset of a random 4 KiB block in an object that belongs to `worker`.
fn offset(state: &mut u64, worker: u64, objects: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let object = (*state % objects.div_ceil(QUEUE_DEPTH)) * QUEUE_DEPTH + worker;
    let object = if object >= objects { worker } else { object };
    object * OBJECT + (*state >> 32) % (OBJECT / BLOCK) * BLOCK
}

/// CPU time this process used so far, in seconds (`/proc/self/stat`: utime + stime, in
/// clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is field 3.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// What a timed run achieved.
struct Outcome {
    iops: f64,
    /// Client CPU per write, in microseconds (librados/librbd threads included).
    cpu_us: f64,
}

/// Runs `write` from 16 workers for `duration`.
fn run<W, F>(rt: &tokio::runtime::Runtime, objects: u64, duration: Duration, write: W) -> Outcome
where
    W: Fn(u64) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = RadosResult<()>> + Send,
{
    let write = Arc::new(write);
    let done = Arc::new(AtomicU64::new(0));
    let cpu = cpu_seconds();
    let start = Instant::now();
    rt.block_on(async {
        let workers: Vec<_> = (0..QUEUE_DEPTH)
            .map(|worker| {
                let (write, done) = (Arc::clone(&write), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut state = 0x9e37_79b9_7f4a_7c15 ^ (worker + 1);
                    while start.elapsed() < duration {
                        write(offset(&mut state, worker, objects)).await.expect("write");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("worker");
        }
    });
    let writes = done.load(Ordering::Relaxed) as f64;
    Outcome { iops: writes / start.elapsed().as_secs_f64(), cpu_us: (cpu_seconds() - cpu) * 1e6 / writes.max(1.0) }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pool = args.first().map_or("rbd", String::as_str).to_owned();
    let size_mib: u64 = args.get(1).map_or(256, |s| s.parse().expect("size in MiB"));
    let seconds: u64 = args.get(2).map_or(10, |s| s.parse().expect("seconds"));
    let librbd_first = args.get(3).is_some_and(|s| s == "librbd-first");
    let cluster = Cluster::connect(&ConnectOptions::default()).expect("connect");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let bench = Bench { cluster, pool, size_mib, duration: Duration::from_secs(seconds), rt };
    let (direct, librbd) = if librbd_first {
        let librbd = bench.librbd();
        (bench.direct(), librbd)
    } else {
        let direct = bench.direct();
        (direct, bench.librbd())
    };
    let order = if librbd_first { "librbd first" } else { "DirectImage first" };
    println!(
        "4 KiB random writes, queue depth {QUEUE_DEPTH}, a fresh {size_mib} MiB image each, {seconds} s, {order}:"
    );
    println!("  DirectImage (RADOS):  {:8.0} IOPS, {:5.0} us client CPU per write", direct.iops, direct.cpu_us);
    println!("  AioImage (librbd):    {:8.0} IOPS, {:5.0} us client CPU per write", librbd.iops, librbd.cpu_us);
}

struct Bench {
    cluster: Cluster,
    pool: String,
    size_mib: u64,
    duration: Duration,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn objects(&self) -> u64 {
        (self.size_mib << 20) / OBJECT
    }

    /// A fresh image: (name, spec, id).
    fn create(&self, side: &str) -> (String, String, ImageRef) {
        let name = format!("direct-bench-{}-{side}", std::process::id());
        let spec = format!("{}/{name}", self.pool);
        rbd(&["create", "--size", &format!("{}M", self.size_mib), &spec]);
        let info = rbd(&["info", &spec]);
        let id = info.lines().find_map(|l| l.trim().strip_prefix("id: ")).expect("image id").to_owned();
        let pool_id = self.cluster.pool_lookup(&self.pool).expect("pool");
        (name, spec, ImageRef { pool_id, namespace: String::new(), image_id: id })
    }

    /// DirectImage, under our exclusive lock.
    fn direct(&self) -> Outcome {
        let (_, spec, image) = self.create("direct");
        let target = LockTarget { image: image.clone(), label: spec.clone(), object_map: true, fast_diff: true };
        let config = LockConfig {
            watch_timeout_secs: 30,
            lock_duration_secs: 600,
            description: "direct_image_bench".into(),
            refuse_with: libc::EBUSY,
        };
        let mut lock = ExclusiveLock::watch(&self.cluster, target, &config).expect("watch");
        lock.acquire(Instant::now() + Duration::from_secs(30)).expect("lock");
        let direct = Arc::new(DirectImage::open(&self.cluster, &image).expect("open"));
        let data = Arc::new(vec![0x5au8; BLOCK as usize]);
        for object in 0..self.objects() {
            self.rt.block_on(direct.write(object * OBJECT, &data)).expect("warm-up");
        }
        let d = Arc::clone(&direct);
        let iops = run(&self.rt, self.objects(), self.duration, move |offset| {
            let (d, data) = (Arc::clone(&d), Arc::clone(&data));
            async move { d.write(offset, &data).await }
        });
        drop(direct);
        drop(lock); // releases the lock and ends the watch
        rbd(&["rm", "--no-progress", &spec]);
        iops
    }

    /// AioImage (librbd).
    fn librbd(&self) -> Outcome {
        let (name, spec, _) = self.create("librbd");
        let io = self.cluster.ioctx(&self.pool).expect("ioctx");
        let aio = Arc::new(AioImage::new(Image::open(&io, &name).expect("open")));
        let data = vec![0x5au8; BLOCK as usize];
        for object in 0..self.objects() {
            self.rt.block_on(aio.aio_write(object * OBJECT, data.clone())).expect("warm-up");
        }
        let a = Arc::clone(&aio);
        let iops = run(&self.rt, self.objects(), self.duration, move |offset| {
            let (a, data) = (Arc::clone(&a), data.clone());
            async move { a.aio_write(offset, data).await }
        });
        drop(aio);
        drop(io);
        rbd(&["rm", "--no-progress", &spec]);
        iops
    }
}
