//! The mirror methods and the refusals of a non-primary group, run by name through the
//! registration table on the in-memory store exactly as the OSD would run them.

use crate::handlers::testing::Harness;
use rbd_cg_contract::journal::*;
use rbd_cg_contract::methods::*;
use rbd_cg_contract::mirror::*;
use rbd_cg_contract::records::{HeaderState, ImageRef};
use rbd_cg_contract::{encode, CgError, Versioned};

const HDR: &str = "cg_header.g1";
const MIB: u64 = 1 << 20;
const WRITER: &str = "rbd-cg nbd serve on h, pid 7";

fn errno<T>(r: Result<T, CgError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.errno(),
    }
}

fn image(id: &str) -> ImageRef {
    ImageRef { pool_id: 1, namespace: "".into(), image_id: id.into() }
}

fn group() -> MirrorGroupRequest {
    MirrorGroupRequest { group_id: "g1".into() }
}

fn peer() -> PeerGroup {
    PeerGroup { fsid: "fsid-a".into(), pool_id: 2, namespace: "ns".into(), group_id: "0123456789abcdef".into() }
}

fn enable_req(mode: MirrorMode, role: MirrorRole) -> MirrorEnableRequest {
    MirrorEnableRequest {
        group_id: "g1".into(),
        mode,
        role,
        interval_secs: 60,
        now_ms: 1000,
        primary: (role == MirrorRole::NonPrimary).then(peer),
    }
}

fn role_req(role: MirrorRole, demoted_at: Option<u64>, now_ms: u64) -> MirrorRoleRequest {
    MirrorRoleRequest { group_id: "g1".into(), role, demoted_at, now_ms }
}

fn replay_req(replay: ReplayState, clear_resync: bool) -> MirrorReplayRequest {
    MirrorReplayRequest { group_id: "g1".into(), replay, clear_resync }
}

/// A replay state with every optional part present.
fn replaying() -> ReplayState {
    ReplayState {
        primary: Some(peer()),
        phase: ReplayPhase::Replaying,
        position: 40,
        wave_end: 44,
        primary_head: 50,
        oldest_unapplied_ns: 7,
        primary_demoted_at: None,
        bootstrap: Some(Bootstrap {
            snap_name: "boot".into(),
            position: 10,
            members: vec![MemberSync { name: "a".into(), image: image("aa"), size: 8 * MIB, copied: MIB }],
        }),
        last_snapshot: Some(MirroredSnapshot {
            name: "boot".into(),
            taken_ms: 1,
            complete_ms: 2,
            local_snap_ids: vec![4, 5],
        }),
        entries_applied: 30,
        bytes_applied: 3 * MIB,
        description: "replaying".into(),
        daemon: "rbd-cg mirror daemon on h, pid 9, client.7".into(),
        updated_ms: 3000,
    }
}

fn record(h: &mut Harness) -> MirrorRecord {
    h.read(HDR, &MIRROR_GET, &group()).unwrap()
}

fn lease(epoch: u64) -> WriterLease {
    WriterLease {
        epoch,
        client: "client.4123".into(),
        addr: "127.0.0.1:0/1".into(),
        description: WRITER.into(),
        since_ms: 5,
    }
}

fn take_req(epoch: u64) -> JournalTakeRequest {
    JournalTakeRequest { group_id: "g1".into(), lease: lease(epoch) }
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

fn journal_enable_req(ids: &[&str]) -> JournalEnableRequest {
    JournalEnableRequest {
        group_id: "g1".into(),
        segment_size: 16 * MIB,
        max_bytes: 1 << 30,
        members: ids.iter().enumerate().map(|(i, id)| JournalMember { tag: i as u32 + 1, image: image(id) }).collect(),
        created_ms: 77,
    }
}

/// A group with members `aa` and `bb` and its journal `Enabled`.
fn journaled() -> Harness {
    let mut h = harness(&["aa", "bb"]);
    h.write(HDR, &JOURNAL_ENABLE, &journal_enable_req(&["aa", "bb"])).unwrap();
    h.write(HDR, &JOURNAL_ENABLED, &JournalGroupRequest { group_id: "g1".into() }).unwrap();
    h
}

/// Calls `method` with `req`, expects it to fail, checks that the header is byte for byte
/// what it was, and returns the error.
#[track_caller]
fn refused<Req: Versioned>(h: &mut Harness, name: &str, req: &Req) -> CgError {
    let before = h.object(HDR);
    let result = h.call_raw(HDR, name, &encode(req).unwrap());
    assert_eq!(h.object(HDR), before, "{name} failed and changed the header");
    result.expect_err("the call was refused")
}

#[track_caller]
fn refused_write<Req: Versioned>(h: &mut Harness, method: &WriteMethod<Req>, req: &Req) -> i32 {
    refused(h, method.name, req).errno()
}

/// Calls `method` with `req`, expects success without any change to the header.
#[track_caller]
fn unchanged<Req: Versioned>(h: &mut Harness, method: &WriteMethod<Req>, req: &Req) {
    let before = h.object(HDR);
    h.write(HDR, method, req).unwrap();
    assert_eq!(h.object(HDR), before, "{} changed the header", method.name);
}

// ---- mirror_enable -----------------------------------------------------------------------

#[test]
fn enable_in_snapshot_mode_records_the_group_mirrored() {
    let mut h = harness(&["aa"]);
    assert_eq!(errno(h.read(HDR, &MIRROR_GET, &group())), libc::ENOENT);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::Primary)).unwrap();
    let expected = MirrorRecord {
        mode: MirrorMode::Snapshot,
        role: MirrorRole::Primary,
        interval_secs: 60,
        since_ms: 1000,
        demoted_at: None,
        resync_requested: false,
        replay: ReplayState::idle(),
    };
    assert_eq!(record(&mut h), expected);

    // The same mode and role again change nothing (another interval or time included);
    // another mode or role is EEXIST.
    let again =
        MirrorEnableRequest { interval_secs: 120, now_ms: 5, ..enable_req(MirrorMode::Snapshot, MirrorRole::Primary) };
    unchanged(&mut h, &MIRROR_ENABLE, &again);
    let other_role = enable_req(MirrorMode::Snapshot, MirrorRole::NonPrimary);
    assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &other_role), libc::EEXIST);
    let other_mode = enable_req(MirrorMode::Journal, MirrorRole::Primary);
    assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &other_mode), libc::EEXIST);
    assert_eq!(record(&mut h), expected);
}

#[test]
fn enable_of_a_secondary_records_its_primary() {
    let mut h = harness(&[]);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::NonPrimary)).unwrap();
    let r = record(&mut h);
    assert_eq!((r.role, r.since_ms, r.demoted_at, r.resync_requested), (MirrorRole::NonPrimary, 1000, None, false));
    assert_eq!(r.replay, ReplayState { primary: Some(peer()), ..ReplayState::idle() });
}

#[test]
fn enable_checks_the_snapshot_interval() {
    let mut h = harness(&[]);
    for interval_secs in [0, MIN_INTERVAL_SECS - 1, MAX_INTERVAL_SECS + 1, u64::MAX] {
        let req = MirrorEnableRequest { interval_secs, ..enable_req(MirrorMode::Snapshot, MirrorRole::Primary) };
        assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &req), libc::ERANGE, "{interval_secs}");
    }
    for interval_secs in [MIN_INTERVAL_SECS, MAX_INTERVAL_SECS] {
        let mut h = harness(&[]);
        let req = MirrorEnableRequest { interval_secs, ..enable_req(MirrorMode::Snapshot, MirrorRole::Primary) };
        h.write(HDR, &MIRROR_ENABLE, &req).unwrap();
        assert_eq!(record(&mut h).interval_secs, interval_secs);
    }
    // Journal mode ignores it.
    let mut h = journaled();
    let req = MirrorEnableRequest { interval_secs: 0, ..enable_req(MirrorMode::Journal, MirrorRole::Primary) };
    h.write(HDR, &MIRROR_ENABLE, &req).unwrap();
}

#[test]
fn enable_in_journal_mode_needs_an_enabled_journal() {
    let req = enable_req(MirrorMode::Journal, MirrorRole::Primary);
    let mut h = harness(&["aa"]);
    let error = refused(&mut h, MIRROR_ENABLE.name, &req);
    assert_eq!(error.errno(), libc::EINVAL);
    assert!(error.to_string().contains("rbd-cg journal enable"), "{error}");
    h.write(HDR, &JOURNAL_ENABLE, &journal_enable_req(&["aa"])).unwrap();
    let error = refused(&mut h, MIRROR_ENABLE.name, &req);
    assert_eq!(error.errno(), libc::EINVAL, "Enabling is not enough");
    assert!(error.to_string().contains("Enabling"), "{error}");
    h.write(HDR, &JOURNAL_ENABLED, &JournalGroupRequest { group_id: "g1".into() }).unwrap();
    h.write(HDR, &MIRROR_ENABLE, &req).unwrap();
    assert_eq!(record(&mut h).mode, MirrorMode::Journal);
}

#[test]
fn enable_checks_the_header() {
    let req = enable_req(MirrorMode::Snapshot, MirrorRole::Primary);
    let mut h = Harness::default();
    assert_eq!(errno(h.write(HDR, &MIRROR_ENABLE, &req)), libc::ENOENT);
    let mut h = harness(&[]);
    let other = MirrorEnableRequest { group_id: "g2".into(), ..req.clone() };
    assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &other), libc::EINVAL);
    let bad = MirrorEnableRequest { group_id: "".into(), ..req.clone() };
    assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &bad), libc::EINVAL);
    h.write(HDR, &GROUP_BEGIN_REMOVE, &IdRequest { id: "g1".into() }).unwrap();
    assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &req), libc::EBUSY);
    for name in [MIRROR_DISABLE.name, MIRROR_RESYNC.name] {
        assert_eq!(refused(&mut h, name, &MirrorGroupRequest { group_id: "g2".into() }).errno(), libc::EINVAL);
    }
    assert_eq!(errno(h.read(HDR, &MIRROR_GET, &MirrorGroupRequest { group_id: "g2".into() })), libc::EINVAL);
}

// ---- mirror_disable ----------------------------------------------------------------------

#[test]
fn disable_drops_the_record_and_absent_is_fine() {
    let mut h = harness(&[]);
    unchanged(&mut h, &MIRROR_DISABLE, &group());
    let plain = h.object(HDR);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::NonPrimary)).unwrap();
    h.write(HDR, &MIRROR_DISABLE, &group()).unwrap();
    assert_eq!(errno(h.read(HDR, &MIRROR_GET, &group())), libc::ENOENT);
    assert_eq!(h.object(HDR), plain, "nothing else is left behind");
    unchanged(&mut h, &MIRROR_DISABLE, &group());
    assert_eq!(errno(Harness::default().write(HDR, &MIRROR_DISABLE, &group())), libc::ENOENT);
}

// ---- mirror_set_role ---------------------------------------------------------------------

#[test]
fn demote_and_promote() {
    let mut h = journaled();
    let demote = role_req(MirrorRole::NonPrimary, Some(120), 2000);
    assert_eq!(refused_write(&mut h, &MIRROR_SET_ROLE, &demote), libc::ENOENT, "not mirrored");
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Journal, MirrorRole::Primary)).unwrap();
    unchanged(&mut h, &MIRROR_SET_ROLE, &role_req(MirrorRole::Primary, None, 1500));

    // A journal writer holds the lease: EBUSY, naming it.
    h.write(HDR, &JOURNAL_TAKE, &take_req(1)).unwrap();
    let error = refused(&mut h, MIRROR_SET_ROLE.name, &demote);
    assert_eq!(error.errno(), libc::EBUSY);
    assert!(error.to_string().contains(WRITER), "{error}");
    h.write(HDR, &JOURNAL_RELEASE, &JournalReleaseRequest { group_id: "g1".into(), epoch: 1 }).unwrap();

    h.write(HDR, &MIRROR_SET_ROLE, &demote).unwrap();
    let r = record(&mut h);
    assert_eq!((r.role, r.since_ms, r.demoted_at), (MirrorRole::NonPrimary, 2000, Some(120)));
    unchanged(&mut h, &MIRROR_SET_ROLE, &demote);
    unchanged(&mut h, &MIRROR_SET_ROLE, &MirrorRoleRequest { now_ms: 9, ..demote.clone() });
    // A demotion sent again with another last entry records it (the role's time stays).
    h.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::NonPrimary, Some(121), 2500)).unwrap();
    let r = record(&mut h);
    assert_eq!((r.role, r.since_ms, r.demoted_at), (MirrorRole::NonPrimary, 2000, Some(121)));

    // Promotion keeps the replay state: status shows where the mirror stopped.
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(replaying(), false)).unwrap();
    h.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::Primary, Some(5), 3000)).unwrap();
    let r = record(&mut h);
    assert_eq!((r.role, r.since_ms, r.demoted_at), (MirrorRole::Primary, 3000, None));
    assert_eq!(r.replay, replaying());
    h.write(HDR, &JOURNAL_TAKE, &take_req(2)).unwrap();
}

#[test]
fn demoting_a_group_without_a_journal_needs_no_writer_check() {
    let mut h = harness(&["aa"]);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::Primary)).unwrap();
    h.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::NonPrimary, None, 7)).unwrap();
    let r = record(&mut h);
    assert_eq!((r.role, r.since_ms, r.demoted_at), (MirrorRole::NonPrimary, 7, None));
}

// ---- mirror_set_replay -------------------------------------------------------------------

/// A non-primary group in snapshot mode.
fn secondary() -> Harness {
    let mut h = harness(&["aa", "bb"]);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::NonPrimary)).unwrap();
    h
}

#[test]
fn set_replay_records_the_daemon_state() {
    let mut h = harness(&[]);
    assert_eq!(refused_write(&mut h, &MIRROR_SET_REPLAY, &replay_req(replaying(), false)), libc::ENOENT);
    let mut h = secondary();
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(replaying(), false)).unwrap();
    assert_eq!(record(&mut h).replay, replaying());
    unchanged(&mut h, &MIRROR_SET_REPLAY, &replay_req(replaying(), false));
    unchanged(&mut h, &MIRROR_SET_REPLAY, &replay_req(replaying(), true));
    let caught_up = ReplayState { position: 44, wave_end: 44, ..replaying() };
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(caught_up.clone(), false)).unwrap();
    assert_eq!(record(&mut h).replay, caught_up);

    // A resync asked for stays until the daemon clears it.
    h.write(HDR, &MIRROR_RESYNC, &group()).unwrap();
    let syncing = ReplayState { phase: ReplayPhase::Syncing, ..ReplayState::idle() };
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(syncing.clone(), false)).unwrap();
    assert!(record(&mut h).resync_requested);
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(syncing.clone(), true)).unwrap();
    let r = record(&mut h);
    assert_eq!((r.resync_requested, &r.replay), (false, &syncing));
}

#[test]
fn set_replay_is_erofs_on_a_primary() {
    let mut h = harness(&[]);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::Primary)).unwrap();
    let error = refused(&mut h, MIRROR_SET_REPLAY.name, &replay_req(replaying(), false));
    assert_eq!(error.errno(), libc::EROFS);
    assert!(error.to_string().contains("the mirror daemon stops"), "{error}");
    // After a promotion a stale daemon stops the same way.
    let mut h = secondary();
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(replaying(), false)).unwrap();
    h.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::Primary, None, 9)).unwrap();
    let later = ReplayState { position: 44, ..replaying() };
    assert_eq!(refused_write(&mut h, &MIRROR_SET_REPLAY, &replay_req(later, true)), libc::EROFS);
}

#[test]
fn set_replay_checks_the_state() {
    let mut h = secondary();
    let many_members = {
        let mut replay = replaying();
        let member = replay.bootstrap.as_ref().map(|b| b.members[0].clone()).unwrap();
        replay.bootstrap.as_mut().unwrap().members = vec![member; MAX_REPLAY_MEMBERS + 1];
        replay
    };
    let many_snaps = {
        let mut replay = replaying();
        replay.last_snapshot.as_mut().unwrap().local_snap_ids = vec![1; MAX_REPLAY_MEMBERS + 1];
        replay
    };
    let long = "x".repeat(MAX_TEXT_LEN + 1);
    let cases = [
        ("bootstrap members", many_members, libc::ERANGE),
        ("snapshot ids", many_snaps, libc::ERANGE),
        ("description", ReplayState { description: long.clone(), ..replaying() }, libc::ERANGE),
        ("daemon", ReplayState { daemon: long, ..replaying() }, libc::ERANGE),
        ("position past the wave", ReplayState { position: 45, wave_end: 44, ..replaying() }, libc::EINVAL),
    ];
    for (what, replay, expected) in cases {
        assert_eq!(refused_write(&mut h, &MIRROR_SET_REPLAY, &replay_req(replay, true)), expected, "{what}");
    }
    // The limits themselves are fine.
    let mut at_limits = replaying();
    at_limits.last_snapshot.as_mut().unwrap().local_snap_ids = vec![1; MAX_REPLAY_MEMBERS];
    at_limits.description = "d".repeat(MAX_TEXT_LEN);
    at_limits.daemon = "d".repeat(MAX_TEXT_LEN);
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(at_limits.clone(), false)).unwrap();
    assert_eq!(record(&mut h).replay, at_limits);
}

// ---- mirror_resync and mirror_get --------------------------------------------------------

#[test]
fn resync_is_for_a_secondary() {
    let mut h = harness(&[]);
    assert_eq!(refused_write(&mut h, &MIRROR_RESYNC, &group()), libc::ENOENT);
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::Primary)).unwrap();
    assert_eq!(refused_write(&mut h, &MIRROR_RESYNC, &group()), libc::EINVAL);
    let mut h = secondary();
    assert!(!record(&mut h).resync_requested);
    h.write(HDR, &MIRROR_RESYNC, &group()).unwrap();
    assert!(record(&mut h).resync_requested);
    unchanged(&mut h, &MIRROR_RESYNC, &group());
}

#[test]
fn get_needs_the_header_and_the_record() {
    let mut h = Harness::default();
    assert_eq!(errno(h.read(HDR, &MIRROR_GET, &group())), libc::ENOENT);
    let mut h = secondary();
    assert_eq!(record(&mut h).mode, MirrorMode::Snapshot);
}

/// A damaged `mirror` value is `EIO` for every method that reads it, never a panic, and
/// nothing is written.
#[test]
fn a_corrupt_record_is_eio() {
    let mut h = secondary();
    let mut object = h.object(HDR).unwrap();
    object.omap.insert(MIRROR_KEY.into(), vec![1, 1, 3, 0, 0, 0, 9, 9, 9]);
    h.put(HDR, Some(object));
    assert_eq!(errno(h.read(HDR, &MIRROR_GET, &group())), libc::EIO);
    assert_eq!(refused_write(&mut h, &MIRROR_SET_ROLE, &role_req(MirrorRole::Primary, None, 1)), libc::EIO);
    assert_eq!(refused_write(&mut h, &MIRROR_SET_REPLAY, &replay_req(replaying(), false)), libc::EIO);
    assert_eq!(refused_write(&mut h, &MIRROR_RESYNC, &group()), libc::EIO);
    let enable = enable_req(MirrorMode::Snapshot, MirrorRole::NonPrimary);
    assert_eq!(refused_write(&mut h, &MIRROR_ENABLE, &enable), libc::EIO);
    let add = MemberAddRequest { group_id: "g1".into(), image: image("cc"), added_ms: 0, max_members: 10 };
    assert_eq!(refused_write(&mut h, &MEMBER_ADD_BEGIN, &add), libc::EIO, "refusals cannot tell either");
    // Disabling drops it whatever it holds.
    h.write(HDR, &MIRROR_DISABLE, &group()).unwrap();
    h.write(HDR, &MEMBER_ADD_BEGIN, &add).unwrap();
}

// ---- what a non-primary group refuses ----------------------------------------------------

/// Every refused call on a non-primary snapshot-mode group with members `aa`, `bb` and a
/// complete snapshot `s`, by method name.
fn refused_calls() -> Vec<(&'static str, Vec<u8>)> {
    let add = MemberAddRequest { group_id: "g1".into(), image: image("cc"), added_ms: 0, max_members: 10 };
    let remove = MemberRequest { group_id: "g1".into(), image: image("aa") };
    let create = SnapCreateRequest {
        group_id: "g1".into(),
        snap_id: "s2".into(),
        name: "s2".into(),
        created_ms: 0,
        max_snapshots: 10,
    };
    let snap_remove = SnapRemoveRequest { group_id: "g1".into(), name: "s".into(), undo_create: false };
    let rollback = SnapRequest { group_id: "g1".into(), name: "s".into() };
    vec![
        (MEMBER_ADD_BEGIN.name, encode(&add).unwrap()),
        (MEMBER_REMOVE_BEGIN.name, encode(&remove).unwrap()),
        (SNAP_CREATE_BEGIN.name, encode(&create).unwrap()),
        (SNAP_REMOVE_BEGIN.name, encode(&snap_remove).unwrap()),
        (SNAP_ROLLBACK_BEGIN.name, encode(&rollback).unwrap()),
        (GROUP_BEGIN_REMOVE.name, encode(&IdRequest { id: "g1".into() }).unwrap()),
    ]
}

/// A group with members `aa`, `bb` and a complete snapshot `s`.
fn with_a_snapshot() -> Harness {
    let mut h = harness(&["aa", "bb"]);
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
    h
}

#[track_caller]
fn assert_erofs(h: &mut Harness, method: &str, input: &[u8]) {
    let before = h.object(HDR);
    let error = h.call_raw(HDR, method, input).unwrap_err();
    assert_eq!(error.errno(), libc::EROFS, "{method}: {error}");
    assert!(
        error.to_string().contains("group g1 is non-primary (mirrored from another cluster): promote it or disable"),
        "{method}: {error}"
    );
    assert_eq!(h.object(HDR), before, "{method} was refused and changed the header");
}

#[test]
fn a_non_primary_group_refuses_changes_to_members_and_snapshots() {
    let mut h = with_a_snapshot();
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Snapshot, MirrorRole::NonPrimary)).unwrap();
    for (method, input) in refused_calls() {
        assert_erofs(&mut h, method, &input);
    }
    // Reads, renames and the mirror daemon's own methods go on.
    h.read(HDR, &SNAP_GET, &SnapRequest { group_id: "g1".into(), name: "s".into() }).unwrap();
    h.read(HDR, &MEMBER_LIST, &MemberListRequest { start_after: None, max_entries: 10 }).unwrap();
    let rename = SnapRenameRequest { group_id: "g1".into(), old_name: "s".into(), new_name: "t".into() };
    h.write(HDR, &SNAP_RENAME, &rename).unwrap();
    h.write(HDR, &SNAP_RENAME, &SnapRenameRequest { old_name: "t".into(), new_name: "s".into(), ..rename }).unwrap();
    h.write(HDR, &MIRROR_SET_REPLAY, &replay_req(replaying(), false)).unwrap();

    // A primary record refuses nothing, and after a promotion (or without mirroring) every
    // call works as before.
    for fix in ["promote", "disable"] {
        let mut h = h.clone();
        match fix {
            "promote" => h.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::Primary, None, 9)).unwrap(),
            _ => h.write(HDR, &MIRROR_DISABLE, &group()).unwrap(),
        }
        for (method, input) in refused_calls() {
            let mut h = h.clone();
            let outcome = h.call_raw(HDR, method, &input);
            match method {
                // Refused for members and snapshots, as ever.
                "group_begin_remove" => assert_eq!(errno(outcome), libc::EBUSY, "{fix}: {method}"),
                _ => assert_eq!(errno(outcome), 0, "{fix}: {method}"),
            }
        }
    }
}

#[test]
fn a_removing_non_primary_group_still_refuses_begin_remove() {
    let mut h = harness(&[]);
    h.write(HDR, &GROUP_BEGIN_REMOVE, &IdRequest { id: "g1".into() }).unwrap();
    // Mirroring can only be enabled on an active group, so plant the record.
    let secondary = secondary();
    let record = secondary.object(HDR).unwrap().omap[MIRROR_KEY].clone();
    let mut object = h.object(HDR).unwrap();
    object.omap.insert(MIRROR_KEY.into(), record);
    h.put(HDR, Some(object));
    assert_erofs(&mut h, GROUP_BEGIN_REMOVE.name, &encode(&IdRequest { id: "g1".into() }).unwrap());
    h.write(HDR, &MIRROR_DISABLE, &group()).unwrap();
    h.write(HDR, &GROUP_BEGIN_REMOVE, &IdRequest { id: "g1".into() }).unwrap();
    let header: rbd_cg_contract::records::GroupHeader = h.read(HDR, &GROUP_GET, &Empty {}).unwrap();
    assert_eq!(header.state, HeaderState::Removing);
}

#[test]
fn a_non_primary_group_refuses_the_journal_writer_and_journal_disable() {
    let mut h = journaled();
    h.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Journal, MirrorRole::NonPrimary)).unwrap();
    let disable = JournalGroupRequest { group_id: "g1".into() };
    assert_erofs(&mut h, JOURNAL_TAKE.name, &encode(&take_req(1)).unwrap());
    assert_erofs(&mut h, JOURNAL_DISABLE_BEGIN.name, &encode(&disable).unwrap());
    // The same after a demotion of a primary.
    let mut demoted = journaled();
    demoted.write(HDR, &MIRROR_ENABLE, &enable_req(MirrorMode::Journal, MirrorRole::Primary)).unwrap();
    demoted.write(HDR, &JOURNAL_TAKE, &take_req(1)).unwrap();
    demoted.write(HDR, &JOURNAL_RELEASE, &JournalReleaseRequest { group_id: "g1".into(), epoch: 1 }).unwrap();
    demoted.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::NonPrimary, Some(0), 2)).unwrap();
    assert_erofs(&mut demoted, JOURNAL_TAKE.name, &encode(&take_req(2)).unwrap());
    assert_erofs(&mut demoted, JOURNAL_DISABLE_BEGIN.name, &encode(&disable).unwrap());

    // Promoted, a writer may take the lease; disabling mirroring lets the journal go.
    let mut promoted = h.clone();
    promoted.write(HDR, &MIRROR_SET_ROLE, &role_req(MirrorRole::Primary, None, 3)).unwrap();
    promoted.write(HDR, &JOURNAL_TAKE, &take_req(1)).unwrap();
    h.write(HDR, &MIRROR_DISABLE, &group()).unwrap();
    h.write(HDR, &JOURNAL_DISABLE_BEGIN, &disable).unwrap();
}
