//! Arbitrary bytes everywhere a decoder reads (issue #14): a method's input, a stored
//! record, a reply. Each must answer with an errno or a value, never panic — in the OSD a
//! panic becomes `EIO` behind `catch_unwind`, but it is still a bug — and a method that
//! fails must leave every object as it was (the OSD drops its transaction; the in-memory
//! store does the same, so a handler that wrote before failing would show here).
//!
//! Three kinds of input: raw random bytes (mostly rejected by the envelope), a valid
//! envelope around a random payload (reaches bincode), and real requests of random calls
//! with a few bytes flipped or cut (reaches the handlers' logic). Stored records are
//! corrupted in place and then read by random calls.

use super::model_tests::{call_raw, cases, op, populated, request, world_objects};
use super::testing::Harness;
use crate::methods::METHODS;
use proptest::prelude::*;
use rbd_cg_contract::journal::*;
use rbd_cg_contract::methods::*;
use rbd_cg_contract::mirror::*;
use rbd_cg_contract::records::*;
use rbd_cg_contract::{decode, encode, Versioned};

/// Every object's state, to compare before and after a failed call.
fn snapshot(h: &Harness) -> Vec<Option<crate::store::MemObject>> {
    world_objects().iter().map(|oid| h.object(oid)).collect()
}

/// Runs a call on `h`: no panic (the test would fail), and an error changes nothing.
fn run_checked(h: &mut Harness, oid: &str, method: &'static str, input: &[u8]) {
    let before = snapshot(h);
    let outcome = call_raw(h, oid, method, input);
    if outcome.is_err() {
        assert_eq!(snapshot(h), before, "{method} on {oid} failed ({outcome:?}) and changed state");
    }
}

/// Decodes `bytes` as `T`; a value must encode again (what the class writes back).
fn decodes_or_errs<T: Versioned>(bytes: &[u8]) {
    if let Ok(value) = decode::<T>(bytes) {
        let _ = encode(&value);
    }
}

macro_rules! every_type {
    ($bytes:expr; $($t:ty),* $(,)?) => {{
        $( decodes_or_errs::<$t>($bytes); )*
    }};
}

/// Every type that crosses the wire or sits in RADOS.
fn decode_as_every_type(bytes: &[u8]) {
    every_type!(bytes;
        GroupIdRecord, GroupHeader, DirEntry, DirIdEntry, GroupRef, MemberRecord, SnapshotRecord,
        SnapNameEntry, SnapSeq, SnapIdReserve, SnapInProgress, ClonePlan,
        Empty, VersionReply, NameAndId, NameRequest, IdRequest, RenameRequest, GroupCreateRequest,
        DirListRequest, DirListReply, MemberAddRequest, MemberRequest, MemberListRequest, MemberListReply,
        BackRefRequest, GroupRefList, SnapCreateRequest, SnapFinishRequest, SnapReservePutRequest,
        CloneBeginRequest, SnapRequest, SnapRemoveRequest, SnapRenameRequest, SnapListRequest, SnapListReply,
        JournalRecord, ConsumerRecord, SegmentRecord, JournalEnableRequest, JournalGroupRequest,
        JournalTakeRequest, JournalReleaseRequest, JournalRollRequest, JournalTrimRequest, ConsumerSetRequest,
        ConsumerRequest, JournalStatus, SegmentOpenRequest, SegmentSealRequest, SnapJournalPosition,
        SnapJournalPositionRequest, SegmentAppend, ImageFenceRequest, WriterRequest, WriterReply,
        MirrorRecord, MirrorEnableRequest, MirrorGroupRequest, MirrorRoleRequest, MirrorReplayRequest,
    );
}

/// A valid envelope header (version 1..=3, compat 1) around `payload`.
fn envelope(struct_v: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![struct_v, 1];
    bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Every registered method (the journal's too) except the one that panics on purpose.
fn methods() -> impl Iterator<Item = &'static str> {
    METHODS.iter().map(|e| e.name).filter(|name| *name != "test_panic")
}

/// The mirror methods.
const MIRROR_METHODS: [&str; 6] = [
    MIRROR_ENABLE.name,
    MIRROR_DISABLE.name,
    MIRROR_SET_ROLE.name,
    MIRROR_SET_REPLAY.name,
    MIRROR_RESYNC.name,
    MIRROR_GET.name,
];

/// A replay state with every optional part present.
fn full_replay() -> ReplayState {
    let image = ImageRef { pool_id: 3, namespace: String::new(), image_id: "i0".into() };
    ReplayState {
        primary: Some(PeerGroup { fsid: "f".into(), pool_id: 1, namespace: "n".into(), group_id: "g9".into() }),
        phase: ReplayPhase::Syncing,
        position: 5,
        wave_end: 9,
        primary_head: 12,
        oldest_unapplied_ns: 1,
        primary_demoted_at: Some(12),
        bootstrap: Some(Bootstrap {
            snap_name: "b".into(),
            position: 5,
            members: vec![MemberSync { name: "m".into(), image, size: 4096, copied: 512 }],
        }),
        last_snapshot: Some(MirroredSnapshot {
            name: "b".into(),
            taken_ms: 1,
            complete_ms: 2,
            local_snap_ids: vec![7],
        }),
        entries_applied: 3,
        bytes_applied: 4,
        description: "d".into(),
        daemon: "x".into(),
        updated_ms: 6,
    }
}

/// The populated world with group g1 mirrored as a non-primary (a full replay state), and
/// one valid request per mirror method and per refused method, for g1.
fn mirrored() -> (Harness, Vec<(&'static str, Vec<u8>)>) {
    let (mut h, _) = populated();
    let oid = "cg_header.g1";
    let group = MirrorGroupRequest { group_id: "g1".into() };
    let enable = MirrorEnableRequest {
        group_id: "g1".into(),
        mode: MirrorMode::Snapshot,
        role: MirrorRole::NonPrimary,
        interval_secs: 60,
        now_ms: 1,
        primary: full_replay().primary,
    };
    h.write(oid, &MIRROR_ENABLE, &enable).expect("enable");
    let replay = MirrorReplayRequest { group_id: "g1".into(), replay: full_replay(), clear_resync: false };
    h.write(oid, &MIRROR_SET_REPLAY, &replay).expect("set_replay");
    h.write(oid, &MIRROR_RESYNC, &group).expect("resync");
    let role = MirrorRoleRequest { group_id: "g1".into(), role: MirrorRole::Primary, demoted_at: Some(3), now_ms: 2 };
    let add = MemberAddRequest {
        group_id: "g1".into(),
        image: ImageRef { pool_id: 3, namespace: String::new(), image_id: "i2".into() },
        added_ms: 0,
        max_members: 5,
    };
    let requests = vec![
        (MIRROR_ENABLE.name, encode(&enable).expect("encodes")),
        (MIRROR_DISABLE.name, encode(&group).expect("encodes")),
        (MIRROR_SET_ROLE.name, encode(&role).expect("encodes")),
        (MIRROR_SET_REPLAY.name, encode(&replay).expect("encodes")),
        (MIRROR_RESYNC.name, encode(&group).expect("encodes")),
        (MIRROR_GET.name, encode(&group).expect("encodes")),
        (MEMBER_ADD_BEGIN.name, encode(&add).expect("encodes")),
        (SNAP_ROLLBACK_BEGIN.name, encode(&SnapRequest { group_id: "g1".into(), name: "s".into() }).expect("encodes")),
        (GROUP_BEGIN_REMOVE.name, encode(&IdRequest { id: "g1".into() }).expect("encodes")),
    ];
    (h, requests)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    /// The mirror methods on a mirrored group, with random input, raw and in an envelope.
    #[test]
    fn mirror_methods_answer_arbitrary_input_with_an_errno(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        struct_v in 1u8..=3,
    ) {
        let (world, _) = mirrored();
        for method in MIRROR_METHODS {
            let mut h = world.clone();
            run_checked(&mut h, "cg_header.g1", method, &raw);
            run_checked(&mut h, "cg_header.g1", method, &envelope(struct_v, &raw));
        }
    }

    /// Real mirror requests (and refused ones) with bytes flipped and the tail cut off.
    #[test]
    fn mutated_mirror_requests_answer_with_an_errno(
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut h, requests) = mirrored();
        let (method, mut input) = requests[which.index(requests.len())].clone();
        for (at, mask) in flips {
            let i = at.index(input.len());
            input[i] ^= mask;
        }
        if truncate {
            input.truncate(cut.index(input.len() + 1));
        }
        run_checked(&mut h, "cg_header.g1", method, &input);
    }

    /// The stored mirror record replaced by random bytes (raw or in an envelope), then every
    /// request: errors, not panics, and nothing written on failure.
    #[test]
    fn a_corrupt_mirror_record_is_an_error_not_a_panic(
        garbage in proptest::collection::vec(any::<u8>(), 0..256),
        as_envelope in any::<bool>(),
    ) {
        let (mut h, requests) = mirrored();
        let mut stored = h.object("cg_header.g1").expect("the header");
        let garbage = if as_envelope { envelope(1, &garbage) } else { garbage };
        stored.omap.insert(MIRROR_KEY.into(), garbage);
        h.put("cg_header.g1", Some(stored));
        for (method, input) in &requests {
            let mut h = h.clone();
            run_checked(&mut h, "cg_header.g1", method, input);
        }
    }

    /// Every decoder of the contract, on raw bytes and on a valid envelope around random
    /// bytes.
    #[test]
    fn every_decoder_answers_arbitrary_bytes(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        struct_v in 1u8..=3,
    ) {
        decode_as_every_type(&raw);
        decode_as_every_type(&envelope(struct_v, &raw));
    }

    /// Every method on every object of a populated world, with random input.
    #[test]
    fn every_method_answers_arbitrary_input_with_an_errno(
        raw in proptest::collection::vec(any::<u8>(), 0..192),
        struct_v in 1u8..=3,
    ) {
        let (world, _) = populated();
        for method in methods() {
            for oid in world_objects() {
                let mut h = world.clone();
                run_checked(&mut h, &oid, method, &raw);
                run_checked(&mut h, &oid, method, &envelope(struct_v, &raw));
            }
        }
    }

    /// Real requests of random calls, with bytes flipped and the tail cut off, on the
    /// populated world: they get past the envelope and into the handlers.
    #[test]
    fn mutated_requests_answer_with_an_errno(
        call in op(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut h, model) = populated();
        let (oid, method, mut input) = request(&model, &call);
        for (at, mask) in flips {
            let i = at.index(input.len());
            input[i] ^= mask;
        }
        if truncate {
            input.truncate(cut.index(input.len() + 1));
        }
        run_checked(&mut h, &oid, method, &input);
    }

    /// A stored value (an omap value, or an object's data) replaced by random bytes, then
    /// random calls: the class reads the damage (`EIO`, `EOPNOTSUPP`, `ERANGE`) instead of
    /// panicking, and fails without writing.
    #[test]
    fn corrupt_stored_records_are_errors_not_panics(
        object in any::<prop::sample::Index>(),
        key in any::<prop::sample::Index>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..128),
        as_envelope in any::<bool>(),
        calls in proptest::collection::vec(op(), 1..24),
    ) {
        let (mut h, mut model) = populated();
        let objects: Vec<String> = world_objects().into_iter().filter(|oid| h.object(oid).is_some()).collect();
        let oid = &objects[object.index(objects.len())];
        let mut stored = h.object(oid).expect("listed");
        let garbage = if as_envelope { envelope(1, &garbage) } else { garbage };
        let keys: Vec<String> = stored.omap.keys().cloned().collect();
        // Index 0 (or no omap) corrupts the data, the others an omap value.
        match key.index(keys.len() + 1) {
            0 => stored.data = garbage,
            k => {
                stored.omap.insert(keys[k - 1].clone(), garbage);
            }
        }
        h.put(oid, Some(stored));
        for call in &calls {
            let (oid, method, input) = request(&model, call);
            let _ = model.apply(call); // keeps the requests plausible; outcomes may differ now
            run_checked(&mut h, &oid, method, &input);
        }
    }
}
