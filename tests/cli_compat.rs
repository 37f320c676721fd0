//! `rbd-cg` as a drop-in for `rbd group`, proven side by side on one cluster: every
//! `rbd group` command Pacific has is run once with stock `rbd group …` (librbd's own
//! groups, in one namespace) and once with `rbd-cg …` (ours, in another, with the same
//! names), and the exit codes, the plain output (stock's columns, byte for byte, ours may
//! follow), the JSON (stock's keys and values; ours may add keys), the XML (stock's
//! elements) and the effects are compared. Then every stock command that could touch a
//! member snapshot is run on a stock group snapshot's and on ours, and must treat them
//! alike (`docs/COMPATIBILITY.md` has the table).

mod common;

use common::*;
use serde_json::Value;
use std::process::Output;

/// The two sides: stock `rbd group` in namespace `stock`, `rbd-cg` in namespace `ours`.
struct Sides {
    stock: String,
    ours: String,
}

/// One run of a command on one side: exit code, stdout with the namespace replaced by
/// `NS`, stderr.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Sides {
    fn new(test: &str) -> Sides {
        let sides = Sides { stock: namespace(&format!("{test}-stock")), ours: namespace(&format!("{test}-ours")) };
        for ns in [&sides.stock, &sides.ours] {
            ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
            for image in ["i1", "i2", "i3"] {
                ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/{image}")]);
            }
        }
        sides
    }

    /// Runs `args` (with `{ns}` for the namespace) as `rbd group …` and as `rbd-cg …`.
    fn run(&self, args: &[&str]) -> (Run, Run) {
        let fill = |ns: &str| -> Vec<String> { args.iter().map(|a| a.replace("{ns}", ns)).collect() };
        let done = |out: Output, ns: &str| Run {
            code: out.status.code(),
            out: String::from_utf8_lossy(&out.stdout).replace(ns, "NS"),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let stock_args = fill(&self.stock);
        let mut with_group = vec!["group"];
        with_group.extend(stock_args.iter().map(String::as_str));
        let stock = done(ceph_tool("rbd", &with_group), &self.stock);
        let ours_args = fill(&self.ours);
        let ours = done(rbd_cg(&ours_args.iter().map(String::as_str).collect::<Vec<_>>()), &self.ours);
        (stock, ours)
    }

    /// Runs `args` on both sides and expects the same exit code (`code`); returns both.
    fn same_code(&self, args: &[&str], code: i32) -> (Run, Run) {
        let (stock, ours) = self.run(args);
        assert_eq!(stock.code, Some(code), "stock rbd group {args:?}: {stock:?}");
        assert_eq!(ours.code, Some(code), "rbd-cg {args:?}: {ours:?} (stock: {stock:?})");
        if code != 0 {
            // rbd's shape: `rbd-cg: <what failed>: (<errno>) <strerror>`.
            assert!(
                ours.err.starts_with("rbd-cg: ") && ours.err.contains(&format!("({code}) ")),
                "rbd-cg {args:?}: error line {:?}",
                ours.err
            );
        }
        (stock, ours)
    }

    /// Runs a listing in plain, JSON and XML (compact and pretty) on both sides and compares
    /// them: plain lines start with stock's line (ours may add columns after it), every JSON
    /// object has stock's keys with stock's values, every XML element of stock's is in ours.
    fn same_listing(&self, args: &[&str]) {
        let (stock, ours) = self.same_code(args, 0);
        let (stock_lines, our_lines): (Vec<&str>, Vec<&str>) =
            (stock.out.lines().collect(), ours.out.lines().collect());
        assert_eq!(stock_lines.len(), our_lines.len(), "{args:?}: rows\n{}\n{}", stock.out, ours.out);
        for (s, o) in stock_lines.iter().zip(&our_lines) {
            assert!(o.starts_with(s.trim_end()), "{args:?}: plain line {o:?} does not start with stock's {s:?}");
        }
        for pretty in [false, true] {
            let mut json_args = args.to_vec();
            json_args.extend(["--format", "json"]);
            if pretty {
                json_args.push("--pretty-format");
            }
            let (stock, ours) = self.same_code(&json_args, 0);
            let (s, o): (Value, Value) =
                (serde_json::from_str(&stock.out).unwrap(), serde_json::from_str(&ours.out).unwrap());
            same_json(&s, &o, args);
            if pretty {
                let indent = |text: &str| text.lines().nth(1).map(|l| l.len() - l.trim_start().len());
                assert_eq!(indent(&stock.out), indent(&ours.out), "{args:?}: pretty JSON indentation");
            }
            let mut xml_args = args.to_vec();
            xml_args.extend(["--format", "xml"]);
            if pretty {
                xml_args.push("--pretty-format");
            }
            let (stock, ours) = self.same_code(&xml_args, 0);
            let root = |text: &str| text.trim_start().split('>').next().map(str::to_owned);
            assert_eq!(root(&stock.out), root(&ours.out), "{args:?}: XML root");
            let ours_flat: String = ours.out.split_whitespace().collect();
            for element in stock.out.split_whitespace().collect::<String>().split("><") {
                let leaf = element.trim_start_matches('<').trim_end_matches('>');
                if leaf.contains("</") {
                    assert!(ours_flat.contains(leaf), "{args:?}: XML element {leaf} missing in {}", ours.out);
                }
            }
        }
    }
}

/// Every key of stock's JSON is in ours with the same value (arrays element by element).
fn same_json(stock: &Value, ours: &Value, what: &[&str]) {
    match (stock, ours) {
        (Value::Array(s), Value::Array(o)) => {
            assert_eq!(s.len(), o.len(), "{what:?}: {stock} vs {ours}");
            for (s, o) in s.iter().zip(o) {
                same_json(s, o, what);
            }
        }
        (Value::Object(s), Value::Object(o)) => {
            for (key, value) in s {
                let mine = o.get(key).unwrap_or_else(|| panic!("{what:?}: key {key:?} missing in {ours}"));
                same_json(value, mine, what);
            }
        }
        (s, o) => assert_eq!(s, o, "{what:?}"),
    }
}

#[test]
fn every_rbd_group_command_behaves_as_stock() {
    let sides = Sides::new("compat");
    let g = "rbd/{ns}/g";
    // create / ls / rename
    sides.same_code(&["create", g], 0);
    sides.same_code(&["create", g], libc::EEXIST);
    sides.same_code(&["create", "rbd/{ns}/other"], 0);
    sides.same_code(&["create", "rbd/{ns}/a@b"], libc::EINVAL);
    sides.same_listing(&["ls", "rbd/{ns}"]);
    sides.same_listing(&["list", "rbd/{ns}"]);
    sides.same_code(&["rename", "rbd/{ns}/other", "rbd/{ns}/renamed"], 0);
    sides.same_code(&["rename", "rbd/{ns}/other", "rbd/{ns}/x"], libc::ENOENT);
    sides.same_code(&["rename", "rbd/{ns}/renamed", g], libc::EEXIST);
    sides.same_listing(&["ls", "rbd/{ns}"]);
    // image add / ls / rm
    sides.same_code(&["image", "add", g, "rbd/{ns}/i1"], 0);
    sides.same_code(&["image", "add", g, "rbd/{ns}/i2"], 0);
    sides.same_code(&["image", "add", g, "rbd/{ns}/i1"], 0); // a member again: fine
    sides.same_code(&["image", "add", g, "rbd/{ns}/nope"], libc::ENOENT);
    sides.same_code(&["image", "add", "rbd/{ns}/nogroup", "rbd/{ns}/i3"], libc::ENOENT);
    sides.same_listing(&["image", "ls", g]);
    sides.same_listing(&["image", "list", g]);
    sides.same_code(&["image", "rm", g, "rbd/{ns}/i3"], 0); // not a member: fine
    sides.same_code(&["image", "rm", g, "rbd/{ns}/nope"], libc::ENOENT);
    sides.same_code(&["image", "rm", "rbd/{ns}/nogroup", "rbd/{ns}/i1"], libc::ENOENT);
    sides.same_code(&["image", "remove", g, "rbd/{ns}/i2"], 0);
    sides.same_listing(&["image", "ls", g]);
    // snap create / ls / rename / rollback / rm
    sides.same_code(&["snap", "create", "rbd/{ns}/g@s1"], 0);
    sides.same_code(&["snap", "create", "rbd/{ns}/g@s1"], libc::EEXIST);
    sides.same_code(&["snap", "create", "rbd/{ns}/g@s2", "--skip-quiesce"], 0);
    sides.same_code(&["snap", "create", "rbd/{ns}/nogroup@s1"], libc::ENOENT);
    sides.same_code(&["snap", "create", g], libc::EINVAL);
    sides.same_listing(&["snap", "ls", g]);
    sides.same_listing(&["snap", "list", g]);
    sides.same_code(&["snap", "rename", "rbd/{ns}/g@s2", "s3"], 0);
    sides.same_code(&["snap", "rename", "rbd/{ns}/g@nosuch", "s4"], libc::ENOENT);
    sides.same_code(&["snap", "rename", "rbd/{ns}/g@s1", "s3"], libc::EEXIST);
    sides.same_code(&["snap", "rename", "rbd/{ns}/g@s3", "rbd/{ns}/g@s4"], libc::EINVAL);
    sides.same_code(&["snap", "rollback", "rbd/{ns}/g@s1", "--no-progress"], 0);
    sides.same_code(&["snap", "rollback", "rbd/{ns}/g@nosuch", "--no-progress"], libc::ENOENT);
    sides.same_code(&["snap", "rm", "rbd/{ns}/g@nosuch"], libc::ENOENT);
    sides.same_code(&["snap", "rm", "rbd/{ns}/g@s3"], 0);
    sides.same_listing(&["snap", "ls", g]);
    // A missing group lists as empty and removes as done, on both sides.
    sides.same_code(&["image", "ls", "rbd/{ns}/nogroup"], 0);
    sides.same_code(&["snap", "ls", "rbd/{ns}/nogroup"], 0);
    sides.same_code(&["rm", "rbd/{ns}/nogroup"], 0);
    // rm removes the snapshots and the members, then the group; the images stay.
    sides.same_code(&["rm", g], 0);
    sides.same_code(&["remove", "rbd/{ns}/renamed"], 0);
    sides.same_listing(&["ls", "rbd/{ns}"]);
    for ns in [&sides.stock, &sides.ours] {
        let image = format!("rbd/{ns}/i1");
        assert!(image_snapshots(&image).is_empty(), "{image} keeps no member snapshot");
        let info: Value = serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", &image])).unwrap();
        assert!(info.get("group").is_none(), "{image} is in no stock group: {info}");
        ceph_tool_ok("rbd", &["rm", "--no-progress", &image]);
    }
}

/// Stock commands that could touch a member snapshot treat ours as they treat stock's own
/// group snapshot's: hidden from `rbd snap ls`, listed by `--all`, not removable by name or
/// `snap purge`, `rbd rm` refused, readable by id; ours is also protected, so `rbd snap rm
/// --snap-id` is refused too (stock's is removed by it).
#[test]
fn stock_commands_treat_our_member_snapshots_as_stock_ones() {
    let sides = Sides::new("stock-tools");
    for args in [
        &["create", "rbd/{ns}/g"][..],
        &["image", "add", "rbd/{ns}/g", "rbd/{ns}/i1"],
        &["snap", "create", "rbd/{ns}/g@s"],
    ] {
        sides.same_code(args, 0);
    }
    for ns in [&sides.stock, &sides.ours] {
        let image = format!("rbd/{ns}/i1");
        let snaps = image_snapshots(&image);
        assert_eq!(snaps.len(), 1, "{snaps:?}");
        let snap = &snaps[0];
        assert_eq!(snap.namespace, "group", "rbd snap ls --all shows it in the group namespace");
        assert!(!ceph_tool_ok("rbd", &["snap", "ls", &image]).contains(&snap.name), "hidden from rbd snap ls");
        let code = |args: &[&str]| ceph_tool("rbd", args).status.code();
        let named = format!("{image}@{}", snap.name);
        assert_eq!(code(&["snap", "rm", "--no-progress", &named]), Some(libc::ENOENT), "snap rm by name");
        assert_eq!(code(&["snap", "rollback", "--no-progress", &named]), Some(libc::ENOENT), "rollback by name");
        assert_eq!(code(&["snap", "protect", &named]), Some(libc::ENOENT), "protect by name");
        assert_eq!(code(&["export", "--no-progress", &named, "/dev/null"]), Some(libc::ENOENT), "export by name");
        assert_eq!(code(&["snap", "purge", "--no-progress", &image]), Some(0));
        assert_eq!(code(&["rm", "--no-progress", &image]), Some(libc::ENOTEMPTY), "rbd rm refuses");
        assert_eq!(image_snapshots(&image).len(), 1, "still there after purge and rm");
        // Readable by id, as any snapshot: open, read, diff.
        let (pool, image_ns, name) = split_image_spec(&image);
        let script = format!(
            "import rados, rbd\nc = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('{pool}')\n\
             io.set_namespace('{image_ns}')\nwith rbd.Image(io, '{name}', read_only=True) as im:\n\
             \x20   im.set_snap_by_id({})\n    assert len(im.read(0, 4096)) == 4096\n\
             \x20   im.diff_iterate(0, im.size(), None, lambda *a: None)\n",
            snap.id
        );
        let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let by_id = code(&["snap", "rm", "--snap-id", &snap.id.to_string(), &image]);
        if *ns == sides.ours {
            assert!(snap.protected, "ours is protected");
            assert_eq!(by_id, Some(libc::EBUSY), "rbd snap rm --snap-id refuses ours");
            assert_eq!(image_snapshots(&image).len(), 1);
        } else {
            assert_eq!(by_id, Some(0), "stock's own is not protected: removed by id");
        }
    }
    // The group snapshot is whole on our side and goes with the group.
    rbd_cg_ok(&["repair", "--check", &format!("rbd/{}/g", sides.ours)]);
    sides.same_code(&["rm", "rbd/{ns}/g"], 0);
    assert!(image_snapshots(&format!("rbd/{}/i1", sides.ours)).is_empty());
}
