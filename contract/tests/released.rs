//! Records as every released version wrote them: this build must read them all.
//!
//! Each case holds the bytes that a release actually wrote for a record (produced by that
//! release's own code, not derived by hand), and the value the current reader must make
//! of them. Reading them proves the current decoder understands the old version (or the
//! same version, unchanged); encoding that value again proves a round trip writes the
//! current version, which `golden.rs` pins byte by byte. When a version is released, its
//! bytes are added here and never changed: they describe records on disks.
//!
//! Release 0.1.0 (commit 8e79f05, the release before group headers learned `features`)
//! wrote every record in version 1.

use rbd_cg_contract::records::{
    CloneImagePlan, ClonePlan, DirEntry, DirIdEntry, DirState, GroupHeader, GroupIdRecord, GroupRef, HeaderState,
    ImageRef, MemberRecord, MemberState, ReservedSnapId, SnapIdReserve, SnapInProgress, SnapNameEntry, SnapOperation,
    SnapSeq, SnapshotMember, SnapshotRecord, SnapshotState,
};
use rbd_cg_contract::{decode, encode, Versioned};
use std::fmt::Debug;

const ID: &str = "0123456789abcdef";
const CREATED_MS: u64 = 1_700_000_000_000;

fn image() -> ImageRef {
    ImageRef { pool_id: 2, namespace: "ns".into(), image_id: "10ab".into() }
}

fn group() -> GroupRef {
    GroupRef { pool_id: 1, namespace: String::new(), group_id: ID.into() }
}

fn header(state: HeaderState, member_count: u32, snapshot_count: u32) -> GroupHeader {
    GroupHeader {
        id: ID.into(),
        name: "db".into(),
        state,
        created_ms: CREATED_MS,
        member_count,
        snapshot_count,
        features: 0,
    }
}

fn snapshot(state: SnapshotState, members: Vec<SnapshotMember>) -> SnapshotRecord {
    SnapshotRecord { seq: 2, id: "5a".into(), name: "s1".into(), state, created_ms: CREATED_MS, members }
}

fn hex(dump: &str) -> Vec<u8> {
    dump.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("bad hex {b:?}: {e}")))
        .collect()
}

/// `released` (bytes an earlier release wrote) reads as `value`, and `value` is written
/// back in the current version, which reads as `value` again.
#[track_caller]
fn reads<T: Versioned + PartialEq + Debug>(released: &str, value: T) {
    let released = hex(released);
    let read: T = decode(&released).unwrap_or_else(|e| panic!("reading released {}: {e}", T::TYPE_NAME));
    assert_eq!(read, value, "released {}", T::TYPE_NAME);
    let current = encode(&read).unwrap_or_else(|e| panic!("encoding {}: {e}", T::TYPE_NAME));
    assert_eq!(current[0], T::STRUCT_V, "{} is written in the current version", T::TYPE_NAME);
    if released[0] == T::STRUCT_V {
        assert_eq!(current, released, "{} did not change in this version", T::TYPE_NAME);
    }
    assert_eq!(decode::<T>(&current).as_ref(), Ok(&value), "round trip of {}", T::TYPE_NAME);
}

#[test]
fn release_0_1_0_group_id_record() {
    reads(
        "
        01 01 18 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66",
        GroupIdRecord { id: ID.into() },
    );
}

#[test]
fn release_0_1_0_group_header() {
    reads(
        "
        01 01 36 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00
        00 00 00 00 00 00 64 62 00 00 00 00 00 68 e5 cf
        8b 01 00 00 03 00 00 00 07 00 00 00",
        header(HeaderState::Active, 3, 7),
    );
}

#[test]
fn release_0_1_0_group_header_removing() {
    reads(
        "
        01 01 36 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00
        00 00 00 00 00 00 64 62 01 00 00 00 00 68 e5 cf
        8b 01 00 00 00 00 00 00 00 00 00 00",
        header(HeaderState::Removing, 0, 0),
    );
}

#[test]
fn release_0_1_0_dir_entry_creating() {
    reads(
        "
        01 01 1c 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 00 00
        00 00",
        DirEntry { id: ID.into(), state: DirState::Creating },
    );
}

#[test]
fn release_0_1_0_dir_entry_ready() {
    reads(
        "
        01 01 1c 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 01 00
        00 00",
        DirEntry { id: ID.into(), state: DirState::Ready },
    );
}

#[test]
fn release_0_1_0_dir_entry_renaming_to() {
    reads(
        "
        01 01 27 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00
        00 00 03 00 00 00 00 00 00 00 6e 65 77",
        DirEntry { id: ID.into(), state: DirState::RenamingTo("new".into()) },
    );
}

#[test]
fn release_0_1_0_dir_entry_renaming_from() {
    reads(
        "
        01 01 27 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 03 00
        00 00 03 00 00 00 00 00 00 00 6f 6c 64",
        DirEntry { id: ID.into(), state: DirState::RenamingFrom("old".into()) },
    );
}

#[test]
fn release_0_1_0_dir_id_entry() {
    reads(
        "
        01 01 0a 00 00 00 02 00 00 00 00 00 00 00 64 62",
        DirIdEntry { name: "db".into() },
    );
}

#[test]
fn release_0_1_0_group_ref() {
    reads(
        "
        01 01 28 00 00 00 01 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66",
        group(),
    );
}

#[test]
fn release_0_1_0_member_record_adding() {
    reads(
        "
        01 01 2a 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 6e 73 04 00 00 00 00 00 00 00
        31 30 61 62 00 00 00 00 00 68 e5 cf 8b 01 00 00",
        MemberRecord { image: image(), state: MemberState::Adding, added_ms: CREATED_MS },
    );
}

#[test]
fn release_0_1_0_member_record_attached() {
    reads(
        "
        01 01 2a 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 6e 73 04 00 00 00 00 00 00 00
        31 30 61 62 01 00 00 00 00 68 e5 cf 8b 01 00 00",
        MemberRecord { image: image(), state: MemberState::Attached, added_ms: CREATED_MS },
    );
}

#[test]
fn release_0_1_0_member_record_removing() {
    reads(
        "
        01 01 2a 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 6e 73 04 00 00 00 00 00 00 00
        31 30 61 62 02 00 00 00 00 68 e5 cf 8b 01 00 00",
        MemberRecord { image: image(), state: MemberState::Removing, added_ms: CREATED_MS },
    );
}

#[test]
fn release_0_1_0_snapshot_record_creating() {
    reads(
        "
        01 01 4f 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 35 61 02 00 00 00 00 00 00 00
        73 31 00 00 00 00 00 68 e5 cf 8b 01 00 00 01 00
        00 00 00 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 6e 73 04 00 00 00 00 00 00 00
        31 30 61 62 00",
        snapshot(SnapshotState::Creating, vec![SnapshotMember { image: image(), snap_id: None }]),
    );
}

#[test]
fn release_0_1_0_snapshot_record_complete() {
    reads(
        "
        01 01 57 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 35 61 02 00 00 00 00 00 00 00
        73 31 01 00 00 00 00 68 e5 cf 8b 01 00 00 01 00
        00 00 00 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 6e 73 04 00 00 00 00 00 00 00
        31 30 61 62 01 1c 00 00 00 00 00 00 00",
        snapshot(SnapshotState::Complete, vec![SnapshotMember { image: image(), snap_id: Some(28) }]),
    );
}

#[test]
fn release_0_1_0_snapshot_record_removing() {
    reads(
        "
        01 01 30 00 00 00 02 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 35 61 02 00 00 00 00 00 00 00
        73 31 02 00 00 00 00 68 e5 cf 8b 01 00 00 00 00
        00 00 00 00 00 00",
        snapshot(SnapshotState::Removing, vec![]),
    );
}

#[test]
fn release_0_1_0_snap_name_entry() {
    reads(
        "
        01 01 08 00 00 00 02 00 00 00 00 00 00 00",
        SnapNameEntry { seq: 2 },
    );
}

#[test]
fn release_0_1_0_snap_seq() {
    reads(
        "
        01 01 08 00 00 00 03 00 00 00 00 00 00 00",
        SnapSeq { next: 3 },
    );
}

#[test]
fn release_0_1_0_snap_id_reserve() {
    reads(
        "
        01 01 18 00 00 00 01 00 00 00 00 00 00 00 02 00
        00 00 00 00 00 00 1c 00 00 00 00 00 00 00",
        SnapIdReserve { ids: vec![ReservedSnapId { pool_id: 2, snap_id: 28 }] },
    );
}

#[test]
fn release_0_1_0_snap_in_progress_create() {
    reads(
        "
        01 01 0c 00 00 00 02 00 00 00 00 00 00 00 00 00
        00 00",
        SnapInProgress { seq: 2, operation: SnapOperation::Create },
    );
}

#[test]
fn release_0_1_0_snap_in_progress_rollback() {
    reads(
        "
        01 01 0c 00 00 00 02 00 00 00 00 00 00 00 01 00
        00 00",
        SnapInProgress { seq: 2, operation: SnapOperation::Rollback },
    );
}

#[test]
fn release_0_1_0_clone_plan() {
    reads(
        "
        01 01 86 00 00 00 01 00 00 00 00 00 00 00 00 00
        00 00 00 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00
        00 00 00 00 00 00 35 61 02 00 00 00 00 00 00 00
        73 31 02 01 00 00 00 00 00 00 00 02 00 00 00 00
        00 00 00 02 00 00 00 00 00 00 00 6e 73 04 00 00
        00 00 00 00 00 31 30 61 62 1c 00 00 00 00 00 00
        00 09 00 00 00 00 00 00 00 2e 72 62 64 5f 63 67
        2e 78 02 00 00 00 00 00 00 00 63 31",
        ClonePlan {
            source_group: group(),
            source_snap_id: "5a".into(),
            source_snap_name: "s1".into(),
            clone_format: 2,
            images: vec![CloneImagePlan {
                source: image(),
                source_snap_id: 28,
                source_snap_name: ".rbd_cg.x".into(),
                name: "c1".into(),
            }],
        },
    );
}

/// A group-header reader of version 1, as release 0.1.0's class decodes headers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OldHeaderReader(rbd_cg_contract::history::GroupHeaderV1);
rbd_cg_contract::versioned!(OldHeaderReader, "GroupHeader", 1, 1, 4096);

#[test]
fn a_version_2_group_header_with_features_is_refused_by_a_version_1_reader() {
    // What an old (0.1.0) class sees: compat_v 2 says it must not decode it.
    let journaled = GroupHeader { features: GroupHeader::FEATURE_JOURNALING, ..header(HeaderState::Active, 1, 0) };
    let bytes = encode(&journaled).unwrap();
    assert_eq!(bytes[..2], [2, 2]);
    assert_eq!(decode::<OldHeaderReader>(&bytes).unwrap_err().errno(), libc::EOPNOTSUPP);
    // Without features it stays readable by version 1 (compat_v 1).
    let plain = encode(&header(HeaderState::Active, 1, 0)).unwrap();
    assert_eq!(plain[..2], [2, 1]);
    let old = decode::<OldHeaderReader>(&plain).unwrap();
    assert_eq!(old.0.member_count, 1);
}

/// Requests change versions too: a class must understand what older clients send (mixed
/// versions during an upgrade). Release 0.1.0's `snap_remove_begin` took a `SnapRequest`.
#[test]
fn release_0_1_0_snap_remove_request() {
    use rbd_cg_contract::methods::SnapRemoveRequest;
    reads(
        "
        01 01 21 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 01 00
        00 00 00 00 00 00 73",
        SnapRemoveRequest { group_id: ID.into(), name: "s".into(), undo_create: true },
    );
}
