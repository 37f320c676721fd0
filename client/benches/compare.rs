//! `rbd-cg` against stock `rbd group` on the same cluster, in one run.
//!
//! Run through `scripts/bench.sh` (it builds in release mode, starts a throwaway cluster and
//! writes the report). Every comparison builds identical, separate images and groups for
//! both tools, alternates the two tools run by run (so drift in the cluster hits both), and
//! reports medians and the ratio ours / stock. Both tools are timed as CLI processes, the
//! way an operator runs them. The raw class round trip is timed in-process: 10,000 calls of
//! our cheapest read method (`rbd_cg.get_version`) interleaved with 10,000 of the stock C++
//! `hello.say_hello`. `--scale` adds how each operation grows at 10, 100 and 1,000 members
//! and snapshots.
//!
//! This is a measurement, not a test: nothing here asserts a time.

use rbd_cg_client::groups::Groups;
use rbd_cg_client::spec::{ImageSpec, PoolSpec};
use rbd_cg_rados::{Cluster, ConnectOptions, IoCtx};
use std::process::Command;
use std::time::{Duration, Instant};

const POOL: &str = "rbd";

struct Bench {
    cluster: Cluster,
    ns: String,
    ours: String,
    reps: usize,
    rows: Vec<(String, Duration, Option<Duration>)>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// Runs a command and returns its wall time; it must succeed.
fn timed(program: &str, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    let took = start.elapsed();
    assert!(out.status.success(), "{program} {args:?}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    took
}

fn run(program: &str, args: &[&str]) {
    timed(program, args);
}

impl Bench {
    fn spec(&self, name: &str) -> String {
        format!("{POOL}/{}/{name}", self.ns)
    }

    fn ioctx(&self) -> IoCtx {
        let mut ioctx = self.cluster.ioctx(POOL).expect("pool");
        ioctx.set_namespace(&self.ns).expect("namespace");
        ioctx
    }

    /// Images `prefix0..prefixN` with the cluster's default features, like `rbd create`.
    fn images(&self, prefix: &str, count: usize) -> Vec<String> {
        let ioctx = self.ioctx();
        (0..count)
            .map(|i| {
                let name = format!("{prefix}{i}");
                rbd_cg_rados::image::image_create(&ioctx, &name, 64 << 20, None).expect("image create");
                self.spec(&name)
            })
            .collect()
    }

    /// A group per tool with `members` fresh images each: (ours, stock).
    fn group_pair(&self, tag: &str, members: usize) -> (String, String) {
        let (ours, stock) = (self.spec(&format!("o-{tag}")), self.spec(&format!("s-{tag}")));
        run(&self.ours, &["create", &ours]);
        run("rbd", &["group", "create", &stock]);
        for image in self.images(&format!("o-{tag}-"), members) {
            run(&self.ours, &["image", "add", &ours, &image]);
        }
        for image in self.images(&format!("s-{tag}-"), members) {
            run("rbd", &["group", "image", "add", &stock, &image]);
        }
        (ours, stock)
    }

    /// Alternates `ours(rep)` and `stock(rep)` for every rep and records the medians.
    fn compare(
        &mut self,
        what: &str,
        mut ours: impl FnMut(usize) -> Duration,
        mut stock: impl FnMut(usize) -> Duration,
    ) {
        let (mut o, mut s) = (Vec::new(), Vec::new());
        for rep in 0..self.reps {
            o.push(ours(rep));
            s.push(stock(rep));
        }
        let (o, s) = (median(o), median(s));
        eprintln!("{what}: ours {} stock {} ratio {:.2}", ms(o), ms(s), o.as_secs_f64() / s.as_secs_f64());
        self.rows.push((what.to_owned(), o, Some(s)));
    }

    fn cli_comparisons(&mut self) {
        let ours = self.ours.clone();
        let spec = |n: String| format!("{POOL}/{}/{n}", self.ns);
        let create_names: Vec<(String, String)> =
            (0..self.reps).map(|r| (spec(format!("oc{r}")), spec(format!("sc{r}")))).collect();
        self.compare(
            "group create",
            |r| timed(&ours, &["create", &create_names[r].0]),
            |r| timed("rbd", &["group", "create", &create_names[r].1]),
        );

        // Adding 16 images: the whole sequence, one CLI call per image, into a fresh group.
        let adds: Vec<(Vec<String>, Vec<String>)> = (0..self.reps)
            .map(|r| (self.images(&format!("oa{r}-"), 16), self.images(&format!("sa{r}-"), 16)))
            .collect();
        self.compare(
            "image add ×16",
            |r| adds[r].0.iter().map(|i| timed(&ours, &["image", "add", &create_names[r].0, i])).sum(),
            |r| adds[r].1.iter().map(|i| timed("rbd", &["group", "image", "add", &create_names[r].1, i])).sum(),
        );

        for members in [1usize, 8, 16, 32] {
            let (o, s) = self.group_pair(&format!("m{members}"), members);
            self.compare(
                &format!("snap create, {members} members"),
                |r| timed(&ours, &["snap", "create", &format!("{o}@s{r}")]),
                |r| timed("rbd", &["group", "snap", "create", &format!("{s}@s{r}")]),
            );
            if members == 16 {
                self.compare(
                    "snap ls (16 members)",
                    |_| timed(&ours, &["snap", "ls", &o]),
                    |_| timed("rbd", &["group", "snap", "ls", &s]),
                );
                self.compare(
                    "snap rm (16 members)",
                    |r| timed(&ours, &["snap", "rm", &format!("{o}@s{r}")]),
                    |r| timed("rbd", &["group", "snap", "rm", &format!("{s}@s{r}")]),
                );
            }
        }

        // Removing a group of 8 members with one snapshot (stock `group rm` also drops
        // snapshots and membership; ours needs --force for that).
        let removals: Vec<(String, String)> = (0..self.reps)
            .map(|r| {
                let (o, s) = self.group_pair(&format!("rm{r}"), 8);
                run(&ours, &["snap", "create", &format!("{o}@x")]);
                run("rbd", &["group", "snap", "create", &format!("{s}@x")]);
                (o, s)
            })
            .collect();
        self.compare(
            "rm (8 members, 1 snapshot)",
            |r| timed(&ours, &["rm", "--force", &removals[r].0]),
            |r| timed("rbd", &["group", "rm", &removals[r].1]),
        );
    }

    /// 10,000 calls each of `rbd_cg.get_version` and `hello.say_hello`, interleaved.
    fn round_trip(&mut self) {
        const CALLS: usize = 10_000;
        let ioctx = self.ioctx();
        ioctx.write_full("bench_round_trip", b"x").expect("object");
        let (mut ours, mut stock) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
        let method = rbd_cg_contract::methods::GET_VERSION;
        let input = rbd_cg_contract::encoding::encode(&rbd_cg_contract::methods::Empty {}).expect("encode");
        for _ in 0..CALLS {
            let start = Instant::now();
            ioctx.exec_read("bench_round_trip", "rbd_cg", method.name, &input).expect("rbd_cg.get_version");
            ours.push(start.elapsed());
            let start = Instant::now();
            ioctx.exec_read("bench_round_trip", "hello", "say_hello", &[]).expect("hello.say_hello");
            stock.push(start.elapsed());
        }
        let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
        let (om, sm) = (mean(&ours), mean(&stock));
        eprintln!("round trip: ours mean {om:?} stock mean {sm:?}");
        self.rows.push(("class round trip, mean of 10,000".into(), om, Some(sm)));
        self.rows.push(("class round trip, median of 10,000".into(), median(ours), Some(median(stock))));
    }

    /// How each operation grows with the number of members and snapshots.
    fn scale(&mut self) {
        let location = PoolSpec { pool: POOL.into(), namespace: self.ns.clone() };
        let groups = Groups::open(&self.cluster, &location).expect("groups");
        let mut added = 0usize;
        let name = "scale";
        groups.create(name).expect("create");
        let group = self.spec(name);
        for target in [10usize, 100, 1000] {
            // Grow the group to `target` members; time the last 10 adds (in-process calls).
            let images = self.images(&format!("sc{target}-"), target - added);
            let mut last = Vec::new();
            for (i, image) in images.iter().enumerate() {
                let spec = ImageSpec::parse(image).expect("spec");
                let start = Instant::now();
                groups.add_image(name, &spec, 4096).expect("add");
                if i + 10 >= images.len() {
                    last.push(start.elapsed());
                }
            }
            added = target;
            let add = median(last);
            let ls = timed(&self.ours, &["image", "ls", &group]);
            let info = timed(&self.ours, &["info", &group]);
            let snap = timed(&self.ours, &["snap", "create", &format!("{group}@n{target}")]);
            let repair = timed(&self.ours, &["repair", "--check", &group]);
            self.rows.push((format!("{target} members: one image add (in-process)"), add, None));
            self.rows.push((format!("{target} members: image ls"), ls, None));
            self.rows.push((format!("{target} members: info"), info, None));
            self.rows.push((format!("{target} members: snap create"), snap, None));
            self.rows.push((format!("{target} members: repair --check"), repair, None));
            eprintln!(
                "scale {target} members: add {} ls {} info {} snap {} repair {}",
                ms(add),
                ms(ls),
                ms(info),
                ms(snap),
                ms(repair)
            );
        }
        // Snapshots: a group with one member, grown to 10 / 100 / 1,000 snapshots.
        let snaps = "scale-snaps";
        groups.create(snaps).expect("create");
        let image = self.images("ss-", 1).remove(0);
        groups.add_image(snaps, &ImageSpec::parse(&image).expect("spec"), 4096).expect("add");
        let group = self.spec(snaps);
        let options = rbd_cg_client::snapshots::SnapCreateOptions { skip_quiesce: true, ..Default::default() };
        let mut taken = 0usize;
        for target in [10usize, 100, 1000] {
            let mut last = Vec::new();
            for i in taken..target {
                let start = Instant::now();
                groups.snap_create(snaps, &format!("s{i}"), &options).expect("snap create");
                if i + 10 >= target {
                    last.push(start.elapsed());
                }
            }
            taken = target;
            let one = median(last);
            let ls = timed(&self.ours, &["snap", "ls", &group]);
            let info = timed(&self.ours, &["snap", "info", &format!("{group}@s0")]);
            let repair = timed(&self.ours, &["repair", "--check", &group]);
            self.rows.push((format!("{target} snapshots: one snap create (in-process)"), one, None));
            self.rows.push((format!("{target} snapshots: snap ls"), ls, None));
            self.rows.push((format!("{target} snapshots: snap info"), info, None));
            self.rows.push((format!("{target} snapshots: repair --check"), repair, None));
            eprintln!(
                "scale {target} snapshots: create {} ls {} info {} repair {}",
                ms(one),
                ms(ls),
                ms(info),
                ms(repair)
            );
        }
    }

    fn report(&self) {
        println!("| operation | rbd-cg | stock `rbd group` | ours / stock |");
        println!("|---|---:|---:|---:|");
        for (what, ours, stock) in &self.rows {
            match stock {
                Some(s) => {
                    println!("| {what} | {} | {} | {:.2} |", ms(*ours), ms(*s), ours.as_secs_f64() / s.as_secs_f64())
                }
                None => println!("| {what} | {} | – | – |", ms(*ours)),
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let reps =
        args.iter().position(|a| a == "--reps").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(7);
    let ours = std::env::var("RBD_CG_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/rbd-cg").into());
    let cluster = Cluster::connect(&ConnectOptions::default()).expect("connect (set CEPH_CONF)");
    let ns = format!("bench-{}", std::process::id());
    run("rbd", &["namespace", "create", &format!("{POOL}/{ns}")]);
    let mut bench = Bench { cluster, ns, ours, reps, rows: Vec::new() };
    if !flag("--no-round-trip") {
        bench.round_trip();
    }
    if !flag("--no-compare") {
        bench.cli_comparisons();
    }
    if flag("--scale") {
        bench.scale();
    }
    bench.report();
}
