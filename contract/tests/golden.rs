//! Golden bytes: the exact encoding of every stored record and every request/reply.
//!
//! The expected bytes below are written by hand from the format rules in
//! `docs/FORMAT.md`, not produced by the code under test, so any change to a byte
//! layout (field order, field type, enum variant order, bincode configuration, envelope
//! versions) fails here. If a test fails because you changed a layout on purpose, you
//! are changing the on-disk/on-wire format: bump `STRUCT_V` (and `COMPAT_V` if old
//! readers cannot cope), update `docs/FORMAT.md`, and only then update these bytes.
//!
//! Rules used to derive the bytes (bincode 2, little-endian, fixed-width integers):
//! - envelope: `struct_v` u8, `compat_v` u8, payload length u32 LE, payload;
//! - struct: its fields in declaration order, nothing else (no field names, no count);
//! - `u16`/`u32`/`u64`: 2/4/8 bytes LE; `bool`: one byte 0 or 1;
//! - `String`: u64 LE byte length, then the UTF-8 bytes (no terminator);
//! - `Vec<T>`: u64 LE element count, then the elements;
//! - enum: variant index as u32 LE (declaration order from 0), then the variant's data.

use rbd_cg_contract::encoding::{ENVELOPE_HEADER_LEN, MAX_PAYLOAD_LEN};
use rbd_cg_contract::journal::{
    ConsumerRecord, ConsumerRequest, ConsumerSetRequest, ConsumerState, EntryHeader, EntryOp, JournalEnableRequest,
    JournalGroupRequest, JournalMember, JournalRecord, JournalReleaseRequest, JournalRollRequest, JournalState,
    JournalStatus, JournalTakeRequest, JournalTrimRequest, SegmentAppend, SegmentOpenRequest, SegmentRecord,
    SegmentSealRequest, SnapJournalPosition, SnapJournalPositionRequest, WriterLease,
};
use rbd_cg_contract::journal::{
    ImageFenceRequest, WriterReply, WriterRequest, OP_FEATURE_RBD_CG_JOURNAL, RBD_FEATURES_KEY,
    RBD_FEATURE_NON_PRIMARY, RBD_FEATURE_OPERATIONS, RBD_OP_FEATURES_KEY,
};
use rbd_cg_contract::methods::{
    Access, DirListItem, DirListReply, DirListRequest, Empty, GroupCreateRequest, IdRequest, NameAndId, NameRequest,
    ReadMethod, RenameRequest, VersionReply, WriteMethod, ALL_METHODS, CLS_METHOD_RD, CLS_METHOD_WR, DIR_ADD, DIR_GET,
    DIR_GET_NAME, DIR_LIST, DIR_REMOVE, DIR_RENAME_BEGIN, DIR_RENAME_FINISH, DIR_SET_READY, GET_VERSION,
    GROUP_BEGIN_REMOVE, GROUP_CREATE, GROUP_GET, GROUP_REMOVE, GROUP_SET_NAME, ID_CREATE, ID_GET, ID_REMOVE,
    MAX_LIST_PAGE, TEST_PANIC,
};
use rbd_cg_contract::methods::{
    BackRefRequest, GroupRefList, MemberAddRequest, MemberListReply, MemberListRequest, MemberRequest,
    IMAGE_GROUP_LINK, IMAGE_GROUP_LIST, IMAGE_GROUP_UNLINK, IMAGE_JOURNAL_FENCE, MEMBER_ADD_BEGIN, MEMBER_ADD_FINISH,
    MEMBER_LIST, MEMBER_REMOVE_BEGIN, MEMBER_REMOVE_FINISH,
};
use rbd_cg_contract::methods::{CloneBeginRequest, CLONE_BEGIN, CLONE_FINISH, CLONE_GET};
use rbd_cg_contract::methods::{
    RawWriteMethod, JOURNAL_CONSUMER_DISCONNECT, JOURNAL_CONSUMER_REMOVE, JOURNAL_CONSUMER_SET, JOURNAL_DISABLE_BEGIN,
    JOURNAL_DISABLE_FINISH, JOURNAL_ENABLE, JOURNAL_ENABLED, JOURNAL_GET, JOURNAL_RELEASE, JOURNAL_ROLL, JOURNAL_TAKE,
    JOURNAL_TRIM, SEGMENT_APPEND, SEGMENT_GET, SEGMENT_OPEN, SEGMENT_SEAL, SNAP_GET_JOURNAL_POSITION,
    SNAP_SET_JOURNAL_POSITION,
};
use rbd_cg_contract::methods::{
    SnapCreateRequest, SnapFinishRequest, SnapListReply, SnapListRequest, SnapRemoveRequest, SnapRenameRequest,
    SnapRequest, SNAP_CREATE_BEGIN, SNAP_CREATE_FINISH, SNAP_GET, SNAP_LIST, SNAP_REMOVE_BEGIN, SNAP_REMOVE_FINISH,
    SNAP_RENAME, SNAP_ROLLBACK_BEGIN, SNAP_ROLLBACK_FINISH,
};
use rbd_cg_contract::methods::{SnapReservePutRequest, SNAP_RESERVE_GET, SNAP_RESERVE_PUT};
use rbd_cg_contract::methods::{
    MIRROR_DISABLE, MIRROR_ENABLE, MIRROR_GET, MIRROR_RESYNC, MIRROR_SET_REPLAY, MIRROR_SET_ROLE,
};
use rbd_cg_contract::mirror::{
    Bootstrap, MemberSync, MirrorEnableRequest, MirrorGroupRequest, MirrorMode, MirrorRecord, MirrorReplayRequest,
    MirrorRole, MirrorRoleRequest, MirroredSnapshot, PeerGroup, ReplayPhase, ReplayState,
};
use rbd_cg_contract::names::{backref_key, member_key};
use rbd_cg_contract::names::{
    dir_id_key, dir_name_key, header_object, id_object, validate_group_id, validate_group_name, DIRECTORY_OBJECT,
    DIR_ID_KEY_PREFIX, DIR_NAME_KEY_PREFIX, GENERATED_GROUP_ID_LEN, HEADER_OBJECT_PREFIX, ID_OBJECT_PREFIX,
    MAX_GROUP_ID_LEN, MAX_GROUP_NAME_LEN,
};
use rbd_cg_contract::names::{
    image_snap_name, snap_key, snap_name_key, NEXT_SNAP_SEQ_KEY, SNAPSHOT_IN_PROGRESS_KEY, SNAP_ID_RESERVE_KEY,
    SNAP_ID_TAKEN_KEY,
};
use rbd_cg_contract::records::{DirEntry, DirIdEntry, DirState, GroupHeader, GroupIdRecord, HeaderState};
use rbd_cg_contract::records::{GroupRef, ImageRef, MemberRecord, MemberState};
use rbd_cg_contract::records::{
    ReservedSnapId, SnapIdReserve, SnapInProgress, SnapNameEntry, SnapOperation, SnapSeq, SnapshotMember,
    SnapshotRecord, SnapshotState,
};
use rbd_cg_contract::{decode, encode, Versioned, CLASS_NAME, PROTOCOL_MAX, PROTOCOL_MIN};
use std::fmt::Debug;

// ---- helpers ----------------------------------------------------------------------------

/// A typical generated group id: 16 lowercase hex digits.
const ID: &str = "0123456789abcdef";
/// 2023-11-14T22:13:20Z in milliseconds = 0x0000_018b_cfe5_6800.
const CREATED_MS: u64 = 1_700_000_000_000;

/// Concatenates byte strings.
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn u16le(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}

fn u32le(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn u64le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// A bincode string: u64 LE byte length, then the bytes.
fn string(s: &str) -> Vec<u8> {
    bytes(&[&u64le(s.len() as u64), s.as_bytes()])
}

/// An enum variant tag: u32 LE.
fn variant(index: u32) -> [u8; 4] {
    u32le(index)
}

/// Parses a whitespace-separated hex dump (`"01 01 0a 00"`), as printed in `docs/FORMAT.md`.
fn hex(dump: &str) -> Vec<u8> {
    dump.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("bad hex {b:?}: {e}")))
        .collect()
}

/// Asserts that `value` encodes to exactly `expected` and that `expected` decodes to `value`.
#[track_caller]
fn golden<T: Versioned + PartialEq + Debug>(value: &T, expected: &[u8]) {
    let encoded = encode(value).unwrap_or_else(|e| panic!("encoding {} {value:?}: {e}", T::TYPE_NAME));
    assert_eq!(encoded, expected, "encoded bytes of {} {value:?}", T::TYPE_NAME);
    let decoded: T = decode(expected).unwrap_or_else(|e| panic!("decoding {}: {e}", T::TYPE_NAME));
    assert_eq!(&decoded, value, "decoded {}", T::TYPE_NAME);
}

#[test]
fn helpers_produce_the_bytes_they_claim() {
    assert_eq!(u16le(0x0102), [0x02, 0x01]);
    assert_eq!(u32le(0x0102_0304), [0x04, 0x03, 0x02, 0x01]);
    assert_eq!(u64le(0x0102_0304_0506_0708), [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]);
    assert_eq!(u64le(CREATED_MS), [0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00]);
    assert_eq!(string("db"), [0x02, 0, 0, 0, 0, 0, 0, 0, b'd', b'b']);
    assert_eq!(string(""), [0u8; 8]);
    assert_eq!(variant(3), [0x03, 0, 0, 0]);
    assert_eq!(hex("01 0a ff"), [0x01, 0x0a, 0xff]);
}

// ---- envelope ---------------------------------------------------------------------------

/// `(type name, struct_v, compat_v, max encoded length)` of one type.
fn envelope_of<T: Versioned>() -> (&'static str, u8, u8, usize) {
    (T::TYPE_NAME, T::STRUCT_V, T::COMPAT_V, T::MAX_ENCODED_LEN)
}

#[test]
fn envelope_constants() {
    assert_eq!(ENVELOPE_HEADER_LEN, 6);
    assert_eq!(MAX_PAYLOAD_LEN, 1_048_576);
}

#[test]
fn envelope_versions_and_limits_of_every_type() {
    let actual = [
        envelope_of::<GroupIdRecord>(),
        envelope_of::<GroupHeader>(),
        envelope_of::<DirEntry>(),
        envelope_of::<DirIdEntry>(),
        envelope_of::<Empty>(),
        envelope_of::<VersionReply>(),
        envelope_of::<NameAndId>(),
        envelope_of::<NameRequest>(),
        envelope_of::<IdRequest>(),
        envelope_of::<RenameRequest>(),
        envelope_of::<GroupCreateRequest>(),
        envelope_of::<DirListRequest>(),
        envelope_of::<DirListReply>(),
    ];
    let expected = [
        ("GroupIdRecord", 1, 1, 256),
        ("GroupHeader", 2, 1, 4096),
        ("DirEntry", 1, 1, 512),
        ("DirIdEntry", 1, 1, 256),
        ("Empty", 1, 1, 64),
        ("VersionReply", 1, 1, 256),
        ("NameAndId", 1, 1, 512),
        ("NameRequest", 1, 1, 512),
        ("IdRequest", 1, 1, 256),
        ("RenameRequest", 1, 1, 512),
        ("GroupCreateRequest", 1, 1, 512),
        ("DirListRequest", 1, 1, 512),
        ("DirListReply", 1, 1, 524_288),
    ];
    assert_eq!(actual, expected);
}

// ---- records ----------------------------------------------------------------------------

#[test]
fn group_id_record() {
    // payload: id (8 + 16) = 24 = 0x18
    let expected = bytes(&[&[0x01, 0x01, 0x18, 0x00, 0x00, 0x00], &string(ID)]);
    golden(&GroupIdRecord { id: ID.into() }, &expected);
}

#[test]
fn group_header_active() {
    // payload: id 24 + name (8 + 2) 10 + state 4 + created_ms 8 + member_count 4 + snapshot_count 4 = 54 = 0x36
    let expected = bytes(&[
        // version 2, compat 1 (no features: a version-1 reader may read it)
        &[0x02, 0x01, 0x3e, 0x00, 0x00, 0x00],
        &string(ID),
        &string("db"),
        &variant(0), // HeaderState::Active
        &u64le(CREATED_MS),
        &u32le(3),
        &u32le(7),
        &u64le(0), // features
    ]);
    let header = GroupHeader {
        id: ID.into(),
        name: "db".into(),
        state: HeaderState::Active,
        created_ms: CREATED_MS,
        member_count: 3,
        snapshot_count: 7,
        features: 0,
    };
    golden(&header, &expected);
}

#[test]
fn group_header_with_features_needs_a_version_2_reader() {
    let expected = bytes(&[
        &[0x02, 0x02, 0x3e, 0x00, 0x00, 0x00], // compat 2: features must not be dropped
        &string(ID),
        &string("db"),
        &variant(0),
        &u64le(CREATED_MS),
        &u32le(1),
        &u32le(0),
        &u64le(GroupHeader::FEATURE_JOURNALING),
    ]);
    assert_eq!(GroupHeader::FEATURE_JOURNALING, 1);
    let header = GroupHeader {
        id: ID.into(),
        name: "db".into(),
        state: HeaderState::Active,
        created_ms: CREATED_MS,
        member_count: 1,
        snapshot_count: 0,
        features: GroupHeader::FEATURE_JOURNALING,
    };
    golden(&header, &expected);
}

#[test]
fn group_header_removing() {
    let expected = bytes(&[
        &[0x02, 0x01, 0x3e, 0x00, 0x00, 0x00],
        &string(ID),
        &string("db"),
        &variant(1), // HeaderState::Removing
        &u64le(CREATED_MS),
        &u32le(0),
        &u32le(0),
        &u64le(0),
    ]);
    let header = GroupHeader {
        id: ID.into(),
        name: "db".into(),
        state: HeaderState::Removing,
        created_ms: CREATED_MS,
        member_count: 0,
        snapshot_count: 0,
        features: 0,
    };
    golden(&header, &expected);
}

#[test]
fn dir_entry_creating() {
    // payload: id 24 + tag 4 = 28 = 0x1c
    let expected = bytes(&[&[0x01, 0x01, 0x1c, 0x00, 0x00, 0x00], &string(ID), &variant(0)]);
    golden(&DirEntry { id: ID.into(), state: DirState::Creating }, &expected);
}

#[test]
fn dir_entry_ready() {
    let expected = bytes(&[&[0x01, 0x01, 0x1c, 0x00, 0x00, 0x00], &string(ID), &variant(1)]);
    golden(&DirEntry { id: ID.into(), state: DirState::Ready }, &expected);
}

#[test]
fn dir_entry_renaming_to() {
    // payload: id 24 + tag 4 + "web" (8 + 3) 11 = 39 = 0x27
    let expected = bytes(&[&[0x01, 0x01, 0x27, 0x00, 0x00, 0x00], &string(ID), &variant(2), &string("web")]);
    golden(&DirEntry { id: ID.into(), state: DirState::RenamingTo("web".into()) }, &expected);
}

#[test]
fn dir_entry_renaming_from() {
    // payload: id 24 + tag 4 + "db" (8 + 2) 10 = 38 = 0x26
    let expected = bytes(&[&[0x01, 0x01, 0x26, 0x00, 0x00, 0x00], &string(ID), &variant(3), &string("db")]);
    golden(&DirEntry { id: ID.into(), state: DirState::RenamingFrom("db".into()) }, &expected);
}

#[test]
fn dir_id_entry() {
    // payload: name 10 = 0x0a
    let expected = bytes(&[&[0x01, 0x01, 0x0a, 0x00, 0x00, 0x00], &string("db")]);
    golden(&DirIdEntry { name: "db".into() }, &expected);
}

// ---- requests and replies -------------------------------------------------------------

#[test]
fn empty() {
    golden(&Empty {}, &[0x01, 0x01, 0x00, 0x00, 0x00, 0x00]);
}

#[test]
fn version_reply() {
    // payload: "0.1.0" (8 + 5) 13 + protocol_min 2 + protocol_max 2 = 17 = 0x11
    let expected = bytes(&[&[0x01, 0x01, 0x11, 0x00, 0x00, 0x00], &string("0.1.0"), &u16le(1), &u16le(2)]);
    golden(&VersionReply { class_version: "0.1.0".into(), protocol_min: 1, protocol_max: 2 }, &expected);
}

#[test]
fn name_and_id() {
    // name first, then id. payload: 10 + 24 = 34 = 0x22
    let expected = bytes(&[&[0x01, 0x01, 0x22, 0x00, 0x00, 0x00], &string("db"), &string(ID)]);
    golden(&NameAndId { name: "db".into(), id: ID.into() }, &expected);
}

#[test]
fn name_request() {
    let expected = bytes(&[&[0x01, 0x01, 0x0a, 0x00, 0x00, 0x00], &string("db")]);
    golden(&NameRequest { name: "db".into() }, &expected);
}

#[test]
fn id_request() {
    let expected = bytes(&[&[0x01, 0x01, 0x18, 0x00, 0x00, 0x00], &string(ID)]);
    golden(&IdRequest { id: ID.into() }, &expected);
}

#[test]
fn rename_request() {
    // id, old_name, new_name. payload: 24 + 10 + 11 = 45 = 0x2d
    let expected = bytes(&[&[0x01, 0x01, 0x2d, 0x00, 0x00, 0x00], &string(ID), &string("db"), &string("web")]);
    golden(&RenameRequest { id: ID.into(), old_name: "db".into(), new_name: "web".into() }, &expected);
}

#[test]
fn group_create_request() {
    // id, name, created_ms. payload: 24 + 10 + 8 = 42 = 0x2a
    let expected = bytes(&[&[0x01, 0x01, 0x2a, 0x00, 0x00, 0x00], &string(ID), &string("db"), &u64le(CREATED_MS)]);
    golden(&GroupCreateRequest { id: ID.into(), name: "db".into(), created_ms: CREATED_MS }, &expected);
}

#[test]
fn dir_list_request() {
    // start_after, max_entries. payload: 10 + 4 = 14 = 0x0e
    let expected = bytes(&[&[0x01, 0x01, 0x0e, 0x00, 0x00, 0x00], &string("db"), &u32le(100)]);
    golden(&DirListRequest { start_after: "db".into(), max_entries: 100 }, &expected);
    // From the start: the empty string is just a zero length.
    let expected = bytes(&[&[0x01, 0x01, 0x0c, 0x00, 0x00, 0x00], &[0; 8], &u32le(1024)]);
    golden(&DirListRequest { start_after: String::new(), max_entries: MAX_LIST_PAGE }, &expected);
}

#[test]
fn dir_list_reply_empty() {
    // entries count 8 + more 1 = 9
    let expected = bytes(&[&[0x01, 0x01, 0x09, 0x00, 0x00, 0x00], &u64le(0), &[0x00]]);
    golden(&DirListReply { entries: Vec::new(), more: false }, &expected);
}

#[test]
fn dir_list_reply_two_entries() {
    // A page caught in the middle of renaming "db" to "web". Each item is its name,
    // then its DirEntry *without* an envelope (nested values are bare bincode).
    // payload: count 8 + item 1 (10 + 24 + 4 + 11) 49 + item 2 (11 + 24 + 4 + 10) 49 + more 1 = 107 = 0x6b
    let expected = bytes(&[
        &[0x01, 0x01, 0x6b, 0x00, 0x00, 0x00],
        &u64le(2),
        &string("db"),
        &string(ID),
        &variant(2), // RenamingTo
        &string("web"),
        &string("web"),
        &string(ID),
        &variant(3), // RenamingFrom
        &string("db"),
        &[0x01], // more = true
    ]);
    let reply = DirListReply {
        entries: vec![
            DirListItem {
                name: "db".into(),
                entry: DirEntry { id: ID.into(), state: DirState::RenamingTo("web".into()) },
            },
            DirListItem {
                name: "web".into(),
                entry: DirEntry { id: ID.into(), state: DirState::RenamingFrom("db".into()) },
            },
        ],
        more: true,
    };
    golden(&reply, &expected);
}

// ---- the hex dumps shown in docs/FORMAT.md ------------------------------------------------

#[test]
fn format_md_examples() {
    let id_record = hex("
        01 01 18 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66");
    golden(&GroupIdRecord { id: ID.into() }, &id_record);

    let header = hex("
        02 01 3e 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00
        00 00 00 00 00 00 64 62 00 00 00 00 00 68 e5 cf
        8b 01 00 00 03 00 00 00 07 00 00 00 00 00 00 00
        00 00 00 00");
    let value = GroupHeader {
        id: ID.into(),
        name: "db".into(),
        state: HeaderState::Active,
        created_ms: CREATED_MS,
        member_count: 3,
        snapshot_count: 7,
        features: 0,
    };
    golden(&value, &header);

    let ready = hex("
        01 01 1c 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 01 00
        00 00");
    golden(&DirEntry { id: ID.into(), state: DirState::Ready }, &ready);

    let renaming = hex("
        01 01 27 00 00 00 10 00 00 00 00 00 00 00 30 31
        32 33 34 35 36 37 38 39 61 62 63 64 65 66 02 00
        00 00 03 00 00 00 00 00 00 00 77 65 62");
    golden(&DirEntry { id: ID.into(), state: DirState::RenamingTo("web".into()) }, &renaming);

    let id_entry = hex("01 01 0a 00 00 00 02 00 00 00 00 00 00 00 64 62");
    golden(&DirIdEntry { name: "db".into() }, &id_entry);

    let name_and_id = hex("
        01 01 22 00 00 00 02 00 00 00 00 00 00 00 64 62
        10 00 00 00 00 00 00 00 30 31 32 33 34 35 36 37
        38 39 61 62 63 64 65 66");
    golden(&NameAndId { name: "db".into(), id: ID.into() }, &name_and_id);

    golden(&DirListReply { entries: Vec::new(), more: false }, &hex("01 01 09 00 00 00 00 00 00 00 00 00 00 00 00"));
}

// ---- decoding rules ---------------------------------------------------------------------

fn errno_of<T: Versioned + Debug>(bytes: &[u8]) -> i32 {
    decode::<T>(bytes).map(|v| panic!("{} decoded to {v:?}", T::TYPE_NAME)).unwrap_err().errno()
}

#[test]
fn newer_compatible_writer_is_read_without_its_appended_fields() {
    // A hypothetical DirIdEntry v2 (compat 1) with an extra u32 appended: payload 10 + 4 = 14.
    let v2 = bytes(&[&[0x02, 0x01, 0x0e, 0x00, 0x00, 0x00], &string("db"), &u32le(0xdead_beef)]);
    assert_eq!(decode::<DirIdEntry>(&v2).unwrap(), DirIdEntry { name: "db".into() });
    // The same bytes claiming version 1 have a trailing tail: malformed.
    let mut v1 = v2.clone();
    v1[0] = 0x01;
    assert_eq!(errno_of::<DirIdEntry>(&v1), libc::EINVAL);
}

#[test]
fn incompatible_newer_writer_is_eopnotsupp() {
    let v2 = bytes(&[&[0x02, 0x02, 0x0a, 0x00, 0x00, 0x00], &string("db")]);
    assert_eq!(errno_of::<DirIdEntry>(&v2), libc::EOPNOTSUPP);
}

#[test]
fn malformed_input_is_einval() {
    let good = bytes(&[&[0x01, 0x01, 0x1c, 0x00, 0x00, 0x00], &string(ID), &variant(1)]);
    assert!(decode::<DirEntry>(&good).is_ok());
    // Too short for an envelope.
    assert_eq!(errno_of::<DirEntry>(&good[..5]), libc::EINVAL);
    // struct_v 0, compat_v 0, compat_v > struct_v.
    for (sv, cv) in [(0, 0), (1, 0), (0, 1), (1, 2)] {
        let mut bad = good.clone();
        bad[0] = sv;
        bad[1] = cv;
        assert_eq!(errno_of::<DirEntry>(&bad), libc::EINVAL, "versions {sv}/{cv}");
    }
    // payload_len disagrees with the bytes present.
    let mut bad = good.clone();
    bad[2] = 0x1d;
    assert_eq!(errno_of::<DirEntry>(&bad), libc::EINVAL);
    assert_eq!(errno_of::<DirEntry>(&good[..good.len() - 1]), libc::EINVAL);
    // Unknown enum variant (DirState has 4).
    let bad = bytes(&[&[0x01, 0x01, 0x1c, 0x00, 0x00, 0x00], &string(ID), &variant(4)]);
    assert_eq!(errno_of::<DirEntry>(&bad), libc::EINVAL);
    let bad = bytes(&[
        &[0x01, 0x01, 0x36, 0x00, 0x00, 0x00],
        &string(ID),
        &string("db"),
        &variant(2),
        &u64le(CREATED_MS),
        &u32le(0),
        &u32le(0),
    ]);
    assert_eq!(errno_of::<GroupHeader>(&bad), libc::EINVAL);
    // A bool that is neither 0 nor 1.
    assert_eq!(errno_of::<DirListReply>(&bytes(&[&[0x01, 0x01, 0x09, 0, 0, 0], &u64le(0), &[0x02]])), libc::EINVAL);
    // Invalid UTF-8 in a string.
    let bad = bytes(&[&[0x01, 0x01, 0x0a, 0x00, 0x00, 0x00], &u64le(2), &[0xff, 0xfe]]);
    assert_eq!(errno_of::<DirIdEntry>(&bad), libc::EINVAL);
    // A length prefix far beyond the input must fail, not allocate.
    let bad = bytes(&[&[0x01, 0x01, 0x0a, 0x00, 0x00, 0x00], &u64le(u64::MAX), b"db"]);
    assert_eq!(errno_of::<DirIdEntry>(&bad), libc::EINVAL);
}

#[test]
fn oversize_input_is_erange() {
    // DirIdEntry may be at most 256 bytes in all, header included.
    let name = "x".repeat(256 - 6 - 8);
    let fits = bytes(&[&[0x01, 0x01, 0xfa, 0x00, 0x00, 0x00], &string(&name)]);
    assert_eq!(fits.len(), 256);
    assert_eq!(decode::<DirIdEntry>(&fits).unwrap().name, name);
    let name = "x".repeat(256 - 6 - 8 + 1);
    let too_long = bytes(&[&[0x01, 0x01, 0xfb, 0x00, 0x00, 0x00], &string(&name)]);
    assert_eq!(errno_of::<DirIdEntry>(&too_long), libc::ERANGE);
    assert_eq!(encode(&DirIdEntry { name }).unwrap_err().errno(), libc::ERANGE);
}

#[test]
fn largest_valid_values_fit_their_limits() {
    let name = "n".repeat(MAX_GROUP_NAME_LEN);
    let id = "i".repeat(MAX_GROUP_ID_LEN);
    let renaming = DirEntry { id: id.clone(), state: DirState::RenamingFrom(name.clone()) };
    encode(&GroupIdRecord { id: id.clone() }).unwrap();
    encode(&GroupHeader {
        id: id.clone(),
        name: name.clone(),
        state: HeaderState::Removing,
        created_ms: u64::MAX,
        member_count: u32::MAX,
        snapshot_count: u32::MAX,
        features: u64::MAX,
    })
    .unwrap();
    encode(&renaming).unwrap();
    encode(&DirIdEntry { name: name.clone() }).unwrap();
    encode(&NameAndId { name: name.clone(), id: id.clone() }).unwrap();
    encode(&NameRequest { name: name.clone() }).unwrap();
    encode(&IdRequest { id: id.clone() }).unwrap();
    encode(&RenameRequest { id: id.clone(), old_name: name.clone(), new_name: name.clone() }).unwrap();
    encode(&GroupCreateRequest { id: id.clone(), name: name.clone(), created_ms: u64::MAX }).unwrap();
    encode(&DirListRequest { start_after: name.clone(), max_entries: MAX_LIST_PAGE }).unwrap();
    let item = DirListItem { name, entry: renaming };
    let page = DirListReply { entries: vec![item; MAX_LIST_PAGE as usize], more: true };
    let encoded = encode(&page).unwrap();
    // 6 + 8 + 1024 * (136 + 40 + 4 + 136) + 1
    assert_eq!(encoded.len(), 323_599);
    assert_eq!(decode::<DirListReply>(&encoded).unwrap(), page);
}

// ---- methods ----------------------------------------------------------------------------

#[test]
fn method_names_and_access() {
    let expected: &[(&str, Access)] = &[
        ("get_version", Access::Read),
        ("dir_add", Access::Write),
        ("dir_set_ready", Access::Write),
        ("dir_rename_begin", Access::Write),
        ("dir_rename_finish", Access::Write),
        ("dir_remove", Access::Write),
        ("dir_get", Access::Read),
        ("dir_get_name", Access::Read),
        ("dir_list", Access::Read),
        ("id_create", Access::Write),
        ("id_get", Access::Read),
        ("id_remove", Access::Write),
        ("group_create", Access::Write),
        ("group_get", Access::Read),
        ("group_set_name", Access::Write),
        ("group_begin_remove", Access::Write),
        ("group_remove", Access::Write),
        ("member_add_begin", Access::Write),
        ("member_add_finish", Access::Write),
        ("member_remove_begin", Access::Write),
        ("member_remove_finish", Access::Write),
        ("member_list", Access::Read),
        ("image_group_link", Access::Write),
        ("image_group_unlink", Access::Write),
        ("image_group_list", Access::Read),
        ("snap_create_begin", Access::Write),
        ("snap_create_finish", Access::Write),
        ("snap_remove_begin", Access::Write),
        ("snap_remove_finish", Access::Write),
        ("snap_rename", Access::Write),
        ("snap_rollback_begin", Access::Write),
        ("snap_rollback_finish", Access::Write),
        ("snap_get", Access::Read),
        ("snap_list", Access::Read),
        ("snap_reserve_get", Access::Read),
        ("snap_reserve_put", Access::Write),
        ("clone_begin", Access::Write),
        ("clone_get", Access::Read),
        ("clone_finish", Access::Write),
        ("journal_enable", Access::Write),
        ("journal_enabled", Access::Write),
        ("journal_disable_begin", Access::Write),
        ("journal_disable_finish", Access::Write),
        ("journal_get", Access::Read),
        ("journal_take", Access::Write),
        ("journal_release", Access::Write),
        ("journal_roll", Access::Write),
        ("journal_trim", Access::Write),
        ("journal_consumer_set", Access::Write),
        ("journal_consumer_disconnect", Access::Write),
        ("journal_consumer_remove", Access::Write),
        ("image_journal_fence", Access::Write),
        ("snap_set_journal_position", Access::Write),
        ("snap_get_journal_position", Access::Read),
        ("segment_open", Access::Write),
        ("segment_append", Access::Write),
        ("segment_seal", Access::Write),
        ("segment_get", Access::Read),
        ("mirror_enable", Access::Write),
        ("mirror_disable", Access::Write),
        ("mirror_set_role", Access::Write),
        ("mirror_set_replay", Access::Write),
        ("mirror_resync", Access::Write),
        ("mirror_get", Access::Read),
    ];
    assert_eq!(ALL_METHODS, expected);
    assert_eq!(TEST_PANIC.name, "test_panic");
    assert!(ALL_METHODS.iter().all(|(name, _)| *name != TEST_PANIC.name), "test_panic is test-only");
}

#[test]
fn access_flags() {
    assert_eq!(CLS_METHOD_RD, 0x1);
    assert_eq!(CLS_METHOD_WR, 0x2);
    assert_eq!(Access::Read.cls_flags(), 0x1);
    assert_eq!(Access::Write.cls_flags(), 0x3);
}

/// The name of a read method whose request and reply types are exactly `Req` and `Reply`.
fn read<Req, Reply>(method: &ReadMethod<Req, Reply>) -> (&'static str, Access) {
    (method.name, Access::Read)
}

/// The name of a write method whose request type is exactly `Req`.
fn write<Req>(method: &WriteMethod<Req>) -> (&'static str, Access) {
    (method.name, Access::Write)
}

/// The name of a write method with a raw framing of its own.
fn raw(method: &RawWriteMethod) -> (&'static str, Access) {
    (method.name, Access::Write)
}

#[test]
fn method_descriptors_have_the_pinned_types_and_access() {
    // The turbofish pins each method's request/reply types at compile time; the
    // comparison pins that ALL_METHODS agrees with the descriptors' kinds.
    let descriptors = [
        read::<Empty, VersionReply>(&GET_VERSION),
        write::<NameAndId>(&DIR_ADD),
        write::<NameAndId>(&DIR_SET_READY),
        write::<RenameRequest>(&DIR_RENAME_BEGIN),
        write::<RenameRequest>(&DIR_RENAME_FINISH),
        write::<NameAndId>(&DIR_REMOVE),
        read::<NameRequest, DirEntry>(&DIR_GET),
        read::<IdRequest, DirIdEntry>(&DIR_GET_NAME),
        read::<DirListRequest, DirListReply>(&DIR_LIST),
        write::<IdRequest>(&ID_CREATE),
        read::<Empty, GroupIdRecord>(&ID_GET),
        write::<IdRequest>(&ID_REMOVE),
        write::<GroupCreateRequest>(&GROUP_CREATE),
        read::<Empty, GroupHeader>(&GROUP_GET),
        write::<RenameRequest>(&GROUP_SET_NAME),
        write::<IdRequest>(&GROUP_BEGIN_REMOVE),
        write::<IdRequest>(&GROUP_REMOVE),
        write::<MemberAddRequest>(&MEMBER_ADD_BEGIN),
        write::<MemberRequest>(&MEMBER_ADD_FINISH),
        write::<MemberRequest>(&MEMBER_REMOVE_BEGIN),
        write::<MemberRequest>(&MEMBER_REMOVE_FINISH),
        read::<MemberListRequest, MemberListReply>(&MEMBER_LIST),
        write::<BackRefRequest>(&IMAGE_GROUP_LINK),
        write::<BackRefRequest>(&IMAGE_GROUP_UNLINK),
        read::<Empty, GroupRefList>(&IMAGE_GROUP_LIST),
        write::<SnapCreateRequest>(&SNAP_CREATE_BEGIN),
        write::<SnapFinishRequest>(&SNAP_CREATE_FINISH),
        write::<SnapRemoveRequest>(&SNAP_REMOVE_BEGIN),
        write::<SnapRequest>(&SNAP_REMOVE_FINISH),
        write::<SnapRenameRequest>(&SNAP_RENAME),
        write::<SnapRequest>(&SNAP_ROLLBACK_BEGIN),
        write::<SnapRequest>(&SNAP_ROLLBACK_FINISH),
        read::<SnapRequest, SnapshotRecord>(&SNAP_GET),
        read::<SnapListRequest, SnapListReply>(&SNAP_LIST),
        read::<Empty, SnapIdReserve>(&SNAP_RESERVE_GET),
        write::<SnapReservePutRequest>(&SNAP_RESERVE_PUT),
        write::<CloneBeginRequest>(&CLONE_BEGIN),
        read::<IdRequest, rbd_cg_contract::records::ClonePlan>(&CLONE_GET),
        write::<IdRequest>(&CLONE_FINISH),
        write::<JournalEnableRequest>(&JOURNAL_ENABLE),
        write::<JournalGroupRequest>(&JOURNAL_ENABLED),
        write::<JournalGroupRequest>(&JOURNAL_DISABLE_BEGIN),
        write::<JournalGroupRequest>(&JOURNAL_DISABLE_FINISH),
        read::<JournalGroupRequest, JournalStatus>(&JOURNAL_GET),
        write::<JournalTakeRequest>(&JOURNAL_TAKE),
        write::<JournalReleaseRequest>(&JOURNAL_RELEASE),
        write::<JournalRollRequest>(&JOURNAL_ROLL),
        write::<JournalTrimRequest>(&JOURNAL_TRIM),
        write::<ConsumerSetRequest>(&JOURNAL_CONSUMER_SET),
        write::<ConsumerRequest>(&JOURNAL_CONSUMER_DISCONNECT),
        write::<ConsumerRequest>(&JOURNAL_CONSUMER_REMOVE),
        write::<ImageFenceRequest>(&IMAGE_JOURNAL_FENCE),
        write::<SnapJournalPositionRequest>(&SNAP_SET_JOURNAL_POSITION),
        read::<SnapRequest, SnapJournalPosition>(&SNAP_GET_JOURNAL_POSITION),
        write::<SegmentOpenRequest>(&SEGMENT_OPEN),
        raw(&SEGMENT_APPEND),
        write::<SegmentSealRequest>(&SEGMENT_SEAL),
        read::<Empty, SegmentRecord>(&SEGMENT_GET),
        write::<MirrorEnableRequest>(&MIRROR_ENABLE),
        write::<MirrorGroupRequest>(&MIRROR_DISABLE),
        write::<MirrorRoleRequest>(&MIRROR_SET_ROLE),
        write::<MirrorReplayRequest>(&MIRROR_SET_REPLAY),
        write::<MirrorGroupRequest>(&MIRROR_RESYNC),
        read::<MirrorGroupRequest, MirrorRecord>(&MIRROR_GET),
    ];
    assert_eq!(&descriptors[..], ALL_METHODS);
    let _: (&str, Access) = read::<Empty, Empty>(&TEST_PANIC);
}

#[test]
fn class_constants() {
    assert_eq!(CLASS_NAME, "rbd_cg");
    assert_eq!((PROTOCOL_MIN, PROTOCOL_MAX), (1, 1));
    assert_eq!(MAX_LIST_PAGE, 1024);
}

// ---- names ------------------------------------------------------------------------------

#[test]
fn object_names_and_keys() {
    assert_eq!(DIRECTORY_OBJECT, "cg_directory");
    assert_eq!(ID_OBJECT_PREFIX, "cg_id.");
    assert_eq!(HEADER_OBJECT_PREFIX, "cg_header.");
    assert_eq!(DIR_NAME_KEY_PREFIX, "name_");
    assert_eq!(DIR_ID_KEY_PREFIX, "id_");
    assert_eq!(id_object("db"), "cg_id.db");
    assert_eq!(id_object("my group é"), "cg_id.my group é");
    assert_eq!(header_object(ID), "cg_header.0123456789abcdef");
    assert_eq!(dir_name_key("db"), "name_db");
    assert_eq!(dir_name_key("a.b_c"), "name_a.b_c");
    assert_eq!(dir_id_key(ID), "id_0123456789abcdef");
}

#[test]
fn name_and_id_limits() {
    assert_eq!(MAX_GROUP_NAME_LEN, 128);
    assert_eq!(MAX_GROUP_ID_LEN, 32);
    assert_eq!(GENERATED_GROUP_ID_LEN, 16);
}

#[test]
fn group_name_rules() {
    let ok = ["a", "db", "web-1", "a.b_c", "with space", "Ünïcødé", &"x".repeat(128), &"é".repeat(64)];
    for name in ok {
        assert!(validate_group_name(name).is_ok(), "{name:?} should be valid");
    }
    // Length counts bytes, not characters: 65 × "é" is 130 bytes.
    let bad = ["", "a/b", "a@b", "nul\0", "tab\t", "nl\n", "\u{7f}", "\u{85}", &"x".repeat(129), &"é".repeat(65)];
    for name in bad {
        assert_eq!(validate_group_name(name).unwrap_err().errno(), libc::EINVAL, "{name:?} should be invalid");
    }
}

#[test]
fn group_id_rules() {
    for id in [ID, "a", "0", "abcdefghijklmnopqrstuvwxyz", &"f".repeat(32)] {
        assert!(validate_group_id(id).is_ok(), "{id:?} should be valid");
    }
    for id in ["", "ABC", "0123456789ABCDEF", "a-b", "a.b", "a_b", "a b", "é", &"f".repeat(33)] {
        assert_eq!(validate_group_id(id).unwrap_err().errno(), libc::EINVAL, "{id:?} should be invalid");
    }
}

// ---- members and back-references ----------------------------------------------------------

fn image_ref_bytes() -> Vec<u8> {
    // ImageRef: pool_id i64, namespace string, image_id string
    bytes(&[&u64le(3), &string("ns"), &string("10ab")])
}

fn image_ref() -> ImageRef {
    ImageRef { pool_id: 3, namespace: "ns".into(), image_id: "10ab".into() }
}

#[test]
fn member_record_in_each_state() {
    for (state, index) in [(MemberState::Adding, 0), (MemberState::Attached, 1), (MemberState::Removing, 2)] {
        // payload: image (8 + 10 + 12) 30 + state 4 + added_ms 8 = 42 = 0x2a
        let expected =
            bytes(&[&[0x01, 0x01, 0x2a, 0x00, 0x00, 0x00], &image_ref_bytes(), &variant(index), &u64le(CREATED_MS)]);
        golden(&MemberRecord { image: image_ref(), state, added_ms: CREATED_MS }, &expected);
    }
}

#[test]
fn group_ref() {
    // payload: pool_id 8 + namespace (8 + 0) + group_id (8 + 16) = 40 = 0x28
    let expected = bytes(&[&[0x01, 0x01, 0x28, 0x00, 0x00, 0x00], &u64le(1), &string(""), &string(ID)]);
    golden(&GroupRef { pool_id: 1, namespace: String::new(), group_id: ID.into() }, &expected);
}

#[test]
fn member_requests() {
    // MemberAddRequest payload: group_id 24 + image 30 + added_ms 8 + max_members 4 = 66 = 0x42
    let expected = bytes(&[
        &[0x01, 0x01, 0x42, 0x00, 0x00, 0x00],
        &string(ID),
        &image_ref_bytes(),
        &u64le(CREATED_MS),
        &u32le(4096),
    ]);
    let add = MemberAddRequest { group_id: ID.into(), image: image_ref(), added_ms: CREATED_MS, max_members: 4096 };
    golden(&add, &expected);
    // MemberRequest payload: 24 + 30 = 54 = 0x36
    let expected = bytes(&[&[0x01, 0x01, 0x36, 0x00, 0x00, 0x00], &string(ID), &image_ref_bytes()]);
    golden(&MemberRequest { group_id: ID.into(), image: image_ref() }, &expected);
    // MemberListRequest payload: Some tag 1 + image 30 + max 4 = 35 = 0x23
    let expected = bytes(&[&[0x01, 0x01, 0x23, 0x00, 0x00, 0x00], &[1], &image_ref_bytes(), &u32le(10)]);
    golden(&MemberListRequest { start_after: Some(image_ref()), max_entries: 10 }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x05, 0x00, 0x00, 0x00], &[0], &u32le(10)]);
    golden(&MemberListRequest { start_after: None, max_entries: 10 }, &expected);
    // MemberListReply, empty: count 8 + more 1 = 9
    let expected = bytes(&[&[0x01, 0x01, 0x09, 0x00, 0x00, 0x00], &u64le(0), &[0]]);
    golden(&MemberListReply { members: vec![], more: false }, &expected);
}

#[test]
fn back_reference_requests() {
    // BackRefRequest payload: image_id (8 + 4) 12 + group ref 40 = 52 = 0x34
    let group = GroupRef { pool_id: 1, namespace: String::new(), group_id: ID.into() };
    let expected =
        bytes(&[&[0x01, 0x01, 0x34, 0x00, 0x00, 0x00], &string("10ab"), &u64le(1), &string(""), &string(ID)]);
    golden(&BackRefRequest { image_id: "10ab".into(), group: group.clone() }, &expected);
    // GroupRefList with one group: count 8 + 40 + more 1 = 49 = 0x31
    let expected =
        bytes(&[&[0x01, 0x01, 0x31, 0x00, 0x00, 0x00], &u64le(1), &u64le(1), &string(""), &string(ID), &[1]]);
    golden(&GroupRefList { groups: vec![group], more: true }, &expected);
}

#[test]
fn member_and_back_reference_keys() {
    assert_eq!(member_key(3, "10ab", "ns"), "member_0000000000000003_10ab_ns");
    assert_eq!(member_key(3, "10ab", ""), "member_0000000000000003_10ab_");
    assert_eq!(backref_key(1, ID, ""), "rbd_cg.group.0000000000000001_0123456789abcdef_");
    // The header object the back-reference lives on, `rbd_header.10ab`, is Ceph's name:
    // pinned in `rbd_cg_rados::ceph::objects`.
}

// ---- group snapshots ----------------------------------------------------------------------

#[test]
fn snapshot_record() {
    let record = SnapshotRecord {
        seq: 2,
        id: "5a".into(),
        name: "s".into(),
        state: SnapshotState::Complete,
        created_ms: CREATED_MS,
        members: vec![
            SnapshotMember { image: image_ref(), snap_id: Some(4) },
            SnapshotMember { image: image_ref(), snap_id: None },
        ],
    };
    // payload: seq 8 + id 10 + name 9 + state 4 + created 8 + count 8 + (30 + 1 + 8) + (30 + 1) = 117 = 0x75
    let expected = bytes(&[
        &[0x01, 0x01, 0x75, 0x00, 0x00, 0x00],
        &u64le(2),
        &string("5a"),
        &string("s"),
        &variant(1),
        &u64le(CREATED_MS),
        &u64le(2),
        &image_ref_bytes(),
        &[1],
        &u64le(4),
        &image_ref_bytes(),
        &[0],
    ]);
    golden(&record, &expected);
    for (state, index) in [(SnapshotState::Creating, 0), (SnapshotState::Removing, 2)] {
        let mut bytes_for_state = expected.clone();
        bytes_for_state[6 + 8 + 10 + 9..6 + 8 + 10 + 9 + 4].copy_from_slice(&variant(index));
        golden(&SnapshotRecord { state, ..record.clone() }, &bytes_for_state);
    }
}

#[test]
fn snapshot_small_records() {
    golden(&SnapNameEntry { seq: 3 }, &bytes(&[&[0x01, 0x01, 0x08, 0x00, 0x00, 0x00], &u64le(3)]));
    golden(&SnapSeq { next: 9 }, &bytes(&[&[0x01, 0x01, 0x08, 0x00, 0x00, 0x00], &u64le(9)]));
    for (operation, index) in [(SnapOperation::Create, 0), (SnapOperation::Rollback, 1)] {
        let expected = bytes(&[&[0x01, 0x01, 0x0c, 0x00, 0x00, 0x00], &u64le(3), &variant(index)]);
        golden(&SnapInProgress { seq: 3, operation }, &expected);
    }
}

#[test]
fn snapshot_id_reserve() {
    assert_eq!((SNAP_ID_RESERVE_KEY, SNAP_ID_TAKEN_KEY), ("reserved_snap_ids", "taken_snap_ids"));
    // SnapIdReserve payload: u64 count 2, then (i64 pool, u64 id) twice = 8 + 32 = 40 = 0x28
    let reserve = SnapIdReserve {
        ids: vec![ReservedSnapId { pool_id: 2, snap_id: 0x1c }, ReservedSnapId { pool_id: 7, snap_id: 0x1d }],
    };
    let expected =
        bytes(&[&[0x01, 0x01, 0x28, 0x00, 0x00, 0x00], &u64le(2), &u64le(2), &u64le(0x1c), &u64le(7), &u64le(0x1d)]);
    golden(&reserve, &expected);
    golden(&SnapIdReserve::default(), &bytes(&[&[0x01, 0x01, 0x08, 0x00, 0x00, 0x00], &u64le(0)]));
    // SnapReservePutRequest payload: group_id (8 + 16) then the reserve (40) = 64 = 0x40
    let put = SnapReservePutRequest { group_id: ID.into(), reserve: reserve.clone() };
    let expected = bytes(&[&[0x01, 0x01, 0x40, 0x00, 0x00, 0x00], &string(ID), &expected[6..]]);
    golden(&put, &expected);
}

#[test]
fn snapshot_requests() {
    // SnapCreateRequest payload: group_id 24 + snap_id 10 + name 9 + created 8 + max 4 = 55 = 0x37
    let create = SnapCreateRequest {
        group_id: ID.into(),
        snap_id: "5a".into(),
        name: "s".into(),
        created_ms: CREATED_MS,
        max_snapshots: 4096,
    };
    let expected = bytes(&[
        &[0x01, 0x01, 0x37, 0x00, 0x00, 0x00],
        &string(ID),
        &string("5a"),
        &string("s"),
        &u64le(CREATED_MS),
        &u32le(4096),
    ]);
    golden(&create, &expected);
    // SnapFinishRequest payload: 24 + 9 + count 8 + (30 + 8) = 79 = 0x4f
    let finish = SnapFinishRequest { group_id: ID.into(), name: "s".into(), image_snaps: vec![(image_ref(), 4)] };
    let expected = bytes(&[
        &[0x01, 0x01, 0x4f, 0x00, 0x00, 0x00],
        &string(ID),
        &string("s"),
        &u64le(1),
        &image_ref_bytes(),
        &u64le(4),
    ]);
    golden(&finish, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x21, 0x00, 0x00, 0x00], &string(ID), &string("s")]);
    golden(&SnapRequest { group_id: ID.into(), name: "s".into() }, &expected);
    // SnapRemoveRequest version 2: a SnapRequest plus `undo_create` (one byte): 34 = 0x22.
    let remove = SnapRemoveRequest { group_id: ID.into(), name: "s".into(), undo_create: false };
    let expected = bytes(&[&[0x02, 0x01, 0x22, 0x00, 0x00, 0x00], &string(ID), &string("s"), &[0]]);
    golden(&remove, &expected);
    // What release 0.1.0 sent to `snap_remove_begin` (a SnapRequest) reads as an undo.
    let old = bytes(&[&[0x01, 0x01, 0x21, 0x00, 0x00, 0x00], &string(ID), &string("s")]);
    assert_eq!(decode::<SnapRemoveRequest>(&old), Ok(SnapRemoveRequest { undo_create: true, ..remove }));
    let expected = bytes(&[&[0x01, 0x01, 0x2a, 0x00, 0x00, 0x00], &string(ID), &string("s"), &string("t")]);
    golden(&SnapRenameRequest { group_id: ID.into(), old_name: "s".into(), new_name: "t".into() }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x0c, 0x00, 0x00, 0x00], &u64le(5), &u32le(10)]);
    golden(&SnapListRequest { start_after_seq: 5, max_entries: 10 }, &expected);
    // SnapListReply, empty with a rollback in progress: count 8 + Some 1 + 12 + more 1 = 22 = 0x16
    let reply = SnapListReply {
        snapshots: vec![],
        in_progress: Some(SnapInProgress { seq: 3, operation: SnapOperation::Rollback }),
        more: false,
    };
    let expected = bytes(&[&[0x01, 0x01, 0x16, 0x00, 0x00, 0x00], &u64le(0), &[1], &u64le(3), &variant(1), &[0]]);
    golden(&reply, &expected);
}

#[test]
fn snapshot_keys_and_image_snapshot_names() {
    assert_eq!(snap_key(2), "snap_0000000000000002");
    assert_eq!(snap_name_key("s"), "snapname_s");
    assert_eq!(NEXT_SNAP_SEQ_KEY, "next_snap_seq");
    assert_eq!(SNAPSHOT_IN_PROGRESS_KEY, "snapshot_in_progress");
    assert_eq!(image_snap_name(1, ID, "5a"), ".rbd_cg.0000000000000001_0123456789abcdef_5a");
    // The name a member snapshot has while exposed in the user namespace (a crash may leave
    // it so; repair recognises it by this name), and both split back into their parts.
    let exposed = rbd_cg_contract::names::exposed_image_snap_name(1, ID, "5a");
    assert_eq!(exposed, ".rbd_cg-exposed.0000000000000001_0123456789abcdef_5a");
    for (name, is_exposed) in [(image_snap_name(1, ID, "5a"), false), (exposed, true)] {
        let parts = rbd_cg_contract::names::parse_image_snap_name(&name).expect("a member snapshot name");
        assert_eq!((parts.group_pool_id, parts.group_id.as_str(), parts.snap_id.as_str()), (1, ID, "5a"));
        assert_eq!(parts.exposed, is_exposed);
    }
    // No other header key falls under the snapshot record prefix.
    for key in [snap_name_key("x"), NEXT_SNAP_SEQ_KEY.into(), SNAPSHOT_IN_PROGRESS_KEY.into()] {
        assert!(!key.starts_with("snap_"), "{key}");
    }
}

// ---- clones --------------------------------------------------------------------------------

#[test]
fn clone_plan() {
    use rbd_cg_contract::names::{CLONE_PLAN_KEY, MAX_IMAGE_NAME_LEN};
    use rbd_cg_contract::records::{CloneImagePlan, ClonePlan};
    assert_eq!((CLONE_PLAN_KEY, MAX_IMAGE_NAME_LEN), ("clone_plan", 1024));
    let plan = ClonePlan {
        source_group: GroupRef { pool_id: 1, namespace: String::new(), group_id: ID.into() },
        source_snap_id: "5a".into(),
        source_snap_name: "s".into(),
        clone_format: 2,
        images: vec![CloneImagePlan {
            source: image_ref(),
            source_snap_id: 0x1c,
            source_snap_name: ".x".into(),
            name: "c".into(),
        }],
    };
    // GroupRef 8 + 8 + 24 = 40; snap id 10; snap name 9; format 1 (u8); images: count 8 +
    // ImageRef 30 + snap id 8 + snap name 10 + name 9 = 65 -> 40 + 10 + 9 + 1 + 65 = 125 = 0x7d
    let payload = bytes(&[
        &u64le(1),
        &string(""),
        &string(ID),
        &string("5a"),
        &string("s"),
        &[0x02],
        &u64le(1),
        &image_ref_bytes(),
        &u64le(0x1c),
        &string(".x"),
        &string("c"),
    ]);
    assert_eq!(payload.len(), 0x7d);
    golden(&plan, &bytes(&[&[0x01, 0x01, 0x7d, 0x00, 0x00, 0x00], &payload]));
    // CloneBeginRequest: group_id 24, name 10, created 8, then the plan 125 = 167 = 0xa7
    let request =
        CloneBeginRequest { group_id: ID.into(), name: "db".into(), created_ms: CREATED_MS, plan: plan.clone() };
    let expected =
        bytes(&[&[0x01, 0x01, 0xa7, 0x00, 0x00, 0x00], &string(ID), &string("db"), &u64le(CREATED_MS), &payload]);
    golden(&request, &expected);
    assert_eq!(envelope_of::<ClonePlan>(), ("ClonePlan", 1, 1, 8 * 1024 * 1024));
    assert_eq!(envelope_of::<CloneBeginRequest>(), ("CloneBeginRequest", 1, 1, 8 * 1024 * 1024 + 256));
}

// ---- the group journal -----------------------------------------------------------------------

const MIB: u64 = 1 << 20;

fn journal_member() -> JournalMember {
    JournalMember { tag: 1, image: image_ref() }
}

/// JournalMember bare: tag u32 + ImageRef 30 = 34 bytes.
fn journal_member_bytes() -> Vec<u8> {
    bytes(&[&u32le(1), &image_ref_bytes()])
}

fn lease() -> WriterLease {
    WriterLease {
        epoch: 3,
        client: "client.4123".into(),
        addr: "a".into(),
        description: "d".into(),
        since_ms: CREATED_MS,
    }
}

/// WriterLease bare: epoch 8 + client (8 + 11) + addr (8 + 1) + description (8 + 1) +
/// since_ms 8 = 53 bytes.
fn lease_bytes() -> Vec<u8> {
    bytes(&[&u64le(3), &string("client.4123"), &string("a"), &string("d"), &u64le(CREATED_MS)])
}

fn journal_record() -> JournalRecord {
    JournalRecord {
        state: JournalState::Enabled,
        segment_size: 16 * MIB,
        max_bytes: 1 << 30,
        members: vec![journal_member()],
        epoch: 3,
        writer: Some(lease()),
        first_segment: 1,
        active_segment: 2,
        active_first_seq: 100,
        trimmed_seq: 50,
        created_ms: CREATED_MS,
    }
}

/// JournalRecord bare: state 4 + segment_size 8 + max_bytes 8 + members (8 + 34) + epoch 8 +
/// writer (1 + 53) + first_segment 8 + active_segment 8 + active_first_seq 8 +
/// trimmed_seq 8 + created_ms 8 = 164 = 0xa4 bytes.
fn journal_record_bytes() -> Vec<u8> {
    bytes(&[
        &variant(1), // Enabled
        &u64le(16 * MIB),
        &u64le(1 << 30),
        &u64le(1),
        &journal_member_bytes(),
        &u64le(3),
        &[1], // Some
        &lease_bytes(),
        &u64le(1),
        &u64le(2),
        &u64le(100),
        &u64le(50),
        &u64le(CREATED_MS),
    ])
}

fn consumer_record() -> ConsumerRecord {
    ConsumerRecord {
        name: "local".into(),
        state: ConsumerState::Connected,
        position: 7,
        updated_ms: CREATED_MS,
        data: vec![0xde, 0xad],
    }
}

/// ConsumerRecord bare: name (8 + 5) + state 4 + position 8 + updated_ms 8 + data (8 + 2) =
/// 43 = 0x2b bytes.
fn consumer_record_bytes() -> Vec<u8> {
    bytes(&[&string("local"), &variant(0), &u64le(7), &u64le(CREATED_MS), &u64le(2), &[0xde, 0xad]])
}

#[test]
fn journal_record_with_and_without_a_writer() {
    let payload = journal_record_bytes();
    assert_eq!(payload.len(), 0xa4);
    golden(&journal_record(), &bytes(&[&[0x01, 0x01, 0xa4, 0x00, 0x00, 0x00], &payload]));
    // The states and a record without a writer (Option tag 00, no lease).
    for (state, index) in [(JournalState::Enabling, 0), (JournalState::Disabling, 2)] {
        let mut expected = bytes(&[&[0x01, 0x01, 0xa4, 0x00, 0x00, 0x00], &payload]);
        expected[6..10].copy_from_slice(&variant(index));
        golden(&JournalRecord { state, ..journal_record() }, &expected);
    }
    let without_writer = bytes(&[
        &[0x01, 0x01, 0x6f, 0x00, 0x00, 0x00], // 164 - 53 = 111 = 0x6f
        &variant(0),
        &u64le(16 * MIB),
        &u64le(1 << 30),
        &u64le(1),
        &journal_member_bytes(),
        &u64le(0),
        &[0], // None
        &u64le(0),
        &u64le(0),
        &u64le(1),
        &u64le(0),
        &u64le(CREATED_MS),
    ]);
    let enabling = JournalRecord {
        state: JournalState::Enabling,
        epoch: 0,
        writer: None,
        first_segment: 0,
        active_segment: 0,
        active_first_seq: 1,
        trimmed_seq: 0,
        ..journal_record()
    };
    golden(&enabling, &without_writer);
}

#[test]
fn journal_consumer_segment_and_position_records() {
    let expected = bytes(&[&[0x01, 0x01, 0x2b, 0x00, 0x00, 0x00], &consumer_record_bytes()]);
    golden(&consumer_record(), &expected);
    let mut disconnected = expected.clone();
    disconnected[6 + 13..6 + 17].copy_from_slice(&variant(1));
    golden(&ConsumerRecord { state: ConsumerState::Disconnected, ..consumer_record() }, &disconnected);

    // SegmentRecord: five u64 and a bool = 41 = 0x29.
    let segment =
        SegmentRecord { epoch: 3, first_seq: 100, next_seq: 102, committed_len: 160, capacity: 16 * MIB, sealed: true };
    let expected = bytes(&[
        &[0x01, 0x01, 0x29, 0x00, 0x00, 0x00],
        &u64le(3),
        &u64le(100),
        &u64le(102),
        &u64le(160),
        &u64le(16 * MIB),
        &[1],
    ]);
    golden(&segment, &expected);

    let expected = bytes(&[&[0x01, 0x01, 0x10, 0x00, 0x00, 0x00], &u64le(2), &u64le(99)]);
    golden(&SnapJournalPosition { snap_seq: 2, position: 99 }, &expected);
}

#[test]
fn journal_requests_and_replies() {
    // JournalEnableRequest: group_id 24 + segment_size 8 + max_bytes 8 + members (8 + 34) +
    // created_ms 8 = 90 = 0x5a.
    let enable = JournalEnableRequest {
        group_id: ID.into(),
        segment_size: 16 * MIB,
        max_bytes: 1 << 30,
        members: vec![journal_member()],
        created_ms: CREATED_MS,
    };
    let expected = bytes(&[
        &[0x01, 0x01, 0x5a, 0x00, 0x00, 0x00],
        &string(ID),
        &u64le(16 * MIB),
        &u64le(1 << 30),
        &u64le(1),
        &journal_member_bytes(),
        &u64le(CREATED_MS),
    ]);
    golden(&enable, &expected);
    golden(&JournalGroupRequest { group_id: ID.into() }, &bytes(&[&[0x01, 0x01, 0x18, 0, 0, 0], &string(ID)]));
    // JournalTakeRequest: 24 + 53 = 77 = 0x4d.
    let expected = bytes(&[&[0x01, 0x01, 0x4d, 0, 0, 0], &string(ID), &lease_bytes()]);
    golden(&JournalTakeRequest { group_id: ID.into(), lease: lease() }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x20, 0, 0, 0], &string(ID), &u64le(3)]);
    golden(&JournalReleaseRequest { group_id: ID.into(), epoch: 3 }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x30, 0, 0, 0], &string(ID), &u64le(3), &u64le(2), &u64le(100)]);
    golden(&JournalRollRequest { group_id: ID.into(), epoch: 3, segment: 2, first_seq: 100 }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x28, 0, 0, 0], &string(ID), &u64le(1), &u64le(50)]);
    golden(&JournalTrimRequest { group_id: ID.into(), first_segment: 1, trimmed_seq: 50 }, &expected);
    // ConsumerSetRequest: 24 + 43 + reset 1 = 68 = 0x44.
    let expected = bytes(&[&[0x01, 0x01, 0x44, 0, 0, 0], &string(ID), &consumer_record_bytes(), &[1]]);
    golden(&ConsumerSetRequest { group_id: ID.into(), consumer: consumer_record(), reset: true }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x24, 0, 0, 0], &string(ID), &string("peer")]);
    golden(&ConsumerRequest { group_id: ID.into(), name: "peer".into() }, &expected);
    // JournalStatus: journal 164 + count 8 + consumer 43 = 215 = 0xd7.
    let status = JournalStatus { journal: journal_record(), consumers: vec![consumer_record()] };
    let expected = bytes(&[&[0x01, 0x01, 0xd7, 0, 0, 0], &journal_record_bytes(), &u64le(1), &consumer_record_bytes()]);
    golden(&status, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x18, 0, 0, 0], &u64le(3), &u64le(100), &u64le(16 * MIB)]);
    golden(&SegmentOpenRequest { epoch: 3, first_seq: 100, capacity: 16 * MIB }, &expected);
    golden(&SegmentSealRequest { epoch: 4 }, &bytes(&[&[0x01, 0x01, 0x08, 0, 0, 0], &u64le(4)]));
    // SnapJournalPositionRequest: 24 + name 9 + position 8 = 41 = 0x29.
    let expected = bytes(&[&[0x01, 0x01, 0x29, 0, 0, 0], &string(ID), &string("s"), &u64le(99)]);
    golden(&SnapJournalPositionRequest { group_id: ID.into(), name: "s".into(), position: 99 }, &expected);
    // SegmentAppend: epoch 8 + first_seq 8 + count 4 = 20 = 0x14.
    let expected = bytes(&[&[0x01, 0x01, 0x14, 0, 0, 0], &u64le(3), &u64le(100), &u32le(2)]);
    golden(&SegmentAppend { epoch: 3, first_seq: 100, count: 2 }, &expected);
}

/// The write fence on member images: librbd's bits and keys it is made of (cls_rbd's
/// `features`/`op_features` omap keys, 8-byte little-endian values), and its request.
#[test]
fn image_fence_bits_and_request() {
    assert_eq!(RBD_FEATURE_NON_PRIMARY, 0x400);
    assert_eq!(RBD_FEATURE_OPERATIONS, 0x100);
    assert_eq!(OP_FEATURE_RBD_CG_JOURNAL, 0x10_0000);
    assert_eq!((RBD_FEATURES_KEY, RBD_OP_FEATURES_KEY), ("features", "op_features"));
    // ImageFenceRequest: image_id (8 + 3) + GroupRef (8 + 8 + 0 + 8 + 16 = 40) + fenced 1 =
    // 52 = 0x34.
    let group = GroupRef { pool_id: 1, namespace: String::new(), group_id: ID.into() };
    let request = ImageFenceRequest { image_id: "abc".into(), group, fenced: true };
    let expected = bytes(&[&[0x01, 0x01, 0x34, 0, 0, 0], &string("abc"), &u64le(1), &string(""), &string(ID), &[1]]);
    golden(&request, &expected);
}

/// What a client asks the journal writer over `rados_notify`, and its answer.
#[test]
fn writer_requests_and_replies() {
    // An enum is its variant index (u32), then the variant's fields.
    golden(&WriterRequest::Ping, &bytes(&[&[0x01, 0x01, 0x04, 0, 0, 0], &u32le(0)]));
    let expected = bytes(&[&[0x01, 0x01, 0x0d, 0, 0, 0], &u32le(1), &string("s")]);
    golden(&WriterRequest::Snapshot { name: "s".into() }, &expected);
    let expected = bytes(&[&[0x01, 0x01, 0x0d, 0, 0, 0], &u32le(2), &string("s")]);
    golden(&WriterRequest::RemoveSnapshot { name: "s".into() }, &expected);
    // WriterReply: errno 4 + epoch 8 + message (8 + 2) = 22 = 0x16.
    let expected = bytes(&[&[0x01, 0x01, 0x16, 0, 0, 0], &(-16i32).to_le_bytes(), &u64le(7), &string("up")]);
    golden(&WriterReply { errno: -16, epoch: 7, message: "up".into() }, &expected);
}

#[test]
fn journal_envelopes() {
    let actual = [
        envelope_of::<JournalRecord>(),
        envelope_of::<ConsumerRecord>(),
        envelope_of::<SegmentRecord>(),
        envelope_of::<SnapJournalPosition>(),
        envelope_of::<JournalEnableRequest>(),
        envelope_of::<JournalGroupRequest>(),
        envelope_of::<JournalTakeRequest>(),
        envelope_of::<JournalReleaseRequest>(),
        envelope_of::<JournalRollRequest>(),
        envelope_of::<JournalTrimRequest>(),
        envelope_of::<ConsumerSetRequest>(),
        envelope_of::<ConsumerRequest>(),
        envelope_of::<JournalStatus>(),
        envelope_of::<SegmentOpenRequest>(),
        envelope_of::<SegmentSealRequest>(),
        envelope_of::<SnapJournalPositionRequest>(),
        envelope_of::<SegmentAppend>(),
        envelope_of::<ImageFenceRequest>(),
        envelope_of::<WriterRequest>(),
        envelope_of::<WriterReply>(),
    ];
    let expected = [
        ("JournalRecord", 1, 1, 1_048_576),
        ("ConsumerRecord", 1, 1, 81_920),
        ("SegmentRecord", 1, 1, 256),
        ("SnapJournalPosition", 1, 1, 64),
        ("JournalEnableRequest", 1, 1, 1_048_576),
        ("JournalGroupRequest", 1, 1, 256),
        ("JournalTakeRequest", 1, 1, 4096),
        ("JournalReleaseRequest", 1, 1, 256),
        ("JournalRollRequest", 1, 1, 256),
        ("JournalTrimRequest", 1, 1, 256),
        ("ConsumerSetRequest", 1, 1, 82_176),
        ("ConsumerRequest", 1, 1, 512),
        ("JournalStatus", 1, 1, 1_048_576),
        ("SegmentOpenRequest", 1, 1, 256),
        ("SegmentSealRequest", 1, 1, 64),
        ("SnapJournalPositionRequest", 1, 1, 1024),
        ("SegmentAppend", 1, 1, 64),
        ("ImageFenceRequest", 1, 1, 1024),
        ("WriterRequest", 1, 1, 1024),
        ("WriterReply", 1, 1, 4096),
    ];
    assert_eq!(actual, expected);
}

/// The entry shown in `docs/FORMAT.md`: a write of `hello` at 4096 on member tag 1, seq
/// 100, epoch 3, ack_floor 99, timestamp 1.7e18 ns. CRC32C (Castagnoli, reflected, as
/// in iSCSI and Ceph) of `hello` is 9a71bb4c; of header bytes 0..68, f4dae576.
const ENTRY_DUMP: &str = "
    43 47 4a 31 01 01 00 00 01 00 00 00 05 00 00 00
    64 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00
    63 00 00 00 00 00 00 00 00 10 00 00 00 00 00 00
    05 00 00 00 00 00 00 00 00 00 2a 36 fe 9c 97 17
    4c bb 71 9a 76 e5 da f4 68 65 6c 6c 6f 00 00 00";

fn dump_entry() -> EntryHeader {
    EntryHeader {
        op: EntryOp::Write,
        tag: 1,
        payload_len: 5,
        seq: 100,
        epoch: 3,
        ack_floor: 99,
        offset: 4096,
        length: 5,
        timestamp_ns: 1_700_000_000_000_000_000,
        payload_crc: 0x9a71_bb4c,
    }
}

#[test]
fn journal_entry_layout() {
    use rbd_cg_contract::journal::{entry_len, ENTRY_HEADER_LEN, ENTRY_MAGIC, ENTRY_VERSION, MAX_ENTRY_PAYLOAD};
    assert_eq!((ENTRY_MAGIC, ENTRY_VERSION, ENTRY_HEADER_LEN, MAX_ENTRY_PAYLOAD), (*b"CGJ1", 1, 72, 32 << 20));
    assert_eq!(
        [EntryOp::Write, EntryOp::Discard, EntryOp::WriteZeroes, EntryOp::Mark].map(EntryOp::code),
        [1, 2, 3, 4]
    );
    assert_eq!((entry_len(0), entry_len(1), entry_len(5), entry_len(8), entry_len(9)), (72, 80, 80, 80, 88));
    let expected = hex(ENTRY_DUMP);
    let mut encoded = Vec::new();
    EntryHeader { payload_len: 0, payload_crc: 0, ..dump_entry() }.encode_entry(b"hello", &mut encoded);
    assert_eq!(encoded, expected);
    assert_eq!(EntryHeader::decode(&expected).unwrap(), dump_entry());
    // Field by field, as docs/FORMAT.md lists them.
    assert_eq!(&expected[0..4], b"CGJ1");
    assert_eq!((expected[4], expected[5], &expected[6..8]), (1, 1, &[0u8, 0][..]));
    assert_eq!(&expected[8..12], u32le(1));
    assert_eq!(&expected[12..16], u32le(5));
    assert_eq!(&expected[16..24], u64le(100));
    assert_eq!(&expected[24..32], u64le(3));
    assert_eq!(&expected[32..40], u64le(99));
    assert_eq!(&expected[40..48], u64le(4096));
    assert_eq!(&expected[48..56], u64le(5));
    assert_eq!(&expected[56..64], u64le(1_700_000_000_000_000_000));
    assert_eq!(&expected[64..68], u32le(0x9a71_bb4c));
    assert_eq!(&expected[68..72], u32le(0xf4da_e576));
    assert_eq!(&expected[72..], b"hello\0\0\0");
}

#[test]
fn journal_append_framing() {
    use rbd_cg_contract::journal::{decode_append, encode_append, MAX_APPEND_BYTES, MAX_APPEND_ENTRIES};
    assert_eq!((MAX_APPEND_BYTES, MAX_APPEND_ENTRIES), (64 << 20, 65_536));
    let entry = hex(ENTRY_DUMP);
    let append = SegmentAppend { epoch: 3, first_seq: 100, count: 1 };
    // u32 LE length of the envelope (26 = 0x1a), the envelope, the entries as stored.
    let expected = bytes(&[&u32le(0x1a), &[0x01, 0x01, 0x14, 0, 0, 0], &u64le(3), &u64le(100), &u32le(1), &entry]);
    assert_eq!(encode_append(&append, &entry).unwrap(), expected);
    let (decoded, entries) = decode_append(&expected).unwrap();
    assert_eq!((decoded, entries), (append, &entry[..]));
}

#[test]
fn journal_names_keys_and_limits() {
    use rbd_cg_contract::journal::*;
    assert_eq!(segment_object(ID, 2), "cg_journal.0123456789abcdef.0000000000000002");
    assert_eq!(SEGMENT_OBJECT_PREFIX, "cg_journal.");
    assert_eq!(
        (JOURNAL_KEY, SEGMENT_KEY, WRITER_LOCK_NAME, LOCAL_CONSUMER),
        ("journal", "segment", "rbd_cg_journal", "local")
    );
    assert_eq!(consumer_key("local"), "journal_consumer_local");
    assert_eq!(snap_journal_key(2), "journalpos_0000000000000002");
    assert_eq!((MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE, DEFAULT_SEGMENT_SIZE), (1 << 20, 128 << 20, 16 << 20));
    assert_eq!((DEFAULT_MAX_BYTES, MAX_CONSUMER_NAME_LEN, MAX_CONSUMER_DATA_LEN), (1 << 30, 128, 65_536));
    assert_eq!(GroupHeader::FEATURE_JOURNALING, 1);
    // No journal key falls under another listed prefix of the header.
    for key in [JOURNAL_KEY.to_owned(), consumer_key("x"), snap_journal_key(1)] {
        assert!(!key.starts_with("snap_") && !key.starts_with("member_"), "{key}");
    }
    assert!(!snap_journal_key(1).starts_with(CONSUMER_KEY_PREFIX));
}

#[test]
fn format_md_journal_examples() {
    use rbd_cg_contract::journal::encode_append;
    let segment = hex("
        01 01 29 00 00 00 03 00 00 00 00 00 00 00 64 00
        00 00 00 00 00 00 66 00 00 00 00 00 00 00 a0 00
        00 00 00 00 00 00 00 00 00 01 00 00 00 00 01");
    let record =
        SegmentRecord { epoch: 3, first_seq: 100, next_seq: 102, committed_len: 160, capacity: 16 * MIB, sealed: true };
    golden(&record, &segment);
    let prefix = hex("
        1a 00 00 00 01 01 14 00 00 00 03 00 00 00 00 00
        00 00 64 00 00 00 00 00 00 00 01 00 00 00");
    let entry = hex(ENTRY_DUMP);
    let input = encode_append(&SegmentAppend { epoch: 3, first_seq: 100, count: 1 }, &entry).unwrap();
    assert_eq!(input, bytes(&[&prefix, &entry]));
}

// ---- group mirroring ---------------------------------------------------------------------

fn peer_group() -> PeerGroup {
    PeerGroup { fsid: "f".into(), pool_id: 2, namespace: "ns".into(), group_id: ID.into() }
}

/// PeerGroup bare: fsid (8 + 1) + pool_id 8 + namespace (8 + 2) + group_id (8 + 16) = 51.
fn peer_group_bytes() -> Vec<u8> {
    bytes(&[&string("f"), &u64le(2), &string("ns"), &string(ID)])
}

/// Every optional part present.
fn replay_state() -> ReplayState {
    ReplayState {
        primary: Some(peer_group()),
        phase: ReplayPhase::Replaying,
        position: 40,
        wave_end: 44,
        primary_head: 50,
        oldest_unapplied_ns: 7,
        primary_demoted_at: Some(50),
        bootstrap: Some(Bootstrap {
            snap_name: "boot".into(),
            position: 10,
            members: vec![MemberSync { name: "a".into(), image: image_ref(), size: 8 * MIB, copied: MIB }],
        }),
        last_snapshot: Some(MirroredSnapshot {
            name: "boot".into(),
            taken_ms: CREATED_MS,
            complete_ms: CREATED_MS + 1,
            local_snap_ids: vec![4, 5],
        }),
        entries_applied: 30,
        bytes_applied: 3 * MIB,
        description: "d".into(),
        daemon: "x".into(),
        updated_ms: CREATED_MS,
    }
}

/// ReplayState bare: primary (1 + 51) + phase 4 + four u64 32 + primary_demoted_at (1 + 8) +
/// bootstrap (1 + 83: snap_name 12, position 8, count 8, MemberSync 55 = name 9 + ImageRef
/// 30 + size 8 + copied 8) + last_snapshot (1 + 52: name 12, taken_ms 8, complete_ms 8,
/// count 8 + two u64) + entries_applied 8 + bytes_applied 8 + description (8 + 1) + daemon
/// (8 + 1) + updated_ms 8 = 276 bytes.
fn replay_state_bytes() -> Vec<u8> {
    bytes(&[
        &[1], // Some
        &peer_group_bytes(),
        &variant(2), // Replaying
        &u64le(40),
        &u64le(44),
        &u64le(50),
        &u64le(7),
        &[1],
        &u64le(50),
        &[1],
        &string("boot"),
        &u64le(10),
        &u64le(1),
        &string("a"),
        &image_ref_bytes(),
        &u64le(8 * MIB),
        &u64le(MIB),
        &[1],
        &string("boot"),
        &u64le(CREATED_MS),
        &u64le(CREATED_MS + 1),
        &u64le(2),
        &u64le(4),
        &u64le(5),
        &u64le(30),
        &u64le(3 * MIB),
        &string("d"),
        &string("x"),
        &u64le(CREATED_MS),
    ])
}

/// ReplayState::idle() bare: 1 + 4 + 32 + 1 + 1 + 1 + 16 + 8 + 8 + 8 = 80 bytes.
fn idle_replay_bytes() -> Vec<u8> {
    bytes(&[&[0], &variant(0), &[0; 32], &[0, 0, 0], &[0; 16], &string(""), &string(""), &u64le(0)])
}

fn mirror_record() -> MirrorRecord {
    MirrorRecord {
        mode: MirrorMode::Snapshot,
        role: MirrorRole::NonPrimary,
        interval_secs: 60,
        since_ms: CREATED_MS,
        demoted_at: Some(120),
        resync_requested: true,
        replay: replay_state(),
    }
}

#[test]
fn mirror_record_populated_and_primary() {
    // MirrorRecord: mode 4 + role 4 + interval_secs 8 + since_ms 8 + demoted_at (1 + 8) +
    // resync_requested 1 + replay 276 = 310 = 0x136.
    let payload = bytes(&[
        &variant(1), // Snapshot
        &variant(1), // NonPrimary
        &u64le(60),
        &u64le(CREATED_MS),
        &[1],
        &u64le(120),
        &[1],
        &replay_state_bytes(),
    ]);
    assert_eq!((replay_state_bytes().len(), payload.len()), (276, 0x136));
    golden(&mirror_record(), &bytes(&[&[0x01, 0x01, 0x36, 0x01, 0x00, 0x00], &payload]));

    // A journal-mode primary as `mirror enable` records it: 4 + 4 + 8 + 8 + 1 + 1 + 80 = 106.
    let primary = MirrorRecord {
        mode: MirrorMode::Journal,
        role: MirrorRole::Primary,
        interval_secs: 0,
        since_ms: CREATED_MS,
        demoted_at: None,
        resync_requested: false,
        replay: ReplayState::idle(),
    };
    let expected = bytes(&[
        &[0x01, 0x01, 0x6a, 0x00, 0x00, 0x00],
        &variant(0),
        &variant(0),
        &u64le(0),
        &u64le(CREATED_MS),
        &[0],
        &[0],
        &idle_replay_bytes(),
    ]);
    golden(&primary, &expected);

    // Every replay phase is its declaration index.
    let phases = [
        ReplayPhase::Idle,
        ReplayPhase::Syncing,
        ReplayPhase::Replaying,
        ReplayPhase::Stopped,
        ReplayPhase::Disconnected,
        ReplayPhase::Error,
    ];
    for (index, phase) in phases.into_iter().enumerate() {
        let mut expected = bytes(&[&[0x01, 0x01, 0x36, 0x01, 0x00, 0x00], &payload]);
        // envelope 6 + record fields before replay 34 + primary 52
        expected[6 + 34 + 52..6 + 34 + 56].copy_from_slice(&variant(index as u32));
        let mut record = mirror_record();
        record.replay.phase = phase;
        golden(&record, &expected);
    }
    assert_eq!(
        phases.map(ReplayPhase::as_str),
        ["syncing", "syncing", "replaying", "stopped", "disconnected", "error"]
    );
    assert_eq!([MirrorMode::Journal.as_str(), MirrorMode::Snapshot.as_str()], ["journal", "snapshot"]);
}

#[test]
fn mirror_requests() {
    // MirrorEnableRequest: group_id 24 + mode 4 + role 4 + interval_secs 8 + now_ms 8 +
    // primary (1 + 51) = 100 = 0x64.
    let enable = MirrorEnableRequest {
        group_id: ID.into(),
        mode: MirrorMode::Journal,
        role: MirrorRole::NonPrimary,
        interval_secs: 60,
        now_ms: CREATED_MS,
        primary: Some(peer_group()),
    };
    let expected = bytes(&[
        &[0x01, 0x01, 0x64, 0, 0, 0],
        &string(ID),
        &variant(0),
        &variant(1),
        &u64le(60),
        &u64le(CREATED_MS),
        &[1],
        &peer_group_bytes(),
    ]);
    golden(&enable, &expected);
    golden(&MirrorGroupRequest { group_id: ID.into() }, &bytes(&[&[0x01, 0x01, 0x18, 0, 0, 0], &string(ID)]));
    // MirrorRoleRequest: 24 + role 4 + demoted_at (1 + 8) + now_ms 8 = 45 = 0x2d.
    let role = MirrorRoleRequest {
        group_id: ID.into(),
        role: MirrorRole::NonPrimary,
        demoted_at: Some(120),
        now_ms: CREATED_MS,
    };
    let expected =
        bytes(&[&[0x01, 0x01, 0x2d, 0, 0, 0], &string(ID), &variant(1), &[1], &u64le(120), &u64le(CREATED_MS)]);
    golden(&role, &expected);
    // A promotion: 24 + 4 + 1 + 8 = 37 = 0x25.
    let promote = MirrorRoleRequest { group_id: ID.into(), role: MirrorRole::Primary, demoted_at: None, now_ms: 1 };
    golden(&promote, &bytes(&[&[0x01, 0x01, 0x25, 0, 0, 0], &string(ID), &variant(0), &[0], &u64le(1)]));
    // MirrorReplayRequest: 24 + replay 276 + clear_resync 1 = 301 = 0x12d.
    let replay = MirrorReplayRequest { group_id: ID.into(), replay: replay_state(), clear_resync: true };
    let expected = bytes(&[&[0x01, 0x01, 0x2d, 0x01, 0, 0], &string(ID), &replay_state_bytes(), &[1]]);
    golden(&replay, &expected);
}

#[test]
fn mirror_envelopes_names_and_limits() {
    use rbd_cg_contract::mirror::*;
    let actual = [
        envelope_of::<MirrorRecord>(),
        envelope_of::<MirrorEnableRequest>(),
        envelope_of::<MirrorGroupRequest>(),
        envelope_of::<MirrorRoleRequest>(),
        envelope_of::<MirrorReplayRequest>(),
    ];
    let expected = [
        ("MirrorRecord", 1, 1, 262_144),
        ("MirrorEnableRequest", 1, 1, 8192),
        ("MirrorGroupRequest", 1, 1, 1024),
        ("MirrorRoleRequest", 1, 1, 1024),
        ("MirrorReplayRequest", 1, 1, 262_144),
    ];
    assert_eq!(actual, expected);
    assert_eq!(
        (MIRROR_KEY, MIRROR_CONSUMER_PREFIX, mirror_consumer("abc").as_str()),
        ("mirror", "mirror.", "mirror.abc")
    );
    assert_eq!((MIN_INTERVAL_SECS, MAX_INTERVAL_SECS), (1, 604_800));
    assert_eq!((MAX_REPLAY_MEMBERS, MAX_TEXT_LEN), (1024, 4096));
    // The key falls under no listed prefix of the header.
    for prefix in ["member_", "snap_", "snapname_", "journal_consumer_", "journalpos_"] {
        assert!(!MIRROR_KEY.starts_with(prefix), "{prefix}");
    }
}
