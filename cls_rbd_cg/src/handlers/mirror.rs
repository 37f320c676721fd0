//! Group mirroring (`rbd_cg_contract::mirror`, `docs/FORMAT.md` §11).
//!
//! One record on `cg_header.<id>`, omap `mirror`, beside the members, snapshots and
//! journal it guards: while it says the group is non-primary, the methods that would change
//! the group's data or shape refuse with `EROFS` (`refuse_if_non_primary`), atomically
//! with the role, so a promotion or demotion is one step and a stale mirror daemon's next
//! `mirror_set_replay` after a promotion fails.

use super::header::{load as load_header, load_active};
use crate::store::load_key;
use crate::ObjectStore;
use rbd_cg_contract::journal::{JournalRecord, JournalState, JOURNAL_KEY};
use rbd_cg_contract::mirror::{
    MirrorEnableRequest, MirrorGroupRequest, MirrorMode, MirrorRecord, MirrorReplayRequest, MirrorRole,
    MirrorRoleRequest, ReplayState, MAX_INTERVAL_SECS, MAX_REPLAY_MEMBERS, MAX_TEXT_LEN, MIN_INTERVAL_SECS, MIRROR_KEY,
};
use rbd_cg_contract::{encode, CgError};

fn load_mirror(store: &dyn ObjectStore) -> Result<Option<MirrorRecord>, CgError> {
    load_key(store, MIRROR_KEY)
}

/// The mirror record of `group_id`, whose header is checked first; `ENOENT` when the group
/// is not mirrored.
fn header_and_mirror(store: &dyn ObjectStore, group_id: &str) -> Result<MirrorRecord, CgError> {
    load_header(store, group_id)?;
    load_mirror(store)?.ok_or_else(|| CgError::NotFound(format!("group {group_id} is not mirrored")))
}

fn save_mirror(store: &mut dyn ObjectStore, record: &MirrorRecord) -> Result<(), CgError> {
    store.omap_set(&[(MIRROR_KEY, &encode(record)?)])
}

/// `EROFS` while the group's mirror record says it is non-primary: what it would change
/// belongs to the primary, which a mirror daemon copies here. A group without the record
/// (or with a primary one) passes. Called, right after their header checks, by
/// `journal_take`, `journal_disable_begin`, `member_add_begin`, `member_remove_begin`,
/// `snap_create_begin`, `snap_remove_begin`, `snap_rollback_begin` and `group_begin_remove`.
pub(crate) fn refuse_if_non_primary(store: &dyn ObjectStore, group_id: &str, what: &str) -> Result<(), CgError> {
    match load_mirror(store)? {
        Some(record) if record.role == MirrorRole::NonPrimary => Err(CgError::ReadOnly(format!(
            "{what}: group {group_id} is non-primary (mirrored from another cluster): promote it or disable \
             mirroring first"
        ))),
        _ => Ok(()),
    }
}

/// Records the group mirrored.
pub fn enable(store: &mut dyn ObjectStore, req: MirrorEnableRequest) -> Result<(), CgError> {
    if req.mode == MirrorMode::Snapshot && !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&req.interval_secs) {
        return Err(CgError::OutOfRange(format!(
            "snapshot interval {}s is not in {MIN_INTERVAL_SECS}..={MAX_INTERVAL_SECS}",
            req.interval_secs
        )));
    }
    let header = load_active(store, &req.group_id)?;
    if let Some(existing) = load_mirror(store)? {
        if existing.mode == req.mode && existing.role == req.role {
            return Ok(());
        }
        return Err(CgError::Exists(format!(
            "group {} is already mirrored in {} mode as {:?}",
            header.id,
            existing.mode.as_str(),
            existing.role
        )));
    }
    if req.mode == MirrorMode::Journal {
        let state = load_key::<JournalRecord>(store, JOURNAL_KEY)?.map(|journal| journal.state);
        if state != Some(JournalState::Enabled) {
            let now = state.map_or_else(|| "has no journal".to_owned(), |s| format!("has a journal {s:?}"));
            return Err(CgError::InvalidArgument(format!(
                "journal-mode mirroring needs an enabled group journal, and group {} {now}: run `rbd-cg journal \
                 enable` first",
                header.id
            )));
        }
    }
    let record = MirrorRecord {
        mode: req.mode,
        role: req.role,
        interval_secs: req.interval_secs,
        since_ms: req.now_ms,
        demoted_at: None,
        resync_requested: false,
        replay: ReplayState { primary: req.primary, ..ReplayState::idle() },
    };
    save_mirror(store, &record)
}

/// Drops the mirror record; absent is fine.
pub fn disable(store: &mut dyn ObjectStore, req: MirrorGroupRequest) -> Result<(), CgError> {
    load_header(store, &req.group_id)?;
    if store.omap_get(MIRROR_KEY)?.is_none() {
        return Ok(());
    }
    store.omap_remove(MIRROR_KEY)
}

/// Promotes or demotes.
pub fn set_role(store: &mut dyn ObjectStore, req: MirrorRoleRequest) -> Result<(), CgError> {
    let mut record = header_and_mirror(store, &req.group_id)?;
    if record.role == req.role {
        // A demotion sent again, perhaps with the journal's newer last entry.
        if req.role == MirrorRole::NonPrimary && record.demoted_at != req.demoted_at {
            record.demoted_at = req.demoted_at;
            return save_mirror(store, &record);
        }
        return Ok(());
    }
    match req.role {
        MirrorRole::NonPrimary => {
            if let Some(writer) = load_key::<JournalRecord>(store, JOURNAL_KEY)?.and_then(|journal| journal.writer) {
                return Err(CgError::Busy(format!(
                    "group {} has a journal writer ({}, client {}, epoch {}): stop it before demoting",
                    req.group_id, writer.description, writer.client, writer.epoch
                )));
            }
            record.demoted_at = req.demoted_at;
        }
        // The replay state stays: status shows where the mirror stopped.
        MirrorRole::Primary => record.demoted_at = None,
    }
    record.role = req.role;
    record.since_ms = req.now_ms;
    save_mirror(store, &record)
}

fn check_text(what: &str, text: &str) -> Result<(), CgError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(CgError::OutOfRange(format!("{what} of {} bytes, more than {MAX_TEXT_LEN}", text.len())));
    }
    Ok(())
}

fn validate_replay(replay: &ReplayState) -> Result<(), CgError> {
    if let Some(bootstrap) = &replay.bootstrap {
        if bootstrap.members.len() > MAX_REPLAY_MEMBERS {
            return Err(CgError::OutOfRange(format!(
                "a bootstrap of {} members, more than {MAX_REPLAY_MEMBERS}",
                bootstrap.members.len()
            )));
        }
    }
    if let Some(snapshot) = &replay.last_snapshot {
        if snapshot.local_snap_ids.len() > MAX_REPLAY_MEMBERS {
            return Err(CgError::OutOfRange(format!(
                "a mirrored snapshot of {} members, more than {MAX_REPLAY_MEMBERS}",
                snapshot.local_snap_ids.len()
            )));
        }
    }
    check_text("a description", &replay.description)?;
    check_text("a daemon name", &replay.daemon)?;
    if replay.wave_end < replay.position {
        return Err(CgError::InvalidArgument(format!(
            "position {} is beyond the end of its wave {}",
            replay.position, replay.wave_end
        )));
    }
    Ok(())
}

/// The mirror daemon records its state on a non-primary group.
pub fn set_replay(store: &mut dyn ObjectStore, req: MirrorReplayRequest) -> Result<(), CgError> {
    validate_replay(&req.replay)?;
    let mut record = header_and_mirror(store, &req.group_id)?;
    if record.role == MirrorRole::Primary {
        return Err(CgError::ReadOnly(format!("group {} is primary: the mirror daemon stops", req.group_id)));
    }
    if record.replay == req.replay && !(req.clear_resync && record.resync_requested) {
        return Ok(());
    }
    record.replay = req.replay;
    if req.clear_resync {
        record.resync_requested = false;
    }
    save_mirror(store, &record)
}

/// Asks the daemon of a non-primary group to copy everything again.
pub fn resync(store: &mut dyn ObjectStore, req: MirrorGroupRequest) -> Result<(), CgError> {
    let mut record = header_and_mirror(store, &req.group_id)?;
    if record.role == MirrorRole::Primary {
        return Err(CgError::InvalidArgument(format!(
            "group {} is primary: only a non-primary group is resynced",
            req.group_id
        )));
    }
    if record.resync_requested {
        return Ok(());
    }
    record.resync_requested = true;
    save_mirror(store, &record)
}

/// The mirror record.
pub fn get(store: &mut dyn ObjectStore, req: MirrorGroupRequest) -> Result<MirrorRecord, CgError> {
    header_and_mirror(store, &req.group_id)
}

#[cfg(test)]
mod tests;
