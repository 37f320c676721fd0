//! `rbd_cg_rados::direct::DirectImage` on the real cluster: random writes, discards and
//! write-zeroes (unaligned, spanning objects, whole objects, tails, middles, the partial
//! last object) applied to an image and to an in-memory model of it, with snapshots cut by
//! our own code in between; then, with the lock released, stock tools must agree with the
//! model: `rbd export` (head and every snapshot), a python3-rbd read, `rbd diff` (also
//! `--whole-object` and `--from-snap`), `rbd object-map check` and the `rbd info` flags,
//! plus the object map and the RADOS objects themselves. Also: a negative control (no
//! `refresh()` after a snapshot corrupts it), refusals, and a broken object-map lock.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rbd_cg_contract::records::ImageRef;
use rbd_cg_rados::ceph::cls_lock::{self, LockRequest, RBD_LOCK_NAME};
use rbd_cg_rados::ceph::cls_rbd::object_state::{EXISTS, EXISTS_CLEAN, NONEXISTENT};
use rbd_cg_rados::ceph::objects;
use rbd_cg_rados::direct::DirectImage;
use rbd_cg_rados::exclusive_lock::{self, Acquired, ExclusiveLock, LockConfig, LockTarget};
use rbd_cg_rados::{Cluster, ConnectOptions, IoCtx};

const POOL: &str = "rbd";
const DATA_POOL: &str = "rbd-cg-direct-data";
const OBJECT_SIZE: u64 = 64 << 10;
/// 41 objects, the last one 40 KiB.
const IMAGE_SIZE: u64 = 2600 << 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// xorshift64*: reproducible randomness (the seed is in every failure message).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Non-zero bytes, so "zero in the model" means "never written, or zeroed".
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() % 255 + 1) as u8).collect()
    }
}

/// An image as bytes, plus what the RADOS objects and the object map must look like.
#[derive(Clone)]
struct Model {
    bytes: Vec<u8>,
    /// Per object: whether the head object exists, and its RADOS size.
    exists: Vec<bool>,
    obj_size: Vec<u64>,
    /// Changed since the newest snapshot (fast-diff: `EXISTS`, not `EXISTS_CLEAN`).
    dirty: Vec<bool>,
}

/// A snapshot: the model at the cut, its expected object map, and what changed since.
struct Snap {
    name: String,
    at: Model,
    map: Vec<u8>,
    snap_id: u64,
    changed_since: Vec<bool>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Write(u64, u64),
    Discard(u64, u64),
    WriteZeroes(u64, u64),
}

impl Op {
    fn range(&self) -> (u64, u64) {
        match *self {
            Op::Write(o, l) | Op::Discard(o, l) | Op::WriteZeroes(o, l) => (o, l),
        }
    }
    fn objects(&self) -> std::ops::RangeInclusive<u64> {
        let (o, l) = self.range();
        o / OBJECT_SIZE..=(o + l - 1) / OBJECT_SIZE
    }
}

fn objects_in(size: u64) -> usize {
    size.div_ceil(OBJECT_SIZE) as usize
}

fn extents(offset: u64, len: u64) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    let (mut at, end) = (offset, offset + len);
    while at < end {
        let in_obj = at % OBJECT_SIZE;
        let n = (OBJECT_SIZE - in_obj).min(end - at);
        out.push(((at / OBJECT_SIZE) as usize, in_obj, n));
        at += n;
    }
    out
}

impl Model {
    fn new(size: u64) -> Model {
        let n = objects_in(size);
        Model { bytes: vec![0; size as usize], exists: vec![false; n], obj_size: vec![0; n], dirty: vec![false; n] }
    }

    fn touch(&mut self, o: usize, snaps: &mut [Snap]) {
        self.dirty[o] = true;
        for snap in snaps {
            snap.changed_since[o] = true;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8], snaps: &mut [Snap]) {
        self.bytes[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        for (o, off, len) in extents(offset, data.len() as u64) {
            self.exists[o] = true;
            self.obj_size[o] = self.obj_size[o].max(off + len);
            self.touch(o, snaps);
        }
    }

    /// RADOS `zero` on an object (measured on 16.2.15): a no-op on a missing object; a
    /// range reaching the object's end truncates it to the range start.
    fn zero_object(&mut self, o: usize, off: u64, len: u64, snaps: &mut [Snap]) {
        if !self.exists[o] {
            return;
        }
        if off < self.obj_size[o] && off + len >= self.obj_size[o] {
            self.obj_size[o] = off;
        }
        self.touch(o, snaps);
    }

    fn discard(&mut self, offset: u64, len: u64, snaps: &mut [Snap]) {
        self.bytes[offset as usize..(offset + len) as usize].fill(0);
        let image_size = self.bytes.len() as u64;
        for (o, off, n) in extents(offset, len) {
            let to_end = off + n == OBJECT_SIZE || o as u64 * OBJECT_SIZE + off + n >= image_size;
            if !to_end {
                self.zero_object(o, off, n, snaps);
            } else if self.exists[o] {
                // remove (off 0) or truncate (a missing object stays missing).
                if off == 0 {
                    self.exists[o] = false;
                }
                self.obj_size[o] = off;
                self.touch(o, snaps);
            }
        }
    }

    fn write_zeroes(&mut self, offset: u64, len: u64, snaps: &mut [Snap]) {
        self.bytes[offset as usize..(offset + len) as usize].fill(0);
        for (o, off, n) in extents(offset, len) {
            self.zero_object(o, off, n, snaps);
        }
    }

    /// The head object map this model implies.
    fn map(&self, fast_diff: bool) -> Vec<u8> {
        (0..self.exists.len())
            .map(|o| match (self.exists[o], fast_diff && !self.dirty[o]) {
                (false, _) => NONEXISTENT,
                (true, false) => EXISTS,
                (true, true) => EXISTS_CLEAN,
            })
            .collect()
    }
}

/// A random request: unaligned, spanning, whole objects, tails, middles, the image end.
fn random_op(rng: &mut Rng, size: u64) -> Op {
    let objects = objects_in(size) as u64;
    let (offset, len) = match rng.below(6) {
        // Unaligned, up to three objects long.
        0 | 1 => {
            let offset = rng.below(size);
            (offset, 1 + rng.below((3 * OBJECT_SIZE).min(size - offset)))
        }
        // Whole objects.
        2 => {
            let first = rng.below(objects);
            let count = 1 + rng.below(3.min(objects - first));
            let offset = first * OBJECT_SIZE;
            (offset, (count * OBJECT_SIZE).min(size - offset))
        }
        // An object's tail (sometimes the image's).
        3 => {
            let o = rng.below(objects);
            let end = ((o + 1) * OBJECT_SIZE).min(size);
            let offset = o * OBJECT_SIZE + rng.below(end - o * OBJECT_SIZE);
            (offset, end - offset)
        }
        // Inside one object.
        4 => {
            let o = rng.below(objects);
            let start = o * OBJECT_SIZE;
            let end = (start + OBJECT_SIZE).min(size);
            let offset = start + rng.below(end - start);
            (offset, 1 + rng.below(end - offset))
        }
        // Sector-aligned, as a block device sends them.
        _ => {
            let offset = rng.below(size / 512) * 512;
            (offset, (512 * (1 + rng.below(256))).min(size - offset))
        }
    };
    match rng.below(10) {
        0..=4 => Op::Write(offset, len),
        5..=7 => Op::Discard(offset, len),
        _ => Op::WriteZeroes(offset, len),
    }
}

/// One test image and everything needed to drive and check it.
struct Fixture {
    cluster: Cluster,
    ns: String,
    name: String,
    image: ImageRef,
    meta: IoCtx,
    data: IoCtx,
    /// `rbd_data.<id>`, or `rbd_data.<pool>.<id>` with a data pool.
    prefix: String,
    object_map: bool,
    fast_diff: bool,
}

impl Fixture {
    /// `rbd create` with `features` (None: the defaults) and maybe a data pool.
    fn create(test: &str, features: Option<&str>, data_pool: Option<&str>) -> Fixture {
        let cluster = cluster();
        let ns = namespace(test);
        ceph_tool_ok("rbd", &["namespace", "create", &format!("{POOL}/{ns}")]);
        let name = "img".to_owned();
        let spec = format!("{POOL}/{ns}/{name}");
        let (size, object_size) = (format!("{}K", IMAGE_SIZE >> 10), format!("{}K", OBJECT_SIZE >> 10));
        let mut args = vec!["create", "--size", &size, "--object-size", &object_size];
        if let Some(features) = features {
            args.extend(["--image-feature", features]);
        }
        if let Some(pool) = data_pool {
            args.extend(["--data-pool", pool]);
        }
        args.push(&spec);
        ceph_tool_ok("rbd", &args);
        let info: serde_json::Value =
            serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", &spec])).expect("rbd info json");
        let id = info["id"].as_str().expect("image id").to_owned();
        let has = |f: &str| info["features"].as_array().expect("features").iter().any(|v| v == f);
        let image = ImageRef { pool_id: cluster.pool_lookup(POOL).expect("pool"), namespace: ns.clone(), image_id: id };
        let meta = ioctx(&cluster, POOL, &ns);
        let data = ioctx(&cluster, data_pool.unwrap_or(POOL), &ns);
        let prefix = info["block_name_prefix"].as_str().expect("prefix").to_owned();
        let (object_map, fast_diff) = (has("object-map"), has("fast-diff"));
        Fixture { object_map, fast_diff, cluster, ns, name, image, meta, data, prefix }
    }

    fn spec(&self) -> String {
        format!("{POOL}/{}/{}", self.ns, self.name)
    }

    /// Takes the image's exclusive lock (and the object map's) as our fence does.
    fn lock(&self) -> ExclusiveLock {
        let target = LockTarget {
            image: self.image.clone(),
            label: self.spec(),
            object_map: self.object_map,
            fast_diff: self.fast_diff,
        };
        let config = LockConfig {
            watch_timeout_secs: 30,
            lock_duration_secs: 600,
            description: "direct_image test".into(),
            refuse_with: libc::EBUSY,
        };
        let mut lock = ExclusiveLock::watch(&self.cluster, target, &config).expect("watch");
        let acquired = lock.acquire(Instant::now() + Duration::from_secs(30)).expect("acquire");
        assert_eq!(acquired, Acquired::Owned);
        lock
    }

    /// Cuts snapshot `name` at the RADOS level under `lock`, as `client/src/fence.rs` does.
    fn cut(&self, lock: &ExclusiveLock, name: &str) -> u64 {
        let snap_id = self.data.selfmanaged_snap_create().expect("snapshot id");
        if self.object_map {
            exclusive_lock::write_snapshot_map(&self.meta, &self.image.image_id, snap_id).expect("snapshot map");
        }
        lock.add_snapshot(name, snap_id).expect("snapshot_add");
        lock.finish_cut().expect("finish cut");
        snap_id
    }

    fn head_map(&self, snap_id: Option<u64>) -> Vec<u8> {
        let oid = objects::object_map(&self.image.image_id, snap_id);
        let raw = self.meta.exec_read(&oid, "rbd", "object_map_load", &[]).expect("object_map_load");
        decode_object_map(&raw)
    }

    fn export(&self, snap: Option<&str>) -> Vec<u8> {
        let spec = match snap {
            Some(s) => format!("{}@{s}", self.spec()),
            None => self.spec(),
        };
        let out = ceph_tool("rbd", &["export", "--no-progress", &spec, "-"]);
        assert!(out.status.success(), "rbd export {spec}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `rbd diff [--whole-object] [--from-snap S]` as (offset, length, exists) extents.
    fn diff(&self, whole_object: bool, from: Option<&str>) -> Vec<(u64, u64, bool)> {
        let spec = self.spec();
        let mut args = vec!["diff", "--format", "json"];
        if whole_object {
            args.push("--whole-object");
        }
        if let Some(from) = from {
            args.extend(["--from-snap", from]);
        }
        args.push(&spec);
        let json: serde_json::Value = serde_json::from_str(&ceph_tool_ok("rbd", &args)).expect("diff json");
        json.as_array()
            .expect("array")
            .iter()
            .map(|e| {
                (
                    e["offset"].as_u64().expect("offset"),
                    e["length"].as_u64().expect("length"),
                    e["exists"].as_str() == Some("true"),
                )
            })
            .collect()
    }

    fn flags(&self, snap: Option<&str>) -> Vec<String> {
        let spec = match snap {
            Some(s) => format!("{}@{s}", self.spec()),
            None => self.spec(),
        };
        let info: serde_json::Value =
            serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", &spec])).expect("info json");
        info["flags"].as_array().expect("flags").iter().map(|f| f.as_str().unwrap_or("?").to_owned()).collect()
    }
}

/// `object_map_load`'s reply (a `BitVector<2>`): `u32` header length, header
/// `{01 01 len, u64 size}`, then two bits per object, object 0 in the high bits.
fn decode_object_map(raw: &[u8]) -> Vec<u8> {
    let header_len = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
    let count = u64::from_le_bytes(raw[10..18].try_into().unwrap()) as usize;
    let data = &raw[4 + header_len..];
    (0..count).map(|i| (data[i / 4] >> (6 - 2 * (i % 4))) & 3).collect()
}

/// The whole head read through python3-rbd.
fn python_read(pool: &str, ns: &str, name: &str) -> Vec<u8> {
    let script = "import os, sys, rados, rbd\n\
        c = rados.Rados(conffile=os.environ['CEPH_CONF']); c.connect()\n\
        io = c.open_ioctx(sys.argv[1]); io.set_namespace(sys.argv[2])\n\
        with rbd.Image(io, sys.argv[3], read_only=True) as im:\n\
        \x20   size, off = im.size(), 0\n\
        \x20   while off < size:\n\
        \x20       n = min(1 << 20, size - off); sys.stdout.buffer.write(im.read(off, n)); off += n\n";
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script, pool, ns, name])
        .output()
        .expect("running python3");
    assert!(out.status.success(), "python3-rbd read: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Every byte where `a` and `b` differ lies in one of `extents`.
fn covered(a: &[u8], b: &[u8], extents: &[(u64, u64, bool)]) -> Result<(), String> {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let i = i as u64;
        if x != y && !extents.iter().any(|&(o, l, _)| o <= i && i < o + l) {
            return Err(format!("byte {i} (object {}) differs but no extent covers it", i / OBJECT_SIZE));
        }
    }
    Ok(())
}

fn objects_of(extents: &[(u64, u64, bool)]) -> std::collections::BTreeSet<usize> {
    extents.iter().flat_map(|&(o, l, _)| (o / OBJECT_SIZE) as usize..=((o + l - 1) / OBJECT_SIZE) as usize).collect()
}

/// Sends `op` to the image only.
async fn request(di: &DirectImage, (op, data): &(Op, Vec<u8>)) -> rbd_cg_rados::RadosResult<()> {
    match *op {
        Op::Write(offset, _) => di.write(offset, data).await,
        Op::Discard(offset, len) => di.discard(offset, len).await,
        Op::WriteZeroes(offset, len) => di.write_zeroes(offset, len).await,
    }
}

/// Applies `op` to the image and the model.
async fn apply(di: &DirectImage, model: &mut Model, snaps: &mut [Snap], op: Op, data: Vec<u8>) {
    match op {
        Op::Write(offset, _) => {
            di.write(offset, &data).await.unwrap_or_else(|e| panic!("{op:?}: {e}"));
            model.write(offset, &data, snaps);
        }
        Op::Discard(offset, len) => {
            di.discard(offset, len).await.unwrap_or_else(|e| panic!("{op:?}: {e}"));
            model.discard(offset, len, snaps);
        }
        Op::WriteZeroes(offset, len) => {
            di.write_zeroes(offset, len).await.unwrap_or_else(|e| panic!("{op:?}: {e}"));
            model.write_zeroes(offset, len, snaps);
        }
    }
}

/// The whole scenario for one kind of image; see the file's docs.
fn random_io_with_snapshots(test: &str, features: Option<&str>, data_pool: Option<&str>, seed: u64) {
    let fx = Fixture::create(test, features, data_pool);
    let mut rng = Rng(seed);
    let mut model = Model::new(IMAGE_SIZE);
    let mut snaps: Vec<Snap> = Vec::new();
    let lock = fx.lock();
    let mut di = DirectImage::open(&fx.cluster, &fx.image).expect("open");
    assert_eq!((di.size(), di.object_size()), (IMAGE_SIZE, OBJECT_SIZE));
    let rt = runtime();
    for round in 0..4 {
        rt.block_on(async {
            for _ in 0..40 {
                let op = random_op(&mut rng, IMAGE_SIZE);
                let data = rng.bytes(op.range().1 as usize);
                apply(&di, &mut model, &mut snaps, op, data).await;
            }
            // Four requests on disjoint objects at once (the contract allows it).
            let mut batch: Vec<(Op, Vec<u8>)> = Vec::new();
            while batch.len() < 4 {
                let op = random_op(&mut rng, IMAGE_SIZE);
                if batch.iter().all(|(other, _)| {
                    other.objects().end() < op.objects().start() || op.objects().end() < other.objects().start()
                }) {
                    batch.push((op, rng.bytes(op.range().1 as usize)));
                }
            }
            let (a, b, c, d) = tokio::join!(
                request(&di, &batch[0]),
                request(&di, &batch[1]),
                request(&di, &batch[2]),
                request(&di, &batch[3])
            );
            for result in [a, b, c, d] {
                result.unwrap_or_else(|e| panic!("seed {seed}: concurrent request: {e}"));
            }
            for (op, data) in batch {
                match op {
                    Op::Write(offset, _) => model.write(offset, &data, &mut snaps),
                    Op::Discard(offset, len) => model.discard(offset, len, &mut snaps),
                    Op::WriteZeroes(offset, len) => model.write_zeroes(offset, len, &mut snaps),
                }
            }
            // Reads through the image agree with the model (whole image, and unaligned).
            assert!(di.read(0, IMAGE_SIZE).await.expect("read") == model.bytes, "seed {seed}: read, round {round}");
            let offset = rng.below(IMAGE_SIZE);
            let len = rng.below(IMAGE_SIZE - offset);
            let part = di.read(offset, len).await.expect("read");
            assert!(part == model.bytes[offset as usize..(offset + len) as usize], "seed {seed}: partial read");
        });
        if round == 0 {
            check_head_diff(&fx, &model, &snaps, &format!("seed {seed}, {}, before any snapshot", fx.spec()));
        }
        if round == 3 {
            break;
        }
        // A snapshot: cut by our code under the lock, then refresh and drop the cache.
        let name = format!("s{round}");
        let map = model.map(fx.fast_diff);
        let snap_id = fx.cut(&lock, &name);
        di.refresh().expect("refresh");
        di.invalidate_object_map_cache();
        assert_eq!(di.snap_context().0, snap_id);
        model.dirty.fill(false);
        snaps.push(Snap { name, at: model.clone(), map, snap_id, changed_since: vec![false; model.exists.len()] });
    }
    drop(di);
    drop(lock);
    check_against_model(&fx, &model, &snaps, seed);
}

/// Everything stock tools and RADOS say about the image must match the model.
fn check_against_model(fx: &Fixture, model: &Model, snaps: &[Snap], seed: u64) {
    let ctx = format!("seed {seed}, {}", fx.spec());
    assert!(fx.export(None) == model.bytes, "{ctx}: rbd export differs from the model");
    assert!(python_read(POOL, &fx.ns, &fx.name) == model.bytes, "{ctx}: python3-rbd read differs");
    for snap in snaps {
        assert!(fx.export(Some(&snap.name)) == snap.at.bytes, "{ctx}: rbd export @{} differs", snap.name);
    }
    // The RADOS objects of the head: existence and size.
    for o in 0..model.exists.len() {
        let stat = fx.data.stat(&format!("{}.{o:016x}", fx.prefix)).expect("stat");
        let expected = model.exists[o].then_some(model.obj_size[o]);
        assert_eq!(stat, expected, "{ctx}: object {o}");
    }
    if fx.object_map {
        assert_eq!(fx.head_map(None), model.map(fx.fast_diff), "{ctx}: head object map");
        for snap in snaps {
            assert_eq!(fx.head_map(Some(snap.snap_id)), snap.map, "{ctx}: object map of {}", snap.name);
        }
        let check = ceph_tool("rbd", &["object-map", "check", "--no-progress", &fx.spec()]);
        assert!(check.status.success(), "{ctx}: object-map check: {}", String::from_utf8_lossy(&check.stderr));
        let complaints = String::from_utf8_lossy(&check.stderr);
        assert!(complaints.trim().is_empty(), "{ctx}: object-map check complained: {complaints}");
    }
    assert_eq!(fx.flags(None), Vec::<String>::new(), "{ctx}: flags");
    for snap in snaps {
        assert_eq!(fx.flags(Some(&snap.name)), Vec::<String>::new(), "{ctx}: flags of {}", snap.name);
    }

    check_head_diff(fx, model, snaps, &ctx);

    // `--from-snap`: every changed byte is listed, and only objects changed since are.
    for snap in snaps {
        let touched: std::collections::BTreeSet<usize> = (0..model.exists.len())
            .filter(|&o| snap.changed_since[o] && (snap.at.exists[o] || model.exists[o]))
            .collect();
        for whole_object in [false, true] {
            let diff = fx.diff(whole_object, Some(&snap.name));
            let what = format!("{ctx}: rbd diff --from-snap {} (whole object: {whole_object})", snap.name);
            covered(&snap.at.bytes, &model.bytes, &diff).unwrap_or_else(|e| panic!("{what}: {e}"));
            let listed = objects_of(&diff);
            assert!(listed.is_subset(&touched), "{what}: lists untouched objects {:?}", listed.difference(&touched));
            if whole_object && fx.fast_diff {
                // From the object maps: exactly what changed and exists now or existed then.
                let exact: std::collections::BTreeSet<usize> =
                    touched.iter().copied().filter(|&o| model.exists[o] || snap.at.exists[o]).collect();
                assert_eq!(listed, exact, "{what}");
                for &(offset, _, exists) in &diff {
                    let o = (offset / OBJECT_SIZE) as usize;
                    assert_eq!(exists, model.exists[o], "{what}: object {o}");
                }
            }
        }
    }
}

/// `rbd diff` of the head (`--whole-object` too). Without snapshots it is exact: each
/// existing non-empty object from its start to its RADOS size, or (whole objects) each
/// existing object. With snapshots `rbd diff` reports an object's history since the
/// beginning (sizes it had in snapshots, objects that are empty now): then every non-zero
/// byte must be listed, and only objects that exist now or in a snapshot; with fast-diff
/// the whole-object diff (from the object maps) is still exact.
fn check_head_diff(fx: &Fixture, model: &Model, snaps: &[Snap], ctx: &str) {
    let objects = model.exists.len();
    let zeros = vec![0; model.bytes.len()];
    let ever: std::collections::BTreeSet<usize> =
        (0..objects).filter(|&o| model.exists[o] || snaps.iter().any(|s| s.at.exists[o])).collect();
    let whole_extent = |o: usize| (o as u64 * OBJECT_SIZE, OBJECT_SIZE.min(IMAGE_SIZE - o as u64 * OBJECT_SIZE), true);
    for whole_object in [false, true] {
        let what = format!("{ctx}: rbd diff (whole object: {whole_object}, {} snapshots)", snaps.len());
        let diff = fx.diff(whole_object, None);
        covered(&model.bytes, &zeros, &diff).unwrap_or_else(|e| panic!("{what}: {e}"));
        let listed = objects_of(&diff);
        assert!(listed.is_subset(&ever), "{what}: lists objects that never existed: {:?}", listed.difference(&ever));
        let expected: Option<Vec<(u64, u64, bool)>> = match (whole_object, snaps.is_empty()) {
            (false, true) => Some(
                (0..objects)
                    .filter(|&o| model.exists[o] && model.obj_size[o] > 0)
                    .map(|o| (o as u64 * OBJECT_SIZE, model.obj_size[o], true))
                    .collect(),
            ),
            (true, _) if fx.fast_diff => Some((0..objects).filter(|&o| model.exists[o]).map(whole_extent).collect()),
            (true, true) => {
                Some((0..objects).filter(|&o| model.exists[o] && model.obj_size[o] > 0).map(whole_extent).collect())
            }
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(diff, expected, "{what}");
        }
    }
}

#[test]
fn random_io_default_features() {
    random_io_with_snapshots("di-default", None, None, 0x5eed_0001);
}

#[test]
fn random_io_layering_exclusive_lock_only() {
    random_io_with_snapshots("di-nomap", Some("layering,exclusive-lock"), None, 0x5eed_0002);
}

#[test]
fn random_io_separate_data_pool() {
    ensure_pool(DATA_POOL);
    random_io_with_snapshots("di-datapool", None, Some(DATA_POOL), 0x5eed_0003);
}

/// Proves the checks bite: without `refresh()` after a snapshot, writes carry the old
/// snapshot context, the OSD makes no clone, and the snapshot shows the new data.
#[test]
fn a_stale_snapshot_context_corrupts_the_snapshot() {
    let fx = Fixture::create("di-stale", None, None);
    let lock = fx.lock();
    let di = DirectImage::open(&fx.cluster, &fx.image).expect("open");
    let rt = runtime();
    let old = vec![0x11u8; 3 * OBJECT_SIZE as usize];
    let new = vec![0x22u8; 3 * OBJECT_SIZE as usize];
    rt.block_on(di.write(0, &old)).expect("write");
    fx.cut(&lock, "s");
    di.invalidate_object_map_cache(); // the map is kept right; only refresh() is left out
    rt.block_on(di.write(0, &new)).expect("write after the snapshot");
    drop(di);
    drop(lock);
    let snap = fx.export(Some("s"));
    assert!(snap[..old.len()] != old[..], "the snapshot kept its data although the context was stale");
    assert!(snap[..new.len()] == new[..], "the snapshot shows the data written after it");
}

/// A zero past an object's end changes nothing at the OSD, so without more it makes no
/// clone for the newest snapshot while fast-diff marks the object changed, and
/// `rbd object-map check` invalidates the map (seen with random seeds): the zero must
/// still change the object.
#[test]
fn zeroes_past_an_objects_end_after_a_snapshot_keep_the_map_valid() {
    let fx = Fixture::create("di-zero-past", None, None);
    let lock = fx.lock();
    let mut di = DirectImage::open(&fx.cluster, &fx.image).expect("open");
    let rt = runtime();
    let mut model = Model::new(IMAGE_SIZE);
    let mut snaps = Vec::new();
    for o in 0..3u64 {
        let data = vec![0x55u8; 1000];
        rt.block_on(di.write(o * OBJECT_SIZE, &data)).expect("write");
        model.write(o * OBJECT_SIZE, &data, &mut snaps);
    }
    let map = model.map(true);
    let snap_id = fx.cut(&lock, "s");
    di.refresh().expect("refresh");
    di.invalidate_object_map_cache();
    model.dirty.fill(false);
    snaps.push(Snap {
        name: "s".into(),
        at: model.clone(),
        map,
        snap_id,
        changed_since: vec![false; model.exists.len()],
    });
    // Object 0: write zeroes past its end; object 1: a discard inside the object, past its
    // end; object 2: a discard of its tail, past its end (a truncate that extends it).
    rt.block_on(di.write_zeroes(2000, 100)).expect("write zeroes");
    model.write_zeroes(2000, 100, &mut snaps);
    rt.block_on(di.discard(OBJECT_SIZE + 3000, 100)).expect("discard inside");
    model.discard(OBJECT_SIZE + 3000, 100, &mut snaps);
    rt.block_on(di.discard(2 * OBJECT_SIZE + 5000, OBJECT_SIZE - 5000)).expect("discard tail");
    model.discard(2 * OBJECT_SIZE + 5000, OBJECT_SIZE - 5000, &mut snaps);
    // And objects that do not exist: nothing happens to them.
    rt.block_on(di.write_zeroes(5 * OBJECT_SIZE + 10, 100)).expect("write zeroes, missing object");
    model.write_zeroes(5 * OBJECT_SIZE + 10, 100, &mut snaps);
    rt.block_on(di.discard(6 * OBJECT_SIZE + 10, OBJECT_SIZE - 10)).expect("discard tail, missing object");
    model.discard(6 * OBJECT_SIZE + 10, OBJECT_SIZE - 10, &mut snaps);
    assert_eq!(fx.head_map(None)[..7], [EXISTS, EXISTS, EXISTS, NONEXISTENT, NONEXISTENT, NONEXISTENT, NONEXISTENT]);
    drop(di);
    drop(lock);
    check_against_model(&fx, &model, &snaps, 0);
}

#[test]
fn clones_striping_and_journaling_are_refused() {
    let fx = Fixture::create("di-refuse", None, None);
    let base = fx.spec();
    ceph_tool_ok("rbd", &["snap", "create", &format!("{base}@s")]);
    ceph_tool_ok("rbd", &["snap", "protect", &format!("{base}@s")]);
    let child = format!("{POOL}/{}/child", fx.ns);
    ceph_tool_ok("rbd", &["clone", &format!("{base}@s"), &child]);
    let image_of = |spec: &str| {
        let info: serde_json::Value =
            serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", spec])).expect("info");
        ImageRef { pool_id: fx.image.pool_id, namespace: fx.ns.clone(), image_id: info["id"].as_str().unwrap().into() }
    };
    let refused = |spec: &str| match DirectImage::open(&fx.cluster, &image_of(spec)) {
        Ok(_) => panic!("{spec} was opened"),
        Err(e) => e,
    };
    let e = refused(&child);
    assert_eq!(e.errno, libc::EOPNOTSUPP, "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("flatten"), "{e:?}");
    // Flattened, it is an ordinary image.
    ceph_tool_ok("rbd", &["flatten", "--no-progress", &child]);
    let flat = DirectImage::open(&fx.cluster, &image_of(&child)).expect("a flattened clone opens");
    assert_eq!(flat.size(), IMAGE_SIZE);

    let striped = format!("{POOL}/{}/striped", fx.ns);
    ceph_tool_ok("rbd", &["create", "--size", "8M", "--stripe-unit", "16K", "--stripe-count", "4", &striped]);
    let e = refused(&striped);
    assert_eq!(e.errno, libc::EOPNOTSUPP, "{e}");
    assert!(e.op.contains("striped"), "{e}");

    let journaled = format!("{POOL}/{}/journaled", fx.ns);
    ceph_tool_ok("rbd", &["create", "--size", "8M", "--image-feature", "exclusive-lock,journaling", &journaled]);
    let e = refused(&journaled);
    assert_eq!(e.errno, libc::EOPNOTSUPP, "{e}");
    assert!(e.op.contains("journaling"), "{e}");
}

/// A librbd-like client breaks our object-map lock and takes it: our next write that
/// needs a map update fails `EBUSY` with nothing written, and every later write too.
#[test]
fn a_broken_object_map_lock_stops_writes() {
    let fx = Fixture::create("di-broken", None, None);
    let _lock = fx.lock();
    let di = DirectImage::open(&fx.cluster, &fx.image).expect("open");
    let rt = runtime();
    let first = vec![0x33u8; OBJECT_SIZE as usize];
    rt.block_on(di.write(0, &first)).expect("write object 0");

    // Someone else (another client, as librbd's object_map::LockRequest does) breaks it.
    let other = Cluster::connect(&ConnectOptions::default()).expect("second client");
    let other_io = ioctx(&other, POOL, &fx.ns);
    let map_oid = objects::object_map(&fx.image.image_id, None);
    for locker in other_io.list_lockers(&map_oid, RBD_LOCK_NAME).expect("lockers").lockers {
        other_io.break_lock(&map_oid, RBD_LOCK_NAME, &locker.client, &locker.cookie).expect("break");
    }
    let take = LockRequest {
        name: RBD_LOCK_NAME.into(),
        cookie: String::new(),
        tag: String::new(),
        description: String::new(),
        duration_secs: 0,
        may_renew: false,
    };
    other_io.call_write(&map_oid, &cls_lock::LOCK, &take).expect("the other client locks the map");

    // Objects 0 (known to exist) and 1 (new): the map update for 1 fails, nothing lands.
    let second = vec![0x44u8; 2 * OBJECT_SIZE as usize];
    let e = rt.block_on(di.write(0, &second)).expect_err("write after the lock was broken");
    assert_eq!(e.errno, libc::EBUSY, "{e}");
    assert!(e.op.contains("lock.assert_locked"), "{e}");
    assert_eq!(fx.data.stat(&di.object_name(1)).expect("stat"), None, "object 1 was written");
    assert!(rt.block_on(di.read(0, OBJECT_SIZE)).expect("read") == first, "object 0 was overwritten");
    // Sticky: even a write to an object known to exist (no map update needed) is refused.
    let e = rt.block_on(di.write(0, &[1, 2, 3])).expect_err("later write");
    assert_eq!(e.errno, libc::EBUSY, "{e}");
    let e = rt.block_on(di.discard(0, OBJECT_SIZE)).expect_err("later discard");
    assert_eq!(e.errno, libc::EBUSY, "{e}");
    assert!(rt.block_on(di.read(0, OBJECT_SIZE)).expect("read") == first, "object 0 changed");
    other_io.unlock(&map_oid, RBD_LOCK_NAME, "").expect("unlock");
}

#[test]
fn requests_past_the_end_are_refused() {
    let fx = Fixture::create("di-bounds", Some("layering,exclusive-lock"), None);
    let _lock = fx.lock();
    let di = DirectImage::open(&fx.cluster, &fx.image).expect("open");
    let rt = runtime();
    for e in [
        rt.block_on(di.write(IMAGE_SIZE - 1, &[1, 2])).expect_err("write"),
        rt.block_on(di.discard(IMAGE_SIZE, 1)).expect_err("discard"),
        rt.block_on(di.write_zeroes(u64::MAX, 2)).expect_err("write zeroes"),
        rt.block_on(di.read(0, IMAGE_SIZE + 1)).expect_err("read"),
    ] {
        assert_eq!(e.errno, libc::EINVAL, "{e}");
    }
    // Empty requests are no-ops, also at the very end.
    rt.block_on(di.write(IMAGE_SIZE, &[])).expect("empty write");
    rt.block_on(di.write_zeroes(IMAGE_SIZE, 0)).expect("empty zero");
    assert_eq!(rt.block_on(di.read(IMAGE_SIZE, 0)).expect("empty read"), Vec::<u8>::new());
    assert_eq!(fx.data.stat(&di.object_name(0)).expect("stat"), None);
}
