//! `rbd-cg clone` on the real cluster: a new group whose members are RBD clones of a group
//! snapshot's member snapshots. Checked with the stock `rbd` CLI (parents, protection,
//! data via `rbd export`), clone v1 and v2, explicit names through the Rust API, and a
//! crash after every step of the clone and of its undo, finished by a rerun or `repair`
//! and undone by `rm --force`.

mod common;

use common::*;
use rbd_cg_client::clone::{CloneFormat, CloneNaming, CloneOptions};
use rbd_cg_client::spec::ImageSpec;

/// A group `g` of images `a` and `b` (with different data) in a fresh namespace, and its
/// snapshot `g@s`; the images are overwritten after the snapshot.
fn setup(test: &str) -> (String, String) {
    let ns = namespace(test);
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    for (image, byte) in [("a", b'a'), ("b", b'b')] {
        let spec = format!("rbd/{ns}/{image}");
        ceph_tool_ok("rbd", &["create", "--size", "8M", &spec]);
        write(&spec, byte);
        rbd_cg_ok(&["image", "add", &group, &spec]);
    }
    rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
    for image in ["a", "b"] {
        write(&format!("rbd/{ns}/{image}"), b'z');
    }
    (ns, group)
}

/// Writes `byte` × 4096 at offset 0 of `POOL/NS/IMAGE` through plain librbd (python3-rbd).
fn write(spec: &str, byte: u8) {
    let (pool_ns, image) = spec.rsplit_once('/').unwrap();
    let (pool, ns) = pool_ns.split_once('/').unwrap_or((pool_ns, ""));
    let script = format!(
        "import rados, rbd\nc = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('{pool}')\n\
         io.set_namespace('{ns}')\nwith rbd.Image(io, '{image}') as im:\n    im.write(bytes([{byte}]) * 4096, 0)\n"
    );
    let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn first_byte(spec: &str) -> u8 {
    let out = ceph_tool("rbd", &["export", "--no-progress", spec, "-"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout[0]
}

fn rbd_info(spec: &str) -> serde_json::Value {
    serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", spec])).unwrap()
}

fn images(ns: &str) -> Vec<String> {
    let json = ceph_tool_ok("rbd", &["ls", "--format", "json", &format!("rbd/{ns}")]);
    let mut names: Vec<String> = serde_json::from_str(&json).unwrap();
    names.sort();
    names
}

fn members(group: &str) -> Vec<(String, String)> {
    let json = rbd_cg_ok(&["image", "ls", group, "--format", "json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let mut members: Vec<(String, String)> = listed
        .iter()
        .map(|m| (m["image"].as_str().unwrap_or("?").to_owned(), m["status"].as_str().unwrap().to_owned()))
        .collect();
    members.sort();
    members
}

/// The new group holds clones `clone_name("a")`/`clone_name("b")` of the snapshot's member
/// snapshots, with the data of the snapshot, not of the images now.
fn assert_cloned(ns: &str, new_group: &str, clone_name: &dyn Fn(&str) -> String) {
    let member_snap = member_snap(ns);
    for (image, byte) in [("a", b'a'), ("b", b'b')] {
        let clone = format!("rbd/{ns}/{}", clone_name(image));
        let parent = &rbd_info(&clone)["parent"];
        assert_eq!((parent["image"].as_str(), parent["snapshot"].as_str()), (Some(image), Some(member_snap.as_str())));
        assert_eq!(first_byte(&clone), byte, "{clone} has the snapshot's data");
    }
    let expected: Vec<(String, String)> = ["a", "b"].iter().map(|i| (clone_name(i), "attached".to_owned())).collect();
    assert_eq!(members(new_group), expected);
    let check = rbd_cg(&["repair", new_group, "--check"]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
    assert_consistent(&cluster(), "rbd", ns);
}

#[test]
fn clone_v1_protects_and_snapshot_removal_waits_for_the_clones() {
    let (ns, group) = setup("clone-v1");
    let new_group = format!("rbd/{ns}/copy");
    let out = rbd_cg_ok(&["clone", "--clone-format", "1", &format!("{group}@s"), &new_group]);
    assert!(out.contains("copy-a"), "{out}");
    assert_cloned(&ns, &new_group, &|i| format!("copy-{i}"));
    assert_eq!(rbd_cg_ok(&["ls", &format!("rbd/{ns}")]).lines().collect::<Vec<_>>(), ["copy", "g"]);
    // The parents are protected (clone v1), so removing the group snapshot is refused
    // before anything changes...
    assert!(image_snapshots(&format!("rbd/{ns}/a"))[0].protected);
    let refused = expect_errno(&rbd_cg(&["snap", "rm", &format!("{group}@s")]), libc::EBUSY);
    assert!(refused.contains("flatten"), "{refused}");
    let snaps: Vec<serde_json::Value> =
        serde_json::from_str(&rbd_cg_ok(&["snap", "ls", &group, "--format", "json"])).unwrap();
    assert_eq!(snaps[0]["status"], "complete");
    for image in ["a", "b"] {
        let snaps = image_snapshots(&format!("rbd/{ns}/{image}"));
        assert!(snaps.iter().all(|s| s.protected && s.namespace == "group"), "still protected and hidden: {snaps:?}");
    }
    // ...and allowed once the clones are flattened.
    for image in ["copy-a", "copy-b"] {
        ceph_tool_ok("rbd", &["flatten", "--no-progress", &format!("rbd/{ns}/{image}")]);
    }
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
    assert_eq!(first_byte(&format!("rbd/{ns}/copy-a")), b'a');
}

#[test]
fn clone_v2_needs_no_protection_and_outlives_the_group_snapshot() {
    let (ns, group) = setup("clone-v2");
    let new_group = format!("rbd/{ns}/c2");
    let args = ["clone", "--clone-format", "2", "--image-name-format", "{image}.{group}.{snap}"];
    rbd_cg_ok(&[&args[..], &[&format!("{group}@s"), &new_group]].concat());
    assert_cloned(&ns, &new_group, &|i| format!("{i}.c2.s"));
    for image in ["a", "b"] {
        let clone = format!("rbd/{ns}/{image}.c2.s");
        assert!(rbd_info(&clone)["op_features"].to_string().contains("clone-child"), "{clone}");
    }
    // Removing the group snapshot moves the member snapshots to the trash namespace.
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
    let all = ceph_tool_ok("rbd", &["snap", "ls", "--all", "--format", "json", &format!("rbd/{ns}/a")]);
    assert!(all.contains("trash"), "{all}");
    assert_eq!(first_byte(&format!("rbd/{ns}/a.c2.s")), b'a');
    rbd_cg_ok(&["rm", "--force", &new_group]);
    assert_consistent(&cluster(), "rbd", &ns);
}

#[test]
fn clone_refuses_taken_names_and_bad_sources_without_side_effects() {
    let (ns, group) = setup("clone-refuse");
    ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/x-b")]);
    let before = images(&ns);
    expect_errno(&rbd_cg(&["clone", &format!("{group}@s"), &format!("rbd/{ns}/x")]), libc::EEXIST);
    expect_errno(&rbd_cg(&["clone", &format!("{group}@nope"), &format!("rbd/{ns}/y")]), libc::ENOENT);
    expect_errno(&rbd_cg(&["clone", &format!("{group}@s"), &format!("rbd/{ns}/g")]), libc::EEXIST);
    expect_errno(&rbd_cg(&["clone", &format!("{group}@s"), "other/y"]), libc::EINVAL);
    let bad = ["clone", "--image-name-format", "{image}/x", &format!("{group}@s"), &format!("rbd/{ns}/y")];
    expect_errno(&rbd_cg(&bad), libc::EINVAL);
    // Two members, one name: refused before anything is written, not by the class later.
    let same = ["clone", "--image-name-format", "{group}", &format!("{group}@s"), &format!("rbd/{ns}/y")];
    expect_errno(&rbd_cg(&same), libc::EINVAL);
    assert_eq!(images(&ns), before);
    assert_eq!(rbd_cg_ok(&["ls", &format!("rbd/{ns}")]).trim(), "g");
    assert_consistent(&cluster(), "rbd", &ns);
}

#[test]
fn clone_through_the_api_with_explicit_names() {
    let (ns, _) = setup("clone-api");
    let cluster = cluster();
    let groups = groups(&cluster, "rbd", &ns);
    let name = |image: &str| ImageSpec::parse(&format!("rbd/{ns}/{image}")).unwrap();
    let mut options =
        CloneOptions { naming: CloneNaming::Explicit(vec![(name("a"), "volume-1".into())]), format: CloneFormat::Auto };
    let err = groups.clone_group("g", "s", "api", &options).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL, "every member needs a name: {err}");
    options.naming = CloneNaming::Explicit(vec![(name("a"), "volume-1".into()), (name("b"), "volume-2".into())]);
    let made = groups.clone_group("g", "s", "api", &options).unwrap();
    let mut names: Vec<(&str, &str)> = made.iter().map(|c| (c.source_name.as_str(), c.name.as_str())).collect();
    names.sort();
    assert_eq!(names, [("a", "volume-1"), ("b", "volume-2")]);
    assert_eq!(first_byte(&format!("rbd/{ns}/volume-2")), b'b');
    assert_eq!(groups.info("api").unwrap().member_count, 2);
}

#[test]
fn crash_after_every_step_of_clone_then_rerun_repair_or_undo() {
    // 1 reserve the name, 2 header with the plan, 3 clone all, 4 add all, 5 id object,
    // 6 drop the plan, 7 ready.
    std::thread::scope(|scope| {
        for step in 1..=7 {
            scope.spawn(move || crash_clone_at(step));
        }
    });
}

fn crash_clone_at(step: u32) {
    for finish in ["rerun", "repair", "undo"] {
        let (ns, group) = setup(&format!("crash-clone-{step}-{finish}"));
        let new_group = format!("rbd/{ns}/copy");
        let clone = ["clone", &format!("{group}@s"), &new_group];
        let source_images = images(&ns);
        crash_at("clone", step, &clone);
        if step < 7 {
            // Incomplete: not listed, refused by other commands; while the plan is there
            // `create` does not finish it as an empty group, nor does `rm` drop it.
            assert_eq!(rbd_cg_ok(&["ls", &format!("rbd/{ns}")]).trim(), "g", "after step {step}");
            let info: serde_json::Value =
                serde_json::from_str(&rbd_cg_ok(&["info", &new_group, "--format", "json"])).unwrap();
            assert_eq!(info["state"], "creating");
            expect_errno(&rbd_cg(&["snap", "create", &format!("{new_group}@x")]), libc::EBUSY);
            if (2..=5).contains(&step) {
                expect_errno(&rbd_cg(&["create", &new_group]), libc::EBUSY);
                expect_errno(&rbd_cg(&["rm", "--only-if-empty", &new_group]), libc::EBUSY);
            }
        }
        match finish {
            "rerun" if step < 7 => drop(rbd_cg_ok(&clone)),
            "rerun" => drop(expect_errno(&rbd_cg(&clone), libc::EEXIST)),
            "repair" if step == 1 => {
                // Only the name existed: repair cannot know a clone was meant.
                let report = rbd_cg_ok(&["repair", &new_group]);
                assert!(report.contains("run the clone again"), "{report}");
                assert!(members(&new_group).is_empty());
                rbd_cg_ok(&["rm", &new_group]);
                rbd_cg_ok(&clone);
            }
            "repair" => drop(rbd_cg_ok(&["repair", &new_group])),
            _ => {
                rbd_cg_ok(&["rm", "--force", &new_group]);
                if step < 6 {
                    assert_eq!(images(&ns), source_images, "undo deletes the clones (step {step})");
                }
                assert_eq!(rbd_cg_ok(&["ls", &format!("rbd/{ns}")]).trim(), "g");
                assert_consistent(&cluster(), "rbd", &ns);
                continue;
            }
        }
        assert_cloned(&ns, &new_group, &|i| format!("copy-{i}"));
    }
}

#[test]
fn crash_after_every_step_of_clone_undo_then_rerun() {
    // 1 remove the clones from the group, 2 delete them, 3 drop the plan.
    for step in 1..=3 {
        let (ns, group) = setup(&format!("crash-unclone-{step}"));
        let new_group = format!("rbd/{ns}/copy");
        let source_images = images(&ns);
        crash_at("clone", 4, &["clone", &format!("{group}@s"), &new_group]);
        crash_at("clone-undo", step, &["rm", "--force", &new_group]);
        rbd_cg_ok(&["rm", "--force", &new_group]);
        assert_eq!(images(&ns), source_images, "step {step}");
        assert_consistent(&cluster(), "rbd", &ns);
        // The source group is untouched: its snapshot can go.
        rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
    }
}

#[test]
fn a_rerun_must_be_the_same_clone_and_never_adopts_another_groups_member() {
    let (ns, group) = setup("clone-rerun");
    let snap = format!("{group}@s");
    // B crashes after reserving its name; then group A takes the names B wanted (x-a,
    // x-b). B's rerun checks the names again instead of adopting A's clones (which
    // `rm --force B` would then delete).
    let b = ["clone", "--image-name-format", "x-{image}", &snap, &format!("rbd/{ns}/B")];
    crash_at("clone", 1, &b);
    rbd_cg_ok(&["clone", "--image-name-format", "x-{image}", &snap, &format!("rbd/{ns}/A")]);
    expect_errno(&rbd_cg(&b), libc::EEXIST);
    rbd_cg_ok(&["rm", "--force", &format!("rbd/{ns}/B")]);
    assert_eq!(members(&format!("rbd/{ns}/A")).len(), 2);
    // C crashes with its plan recorded; a rerun with other arguments is another clone.
    let c = ["clone", "--image-name-format", "c-{image}", &snap, &format!("rbd/{ns}/C")];
    crash_at("clone", 3, &c);
    let other = ["clone", "--image-name-format", "d-{image}", &snap, &format!("rbd/{ns}/C")];
    let refused = expect_errno(&rbd_cg(&other), libc::EEXIST);
    assert!(refused.contains("another clone"), "{refused}");
    rbd_cg_ok(&c);
    assert_cloned(&ns, &format!("rbd/{ns}/C"), &|i| format!("c-{i}"));
    // A member of another group under a planned name is not adopted by a recorded plan
    // either: D's plan names x-a (A's member) after x-a appeared behind its back.
    let d = ["clone", "--image-name-format", "y-{image}", &snap, &format!("rbd/{ns}/D")];
    crash_at("clone", 2, &d);
    // (Stock `rbd clone` cannot name a group-namespace member snapshot: another group
    // clone makes y-a, a clone of exactly the planned parent, as a member of group E.)
    rbd_cg_ok(&["clone", "--image-name-format", "y-{image}", &snap, &format!("rbd/{ns}/E")]);
    let adopted = expect_errno(&rbd_cg(&d), libc::EEXIST);
    assert!(adopted.contains("another group"), "{adopted}");
    rbd_cg_ok(&["rm", "--force", &format!("rbd/{ns}/D")]);
    assert!(images(&ns).contains(&"y-a".to_owned()), "never deleted: it is not D's");
}

/// The name of image `a`'s member snapshot (in the group namespace).
fn member_snap(ns: &str) -> String {
    let snaps = image_snapshots(&format!("rbd/{ns}/a"));
    snaps.into_iter().find(|s| s.namespace == "group").expect("member snapshot").name
}
