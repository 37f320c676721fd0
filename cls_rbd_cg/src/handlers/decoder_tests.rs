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

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

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
