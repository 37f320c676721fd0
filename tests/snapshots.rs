//! Group snapshots on the real cluster: images made and written with stock tools and
//! plain librbd (python3-rbd), snapshots checked with `rbd snap ls` and
//! `rados listomapkeys`, rollback checked by reading the data back, a crash after every
//! step of snap create / rm / rollback, orphan and damaged member snapshots, read-only
//! users, and several clients racing.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::Command;

fn setup(test: &str, images: &[&str]) -> (String, String) {
    let ns = namespace(test);
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    let group = format!("rbd/{ns}/g");
    rbd_cg_ok(&["create", &group]);
    for image in images {
        ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/{image}")]);
        rbd_cg_ok(&["image", "add", &group, &format!("rbd/{ns}/{image}")]);
    }
    (ns, group)
}

/// Writes `byte` × 4096 at offset 0 of `rbd/ns/image` through plain librbd.
fn write_image(ns: &str, image: &str, byte: u8) {
    let script = format!(
        "import rados, rbd\n\
         c = rados.Rados(conffile='')\nc.connect()\nio = c.open_ioctx('rbd')\nio.set_namespace('{ns}')\n\
         with rbd.Image(io, '{image}') as im:\n    im.write(bytes([{byte}]) * 4096, 0)\n\
         io.close()\nc.shutdown()\n"
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).output().expect("python3");
    assert!(out.status.success(), "writing {image}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The first byte of `rbd/ns/image` as the stock `rbd export` reads it.
fn first_byte(ns: &str, image: &str) -> u8 {
    let out = ceph_tool("rbd", &["export", "--no-progress", &format!("rbd/{ns}/{image}"), "-"]);
    assert!(out.status.success());
    out.stdout[0]
}

/// The names of every snapshot of `rbd/ns/image`, in every namespace (`rbd snap ls --all`:
/// member snapshots are in the group namespace, hidden from plain `rbd snap ls`).
fn image_snaps(ns: &str, image: &str) -> Vec<String> {
    image_snapshots(&format!("rbd/{ns}/{image}")).into_iter().map(|s| s.name).collect()
}

fn snap_ls(group: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&rbd_cg_ok(&["snap", "ls", group, "--format", "json"])).unwrap()
}

/// Everything `repair` promises: nothing left to repair; members attached with their
/// back-references; snapshots complete and undamaged; and on every member image the
/// group's reserved snapshots are exactly those of recorded snapshots.
fn assert_group_consistent(ns: &str, group: &str, images: &[&str]) {
    let check = rbd_cg(&["repair", group, "--check"]);
    assert_eq!(check.status.code(), Some(0), "repair --check: {}", String::from_utf8_lossy(&check.stdout));
    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", group, "--format", "json"])).unwrap();
    let group_id = info["id"].as_str().unwrap().to_owned();
    let members: Vec<serde_json::Value> =
        serde_json::from_str(&rbd_cg_ok(&["image", "ls", group, "--format", "json"])).unwrap();
    for m in &members {
        assert_eq!(m["status"], "attached", "{m}");
        let keys = omap_keys("rbd", ns, &format!("rbd_header.{}", m["id"].as_str().unwrap()));
        assert!(keys.iter().any(|k| k.starts_with("rbd_cg.group.") && k.contains(&group_id)), "back-reference of {m}");
    }
    let snapshots = snap_ls(group);
    let ids: BTreeSet<String> = snapshots.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    for s in &snapshots {
        assert_eq!(s["status"], "complete", "{s}");
    }
    assert_eq!(info["snapshot_count"].as_u64().unwrap() as usize, snapshots.len());
    let prefix = format!(".rbd_cg.0000000000000001_{group_id}_");
    for image in images {
        for snap in image_snaps(ns, image) {
            if let Some(id) = snap.strip_prefix(&prefix) {
                assert!(ids.contains(id), "orphan {snap} on {image}");
            }
        }
    }
    // Every member snapshot is hidden again in the group namespace, and protected.
    for image in images {
        for snap in image_snapshots(&format!("rbd/{ns}/{image}")) {
            assert!(!snap.name.starts_with(".rbd_cg-exposed."), "left exposed on {image}: {snap:?}");
            if snap.name.starts_with(&prefix) {
                assert_eq!((snap.namespace.as_str(), snap.protected), ("group", true), "{image}: {snap:?}");
            }
        }
    }
    let header_keys = omap_keys("rbd", ns, &format!("cg_header.{group_id}"));
    assert!(!header_keys.contains(&"snapshot_in_progress".to_owned()), "{header_keys:?}");
    assert_eq!(header_keys.iter().filter(|k| k.starts_with("snap_")).count(), snapshots.len());
}

#[test]
fn snapshot_lifecycle_and_rollback_restore_the_data() {
    let (ns, group) = setup("snaps", &["a", "b"]);
    write_image(&ns, "a", b'1');
    write_image(&ns, "b", b'1');
    rbd_cg_ok(&["snap", "create", &format!("{group}@first")]);
    expect_errno(&rbd_cg(&["snap", "create", &format!("{group}@first")]), libc::EEXIST);
    expect_errno(&rbd_cg(&["snap", "create", &format!("{group}@bad/name")]), libc::EINVAL);
    write_image(&ns, "a", b'2');
    write_image(&ns, "b", b'2');
    rbd_cg_ok(&["snap", "create", &format!("{group}@second")]);

    let listed = snap_ls(&group);
    let names: Vec<&str> = listed.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["first", "second"], "creation order");
    assert_eq!((listed[0]["status"].as_str(), listed[0]["image_count"].as_u64()), (Some("complete"), Some(2)));

    let info: serde_json::Value =
        serde_json::from_str(&rbd_cg_ok(&["snap", "info", &format!("{group}@first"), "--format", "json"])).unwrap();
    let images = info["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for image in images {
        let name = image["image"].as_str().unwrap();
        let snap_name = image["snap_name"].as_str().unwrap();
        assert!(snap_name.starts_with(".rbd_cg."), "{snap_name}");
        // In the group namespace, protected: `rbd snap ls --all` lists it, plain `rbd snap ls` not.
        let snap = image_snapshots(&format!("rbd/{ns}/{name}")).into_iter().find(|s| s.name == snap_name).unwrap();
        assert_eq!((snap.namespace.as_str(), snap.protected), ("group", true), "{snap:?}");
        let plain = ceph_tool_ok("rbd", &["snap", "ls", &format!("rbd/{ns}/{name}")]);
        assert!(!plain.contains(snap_name), "{plain}");
        assert!(image["snap_id"].as_u64().is_some() && image["present"] == true);
        assert_eq!(image["pool"], "rbd");
    }
    let group_info: serde_json::Value =
        serde_json::from_str(&rbd_cg_ok(&["info", &group, "--format", "json"])).unwrap();
    assert_eq!(group_info["snapshot_count"], 2);
    let header_keys = omap_keys("rbd", &ns, &format!("cg_header.{}", group_info["id"].as_str().unwrap()));
    for key in ["snap_0000000000000001", "snap_0000000000000002", "snapname_first", "snapname_second", "next_snap_seq"]
    {
        assert!(header_keys.contains(&key.to_owned()), "{key} in {header_keys:?}");
    }

    rbd_cg_ok(&["snap", "rollback", &format!("{group}@first"), "--no-progress"]);
    assert_eq!((first_byte(&ns, "a"), first_byte(&ns, "b")), (b'1', b'1'));
    rbd_cg_ok(&["snap", "rollback", &format!("{group}@second")]);
    assert_eq!((first_byte(&ns, "a"), first_byte(&ns, "b")), (b'2', b'2'));

    rbd_cg_ok(&["snap", "rename", &format!("{group}@first"), "oldest"]);
    expect_errno(&rbd_cg(&["snap", "rename", &format!("{group}@oldest"), "second"]), libc::EEXIST);
    expect_errno(&rbd_cg(&["snap", "info", &format!("{group}@first")]), libc::ENOENT);
    rbd_cg_ok(&["snap", "rm", &format!("{group}@oldest")]);
    expect_errno(&rbd_cg(&["snap", "rm", &format!("{group}@oldest")]), libc::ENOENT);
    assert_eq!(image_snaps(&ns, "a").len(), 1);
    expect_errno(&rbd_cg(&["rm", "--only-if-empty", &group]), libc::EBUSY);
    assert_group_consistent(&ns, &group, &["a", "b"]);
    // rm removes snapshots and members, image snapshots included.
    rbd_cg_ok(&["rm", &group]);
    assert!(image_snaps(&ns, "a").is_empty() && image_snaps(&ns, "b").is_empty());
    assert!(assert_consistent(&cluster(), "rbd", &ns).is_empty());
}

#[test]
fn a_snapshot_holds_exactly_the_members_of_its_moment_and_rollback_needs_them() {
    let (ns, group) = setup("membership", &["a"]);
    ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/late")]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@before")]);
    rbd_cg_ok(&["image", "add", &group, &format!("rbd/{ns}/late")]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@after")]);
    let count = |snap: &str| {
        let info: serde_json::Value =
            serde_json::from_str(&rbd_cg_ok(&["snap", "info", &format!("{group}@{snap}"), "--format", "json"]))
                .unwrap();
        info["images"].as_array().unwrap().len()
    };
    assert_eq!((count("before"), count("after")), (1, 2));
    let refused = rbd_cg(&["snap", "rollback", &format!("{group}@before")]);
    let stderr = expect_errno(&refused, libc::EBUSY);
    assert!(stderr.contains("membership changed"), "{stderr}");
    rbd_cg_ok(&["snap", "rollback", &format!("{group}@after")]);
    assert_group_consistent(&ns, &group, &["a", "late"]);
}

#[test]
fn a_member_snapshot_removed_by_hand_shows_the_snapshot_as_damaged() {
    let (ns, group) = setup("damaged", &["a", "b"]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
    let victim = image_snaps(&ns, "b").pop().unwrap();
    remove_member_snapshot_by_hand(&format!("rbd/{ns}/b"), &victim);
    assert_eq!(snap_ls(&group)[0]["status"], "damaged");
    let info: serde_json::Value =
        serde_json::from_str(&rbd_cg_ok(&["snap", "info", &format!("{group}@s"), "--format", "json"])).unwrap();
    let present: Vec<bool> = info["images"].as_array().unwrap().iter().map(|i| i["present"] == true).collect();
    assert_eq!(present.iter().filter(|p| !**p).count(), 1);
    expect_errno(&rbd_cg(&["snap", "rollback", &format!("{group}@s")]), libc::ENOENT);
    // Removal tolerates the missing member snapshot.
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
    assert!(image_snaps(&ns, "a").is_empty());
    assert_group_consistent(&ns, &group, &["a", "b"]);
}

#[test]
fn repair_removes_orphan_member_snapshots() {
    let (ns, group) = setup("orphans", &["a"]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@keep")]);
    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", &group, "--format", "json"])).unwrap();
    let orphan = format!(".rbd_cg.0000000000000001_{}_deadbeef", info["id"].as_str().unwrap());
    ceph_tool_ok("rbd", &["snap", "create", &format!("rbd/{ns}/a@{orphan}")]);
    ceph_tool_ok("rbd", &["snap", "create", &format!("rbd/{ns}/a@users-own")]);
    assert_eq!(rbd_cg(&["repair", &group, "--check"]).status.code(), Some(1));
    assert!(image_snaps(&ns, "a").contains(&orphan), "--check changes nothing");
    rbd_cg_ok(&["repair", &group]);
    let left = image_snaps(&ns, "a");
    assert!(!left.contains(&orphan) && left.contains(&"users-own".to_owned()), "{left:?}");
    assert_group_consistent(&ns, &group, &["a"]);
}

#[test]
fn crash_after_every_step_of_snap_create_then_repair() {
    // 1 record, 2 watch + quiesce, 3 fence all, 4 cut all, 5 release, 6 complete.
    // A crash in steps 3-4 leaves our locks behind: the short watch timeout makes them
    // breakable soon, and the rerun waits for that with a long fence timeout. The steps run
    // in parallel (each in its own namespace) because each waits out a watch timeout.
    std::thread::scope(|scope| {
        for step in 1..=6 {
            scope.spawn(move || crash_snap_create_at(step));
        }
    });
}

fn crash_snap_create_at(step: u32) {
    let (ns, group) = setup(&format!("crash-snapc-{step}"), &["a", "b"]);
    let snap = format!("{group}@s");
    crash_at("snap-create", step, &["snap", "create", "--watch-timeout", "6", &snap]);
    let create = ["snap", "create", "--fence-timeout", "30", &snap];
    if step < 6 {
        assert_eq!(snap_ls(&group)[0]["status"], "creating", "visible as incomplete after step {step}");
        // Membership is frozen and a rerun names repair.
        ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/c")]);
        expect_errno(&rbd_cg(&["image", "add", &group, &format!("rbd/{ns}/c")]), libc::EBUSY);
        let rerun = expect_errno(&rbd_cg(&create), libc::EBUSY);
        assert!(rerun.contains("repair"), "{rerun}");
        rbd_cg_ok(&["repair", &group]);
        assert!(snap_ls(&group).is_empty(), "repair undoes an incomplete snapshot (step {step})");
        rbd_cg_ok(&create);
    } else {
        expect_errno(&rbd_cg(&create), libc::EEXIST);
    }
    assert_eq!(snap_ls(&group).len(), 1);
    assert_group_consistent(&ns, &group, &["a", "b"]);
    for image in ["a", "b"] {
        let locks = ceph_tool_ok("rbd", &["lock", "ls", "--format", "json", &format!("rbd/{ns}/{image}")]);
        assert!(matches!(locks.trim(), "[]" | "{}" | ""), "no lock left on {image} after step {step}: {locks}");
    }
}

#[test]
fn crash_after_every_step_of_snap_rm_then_rerun_or_repair() {
    // 1 mark removing, 2 remove every member snapshot (in parallel), 3 drop the record.
    // A crash inside step 2 leaves some member snapshots removed: made by hand at step 1.
    for step in 1..=3 {
        for rerun in [false, true] {
            let (ns, group) = setup(&format!("crash-snapr-{step}-{rerun}"), &["a", "b"]);
            let snap = format!("{group}@s");
            rbd_cg_ok(&["snap", "create", &snap]);
            crash_at("snap-remove", step, &["snap", "rm", &snap]);
            if step == 1 {
                let member_snap = image_snaps(&ns, "a").pop().unwrap();
                remove_member_snapshot_by_hand(&format!("rbd/{ns}/a"), &member_snap);
            }
            if step < 3 {
                assert_eq!(snap_ls(&group)[0]["status"], "removing");
                if rerun {
                    rbd_cg_ok(&["snap", "rm", &snap]);
                } else {
                    rbd_cg_ok(&["repair", &group]);
                }
            }
            assert!(snap_ls(&group).is_empty(), "step {step}");
            assert!(image_snaps(&ns, "a").is_empty() && image_snaps(&ns, "b").is_empty());
            assert_group_consistent(&ns, &group, &["a", "b"]);
        }
    }
}

#[test]
fn crash_after_every_step_of_rollback_then_rerun_or_repair() {
    for step in 1..=4 {
        for rerun in [false, true] {
            let (ns, group) = setup(&format!("crash-rb-{step}-{rerun}"), &["a", "b"]);
            write_image(&ns, "a", b'1');
            write_image(&ns, "b", b'1');
            rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
            write_image(&ns, "a", b'2');
            write_image(&ns, "b", b'2');
            crash_at("snap-rollback", step, &["snap", "rollback", &format!("{group}@s"), "--no-progress"]);
            if step < 4 {
                // Membership stays frozen until the rollback is finished.
                expect_errno(&rbd_cg(&["image", "rm", &group, &format!("rbd/{ns}/a")]), libc::EBUSY);
                if rerun {
                    rbd_cg_ok(&["snap", "rollback", &format!("{group}@s"), "--no-progress"]);
                } else {
                    rbd_cg_ok(&["repair", &group]);
                }
            }
            assert_eq!((first_byte(&ns, "a"), first_byte(&ns, "b")), (b'1', b'1'), "step {step} rerun {rerun}");
            assert_group_consistent(&ns, &group, &["a", "b"]);
        }
    }
}

/// A crash while a member snapshot is exposed in the user namespace for librbd (after the
/// exposure, or after librbd's call) leaves it visible under its exposed name; the rerun or
/// `repair` hides it again, and the operation's effect is whole.
#[test]
fn crash_while_a_member_snapshot_is_exposed_then_rerun_or_repair() {
    // Both steps, each finished one way (a rerun after step 1, repair after step 2): every
    // run waits out librbd's exclusive-lock handover of a rollback, so kept to two.
    for (step, rerun) in [(1, true), (2, false)] {
        {
            let (ns, group) = setup(&format!("crash-exp-{step}-{rerun}"), &["a"]);
            write_image(&ns, "a", b'1');
            rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
            write_image(&ns, "a", b'2');
            let rollback = ["snap", "rollback", &format!("{group}@s"), "--no-progress"];
            crash_at("expose", step, &rollback);
            let shown = ceph_tool_ok("rbd", &["snap", "ls", &format!("rbd/{ns}/a")]);
            assert!(shown.contains(".rbd_cg-exposed."), "exposed after step {step}: {shown}");
            assert_eq!(rbd_cg(&["repair", &group, "--check"]).status.code(), Some(1));
            // Still protected while exposed: stock rm cannot take it.
            let exposed = image_snaps(&ns, "a").into_iter().find(|n| n.starts_with(".rbd_cg-exposed.")).unwrap();
            assert!(!ceph_tool("rbd", &["snap", "rm", "--no-progress", &format!("rbd/{ns}/a@{exposed}")])
                .status
                .success());
            if rerun {
                rbd_cg_ok(&rollback);
            } else {
                rbd_cg_ok(&["repair", &group]);
            }
            assert_eq!(first_byte(&ns, "a"), b'1', "step {step} rerun {rerun}");
            assert_group_consistent(&ns, &group, &["a"]);
            // snap rm exposes a protected member snapshot to unprotect it through librbd.
            crash_at("expose", step, &["snap", "rm", &format!("{group}@s")]);
            if rerun {
                rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
            } else {
                rbd_cg_ok(&["repair", &group]);
                rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
            }
            assert!(image_snaps(&ns, "a").is_empty(), "step {step}");
            assert_group_consistent(&ns, &group, &["a"]);
        }
    }
}

/// `rm` of a group with members and snapshots removes the snapshots (each by `snap rm`'s
/// steps), then the members (`image rm`'s), then the group (`remove`'s): stopped dead
/// inside each part, it is finished by a rerun of `rm` or by `repair` then `rm`, and leaves
/// the images without member snapshots or back-references.
#[test]
fn crash_inside_rm_of_a_group_with_members_and_snapshots_then_rerun_or_repair() {
    for (op, step, rerun) in [("snap-remove", 2, true), ("image-remove", 1, false), ("remove", 2, true)] {
        let (ns, group) = setup(&format!("crash-rm-{op}-{step}"), &["a", "b"]);
        rbd_cg_ok(&["snap", "create", &format!("{group}@s1")]);
        rbd_cg_ok(&["snap", "create", &format!("{group}@s2")]);
        let ids: Vec<String> = ["a", "b"].iter().map(|i| image_id(&format!("rbd/{ns}/{i}"))).collect();
        crash_at(op, step, &["rm", "--no-progress", &group]);
        if !rerun {
            rbd_cg_ok(&["repair", &group]);
        }
        rbd_cg_ok(&["rm", "--no-progress", &group]);
        assert!(rbd_cg_ok(&["ls", &format!("rbd/{ns}")]).is_empty(), "{op}:{step}");
        for (image, id) in ["a", "b"].iter().zip(&ids) {
            assert!(image_snaps(&ns, image).is_empty(), "{op}:{step}: member snapshots left on {image}");
            let keys = omap_keys("rbd", &ns, &format!("rbd_header.{id}"));
            assert!(!keys.iter().any(|k| k.starts_with("rbd_cg.group.")), "{op}:{step}: back-reference on {image}");
        }
        assert!(assert_consistent(&cluster(), "rbd", &ns).is_empty());
    }
}

#[test]
fn a_read_only_user_can_list_snapshots_but_not_change_them() {
    let (ns, group) = setup("ro-snaps", &["a"]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
    let ro = rbd_cg_as("cgrosnap", "allow r class-read pool=rbd");
    assert!(ro(&["snap", "ls", &group]).status.success());
    assert!(ro(&["image", "ls", &group]).status.success());
    for args in [
        vec!["snap", "create", &format!("{group}@t") as &str],
        vec!["snap", "rm", &format!("{group}@s")],
        vec!["snap", "rename", &format!("{group}@s"), "u"],
        vec!["image", "rm", &group, &format!("rbd/{ns}/a")],
    ] {
        expect_errno(&ro(&args), libc::EPERM);
    }
    assert_group_consistent(&ns, &group, &["a"]);
}

#[test]
fn racing_clients_leave_a_consistent_group() {
    let images = ["a", "b", "c", "d"];
    let (ns, group) = setup("race", &[]);
    for image in images {
        ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/{image}")]);
    }
    // Six clients: four churn membership (two of them on the same image), two snapshot.
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let (ns, group) = (ns.clone(), group.clone());
            std::thread::spawn(move || {
                for round in 0..6 {
                    let out = match worker {
                        0..=3 => {
                            let image = format!("rbd/{ns}/{}", ["a", "b", "c", "c"][worker]);
                            let verb = if round % 2 == 0 { "add" } else { "rm" };
                            rbd_cg(&["image", verb, &group, &image])
                        }
                        _ => rbd_cg(&["snap", "create", &format!("{group}@w{worker}r{round}")]),
                    };
                    if !out.status.success() {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        // Losing a race is fine; anything else is not.
                        assert!(
                            [libc::EBUSY, libc::EEXIST, libc::ENOENT]
                                .iter()
                                .any(|e| stderr.contains(&format!("({e}) "))),
                            "worker {worker} round {round}: {stderr}"
                        );
                    }
                }
            })
        })
        .collect();
    // Meanwhile, rename another group back and forth while listing.
    let other = format!("rbd/{ns}/other");
    rbd_cg_ok(&["create", &other]);
    for round in 0..4 {
        let (from, to) = if round % 2 == 0 { ("other", "other2") } else { ("other2", "other") };
        rbd_cg_ok(&["rename", &format!("rbd/{ns}/{from}"), to]);
        let listed: Vec<String> =
            serde_json::from_str(&rbd_cg_ok(&["ls", &format!("rbd/{ns}"), "--format", "json"])).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
    }
    for worker in workers {
        worker.join().expect("worker");
    }
    // Interrupted snapshots can only come from a crash; none happened.
    assert_group_consistent(&ns, &group, &images);
    // Every snapshot's member list matches image snapshots that exist.
    for snap in snap_ls(&group) {
        assert_eq!(snap["status"], "complete");
    }
}

#[test]
fn an_interrupted_rollback_that_cannot_complete_does_not_freeze_the_group() {
    let (ns, group) = setup("rb-stuck", &["a", "b"]);
    rbd_cg_ok(&["snap", "create", &format!("{group}@s")]);
    crash_at("snap-rollback", 2, &["snap", "rollback", &format!("{group}@s"), "--no-progress"]);
    // Someone removes b's member snapshot by hand before the rollback is finished.
    let victim = image_snaps(&ns, "b").pop().unwrap();
    remove_member_snapshot_by_hand(&format!("rbd/{ns}/b"), &victim);
    expect_errno(&rbd_cg(&["image", "rm", &group, &format!("rbd/{ns}/a")]), libc::EBUSY);
    let repaired = rbd_cg_ok(&["repair", &group]);
    assert!(repaired.contains("cannot complete"), "{repaired}");
    assert_eq!(snap_ls(&group)[0]["status"], "damaged");
    // The group is usable again.
    rbd_cg_ok(&["snap", "rm", &format!("{group}@s")]);
    rbd_cg_ok(&["image", "rm", &group, &format!("rbd/{ns}/a")]);
    assert_group_consistent(&ns, &group, &["a", "b"]);
}

/// Runs `rbd-cg ARGS` on a pseudo-terminal (`script`), returning what it drew.
fn on_terminal(args: &str) -> String {
    let bin = required_env("RBD_CG_BIN");
    let out = Command::new("script").args(["-qec", &format!("{bin} {args}"), "/dev/null"]).output().expect("script");
    assert!(out.status.success(), "rbd-cg {args} on a terminal: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_bars_show_on_a_terminal_unless_told_not_to() {
    let (_ns, group) = setup("progress", &["a", "b"]);
    let drawn = on_terminal(&format!("snap create {group}@s1"));
    assert!(drawn.contains("Creating group snapshot:") && drawn.contains("% complete"), "{drawn:?}");
    assert!(!on_terminal(&format!("snap create --no-progress {group}@s2")).contains("% complete"));
    let piped = rbd_cg(&["snap", "create", &format!("{group}@s3")]);
    assert!(piped.status.success() && !String::from_utf8_lossy(&piped.stderr).contains("% complete"));
    let drawn = on_terminal(&format!("snap rm {group}@s1"));
    assert!(drawn.contains("Removing group snapshot:"), "{drawn:?}");
    let drawn = on_terminal(&format!("rm --force {group}"));
    assert!(
        drawn.contains("Removing group snapshots:") && drawn.contains("Removing images from the group:"),
        "{drawn:?}"
    );
}

/// No thread of ours may be inside librados when `rbd-cg` ends: a process that takes a
/// snapshot ends normally (exit status 0, no signal, no hang), every time, whether its
/// snapshot ids came from the reserve, needed a refill, or had to be allocated first.
#[test]
fn the_cli_ends_normally_right_after_a_snapshot() {
    let (_ns, group) = setup("cli-exit", &["a", "b"]);
    for n in 0..10 {
        let started = std::time::Instant::now();
        let out = rbd_cg(&["snap", "create", &format!("{group}@s{n}")]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "snapshot {n}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("snapshot {n}: the process ended after {:?}", started.elapsed());
    }
    assert_eq!(snap_ls(&group).iter().filter(|s| s["status"] == "complete").count(), 10);
    rbd_cg_ok(&["rm", "--force", &group]);
}
