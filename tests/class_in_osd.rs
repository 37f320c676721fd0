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
    // A length prefix claiming 2^63 bytes, and one byte more, so that no request with a
    // single u64 (`SegmentSealRequest`) takes the prefix for its value.
    let mut huge_length = vec![1, 1, 9, 0, 0, 0];
    huge_length.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    huge_length.push(0);
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

// ---- the group journal -----------------------------------------------------------------------

const JOURNAL_METHODS: &[&str] = &[
    "journal_enable",
    "journal_enabled",
    "journal_disable_begin",
    "journal_disable_finish",
    "journal_get",
    "journal_take",
    "journal_release",
    "journal_roll",
    "journal_trim",
    "journal_consumer_set",
    "journal_consumer_disconnect",
    "journal_consumer_remove",
    "snap_set_journal_position",
    "snap_get_journal_position",
    "segment_open",
    "segment_append",
    "segment_seal",
    "segment_get",
];

/// The group mirroring methods (`docs/FORMAT.md` §11).
const MIRROR_METHODS: &[&str] =
    &["mirror_enable", "mirror_disable", "mirror_set_role", "mirror_set_replay", "mirror_resync", "mirror_get"];

/// Every journal and mirror method is registered (it decodes input: garbage is EINVAL, not
/// the EOPNOTSUPP of an unknown method) with exactly its flags: a user with `class-read`
/// only may call the read methods and gets EPERM from the OSD for every write method.
#[test]
fn journal_methods_are_registered_with_their_flags() {
    use rbd_cg_rados::{Cluster, ConnectOptions};
    let ns = namespace("journal-flags");
    let admin = cluster();
    let io = ioctx(&admin, "rbd", &ns);
    io.write_full("probe", b"").unwrap();
    let keyring = std::env::temp_dir().join(format!("rbd-cg-jflags-{}.keyring", std::process::id()));
    let keyring_path = keyring.to_str().unwrap();
    let caps = "allow r class-read pool=rbd";
    ceph_tool_ok(
        "ceph",
        &["auth", "get-or-create", "client.jflags", "mon", "allow r", "osd", caps, "-o", keyring_path],
    );
    let options = ConnectOptions { id: Some("jflags".into()), keyring: Some(keyring.clone()), ..Default::default() };
    let read_only = Cluster::connect(&options).expect("connecting as client.jflags");
    let ro = ioctx(&read_only, "rbd", &ns);
    for name in JOURNAL_METHODS.iter().chain(MIRROR_METHODS) {
        let access = m::ALL_METHODS.iter().find(|(n, _)| n == name).map(|(_, a)| *a).expect("in ALL_METHODS");
        match access {
            Access::Read => {
                assert_eq!(exec_read(&io, "probe", name, b"garbage").unwrap_err(), libc::EINVAL, "{name}");
                assert_eq!(exec_read(&ro, "probe", name, b"garbage").unwrap_err(), libc::EINVAL, "{name} (read-only)");
            }
            Access::Write => {
                let errno = |io: &IoCtx| io.exec_write("probe", CLASS_NAME, name, b"garbage").unwrap_err().errno;
                assert_eq!(errno(&io), libc::EINVAL, "{name}");
                assert_eq!(errno(&ro), libc::EPERM, "{name} (read-only)");
            }
        }
    }
    let _ = std::fs::remove_file(&keyring);
}

fn journal_entry(seq: u64, epoch: u64, payload: &[u8]) -> Vec<u8> {
    use rbd_cg_contract::journal::{EntryHeader, EntryOp};
    let header = EntryHeader {
        op: EntryOp::Write,
        tag: 1,
        payload_len: 0,
        seq,
        epoch,
        ack_floor: seq - 1,
        offset: 512 * seq,
        length: payload.len() as u64,
        timestamp_ns: 1,
        payload_crc: 0,
    };
    let mut out = Vec::new();
    header.encode_entry(payload, &mut out);
    out
}

/// The segment of a journal inside a real OSD: opened, appended to in batches that land
/// back to back (read back with `rados get`), refusing stale writers, gaps and corrupt
/// entries without changing anything, sealed by a newer writer.
#[test]
fn segment_append_seal_and_stale_epochs_on_a_real_osd() {
    use rbd_cg_contract::journal::{
        encode_append, scan_entries, segment_object, SegmentAppend, SegmentOpenRequest, SegmentRecord,
        SegmentSealRequest,
    };
    let ns = namespace("journal-segment");
    let cluster = cluster();
    let io = ioctx(&cluster, "rbd", &ns);
    let oid = segment_object("0123456789abcdef", 0);
    let append = |epoch, first_seq, count, entries: &[u8]| {
        let input = encode_append(&SegmentAppend { epoch, first_seq, count }, entries).unwrap();
        io.exec_write(&oid, CLASS_NAME, m::SEGMENT_APPEND.name, &input).map_err(|e| e.errno)
    };
    let segment = || -> SegmentRecord { io.call(&oid, &m::SEGMENT_GET, &Empty {}).unwrap() };

    assert_eq!(append(2, 1, 1, &journal_entry(1, 2, b"x")), Err(libc::ENOENT), "no segment yet");
    let open = SegmentOpenRequest { epoch: 2, first_seq: 1, capacity: 1 << 20 };
    io.call_write(&oid, &m::SEGMENT_OPEN, &open).unwrap();
    io.call_write(&oid, &m::SEGMENT_OPEN, &open).unwrap();
    let first: Vec<u8> = (1..=3).flat_map(|seq| journal_entry(seq, 2, &vec![seq as u8; 100 * seq as usize])).collect();
    append(2, 1, 3, &first).unwrap();
    let second: Vec<u8> = (4..=5).flat_map(|seq| journal_entry(seq, 2, &vec![0xee; 4096])).collect();
    append(2, 4, 2, &second).unwrap();
    let expected = [first.clone(), second.clone()].concat();
    let record = segment();
    assert_eq!((record.epoch, record.next_seq, record.committed_len), (2, 6, expected.len() as u64));
    assert_eq!(rados_get("rbd", &ns, &oid).unwrap(), expected, "the entries, back to back");
    let (entries, error) = scan_entries(&expected, true);
    assert_eq!((entries.len(), error), (5, None));

    // Refusals leave data and record as they were.
    let unchanged = |what: &str| {
        assert_eq!(rados_get("rbd", &ns, &oid).unwrap(), expected, "{what} changed the data");
        assert_eq!(segment(), record, "{what} changed the record");
    };
    assert_eq!(append(1, 6, 1, &journal_entry(6, 1, b"old")), Err(libc::ESTALE));
    unchanged("a stale writer");
    assert_eq!(append(3, 6, 1, &journal_entry(6, 3, b"new")), Err(libc::ESTALE));
    unchanged("a newer writer");
    assert_eq!(append(2, 7, 1, &journal_entry(7, 2, b"gap")), Err(libc::ERANGE));
    unchanged("a gap");
    let mut corrupt = journal_entry(6, 2, b"bad");
    corrupt[20] ^= 1;
    assert_eq!(append(2, 6, 1, &corrupt), Err(libc::EINVAL));
    unchanged("a corrupt header");
    let two = [journal_entry(6, 2, b"a"), journal_entry(7, 2, b"b")].concat();
    assert_eq!(append(2, 6, 2, &two[..two.len() - 3]), Err(libc::EINVAL));
    unchanged("a torn batch");
    assert_eq!(append(2, 6, 1, &journal_entry(6, 2, &vec![1; 1 << 20])), Err(libc::ENOSPC));
    unchanged("a batch that does not fit");

    // A newer writer seals it; an older one may not; nothing is appended after.
    let seal = |epoch| io.call_write(&oid, &m::SEGMENT_SEAL, &SegmentSealRequest { epoch }).map_err(|e| e.errno);
    assert_eq!(seal(1), Err(libc::ESTALE));
    seal(3).unwrap();
    seal(3).unwrap();
    assert!(segment().sealed);
    assert_eq!(append(2, 6, 1, &journal_entry(6, 2, b"late")), Err(libc::ESTALE));
    assert_eq!(rados_get("rbd", &ns, &oid).unwrap(), expected);
}

/// Journaling on a real group: enable writes the header with the feature (compat_v 2),
/// membership changes and removal are refused through the CLI while it is on, and disable
/// gives the group back.
#[test]
fn a_journaled_group_refuses_membership_changes_until_disabled() {
    use rbd_cg_contract::journal::{JournalEnableRequest, JournalGroupRequest, JournalStatus};
    use rbd_cg_contract::records::GroupHeader;
    let cluster = cluster();
    let ns = namespace("journal-group");
    let groups = groups(&cluster, "rbd", &ns);
    let id = groups.create("jg").unwrap();
    let io = ioctx(&cluster, "rbd", &ns);
    let header = header_object(&id);
    let enable = JournalEnableRequest {
        group_id: id.clone(),
        segment_size: 1 << 24,
        max_bytes: 1 << 30,
        members: vec![],
        created_ms: 1,
    };
    io.call_write(&header, &m::JOURNAL_ENABLE, &enable).unwrap();
    let group = JournalGroupRequest { group_id: id.clone() };
    io.call_write(&header, &m::JOURNAL_ENABLED, &group).unwrap();
    let status: JournalStatus = io.call(&header, &m::JOURNAL_GET, &group).unwrap();
    assert_eq!(status.consumers.len(), 1);
    let stored = rados_get("rbd", &ns, &header).unwrap();
    assert_eq!(stored[..2], [2, 2], "header version 2, compat_v 2");
    let decoded: GroupHeader = decode(&stored).unwrap();
    assert_eq!(decoded.features, GroupHeader::FEATURE_JOURNALING);

    ceph_tool_ok("rbd", &["namespace", "create", &format!("rbd/{ns}")]);
    ceph_tool_ok("rbd", &["create", "--size", "8M", &format!("rbd/{ns}/img")]);
    expect_errno(&rbd_cg(&["image", "add", &format!("rbd/{ns}/jg"), &format!("rbd/{ns}/img")]), libc::EBUSY);
    expect_errno(&rbd_cg(&["rm", &format!("rbd/{ns}/jg")]), libc::EBUSY);

    io.call_write(&header, &m::JOURNAL_DISABLE_BEGIN, &group).unwrap();
    io.call_write(&header, &m::JOURNAL_DISABLE_FINISH, &group).unwrap();
    assert_eq!(rados_get("rbd", &ns, &header).unwrap()[..2], [2, 1], "no features: compat_v 1 again");
    rbd_cg_ok(&["image", "add", &format!("rbd/{ns}/jg"), &format!("rbd/{ns}/img")]);
}
