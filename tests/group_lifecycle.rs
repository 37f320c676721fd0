//! Group lifecycle on the real cluster: through the Rust API and through the `rbd-cg`
//! binary, checked with the stock `rados` CLI; in a non-default pool and a namespace;
//! and interrupted after every step of create, rename and remove, then rerun or repaired.

mod common;

use common::*;
use rbd_cg_client::faults::FaultPlan;
use rbd_cg_client::groups::GroupState;
use rbd_cg_contract::names::{header_object, id_object, DIRECTORY_OBJECT};
use rbd_cg_contract::records::GroupIdRecord;

#[test]
fn lifecycle_through_the_api() {
    let cluster = cluster();
    let ns = namespace("api");
    let groups = groups(&cluster, "rbd", &ns);
    assert!(groups.list().unwrap().is_empty());

    let id = groups.create("db").unwrap();
    groups.create("web").unwrap();
    assert_eq!(groups.create("db").unwrap_err().errno(), libc::EEXIST);
    assert_eq!(groups.list().unwrap(), ["db", "web"]);

    let info = groups.info("db").unwrap();
    assert_eq!((info.name.as_str(), info.id.as_str(), info.pool.as_str()), ("db", id.as_str(), "rbd"));
    assert_eq!(info.namespace, ns);
    assert_eq!(info.state, GroupState::Ready);
    assert_eq!((info.member_count, info.snapshot_count), (0, 0));
    assert!(info.created_ms > 0);

    // The stock rados CLI sees the seed's layout.
    let record: GroupIdRecord = rbd_cg_contract::decode(&rados_get("rbd", &ns, "cg_id.db").unwrap()).unwrap();
    assert_eq!(record.id, id);
    assert!(rados_get("rbd", &ns, &header_object(&id)).is_some());
    let keys = omap_keys("rbd", &ns, DIRECTORY_OBJECT);
    assert!(keys.contains(&"name_db".to_owned()) && keys.contains(&format!("id_{id}")), "{keys:?}");

    groups.rename("db", "db2").unwrap();
    assert_eq!(groups.rename("db", "db3").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(groups.rename("db2", "web").unwrap_err().errno(), libc::EEXIST);
    assert_eq!(groups.info("db2").unwrap().id, id);
    assert_eq!(groups.info("db").unwrap_err().errno(), libc::ENOENT);
    assert!(rados_get("rbd", &ns, "cg_id.db").is_none());
    assert_consistent(&cluster, "rbd", &ns);

    groups.remove("db2").unwrap();
    assert_eq!(groups.remove("db2").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(groups.info("nope").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(groups.list().unwrap(), ["web"]);
    assert_eq!(assert_consistent(&cluster, "rbd", &ns), ["web"]);
}

#[test]
fn names_are_validated() {
    let cluster = cluster();
    let groups = groups(&cluster, "rbd", &namespace("names"));
    for bad in ["", "a/b", "a@b", "tab\there", &"x".repeat(129)] {
        assert_eq!(groups.create(bad).unwrap_err().errno(), libc::EINVAL, "{bad:?}");
    }
    let longest = "é".repeat(64); // 128 bytes
    groups.create(&longest).unwrap();
    groups.create("with space").unwrap();
    assert_eq!(groups.list().unwrap(), ["with space", longest.as_str()]);
}

#[test]
fn listing_is_paged_and_sorted() {
    let cluster = cluster();
    let groups = groups(&cluster, "rbd", &namespace("paging"));
    let names: Vec<String> = (0..7).map(|i| format!("g{i}")).rev().collect();
    for name in &names {
        groups.create(name).unwrap();
    }
    let (first, more) = groups.list_page("", 3).unwrap();
    assert_eq!(first.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["g0", "g1", "g2"]);
    assert!(more);
    let (rest, more) = groups.list_page("g2", 10).unwrap();
    assert_eq!(rest.len(), 4);
    assert!(!more);
    assert_eq!(groups.list().unwrap().len(), 7);
}

#[test]
fn cli_lifecycle_in_a_pool_and_namespace() {
    ensure_pool("cgtest2");
    let ns = namespace("cli");
    ceph_tool_ok("rbd", &["namespace", "create", &format!("cgtest2/{ns}")]);
    let spec = |name: &str| format!("cgtest2/{ns}/{name}");

    assert_eq!(rbd_cg_ok(&["ls", &format!("cgtest2/{ns}"), "--format", "json"]).trim(), "[]");
    rbd_cg_ok(&["create", &spec("db")]);
    rbd_cg_ok(&["create", &spec("app")]);
    let dup = rbd_cg(&["create", &spec("db")]);
    let stderr = expect_errno(&dup, libc::EEXIST);
    assert!(stderr.contains("File exists"), "{stderr}");
    expect_errno(&rbd_cg(&["info", &spec("missing")]), libc::ENOENT);
    expect_errno(&rbd_cg(&["create", &spec("bad@name")]), libc::EINVAL);

    let listed: Vec<String> =
        serde_json::from_str(&rbd_cg_ok(&["ls", &format!("cgtest2/{ns}"), "--format", "json"])).unwrap();
    assert_eq!(listed, ["app", "db"]);
    assert_eq!(rbd_cg_ok(&["ls", &format!("cgtest2/{ns}")]), "app\ndb\n");

    let info: serde_json::Value = serde_json::from_str(&rbd_cg_ok(&["info", &spec("db"), "--format", "json"])).unwrap();
    assert_eq!(info["name"], "db");
    assert_eq!(info["pool"], "cgtest2");
    assert_eq!(info["namespace"], ns.as_str());
    assert_eq!(info["state"], "ready");
    let id = info["id"].as_str().unwrap().to_owned();
    let record: GroupIdRecord = rbd_cg_contract::decode(&rados_get("cgtest2", &ns, "cg_id.db").unwrap()).unwrap();
    assert_eq!(record.id, id);
    assert!(rbd_cg_ok(&["info", &spec("db")]).contains(&format!("id: {id}")));
    let pretty = rbd_cg_ok(&["info", &spec("db"), "--format", "json", "--pretty-format"]);
    assert!(pretty.contains("\n    \"id\": "), "four spaces per level, as rbd: {pretty}");

    rbd_cg_ok(&["rename", &spec("db"), "database"]);
    expect_errno(&rbd_cg(&["rename", &spec("database"), "app"]), libc::EEXIST);
    rbd_cg_ok(&["rm", &spec("app")]);
    // As `rbd group rm`: removing a group that does not exist succeeds (and says so).
    let again = rbd_cg(&["rm", &spec("app")]);
    assert!(again.status.success() && String::from_utf8_lossy(&again.stderr).contains("does not exist"));
    assert_eq!(rbd_cg_ok(&["ls", &format!("cgtest2/{ns}"), "--format", "json"]).trim(), "[\"database\"]");
    assert_eq!(assert_consistent(&cluster(), "cgtest2", &ns), ["database"]);
    assert!(rados_objects("rbd", &ns).is_empty(), "nothing leaked into the default pool");
}

#[derive(Clone, Copy, Debug)]
enum Recovery {
    Rerun,
    Repair,
}

const CREATE_STEPS: u32 = 4;
const RENAME_STEPS: u32 = 5;
const REMOVE_STEPS: u32 = 4;

#[test]
fn crash_after_every_step_of_create_then_rerun_or_repair() {
    let cluster = cluster();
    for recovery in [Recovery::Rerun, Recovery::Repair] {
        for step in 1..=CREATE_STEPS {
            let ns = namespace(&format!("crash-create-{step}-{recovery:?}"));
            let spec = format!("rbd/{ns}/g");
            crash_at("create", step, &["create", &spec]);
            let groups = groups(&cluster, "rbd", &ns);
            // Visible as incomplete (or complete after the last step), never half-listed.
            let state = groups.info("g").unwrap().state;
            let listed = groups.list().unwrap();
            if step < CREATE_STEPS {
                assert_eq!(state, GroupState::Creating, "after step {step}");
                assert!(listed.is_empty(), "an incomplete create is not listed");
            } else {
                assert_eq!(state, GroupState::Ready);
            }
            match recovery {
                Recovery::Rerun if step < CREATE_STEPS => rbd_cg_ok(&["create", &spec]),
                Recovery::Rerun => {
                    expect_errno(&rbd_cg(&["create", &spec]), libc::EEXIST);
                    String::new()
                }
                Recovery::Repair => rbd_cg_ok(&["repair", &spec]),
            };
            assert_eq!(assert_consistent(&cluster, "rbd", &ns), ["g"], "{recovery:?} after create step {step}");
            // And the group is fully usable afterwards.
            rbd_cg_ok(&["rm", &spec]);
            assert!(assert_consistent(&cluster, "rbd", &ns).is_empty());
        }
    }
}

#[test]
fn crash_after_every_step_of_rename_then_rerun_or_repair() {
    let cluster = cluster();
    for recovery in [Recovery::Rerun, Recovery::Repair] {
        for step in 1..=RENAME_STEPS {
            let ns = namespace(&format!("crash-rename-{step}-{recovery:?}"));
            let old = format!("rbd/{ns}/old");
            rbd_cg_ok(&["create", &old]);
            let id = groups(&cluster, "rbd", &ns).info("old").unwrap().id;
            crash_at("rename", step, &["rename", &old, "new"]);
            let groups = groups(&cluster, "rbd", &ns);
            if step < RENAME_STEPS {
                assert_eq!(groups.info("new").unwrap().state, GroupState::RenamingFrom("old".into()));
                assert_eq!(groups.info("old").unwrap().state, GroupState::RenamingTo("new".into()));
                assert_eq!(groups.list().unwrap(), ["new"], "listed once, under the new name");
                // Nothing else may start on it meanwhile.
                expect_errno(&rbd_cg(&["rm", &format!("rbd/{ns}/new")]), libc::EBUSY);
            }
            match recovery {
                Recovery::Rerun if step < RENAME_STEPS => rbd_cg_ok(&["rename", &old, "new"]),
                Recovery::Rerun => {
                    expect_errno(&rbd_cg(&["rename", &old, "new"]), libc::ENOENT);
                    String::new()
                }
                Recovery::Repair => rbd_cg_ok(&["repair", &format!("rbd/{ns}/new")]),
            };
            assert_eq!(assert_consistent(&cluster, "rbd", &ns), ["new"], "{recovery:?} after rename step {step}");
            assert_eq!(groups.info("new").unwrap().id, id);
        }
    }
}

#[test]
fn crash_after_every_step_of_remove_then_rerun_or_repair() {
    let cluster = cluster();
    for recovery in [Recovery::Rerun, Recovery::Repair] {
        for step in 1..=REMOVE_STEPS {
            let ns = namespace(&format!("crash-remove-{step}-{recovery:?}"));
            let spec = format!("rbd/{ns}/g");
            rbd_cg_ok(&["create", &spec]);
            rbd_cg_ok(&["create", &format!("rbd/{ns}/keep")]);
            crash_at("remove", step, &["rm", &spec]);
            let groups = groups(&cluster, "rbd", &ns);
            if step < REMOVE_STEPS {
                assert_eq!(groups.info("g").unwrap().state, GroupState::Removing, "after step {step}");
            }
            match recovery {
                Recovery::Rerun if step < REMOVE_STEPS => rbd_cg_ok(&["rm", &spec]),
                Recovery::Rerun => {
                    let again = rbd_cg(&["rm", &spec]);
                    assert!(String::from_utf8_lossy(&again.stderr).contains("does not exist"));
                    assert!(again.status.success(), "a removed group stays removed");
                    String::new()
                }
                Recovery::Repair if step < REMOVE_STEPS => rbd_cg_ok(&["repair", &spec]),
                Recovery::Repair => {
                    expect_errno(&rbd_cg(&["repair", &spec]), libc::ENOENT);
                    String::new()
                }
            };
            assert_eq!(assert_consistent(&cluster, "rbd", &ns), ["keep"], "{recovery:?} after remove step {step}");
        }
    }
}

#[test]
fn in_process_fault_plan_stops_with_eintr_and_repair_check_reports_it() {
    let cluster = cluster();
    let ns = namespace("inproc");
    let mut groups = groups(&cluster, "rbd", &ns);
    groups.set_fault_plan(FaultPlan::fail_after("create", 2));
    let stopped = groups.create("g").unwrap_err();
    assert_eq!(stopped.errno(), libc::EINTR);
    assert!(stopped.is_injected(), "marked as a fault-injection stop, not a real EINTR");
    groups.set_fault_plan(FaultPlan::none());
    let check = groups.repair("g", true).unwrap();
    assert_eq!(check.findings.len(), 1);
    assert!(!check.changed);
    assert!(rados_get("rbd", &ns, &id_object("g")).is_none(), "--check changed nothing");
    let out = rbd_cg(&["repair", &format!("rbd/{ns}/g"), "--check"]);
    assert_eq!(out.status.code(), Some(1), "--check exits 1 when something needs repair");
    assert!(groups.repair("g", false).unwrap().changed);
    assert!(groups.repair("g", true).unwrap().findings.is_empty());
    assert_eq!(assert_consistent(&cluster, "rbd", &ns), ["g"]);
}

#[test]
fn a_client_that_cannot_call_the_class_is_told_what_to_configure() {
    // A user with plain `allow r` on the OSDs may not call class methods: the OSD answers
    // EPERM, exactly what a client sees when the class is not permitted to load.
    let nocls = rbd_cg_as("nocls", "allow r pool=rbd");
    let out = nocls(&["ls"]);
    let stderr = expect_errno(&out, libc::EPERM);
    assert!(stderr.contains("checking the rbd_cg class"), "{stderr}");
    assert!(stderr.contains("osd class load list") && stderr.contains("osd class default list"), "{stderr}");
    assert!(stderr.contains("libcls_rbd_cg.so"), "{stderr}");
}

#[test]
fn a_read_only_user_can_list_and_show_but_not_change() {
    let ns = namespace("readonly");
    rbd_cg_ok(&["create", &format!("rbd/{ns}/existing")]);
    let ro = rbd_cg_as("cgro", "allow r class-read pool=rbd");
    let ls = ro(&["ls", &format!("rbd/{ns}"), "--format", "json"]);
    assert!(ls.status.success(), "{}", String::from_utf8_lossy(&ls.stderr));
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "[\"existing\"]");
    assert!(ro(&["info", &format!("rbd/{ns}/existing")]).status.success());
    expect_errno(&ro(&["create", &format!("rbd/{ns}/new")]), libc::EPERM);
    expect_errno(&ro(&["rename", &format!("rbd/{ns}/existing"), "other"]), libc::EPERM);
    expect_errno(&ro(&["rm", &format!("rbd/{ns}/existing")]), libc::EPERM);
    assert_eq!(assert_consistent(&cluster(), "rbd", &ns), ["existing"]);
}

#[test]
fn rename_refuses_a_group_whose_removal_began_and_repair_resolves_a_race() {
    use rbd_cg_contract::methods::{IdRequest, GROUP_BEGIN_REMOVE};
    let cluster = cluster();
    // An interrupted `rm`, then `rename`: refused, naming repair.
    let ns = namespace("rename-vs-rm");
    rbd_cg_ok(&["create", &format!("rbd/{ns}/g")]);
    crash_at("remove", 1, &["rm", &format!("rbd/{ns}/g")]);
    let stderr = expect_errno(&rbd_cg(&["rename", &format!("rbd/{ns}/g"), "h"]), libc::EBUSY);
    assert!(stderr.contains("repair"), "{stderr}");
    rbd_cg_ok(&["repair", &format!("rbd/{ns}/g")]);
    assert!(assert_consistent(&cluster, "rbd", &ns).is_empty());

    // A removal that begins while a rename is under way (as a racing `rm` would).
    let ns = namespace("rename-race-rm");
    rbd_cg_ok(&["create", &format!("rbd/{ns}/g")]);
    let id = groups(&cluster, "rbd", &ns).info("g").unwrap().id;
    crash_at("rename", 2, &["rename", &format!("rbd/{ns}/g"), "h"]);
    let io = ioctx(&cluster, "rbd", &ns);
    let request = rbd_cg_contract::encode(&IdRequest { id: id.clone() }).unwrap();
    io.exec_write(&header_object(&id), "rbd_cg", GROUP_BEGIN_REMOVE.name, &request).unwrap();
    rbd_cg_ok(&["repair", &format!("rbd/{ns}/h")]);
    assert!(assert_consistent(&cluster, "rbd", &ns).is_empty(), "the removal won and was completed");
}
