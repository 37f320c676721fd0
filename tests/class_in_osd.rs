//! The class inside a real OSD: it loads, exports only its entry point, answers the
//! version method, rejects malformed input with an errno while the OSD stays up and the
//! object stays unchanged, and turns a panic into EIO plus a line in the OSD log.

mod common;

use common::*;
use rbd_cg_contract::methods::{self as m, Access, Empty, VersionReply};
use rbd_cg_contract::names::{header_object, id_object, DIRECTORY_OBJECT};
use rbd_cg_contract::{decode, encode, CLASS_NAME, PROTOCOL_MAX, PROTOCOL_MIN};
use rbd_cg_rados::IoCtx;
use std::process::Command;

fn nm(args: &[&str], file: &str) -> Vec<String> {
    let out = Command::new("nm").args(args).arg(file).output().expect("running nm");
    assert!(out.status.success(), "nm {args:?} {file}");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn only_cls_init_is_exported_and_every_needed_symbol_comes_from_ceph_osd() {
    let so = required_env("RBD_CG_CLASS_SO");
    let defined: Vec<String> = nm(&["-D", "--defined-only"], &so)
        .iter()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    assert_eq!(defined, ["__cls_init"], "exported symbols");
    let osd: std::collections::HashSet<String> = nm(&["-D", "--defined-only"], "/usr/bin/ceph-osd")
        .iter()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    for line in nm(&["-D", "--undefined-only"], &so) {
        let mut fields = line.split_whitespace();
        let (kind, symbol) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        // Versioned symbols come from libc/libstdc++/libgcc; weak ones may stay unresolved.
        if kind == "U" && !symbol.contains('@') {
            assert!(osd.contains(symbol), "{symbol} is not exported by ceph-osd");
        }
    }
}

fn exec_read(io: &IoCtx, oid: &str, method: &str, input: &[u8]) -> Result<Vec<u8>, i32> {
    io.exec_read(oid, CLASS_NAME, method, input).map_err(|e| e.errno)
}

#[test]
fn version_method_reports_the_protocol() {
    let cluster = cluster();
    let io = ioctx(&cluster, "rbd", &namespace("version"));
    io.write_full("probe", b"").unwrap();
    let reply: VersionReply =
        decode(&exec_read(&io, "probe", m::GET_VERSION.name, &encode(&Empty {}).unwrap()).unwrap()).unwrap();
    assert_eq!(reply.class_version, rbd_cg_contract::CLASS_VERSION);
    assert_eq!((reply.protocol_min, reply.protocol_max), (PROTOCOL_MIN, PROTOCOL_MAX));
    assert_eq!(exec_read(&io, "probe", "no_such_method", b"").unwrap_err(), libc::EOPNOTSUPP);
}

/// Data and omap of an object, to compare before and after.
type ObjectState = (Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

fn snapshot(io: &IoCtx, oid: &str) -> ObjectState {
    let data = io.read_full(oid, 1 << 20).ok();
    let omap = io.omap_get_all(oid, 0).unwrap_or_default();
    (data, omap)
}

#[test]
fn malformed_input_to_every_method_is_an_errno_and_changes_nothing() {
    let cluster = cluster();
    let ns = namespace("malformed");
    let groups = groups(&cluster, "rbd", &ns);
    let id = groups.create("victim").unwrap();
    let io = ioctx(&cluster, "rbd", &ns);
    // A real RBD image header too, with a member and a snapshot, so every method meets
    // the object it is meant for.
    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/img")]);
    rbd_cg_ok(&["image", "add", &format!("rbd/{ns}/victim"), &format!("rbd/{ns}/img")]);
    rbd_cg_ok(&["snap", "create", &format!("rbd/{ns}/victim@s")]);
    let info: serde_json::Value =
        serde_json::from_str(&ceph_tool_ok("rbd", &["info", "--format", "json", &format!("rbd/{ns}/img")])).unwrap();
    let image_header = format!("rbd_header.{}", info["id"].as_str().unwrap());
    let objects = [DIRECTORY_OBJECT.to_owned(), id_object("victim"), header_object(&id), image_header];

    // A valid envelope of a type that no method's request decodes from (a string and two
    // u16: too short for a second string, a bad Option tag, or trailing bytes; as a
    // DirListRequest it is a page of 0 entries, ERANGE).
    let reply = VersionReply { class_version: "x".into(), protocol_min: 0, protocol_max: 0 };
    let valid_but_wrong_type = encode(&reply).unwrap();
    let mut huge_length = vec![1, 1, 8, 0, 0, 0];
    huge_length.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let mut too_new = encode(&Empty {}).unwrap();
    too_new[0] = 200;
    too_new[1] = 200;
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", b"garbage".to_vec()),
        ("truncated", vec![1, 1, 50, 0, 0, 0, 1, 2]),
        ("huge length prefix", huge_length),
        ("oversized", vec![1u8; 2 << 20]),
        ("future version", too_new),
        ("wrong request type", valid_but_wrong_type),
    ];
    for (method, access) in m::ALL_METHODS {
        for oid in &objects {
            let before = snapshot(&io, oid);
            for (what, payload) in &payloads {
                let result = match access {
                    Access::Read => exec_read(&io, oid, method, payload).map(|_| ()),
                    Access::Write => io.exec_write(oid, CLASS_NAME, method, payload).map_err(|e| e.errno),
                };
                let errno = result.err().unwrap_or(0);
                assert!(
                    [libc::EINVAL, libc::ERANGE, libc::EOPNOTSUPP].contains(&errno),
                    "{method} on {oid} with {what}: errno {errno}"
                );
            }
            assert_eq!(snapshot(&io, oid), before, "{method} changed {oid}");
        }
    }
    // The OSD is alive and the group intact.
    assert_eq!(groups.info("victim").unwrap().id, id);
}

#[test]
fn a_panic_in_a_method_is_eio_and_the_osd_survives() {
    let cluster = cluster();
    let io = ioctx(&cluster, "rbd", &namespace("panic"));
    io.write_full("probe", b"").unwrap();
    let empty = encode(&Empty {}).unwrap();
    assert_eq!(exec_read(&io, "probe", m::TEST_PANIC.name, &empty).unwrap_err(), libc::EIO);
    // Same OSD, next call: still answering.
    exec_read(&io, "probe", m::GET_VERSION.name, &empty).expect("the OSD answers after the panic");
    let log = osd_log();
    assert!(log.contains("test_panic was called: this panic is deliberate"), "panic message in the OSD log");
    assert!(log.contains("method test_panic panicked; the client gets EIO"), "guard line in the OSD log");
}
