//! The journal and segment methods, run by name through the registration table on the
//! in-memory store exactly as the OSD would run them.

use crate::handlers::testing::Harness;
use rbd_cg_contract::journal::*;
use rbd_cg_contract::methods::*;
use rbd_cg_contract::records::{CloneImagePlan, ClonePlan, GroupHeader, GroupRef, ImageRef};
use rbd_cg_contract::{encode, CgError, Versioned};

const HDR: &str = "cg_header.g1";
const SEG: &str = "cg_journal.g1.0000000000000000";
const MIB: u64 = 1 << 20;

fn errno<T>(r: Result<T, CgError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.errno(),
    }
}

fn image(id: &str) -> ImageRef {
    ImageRef { pool_id: 1, namespace: "".into(), image_id: id.into() }
}

fn group() -> JournalGroupRequest {
    JournalGroupRequest { group_id: "g1".into() }
}

fn members(ids: &[&str]) -> Vec<JournalMember> {
    ids.iter().enumerate().map(|(i, id)| JournalMember { tag: i as u32 + 1, image: image(id) }).collect()
}

fn enable_req(ids: &[&str]) -> JournalEnableRequest {
    JournalEnableRequest {
        group_id: "g1".into(),
        segment_size: 16 * MIB,
        max_bytes: 1 << 30,
        members: members(ids),
        created_ms: 77,
    }
}

fn lease(epoch: u64, client: &str) -> WriterLease {
    WriterLease {
        epoch,
        client: client.into(),
        addr: "127.0.0.1:0/1".into(),
        description: "rbd-cg nbd serve on h, pid 7".into(),
        since_ms: 5,
    }
}

fn take(h: &mut Harness, epoch: u64, client: &str) -> Result<(), CgError> {
    h.write(HDR, &JOURNAL_TAKE, &JournalTakeRequest { group_id: "g1".into(), lease: lease(epoch, client) })
}

fn consumer(name: &str, position: u64, data_len: usize) -> ConsumerRecord {
    ConsumerRecord {
        name: name.into(),
        state: ConsumerState::Connected,
        position,
        updated_ms: 9,
        data: vec![0xab; data_len],
    }
}

fn set_consumer(h: &mut Harness, consumer: ConsumerRecord, reset: bool) -> Result<(), CgError> {
    h.write(HDR, &JOURNAL_CONSUMER_SET, &ConsumerSetRequest { group_id: "g1".into(), consumer, reset })
}

fn status(h: &mut Harness) -> JournalStatus {
    h.read(HDR, &JOURNAL_GET, &group()).unwrap()
}

fn header(h: &mut Harness) -> GroupHeader {
    h.read(HDR, &GROUP_GET, &Empty {}).unwrap()
}

/// A group `g1` with the given attached members.
fn harness(ids: &[&str]) -> Harness {
    let mut h = Harness::default();
    h.write(HDR, &GROUP_CREATE, &GroupCreateRequest { id: "g1".into(), name: "db".into(), created_ms: 1 }).unwrap();
    for id in ids {
        let add = MemberAddRequest { group_id: "g1".into(), image: image(id), added_ms: 0, max_members: 100 };
        h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
        h.write(HDR, &MEMBER_ADD_FINISH, &MemberRequest { group_id: "g1".into(), image: image(id) }).unwrap();
    }
    h
}

/// A group with members `aa` and `bb` and its journal `Enabled`.
fn journaled() -> Harness {
    let mut h = harness(&["aa", "bb"]);
    h.write(HDR, &JOURNAL_ENABLE, &enable_req(&["aa", "bb"])).unwrap();
    h.write(HDR, &JOURNAL_ENABLED, &group()).unwrap();
    h
}

/// Calls `method` on `oid` with raw `input`, expects it to fail, checks that the object is
/// byte for byte what it was, and returns the errno.
#[track_caller]
fn refused(h: &mut Harness, oid: &str, method: &str, input: &[u8]) -> i32 {
    let before = h.object(oid);
    let result = h.call_raw(oid, method, input);
    assert!(result.is_err(), "{method} on {oid} succeeded");
    assert_eq!(h.object(oid), before, "{method} on {oid} failed and changed the object");
    errno(result)
}

#[track_caller]
fn refused_write<Req: Versioned>(h: &mut Harness, oid: &str, method: &WriteMethod<Req>, req: &Req) -> i32 {
    refused(h, oid, method.name, &encode(req).unwrap())
}

// ---- enable ------------------------------------------------------------------------------

#[test]
fn enable_records_the_journal_the_local_consumer_and_the_feature() {
    let mut h = harness(&["aa", "bb"]);
    assert_eq!(errno(h.read(HDR, &JOURNAL_GET, &group())), libc::ENOENT);
    assert_eq!(header(&mut h).features, 0);
    assert_eq!(h.object(HDR).unwrap().data[..2], [2, 1], "no features: compat_v 1");
    h.write(HDR, &JOURNAL_ENABLE, &enable_req(&["aa", "bb"])).unwrap();
    let s = status(&mut h);
    let j = &s.journal;
    assert_eq!((j.state, j.epoch, j.writer.as_ref()), (JournalState::Enabling, 0, None));
    assert_eq!((j.first_segment, j.active_segment, j.active_first_seq, j.trimmed_seq), (0, 0, 1, 0));
    assert_eq!((j.segment_size, j.max_bytes, j.created_ms), (16 * MIB, 1 << 30, 77));
    assert_eq!(j.members, members(&["aa", "bb"]));
    assert_eq!(s.consumers, [ConsumerRecord { updated_ms: 77, ..consumer(LOCAL_CONSUMER, 0, 0) }]);
    assert_eq!(header(&mut h).features, GroupHeader::FEATURE_JOURNALING);
    assert_eq!(h.object(HDR).unwrap().data[..2], [2, 2], "a feature: compat_v 2, version-1 readers refuse it");

    // Repeating it changes nothing; another journal is EEXIST.
    let before = h.object(HDR);
    h.write(HDR, &JOURNAL_ENABLE, &enable_req(&["aa", "bb"])).unwrap();
    assert_eq!(h.object(HDR), before);
    let mut other = enable_req(&["aa", "bb"]);
    other.members[1].tag = 7;
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &other), libc::EEXIST);
    other = JournalEnableRequest { segment_size: 32 * MIB, ..enable_req(&["aa", "bb"]) };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &other), libc::EEXIST);

    h.write(HDR, &JOURNAL_ENABLED, &group()).unwrap();
    h.write(HDR, &JOURNAL_ENABLED, &group()).unwrap();
    assert_eq!(status(&mut h).journal.state, JournalState::Enabled);
    h.write(HDR, &JOURNAL_ENABLE, &enable_req(&["aa", "bb"])).unwrap();
    assert_eq!(status(&mut h).journal.state, JournalState::Enabled, "a repeated enable does not reset the state");
}

#[test]
fn enable_takes_any_distinct_tags_and_an_empty_group() {
    let mut h = harness(&["aa", "bb"]);
    let mut req = enable_req(&["bb", "aa"]);
    req.members[0].tag = 40;
    h.write(HDR, &JOURNAL_ENABLE, &req).unwrap();
    assert_eq!(status(&mut h).journal.member(40).unwrap().image, image("bb"));
    let mut empty = harness(&[]);
    empty.write(HDR, &JOURNAL_ENABLE, &enable_req(&[])).unwrap();
}

#[test]
fn enable_refusals_are_precise_and_change_nothing() {
    let mut h = harness(&["aa", "bb"]);
    let cases: Vec<(&str, JournalEnableRequest, i32)> = vec![
        (
            "segment too small",
            JournalEnableRequest { segment_size: MIB - 1, ..enable_req(&["aa", "bb"]) },
            libc::ERANGE,
        ),
        (
            "segment too large",
            JournalEnableRequest { segment_size: 256 * MIB, ..enable_req(&["aa", "bb"]) },
            libc::ERANGE,
        ),
        (
            "bound below two segments",
            JournalEnableRequest { max_bytes: 32 * MIB - 1, ..enable_req(&["aa", "bb"]) },
            libc::ERANGE,
        ),
        ("missing member", enable_req(&["aa"]), libc::EINVAL),
        ("extra member", enable_req(&["aa", "bb", "cc"]), libc::EINVAL),
        ("other member", enable_req(&["aa", "cc"]), libc::EINVAL),
        ("image twice", enable_req(&["aa", "aa"]), libc::EINVAL),
        ("invalid image", enable_req(&["aa", "b_b"]), libc::EINVAL),
        ("other group", JournalEnableRequest { group_id: "g2".into(), ..enable_req(&["aa", "bb"]) }, libc::EINVAL),
        ("bad group id", JournalEnableRequest { group_id: "G".into(), ..enable_req(&["aa", "bb"]) }, libc::EINVAL),
    ];
    for (what, req, expected) in cases {
        assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &req), expected, "{what}");
    }
    let mut zero_tag = enable_req(&["aa", "bb"]);
    zero_tag.members[0].tag = 0;
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &zero_tag), libc::EINVAL);
    let mut same_tag = enable_req(&["aa", "bb"]);
    same_tag.members[1].tag = 1;
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &same_tag), libc::EINVAL);
    // Exactly two segments is the smallest bound.
    let two = JournalEnableRequest { max_bytes: 32 * MIB, ..enable_req(&["aa", "bb"]) };
    h.write(HDR, &JOURNAL_ENABLE, &two).unwrap();
}

#[test]
fn enable_is_busy_while_the_group_is_changing() {
    let ok = enable_req(&["aa", "bb"]);
    // A snapshot in progress.
    let mut h = harness(&["aa", "bb"]);
    let snap = SnapCreateRequest {
        group_id: "g1".into(),
        snap_id: "s1".into(),
        name: "s".into(),
        created_ms: 0,
        max_snapshots: 10,
    };
    h.write(HDR, &SNAP_CREATE_BEGIN, &snap).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &ok), libc::EBUSY);
    // A member being added, or removed.
    let mut h = harness(&["aa"]);
    let add = MemberAddRequest { group_id: "g1".into(), image: image("bb"), added_ms: 0, max_members: 10 };
    h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &ok), libc::EBUSY);
    let mut h = harness(&["aa", "bb"]);
    h.write(HDR, &MEMBER_REMOVE_BEGIN, &MemberRequest { group_id: "g1".into(), image: image("bb") }).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &ok), libc::EBUSY);
    // A clone being built.
    let mut h = harness(&["aa", "bb"]);
    let mut object = h.object(HDR).unwrap();
    object.omap.insert(rbd_cg_contract::names::CLONE_PLAN_KEY.into(), encode(&clone_plan()).unwrap());
    h.put(HDR, Some(object));
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &ok), libc::EBUSY);
    // A group being removed.
    let mut h = harness(&[]);
    h.write(HDR, &GROUP_BEGIN_REMOVE, &IdRequest { id: "g1".into() }).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &enable_req(&[])), libc::EBUSY);
    // No header at all.
    let mut h = Harness::default();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &enable_req(&[])), libc::ENOENT);
}

fn clone_plan() -> ClonePlan {
    ClonePlan {
        source_group: GroupRef { pool_id: 1, namespace: "".into(), group_id: "g0".into() },
        source_snap_id: "5a".into(),
        source_snap_name: "s".into(),
        clone_format: 2,
        images: vec![CloneImagePlan {
            source: image("zz"),
            source_snap_id: 4,
            source_snap_name: ".x".into(),
            name: "c".into(),
        }],
    }
}

// ---- what journaling forbids ----------------------------------------------------------------

#[test]
fn membership_rollback_removal_and_clone_are_refused_while_journaled() {
    let mut h = journaled();
    // Snapshots stay allowed; take one to roll back to.
    let snap = SnapCreateRequest {
        group_id: "g1".into(),
        snap_id: "s1".into(),
        name: "s".into(),
        created_ms: 0,
        max_snapshots: 10,
    };
    h.write(HDR, &SNAP_CREATE_BEGIN, &snap).unwrap();
    let finish = SnapFinishRequest {
        group_id: "g1".into(),
        name: "s".into(),
        image_snaps: vec![(image("aa"), 3), (image("bb"), 4)],
    };
    h.write(HDR, &SNAP_CREATE_FINISH, &finish).unwrap();
    take(&mut h, 1, "client.4123").unwrap();

    let add = MemberAddRequest { group_id: "g1".into(), image: image("cc"), added_ms: 0, max_members: 10 };
    let remove = MemberRequest { group_id: "g1".into(), image: image("aa") };
    let rollback = SnapRequest { group_id: "g1".into(), name: "s".into() };
    let clone = CloneBeginRequest { group_id: "g1".into(), name: "db".into(), created_ms: 1, plan: clone_plan() };
    let calls: Vec<(&str, Vec<u8>)> = vec![
        (MEMBER_ADD_BEGIN.name, encode(&add).unwrap()),
        (MEMBER_REMOVE_BEGIN.name, encode(&remove).unwrap()),
        (SNAP_ROLLBACK_BEGIN.name, encode(&rollback).unwrap()),
        (GROUP_BEGIN_REMOVE.name, encode(&IdRequest { id: "g1".into() }).unwrap()),
        (CLONE_BEGIN.name, encode(&clone).unwrap()),
    ];
    for (method, input) in &calls {
        let before = h.object(HDR);
        let error = h.call_raw(HDR, method, input).unwrap_err();
        assert_eq!(error.errno(), libc::EBUSY, "{method}");
        assert!(error.to_string().contains("client.4123"), "{method}: the writer is named: {error}");
        assert_eq!(h.object(HDR), before, "{method}");
    }

    // Once journaling is off, they work again and the header is readable by version 1.
    h.write(HDR, &JOURNAL_RELEASE, &JournalReleaseRequest { group_id: "g1".into(), epoch: 1 }).unwrap();
    h.write(HDR, &JOURNAL_DISABLE_BEGIN, &group()).unwrap();
    let error = h.call_raw(HDR, MEMBER_ADD_BEGIN.name, &calls[0].1).unwrap_err();
    assert!(error.to_string().contains("no writer"), "{error}");
    h.write(HDR, &JOURNAL_DISABLE_FINISH, &group()).unwrap();
    assert_eq!((header(&mut h).features, h.object(HDR).unwrap().data[1]), (0, 1));
    h.call_raw(HDR, MEMBER_ADD_BEGIN.name, &calls[0].1).unwrap();
    h.call_raw(HDR, SNAP_ROLLBACK_BEGIN.name, &calls[2].1).unwrap_err(); // a member is Adding now
}

// ---- lifecycle -------------------------------------------------------------------------------

#[test]
fn disable_walks_its_states_and_drops_everything_journal() {
    let mut h = journaled();
    set_consumer(&mut h, consumer("peer", 0, 10), false).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_DISABLE_FINISH, &group()), libc::EBUSY);
    take(&mut h, 2, "client.1").unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_DISABLE_BEGIN, &group()), libc::EBUSY);
    h.write(HDR, &JOURNAL_RELEASE, &JournalReleaseRequest { group_id: "g1".into(), epoch: 2 }).unwrap();
    h.write(HDR, &JOURNAL_DISABLE_BEGIN, &group()).unwrap();
    h.write(HDR, &JOURNAL_DISABLE_BEGIN, &group()).unwrap();
    assert_eq!(status(&mut h).journal.state, JournalState::Disabling);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLED, &group()), libc::EBUSY);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLE, &enable_req(&["aa", "bb"])), libc::EBUSY);
    let take3 = JournalTakeRequest { group_id: "g1".into(), lease: lease(3, "client.1") };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TAKE, &take3), libc::EBUSY);
    // The applier may still move while disabling.
    set_consumer(&mut h, consumer(LOCAL_CONSUMER, 4, 0), false).unwrap();

    // A snapshot position, dropped with the journal.
    let mut object = h.object(HDR).unwrap();
    let position = encode(&SnapJournalPosition { snap_seq: 1, position: 4 }).unwrap();
    object.omap.insert(snap_journal_key(1), position);
    h.put(HDR, Some(object));
    h.write(HDR, &JOURNAL_DISABLE_FINISH, &group()).unwrap();
    let keys: Vec<String> = h.object(HDR).unwrap().omap.into_keys().collect();
    assert!(keys.iter().all(|k| !k.starts_with("journal")), "{keys:?}");
    assert_eq!(header(&mut h).features, 0);
    let before = h.object(HDR);
    h.write(HDR, &JOURNAL_DISABLE_FINISH, &group()).unwrap();
    assert_eq!(h.object(HDR), before, "a repeat changes nothing");
    assert_eq!(errno(h.read(HDR, &JOURNAL_GET, &group())), libc::ENOENT);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_DISABLE_BEGIN, &group()), libc::ENOENT);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLED, &group()), libc::ENOENT);
    // And it can be enabled again, from scratch.
    h.write(HDR, &JOURNAL_ENABLE, &enable_req(&["aa", "bb"])).unwrap();
    assert_eq!(status(&mut h).consumers.len(), 1);
}

#[test]
fn a_writer_takes_a_newer_epoch_and_releases_its_own() {
    let mut h = harness(&["aa"]);
    h.write(HDR, &JOURNAL_ENABLE, &enable_req(&["aa"])).unwrap();
    assert_eq!(errno(take(&mut h, 1, "client.1")), libc::EBUSY, "not before Enabled");
    h.write(HDR, &JOURNAL_ENABLED, &group()).unwrap();
    take(&mut h, 1, "client.1").unwrap();
    take(&mut h, 1, "client.1").unwrap();
    let req = |epoch, client: &str| JournalTakeRequest { group_id: "g1".into(), lease: lease(epoch, client) };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TAKE, &req(1, "client.2")), libc::ESTALE);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TAKE, &req(0, "client.2")), libc::ESTALE);
    take(&mut h, 3, "client.2").unwrap();
    let j = status(&mut h).journal;
    assert_eq!((j.epoch, j.writer), (3, Some(lease(3, "client.2"))));
    let release = |epoch| JournalReleaseRequest { group_id: "g1".into(), epoch };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_RELEASE, &release(1)), libc::ESTALE);
    h.write(HDR, &JOURNAL_RELEASE, &release(3)).unwrap();
    h.write(HDR, &JOURNAL_RELEASE, &release(3)).unwrap();
    h.write(HDR, &JOURNAL_RELEASE, &release(9)).unwrap(); // no writer: nothing to release
    let j = status(&mut h).journal;
    assert_eq!((j.epoch, j.writer), (3, None), "the epoch stays: it was handed out");
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TAKE, &req(3, "client.2")), libc::ESTALE);
    take(&mut h, 4, "client.2").unwrap();
}

#[test]
fn roll_and_trim_only_move_forward() {
    let mut h = journaled();
    let roll = |epoch, segment, first_seq| JournalRollRequest { group_id: "g1".into(), epoch, segment, first_seq };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ROLL, &roll(1, 1, 10)), libc::ESTALE, "no writer");
    take(&mut h, 2, "client.1").unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ROLL, &roll(1, 1, 10)), libc::ESTALE, "old epoch");
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ROLL, &roll(2, 1, 0)), libc::EINVAL);
    h.write(HDR, &JOURNAL_ROLL, &roll(2, 1, 10)).unwrap();
    h.write(HDR, &JOURNAL_ROLL, &roll(2, 1, 10)).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ROLL, &roll(2, 1, 11)), libc::ERANGE);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ROLL, &roll(2, 0, 10)), libc::ERANGE);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ROLL, &roll(2, 2, 9)), libc::ERANGE);
    h.write(HDR, &JOURNAL_ROLL, &roll(2, 3, 10)).unwrap(); // an empty segment, a skipped number
    let j = status(&mut h).journal;
    assert_eq!((j.active_segment, j.active_first_seq), (3, 10));

    let trim = |first_segment, trimmed_seq| JournalTrimRequest { group_id: "g1".into(), first_segment, trimmed_seq };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TRIM, &trim(4, 10)), libc::ERANGE, "past the active segment");
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TRIM, &trim(3, 11)), libc::ERANGE, "past the active first seq");
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TRIM, &trim(1, 5)), libc::ERANGE, "the local consumer is at 0");
    h.write(HDR, &JOURNAL_TRIM, &trim(1, 1)).unwrap(); // entries below 1: none
    set_consumer(&mut h, consumer(LOCAL_CONSUMER, 4, 0), false).unwrap();
    set_consumer(&mut h, consumer("peer", 2, 0), false).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TRIM, &trim(1, 5)), libc::ERANGE, "the peer is at 2");
    h.write(HDR, &JOURNAL_TRIM, &trim(1, 3)).unwrap();
    let disconnect = ConsumerRequest { group_id: "g1".into(), name: "peer".into() };
    h.write(HDR, &JOURNAL_CONSUMER_DISCONNECT, &disconnect).unwrap();
    h.write(HDR, &JOURNAL_TRIM, &trim(2, 5)).unwrap();
    h.write(HDR, &JOURNAL_TRIM, &trim(2, 5)).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TRIM, &trim(1, 5)), libc::ERANGE, "back");
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_TRIM, &trim(2, 4)), libc::ERANGE, "back");
    // A consumer reset below the trim point does not make the same trim fail.
    set_consumer(&mut h, consumer("peer", 0, 0), true).unwrap();
    h.write(HDR, &JOURNAL_TRIM, &trim(2, 5)).unwrap();
    let j = status(&mut h).journal;
    assert_eq!((j.first_segment, j.trimmed_seq), (2, 5));
}

#[test]
fn consumers_move_forward_register_anew_and_the_local_one_stays() {
    let mut h = journaled();
    set_consumer(&mut h, consumer("peer-1.site_a", 5, 100), false).unwrap();
    set_consumer(&mut h, consumer("peer-1.site_a", 7, 100), false).unwrap();
    set_consumer(&mut h, consumer("peer-1.site_a", 7, 100), false).unwrap();
    let req = |consumer, reset| ConsumerSetRequest { group_id: "g1".into(), consumer, reset };
    assert_eq!(
        refused_write(&mut h, HDR, &JOURNAL_CONSUMER_SET, &req(consumer("peer-1.site_a", 6, 0), false)),
        libc::ERANGE
    );
    set_consumer(&mut h, consumer("peer-1.site_a", 2, 0), true).unwrap();
    let mut disconnected = consumer("x", 1, 0);
    disconnected.state = ConsumerState::Disconnected;
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_SET, &req(disconnected, false)), libc::EINVAL);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_SET, &req(consumer("a/b", 1, 0), false)), libc::EINVAL);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_SET, &req(consumer("", 1, 0), false)), libc::EINVAL);
    let big = consumer("big", 1, MAX_CONSUMER_DATA_LEN + 1);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_SET, &req(big, false)), libc::ERANGE);

    let name = |name: &str| ConsumerRequest { group_id: "g1".into(), name: name.into() };
    h.write(HDR, &JOURNAL_CONSUMER_DISCONNECT, &name("peer-1.site_a")).unwrap();
    h.write(HDR, &JOURNAL_CONSUMER_DISCONNECT, &name("peer-1.site_a")).unwrap();
    let c = status(&mut h).consumers.into_iter().find(|c| c.name == "peer-1.site_a").unwrap();
    assert_eq!((c.state, c.position), (ConsumerState::Disconnected, 2));
    assert_eq!(
        refused_write(&mut h, HDR, &JOURNAL_CONSUMER_SET, &req(consumer("peer-1.site_a", 9, 0), false)),
        libc::ESTALE
    );
    set_consumer(&mut h, consumer("peer-1.site_a", 9, 0), true).unwrap();
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_DISCONNECT, &name("nobody")), libc::ENOENT);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_DISCONNECT, &name(LOCAL_CONSUMER)), libc::EPERM);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_REMOVE, &name(LOCAL_CONSUMER)), libc::EPERM);
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_CONSUMER_REMOVE, &name("a b")), libc::EINVAL);
    h.write(HDR, &JOURNAL_CONSUMER_REMOVE, &name("peer-1.site_a")).unwrap();
    h.write(HDR, &JOURNAL_CONSUMER_REMOVE, &name("peer-1.site_a")).unwrap();
    let names: Vec<String> = status(&mut h).consumers.into_iter().map(|c| c.name).collect();
    assert_eq!(names, [LOCAL_CONSUMER]);
}

#[test]
fn consumers_never_grow_past_what_journal_get_can_return() {
    let mut h = journaled();
    let mut registered = 0;
    for i in 0..40 {
        match set_consumer(&mut h, consumer(&format!("peer{i:02}"), 0, MAX_CONSUMER_DATA_LEN), false) {
            Ok(()) => registered += 1,
            Err(e) => {
                assert_eq!(e.errno(), libc::ERANGE);
                break;
            }
        }
    }
    assert!((10..20).contains(&registered), "{registered} consumers of 64 KiB");
    take(&mut h, 1, &"c".repeat(3000)).unwrap();
    assert_eq!(status(&mut h).consumers.len(), registered + 1, "journal_get still answers, with a writer");
    // Moving a consumer forward never needs room.
    set_consumer(&mut h, consumer("peer00", 5, MAX_CONSUMER_DATA_LEN), false).unwrap();
}

// ---- snapshot positions ------------------------------------------------------------------------

#[test]
fn a_snapshot_records_its_journal_position_while_it_is_created() {
    let mut h = journaled();
    let snap = SnapCreateRequest {
        group_id: "g1".into(),
        snap_id: "s1".into(),
        name: "s".into(),
        created_ms: 0,
        max_snapshots: 10,
    };
    h.write(HDR, &SNAP_CREATE_BEGIN, &snap).unwrap();
    let set = |name: &str, position| SnapJournalPositionRequest { group_id: "g1".into(), name: name.into(), position };
    let get = SnapRequest { group_id: "g1".into(), name: "s".into() };
    assert_eq!(errno(h.read(HDR, &SNAP_GET_JOURNAL_POSITION, &get)), libc::ENOENT);
    assert_eq!(refused_write(&mut h, HDR, &SNAP_SET_JOURNAL_POSITION, &set("nope", 3)), libc::ENOENT);
    assert_eq!(refused_write(&mut h, HDR, &SNAP_SET_JOURNAL_POSITION, &set("a/b", 3)), libc::EINVAL);
    h.write(HDR, &SNAP_SET_JOURNAL_POSITION, &set("s", 3)).unwrap();
    h.write(HDR, &SNAP_SET_JOURNAL_POSITION, &set("s", 4)).unwrap();
    assert_eq!(
        h.read(HDR, &SNAP_GET_JOURNAL_POSITION, &get).unwrap(),
        SnapJournalPosition { snap_seq: 1, position: 4 }
    );
    let finish = SnapFinishRequest {
        group_id: "g1".into(),
        name: "s".into(),
        image_snaps: vec![(image("aa"), 3), (image("bb"), 4)],
    };
    h.write(HDR, &SNAP_CREATE_FINISH, &finish).unwrap();
    h.write(HDR, &SNAP_SET_JOURNAL_POSITION, &set("s", 4)).unwrap(); // the finishing op, sent again
    assert_eq!(refused_write(&mut h, HDR, &SNAP_SET_JOURNAL_POSITION, &set("s", 5)), libc::EINVAL);
    assert!(h.object(HDR).unwrap().omap.contains_key("journalpos_0000000000000001"));
    let remove = SnapRemoveRequest { group_id: "g1".into(), name: "s".into(), undo_create: false };
    h.write(HDR, &SNAP_REMOVE_BEGIN, &remove).unwrap();
    h.write(HDR, &SNAP_REMOVE_FINISH, &get).unwrap();
    assert!(!h.object(HDR).unwrap().omap.contains_key("journalpos_0000000000000001"), "dropped with the snapshot");
    assert_eq!(errno(h.read(HDR, &SNAP_GET_JOURNAL_POSITION, &get)), libc::ENOENT);

    // Without a journal there is no position to record.
    let mut plain = harness(&["aa"]);
    plain.write(HDR, &SNAP_CREATE_BEGIN, &snap).unwrap();
    assert_eq!(refused_write(&mut plain, HDR, &SNAP_SET_JOURNAL_POSITION, &set("s", 1)), libc::ENOENT);
}

// ---- segments --------------------------------------------------------------------------------

fn open(h: &mut Harness, epoch: u64, first_seq: u64, capacity: u64) -> Result<(), CgError> {
    h.write(SEG, &SEGMENT_OPEN, &SegmentOpenRequest { epoch, first_seq, capacity })
}

fn entry(seq: u64, epoch: u64, payload: &[u8]) -> Vec<u8> {
    let header = EntryHeader {
        op: EntryOp::Write,
        tag: 1,
        payload_len: 0,
        seq,
        epoch,
        ack_floor: seq - 1,
        offset: 4096 * seq,
        length: payload.len() as u64,
        timestamp_ns: 11,
        payload_crc: 0,
    };
    let mut out = Vec::new();
    header.encode_entry(payload, &mut out);
    out
}

/// `count` entries from `first_seq`, each with `payload_len` bytes of payload.
fn entries(first_seq: u64, count: u64, epoch: u64, payload_len: usize) -> Vec<u8> {
    (first_seq..first_seq + count).flat_map(|seq| entry(seq, epoch, &vec![seq as u8; payload_len])).collect()
}

fn append_input(epoch: u64, first_seq: u64, count: u32, entries: &[u8]) -> Vec<u8> {
    encode_append(&SegmentAppend { epoch, first_seq, count }, entries).unwrap()
}

fn segment(h: &mut Harness) -> SegmentRecord {
    h.read(SEG, &SEGMENT_GET, &Empty {}).unwrap()
}

#[test]
fn segments_open_once_per_writer() {
    let mut h = Harness::default();
    assert_eq!(errno(h.read(SEG, &SEGMENT_GET, &Empty {})), libc::ENOENT);
    let req = |epoch, first_seq, capacity| SegmentOpenRequest { epoch, first_seq, capacity };
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_OPEN, &req(0, 1, MIB)), libc::EINVAL);
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_OPEN, &req(1, 0, MIB)), libc::EINVAL);
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_OPEN, &req(1, 1, MIB - 1)), libc::ERANGE);
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_OPEN, &req(1, 1, MAX_SEGMENT_SIZE + 1)), libc::ERANGE);
    open(&mut h, 2, 5, MIB).unwrap();
    open(&mut h, 2, 5, MIB).unwrap();
    let expected =
        SegmentRecord { epoch: 2, first_seq: 5, next_seq: 5, committed_len: 0, capacity: MIB, sealed: false };
    assert_eq!(segment(&mut h), expected);
    assert!(h.object(SEG).unwrap().data.is_empty());
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_OPEN, &req(3, 5, MIB)), libc::EEXIST);
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_OPEN, &req(2, 6, MIB)), libc::EEXIST);
    // An object that is not a segment is not made one.
    h.put("other", Some(crate::store::MemObject { data: b"x".to_vec(), ..Default::default() }));
    assert_eq!(refused_write(&mut h, "other", &SEGMENT_OPEN, &req(1, 1, MIB)), libc::EEXIST);
}

#[test]
fn appends_land_back_to_back_and_move_the_sequence() {
    let mut h = Harness::default();
    open(&mut h, 2, 1, MIB).unwrap();
    let first = entries(1, 2, 2, 5);
    h.call_raw(SEG, SEGMENT_APPEND.name, &append_input(2, 1, 2, &first)).unwrap();
    let second = entries(3, 3, 2, 4096);
    h.call_raw(SEG, SEGMENT_APPEND.name, &append_input(2, 3, 3, &second)).unwrap();
    let record = segment(&mut h);
    assert_eq!((record.next_seq, record.committed_len), (6, (first.len() + second.len()) as u64));
    let data = h.object(SEG).unwrap().data;
    assert_eq!(data, [first, second].concat());
    let (scanned, error) = scan_entries(&data, true);
    assert_eq!((scanned.len(), error), (5, None));
    assert_eq!(scanned.iter().map(|e| e.header.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
}

#[test]
fn appends_that_are_stale_gapped_full_sealed_or_malformed_change_nothing() {
    let mut h = Harness::default();
    assert_eq!(refused(&mut h, SEG, SEGMENT_APPEND.name, &append_input(2, 1, 1, &entries(1, 1, 2, 8))), libc::ENOENT);
    open(&mut h, 2, 1, MIB).unwrap();
    h.call_raw(SEG, SEGMENT_APPEND.name, &append_input(2, 1, 2, &entries(1, 2, 2, 8))).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("older epoch", append_input(1, 3, 1, &entries(3, 1, 1, 8)), libc::ESTALE),
        ("newer epoch", append_input(3, 3, 1, &entries(3, 1, 3, 8)), libc::ESTALE),
        ("gap", append_input(2, 4, 1, &entries(4, 1, 2, 8)), libc::ERANGE),
        ("repeat", append_input(2, 1, 2, &entries(1, 2, 2, 8)), libc::ERANGE),
        ("fewer entries than announced", append_input(2, 3, 2, &entries(3, 1, 2, 8)), libc::EINVAL),
        ("more entries than announced", append_input(2, 3, 1, &entries(3, 2, 2, 8)), libc::EINVAL),
        ("no entries", append_input(2, 3, 1, &[]), libc::EINVAL),
        ("zero entries announced", append_input(2, 3, 0, &entries(3, 1, 2, 8)), libc::ERANGE),
        ("gap inside", append_input(2, 3, 2, &[entry(3, 2, b"a"), entry(5, 2, b"b")].concat()), libc::EINVAL),
        (
            "entry of another epoch",
            append_input(2, 3, 2, &[entry(3, 2, b"a"), entry(4, 1, b"b")].concat()),
            libc::EINVAL,
        ),
        ("entries out of order", append_input(2, 3, 2, &[entry(4, 2, b"a"), entry(3, 2, b"b")].concat()), libc::EINVAL),
        ("trailing bytes", append_input(2, 3, 1, &[entry(3, 2, b"a"), vec![0; 8]].concat()), libc::EINVAL),
        ("no framing", b"\x01".to_vec(), libc::EINVAL),
        ("framing cut short", append_input(2, 3, 1, &[])[..10].to_vec(), libc::EINVAL),
    ];
    let good = entries(3, 2, 2, 100);
    for cut in [1, 71, 72, 100, good.len() - 1] {
        cases.push(("truncated", append_input(2, 3, 2, &good[..cut]), libc::EINVAL));
    }
    for flip in [0, 4, 5, 8, 16, 24, 60, 68, 72 + 100 + 4 + 16] {
        let mut bad = good.clone();
        bad[flip] ^= 0x01;
        cases.push(("a flipped header bit", append_input(2, 3, 2, &bad), libc::EINVAL));
    }
    for (what, input, expected) in cases {
        assert_eq!(refused(&mut h, SEG, SEGMENT_APPEND.name, &input), expected, "{what}");
    }
    // Payload checksums are the readers' to check: a flipped payload bit is stored as sent.
    let mut bad_payload = entries(3, 1, 2, 8);
    bad_payload[72] ^= 1;
    h.call_raw(SEG, SEGMENT_APPEND.name, &append_input(2, 3, 1, &bad_payload)).unwrap();
    assert!(scan_entries(&h.object(SEG).unwrap().data, true).1.is_some());

    // Full: a batch that does not fit after committed entries; sealed: nothing more.
    let big = entries(4, 1, 2, MIB as usize - 100);
    assert_eq!(refused(&mut h, SEG, SEGMENT_APPEND.name, &append_input(2, 4, 1, &big)), libc::ENOSPC);
    let seal = |epoch| SegmentSealRequest { epoch };
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_SEAL, &seal(1)), libc::ESTALE);
    h.write(SEG, &SEGMENT_SEAL, &seal(2)).unwrap();
    h.write(SEG, &SEGMENT_SEAL, &seal(5)).unwrap();
    assert!(segment(&mut h).sealed);
    assert_eq!(refused(&mut h, SEG, SEGMENT_APPEND.name, &append_input(2, 4, 1, &entries(4, 1, 2, 8))), libc::ESTALE);
}

#[test]
fn an_empty_segment_takes_one_oversized_batch() {
    let mut h = Harness::default();
    open(&mut h, 1, 1, MIB).unwrap();
    let big = entries(1, 2, 1, MIB as usize);
    h.call_raw(SEG, SEGMENT_APPEND.name, &append_input(1, 1, 2, &big)).unwrap();
    assert_eq!(segment(&mut h).committed_len, big.len() as u64);
    assert_eq!(refused(&mut h, SEG, SEGMENT_APPEND.name, &append_input(1, 3, 1, &entries(3, 1, 1, 1))), libc::ENOSPC);
    let mut sealed_empty = Harness::default();
    open(&mut sealed_empty, 1, 1, MIB).unwrap();
    sealed_empty.write(SEG, &SEGMENT_SEAL, &SegmentSealRequest { epoch: 1 }).unwrap();
    assert_eq!(errno(sealed_empty.write(SEG, &SEGMENT_SEAL, &SegmentSealRequest { epoch: 0 })), libc::ESTALE);
}

#[test]
fn segment_methods_on_an_absent_segment_are_enoent() {
    let mut h = Harness::default();
    assert_eq!(refused_write(&mut h, SEG, &SEGMENT_SEAL, &SegmentSealRequest { epoch: 1 }), libc::ENOENT);
    assert_eq!(errno(h.read(SEG, &SEGMENT_GET, &Empty {})), libc::ENOENT);
}

#[test]
fn journal_methods_need_the_groups_own_header() {
    let mut h = journaled();
    let other = JournalGroupRequest { group_id: "g2".into() };
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_ENABLED, &other), libc::EINVAL);
    assert_eq!(errno(h.read(HDR, &JOURNAL_GET, &other)), libc::EINVAL);
    let mut object = h.object(HDR).unwrap();
    let mut header: GroupHeader = rbd_cg_contract::decode(&object.data).unwrap();
    header.features |= 1 << 7;
    object.data = encode(&header).unwrap();
    h.put(HDR, Some(object));
    assert_eq!(refused_write(&mut h, HDR, &JOURNAL_DISABLE_BEGIN, &group()), libc::EOPNOTSUPP);
    assert_eq!(errno(h.read(HDR, &JOURNAL_GET, &group())), libc::EOPNOTSUPP);
    let mut plain = harness(&[]);
    assert_eq!(
        refused_write(
            &mut plain,
            HDR,
            &JOURNAL_TAKE,
            &JournalTakeRequest { group_id: "g1".into(), lease: lease(1, "c") }
        ),
        libc::ENOENT
    );
}

// ---- arbitrary input ---------------------------------------------------------------------------

/// Every journal and segment method: name, and the object it runs on.
const NEW_METHODS: &[&str] = &[
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

/// A journaled group with a writer, a peer and a snapshot being created, and a segment
/// with two entries: every method meets an object it can act on.
fn populated() -> Harness {
    let mut h = journaled();
    take(&mut h, 2, "client.1").unwrap();
    set_consumer(&mut h, consumer("peer", 0, 16), false).unwrap();
    let snap = SnapCreateRequest {
        group_id: "g1".into(),
        snap_id: "s1".into(),
        name: "s".into(),
        created_ms: 0,
        max_snapshots: 10,
    };
    h.write(HDR, &SNAP_CREATE_BEGIN, &snap).unwrap();
    let position = SnapJournalPositionRequest { group_id: "g1".into(), name: "s".into(), position: 1 };
    h.write(HDR, &SNAP_SET_JOURNAL_POSITION, &position).unwrap();
    open(&mut h, 2, 1, MIB).unwrap();
    h.call_raw(SEG, SEGMENT_APPEND.name, &append_input(2, 1, 2, &entries(1, 2, 2, 8))).unwrap();
    h
}

/// One valid input per method (for the object it runs on), to be mutated.
fn valid_inputs() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let g = || "g1".to_string();
    vec![
        (HDR, "journal_enable", encode(&enable_req(&["aa", "bb"])).unwrap()),
        (HDR, "journal_enabled", encode(&group()).unwrap()),
        (HDR, "journal_disable_begin", encode(&group()).unwrap()),
        (HDR, "journal_disable_finish", encode(&group()).unwrap()),
        (HDR, "journal_get", encode(&group()).unwrap()),
        (HDR, "journal_take", encode(&JournalTakeRequest { group_id: g(), lease: lease(3, "c") }).unwrap()),
        (HDR, "journal_release", encode(&JournalReleaseRequest { group_id: g(), epoch: 2 }).unwrap()),
        (
            HDR,
            "journal_roll",
            encode(&JournalRollRequest { group_id: g(), epoch: 2, segment: 1, first_seq: 3 }).unwrap(),
        ),
        (HDR, "journal_trim", encode(&JournalTrimRequest { group_id: g(), first_segment: 0, trimmed_seq: 1 }).unwrap()),
        (
            HDR,
            "journal_consumer_set",
            encode(&ConsumerSetRequest { group_id: g(), consumer: consumer("peer", 1, 4), reset: false }).unwrap(),
        ),
        (HDR, "journal_consumer_disconnect", encode(&ConsumerRequest { group_id: g(), name: "peer".into() }).unwrap()),
        (HDR, "journal_consumer_remove", encode(&ConsumerRequest { group_id: g(), name: "peer".into() }).unwrap()),
        (
            HDR,
            "snap_set_journal_position",
            encode(&SnapJournalPositionRequest { group_id: g(), name: "s".into(), position: 2 }).unwrap(),
        ),
        (HDR, "snap_get_journal_position", encode(&SnapRequest { group_id: g(), name: "s".into() }).unwrap()),
        (SEG, "segment_open", encode(&SegmentOpenRequest { epoch: 2, first_seq: 1, capacity: MIB }).unwrap()),
        (SEG, "segment_append", append_input(2, 3, 2, &entries(3, 2, 2, 8))),
        (SEG, "segment_seal", encode(&SegmentSealRequest { epoch: 2 }).unwrap()),
        (SEG, "segment_get", encode(&Empty {}).unwrap()),
    ]
}

/// The state in which `method`'s valid input succeeds.
fn prepared(method: &str) -> Harness {
    match method {
        "journal_enable" => harness(&["aa", "bb"]),
        "journal_disable_begin" | "journal_disable_finish" => {
            let mut h = populated();
            h.write(HDR, &JOURNAL_RELEASE, &JournalReleaseRequest { group_id: "g1".into(), epoch: 2 }).unwrap();
            if method == "journal_disable_finish" {
                h.write(HDR, &JOURNAL_DISABLE_BEGIN, &group()).unwrap();
            }
            h
        }
        _ => populated(),
    }
}

#[test]
fn every_valid_input_of_the_property_test_succeeds() {
    // So that the mutations below start from inputs that reach the handlers' logic.
    for (oid, method, input) in valid_inputs() {
        prepared(method).call_raw(oid, method, &input).unwrap_or_else(|e| panic!("{method}: {e}"));
    }
    assert_eq!(valid_inputs().iter().map(|(_, m, _)| *m).collect::<Vec<_>>(), NEW_METHODS);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Runs `method` on `oid` of a fresh populated harness: never a panic (the test
    /// would fail), and an error leaves both objects as they were.
    fn run(oid: &str, method: &str, input: &[u8]) {
        let mut h = prepared(method);
        let before = (h.object(HDR), h.object(SEG));
        if h.call_raw(oid, method, input).is_err() {
            assert_eq!((h.object(HDR), h.object(SEG)), before, "{method} failed and changed state");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_nor_change_state_on_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            for method in NEW_METHODS {
                for oid in [HDR, SEG] {
                    run(oid, method, &bytes);
                }
            }
        }

        #[test]
        fn mutated_valid_inputs_never_panic_nor_change_state_on_error(
            which in 0..NEW_METHODS.len(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let (oid, method, mut input) = valid_inputs().swap_remove(which);
            for (at, mask) in flips {
                let i = at.index(input.len());
                input[i] ^= mask;
            }
            if truncate {
                input.truncate(cut.index(input.len() + 1));
            }
            run(oid, method, &input);
        }
    }
}
