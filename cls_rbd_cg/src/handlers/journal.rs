//! The group journal (`rbd_cg_contract::journal`, `docs/FORMAT.md` "Group journal").
//!
//! On `cg_header.<id>`: the `journal` record, one `journal_consumer_<name>` record per
//! consumer and one `journalpos_<seq>` record per group snapshot cut while journaling, all
//! beside the group's members and snapshots, so that enabling journaling and refusing
//! membership changes, rollbacks, removal and clones while it is on are atomic with the
//! state they guard (`refuse_while_journaled`).
//!
//! On `cg_journal.<id>.<n>`: a segment, whose omap `segment` record says which epoch may
//! append, which sequence number comes next and how many bytes of the data are committed.
//! `segment_append` is the hot path: it decodes a small envelope, checks every entry
//! header in place (no allocation per entry, no payload checksums), and writes the entries
//! with one write at the committed length plus one omap update.

use super::header::{load as load_header, load_active};
use super::members::validate_image;
use super::snapshots::{attached_members, record as snapshot_record};
use crate::store::{for_each_with_prefix, load_key, save_data};
use crate::ObjectStore;
use rbd_cg_contract::journal::{
    consumer_key, decode_append, iter_entries, snap_journal_key, validate_consumer_name, ConsumerRecord,
    ConsumerRequest, ConsumerSetRequest, ConsumerState, JournalEnableRequest, JournalGroupRequest, JournalMember,
    JournalRecord, JournalReleaseRequest, JournalRollRequest, JournalState, JournalStatus, JournalTakeRequest,
    JournalTrimRequest, SegmentAppend, SegmentOpenRequest, SegmentRecord, SegmentSealRequest, SnapJournalPosition,
    SnapJournalPositionRequest, CONSUMER_KEY_PREFIX, JOURNAL_KEY, LOCAL_CONSUMER, MAX_APPEND_BYTES,
    MAX_CONSUMER_DATA_LEN, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, SEGMENT_KEY, SNAP_JOURNAL_KEY_PREFIX,
};
use rbd_cg_contract::methods::{Empty, SnapRequest};
use rbd_cg_contract::names::{MAX_GROUP_MEMBERS, SNAPSHOT_IN_PROGRESS_KEY};
use rbd_cg_contract::records::{GroupHeader, ImageRef, SnapshotState};
use rbd_cg_contract::{decode, encode, CgError, Versioned};
use std::collections::BTreeSet;

/// Room kept in `journal_get`'s reply for the writer lease a `journal_take` may record
/// later: a whole `JournalTakeRequest` is at most this long, so its lease is shorter.
const WRITER_LEASE_ROOM: usize = 4096;

/// Size of the envelope header of a stored value (a nested value is stored bare).
const ENVELOPE: usize = rbd_cg_contract::encoding::ENVELOPE_HEADER_LEN;

/// `ESTALE`: a writer or consumer acting on a view that a newer one has replaced. The
/// errno is all the client gets; the reason goes to the OSD log.
fn stale(why: String) -> CgError {
    log::debug!("ESTALE: {why}");
    CgError::Other(libc::ESTALE)
}

/// `ENOSPC`: the segment is full; the writer rolls to a new one.
fn no_space(why: String) -> CgError {
    log::debug!("ENOSPC: {why}");
    CgError::Other(libc::ENOSPC)
}

fn load_journal(store: &dyn ObjectStore) -> Result<Option<JournalRecord>, CgError> {
    load_key(store, JOURNAL_KEY)
}

/// The header of `group_id` (checked as every header method checks it) and its journal;
/// `ENOENT` when the group has none.
fn header_and_journal(store: &dyn ObjectStore, group_id: &str) -> Result<(GroupHeader, JournalRecord), CgError> {
    let header = load_header(store, group_id)?;
    let journal = load_journal(store)?.ok_or_else(|| CgError::NotFound(format!("group {group_id} has no journal")))?;
    Ok((header, journal))
}

fn save_journal(store: &mut dyn ObjectStore, journal: &JournalRecord) -> Result<(), CgError> {
    store.omap_set(&[(JOURNAL_KEY, &encode(journal)?)])
}

/// "writer client.4123 at 10.0.0.1:0/123 (rbd-cg nbd serve on h, pid 7), epoch 3", for
/// messages.
fn describe_writer(journal: &JournalRecord) -> String {
    match &journal.writer {
        Some(w) => format!("writer {} at {} ({}), epoch {}", w.client, w.addr, w.description, w.epoch),
        None => "no writer".into(),
    }
}

/// `EBUSY` while the group has a journal (the `journal` key exists, whatever its state),
/// naming the writer lease holder if there is one. Called by `member_add_begin`,
/// `member_remove_begin`, `snap_rollback_begin`, `group_begin_remove` and `clone_begin`:
/// every member write is an entry tagged with its member, so the members and their data
/// must not change behind the journal's back.
pub(crate) fn refuse_while_journaled(store: &dyn ObjectStore, what: &str) -> Result<(), CgError> {
    let Some(bytes) = store.omap_get(JOURNAL_KEY)? else {
        return Ok(());
    };
    // The key's presence is what counts; its value only improves the message.
    let holder = match decode::<JournalRecord>(&bytes) {
        Ok(journal) => format!(" ({:?}, {})", journal.state, describe_writer(&journal)),
        Err(_) => String::new(),
    };
    Err(CgError::Busy(format!("{what}: the group is journaled{holder}; disable journaling first")))
}

/// Length of `journal_get`'s reply for `journal` (without a writer) and consumers whose
/// stored values have the given lengths: nested values are the stored ones without their
/// envelopes, after a `u64` count.
fn status_len(journal: &JournalRecord, consumer_value_lens: impl Iterator<Item = usize>) -> Result<usize, CgError> {
    let without_writer = JournalRecord { writer: None, ..journal.clone() };
    let journal_len = encode(&without_writer)?.len() - ENVELOPE;
    let consumers: usize = consumer_value_lens.map(|len| len.saturating_sub(ENVELOPE)).sum();
    Ok(ENVELOPE + journal_len + 8 + consumers)
}

/// `ERANGE` unless `journal_get` can still answer once a writer lease is recorded.
fn check_status_fits(len: usize) -> Result<(), CgError> {
    if len + WRITER_LEASE_ROOM > JournalStatus::MAX_ENCODED_LEN {
        return Err(CgError::OutOfRange(format!(
            "the journal and its consumers would take {len} bytes, more than journal_get can return"
        )));
    }
    Ok(())
}

// ---- the journal on cg_header.<id> ----------------------------------------------------------

fn validate_enable(req: &JournalEnableRequest) -> Result<(), CgError> {
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&req.segment_size) {
        return Err(CgError::OutOfRange(format!(
            "segment size {} is not in {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}",
            req.segment_size
        )));
    }
    if req.max_bytes / 2 < req.segment_size {
        return Err(CgError::OutOfRange(format!(
            "journal bound {} is less than two segments of {}",
            req.max_bytes, req.segment_size
        )));
    }
    if req.members.len() > MAX_GROUP_MEMBERS as usize {
        return Err(CgError::OutOfRange(format!("{} members, more than {MAX_GROUP_MEMBERS}", req.members.len())));
    }
    let mut tags = BTreeSet::new();
    let mut images = BTreeSet::new();
    for JournalMember { tag, image } in &req.members {
        validate_image(image)?;
        if *tag == 0 || !tags.insert(*tag) {
            return Err(CgError::InvalidArgument(format!("member tag {tag} is 0 or repeated")));
        }
        if !images.insert(image) {
            return Err(CgError::InvalidArgument(format!("image {} is listed twice", image.image_id)));
        }
    }
    Ok(())
}

/// Records the journal `Enabling`, registers the local consumer at position 0 and sets the
/// header's journaling feature, in one step.
pub fn enable(store: &mut dyn ObjectStore, req: JournalEnableRequest) -> Result<(), CgError> {
    validate_enable(&req)?;
    let mut header = load_active(store, &req.group_id)?;
    if let Some(existing) = load_journal(store)? {
        return match existing.state {
            JournalState::Disabling => {
                Err(CgError::Busy(format!("the journal of group {} is being disabled", header.id)))
            }
            _ if existing.members == req.members
                && existing.segment_size == req.segment_size
                && existing.max_bytes == req.max_bytes =>
            {
                Ok(())
            }
            _ => Err(CgError::Exists(format!("group {} already has another journal", header.id))),
        };
    }
    if store.omap_get(SNAPSHOT_IN_PROGRESS_KEY)?.is_some() {
        return Err(CgError::Busy("a group snapshot is in progress".into()));
    }
    if super::clone::plan(store)?.is_some() {
        return Err(CgError::Busy("the group is being cloned".into()));
    }
    // Every member Attached (EBUSY otherwise), and exactly the request's images.
    let attached: BTreeSet<ImageRef> = attached_members(store)?.into_iter().collect();
    let requested: BTreeSet<&ImageRef> = req.members.iter().map(|m| &m.image).collect();
    if attached.len() != requested.len() || !attached.iter().all(|image| requested.contains(image)) {
        return Err(CgError::InvalidArgument(format!(
            "the journal must tag exactly the group's {} members, not these {}",
            attached.len(),
            requested.len()
        )));
    }
    let journal = JournalRecord {
        state: JournalState::Enabling,
        segment_size: req.segment_size,
        max_bytes: req.max_bytes,
        members: req.members,
        epoch: 0,
        writer: None,
        first_segment: 0,
        active_segment: 0,
        active_first_seq: 1,
        trimmed_seq: 0,
        created_ms: req.created_ms,
    };
    let local = ConsumerRecord {
        name: LOCAL_CONSUMER.into(),
        state: ConsumerState::Connected,
        position: 0,
        updated_ms: req.created_ms,
        data: Vec::new(),
    };
    let journal_value = encode(&journal)?;
    let local_value = encode(&local)?;
    check_status_fits(status_len(&journal, std::iter::once(local_value.len()))?)?;
    store.omap_set(&[(JOURNAL_KEY, &journal_value), (&consumer_key(LOCAL_CONSUMER), &local_value)])?;
    header.features |= GroupHeader::FEATURE_JOURNALING;
    save_data(store, &header)
}

/// `Enabling` → `Enabled`.
pub fn enabled(store: &mut dyn ObjectStore, req: JournalGroupRequest) -> Result<(), CgError> {
    let (_, mut journal) = header_and_journal(store, &req.group_id)?;
    match journal.state {
        JournalState::Enabled => Ok(()),
        JournalState::Disabling => Err(CgError::Busy("the journal is being disabled".into())),
        JournalState::Enabling => {
            journal.state = JournalState::Enabled;
            save_journal(store, &journal)
        }
    }
}

/// `Enabling`/`Enabled` → `Disabling`, only without a writer.
pub fn disable_begin(store: &mut dyn ObjectStore, req: JournalGroupRequest) -> Result<(), CgError> {
    let (_, mut journal) = header_and_journal(store, &req.group_id)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "disabling the journal")?;
    if journal.state == JournalState::Disabling {
        return Ok(());
    }
    if journal.writer.is_some() {
        return Err(CgError::Busy(format!("the journal has a {}", describe_writer(&journal))));
    }
    journal.state = JournalState::Disabling;
    save_journal(store, &journal)
}

/// Drops the journal, its consumers and the snapshots' journal positions (which would be
/// positions in a journal that no longer exists) and clears the journaling feature.
pub fn disable_finish(store: &mut dyn ObjectStore, req: JournalGroupRequest) -> Result<(), CgError> {
    let mut header = load_header(store, &req.group_id)?;
    if let Some(journal) = load_journal(store)? {
        if journal.state != JournalState::Disabling {
            return Err(CgError::Busy(format!("the journal is {:?}, not Disabling", journal.state)));
        }
        if journal.writer.is_some() {
            return Err(CgError::Busy(format!("the journal has a {}", describe_writer(&journal))));
        }
    } else if header.features & GroupHeader::FEATURE_JOURNALING == 0 {
        return Ok(());
    }
    let mut keys = Vec::new();
    for prefix in [CONSUMER_KEY_PREFIX, SNAP_JOURNAL_KEY_PREFIX] {
        for_each_with_prefix(store, prefix, |key, _| {
            keys.push(key.to_owned());
            Ok(true)
        })?;
    }
    for key in keys.iter().map(String::as_str).chain([JOURNAL_KEY]) {
        store.omap_remove(key)?;
    }
    header.features &= !GroupHeader::FEATURE_JOURNALING;
    save_data(store, &header)
}

/// Every consumer, in name order, with the length of its stored value.
fn consumers(store: &dyn ObjectStore) -> Result<Vec<(ConsumerRecord, usize)>, CgError> {
    let mut all = Vec::new();
    for_each_with_prefix(store, CONSUMER_KEY_PREFIX, |key, value| {
        all.push((crate::store::decode_listed::<ConsumerRecord>(key, value)?, value.len()));
        Ok(true)
    })?;
    Ok(all)
}

/// The journal and its consumers.
pub fn get(store: &mut dyn ObjectStore, req: JournalGroupRequest) -> Result<JournalStatus, CgError> {
    let (_, journal) = header_and_journal(store, &req.group_id)?;
    let consumers = consumers(store)?.into_iter().map(|(consumer, _)| consumer).collect();
    Ok(JournalStatus { journal, consumers })
}

/// Records a new writer: its epoch must be newer than every epoch handed out before.
/// The exact lease already recorded is a repeat and succeeds.
pub fn take(store: &mut dyn ObjectStore, req: JournalTakeRequest) -> Result<(), CgError> {
    let (_, mut journal) = header_and_journal(store, &req.group_id)?;
    super::mirror::refuse_if_non_primary(store, &req.group_id, "taking the journal writer lease")?;
    if journal.state != JournalState::Enabled {
        return Err(CgError::Busy(format!("the journal is {:?}", journal.state)));
    }
    if journal.writer.as_ref() == Some(&req.lease) {
        return Ok(());
    }
    if req.lease.epoch <= journal.epoch {
        return Err(stale(format!("epoch {} is not newer than epoch {}", req.lease.epoch, journal.epoch)));
    }
    journal.epoch = req.lease.epoch;
    journal.writer = Some(req.lease);
    save_journal(store, &journal)
}

/// The writer with `epoch` gives the lease up.
pub fn release(store: &mut dyn ObjectStore, req: JournalReleaseRequest) -> Result<(), CgError> {
    let (_, mut journal) = header_and_journal(store, &req.group_id)?;
    match &journal.writer {
        None => Ok(()),
        Some(writer) if writer.epoch == req.epoch => {
            journal.writer = None;
            save_journal(store, &journal)
        }
        Some(writer) => Err(stale(format!("epoch {} does not hold the lease (epoch {})", req.epoch, writer.epoch))),
    }
}

/// The current writer moved to a newer segment.
pub fn roll(store: &mut dyn ObjectStore, req: JournalRollRequest) -> Result<(), CgError> {
    if req.first_seq == 0 {
        return Err(CgError::InvalidArgument("sequence numbers start at 1".into()));
    }
    let (_, mut journal) = header_and_journal(store, &req.group_id)?;
    if journal.writer.as_ref().map(|w| w.epoch) != Some(req.epoch) {
        return Err(stale(format!("epoch {} is not the writer's ({})", req.epoch, describe_writer(&journal))));
    }
    if req.segment == journal.active_segment && req.first_seq == journal.active_first_seq {
        return Ok(());
    }
    if req.segment <= journal.active_segment || req.first_seq < journal.active_first_seq {
        return Err(CgError::OutOfRange(format!(
            "segment {} at seq {} would not move forward from segment {} at seq {}",
            req.segment, req.first_seq, journal.active_segment, journal.active_first_seq
        )));
    }
    journal.active_segment = req.segment;
    journal.active_first_seq = req.first_seq;
    save_journal(store, &journal)
}

/// Moves the trim point forward: never back, never past the active segment, and never
/// past what a connected consumer still needs (its position + 1).
pub fn trim(store: &mut dyn ObjectStore, req: JournalTrimRequest) -> Result<(), CgError> {
    let (_, mut journal) = header_and_journal(store, &req.group_id)?;
    if req.first_segment < journal.first_segment || req.trimmed_seq < journal.trimmed_seq {
        return Err(CgError::OutOfRange(format!(
            "trim to segment {} / seq {} would move back from segment {} / seq {}",
            req.first_segment, req.trimmed_seq, journal.first_segment, journal.trimmed_seq
        )));
    }
    if req.first_segment > journal.active_segment || req.trimmed_seq > journal.active_first_seq {
        return Err(CgError::OutOfRange(format!(
            "trim to segment {} / seq {} would pass the active segment {} (from seq {})",
            req.first_segment, req.trimmed_seq, journal.active_segment, journal.active_first_seq
        )));
    }
    if req.first_segment == journal.first_segment && req.trimmed_seq == journal.trimmed_seq {
        return Ok(());
    }
    if req.trimmed_seq > journal.trimmed_seq {
        for (consumer, _) in consumers(store)? {
            if consumer.state == ConsumerState::Connected && req.trimmed_seq > consumer.position.saturating_add(1) {
                return Err(CgError::OutOfRange(format!(
                    "trim to seq {} would drop entries consumer {:?} has not applied (position {})",
                    req.trimmed_seq, consumer.name, consumer.position
                )));
            }
        }
    }
    journal.first_segment = req.first_segment;
    journal.trimmed_seq = req.trimmed_seq;
    save_journal(store, &journal)
}

/// Registers a consumer or moves it forward; with `reset`, registers it anew anywhere.
pub fn consumer_set(store: &mut dyn ObjectStore, req: ConsumerSetRequest) -> Result<(), CgError> {
    let consumer = req.consumer;
    validate_consumer_name(&consumer.name)?;
    if consumer.data.len() > MAX_CONSUMER_DATA_LEN {
        return Err(CgError::OutOfRange(format!("consumer data of {} bytes", consumer.data.len())));
    }
    if consumer.state != ConsumerState::Connected {
        return Err(CgError::InvalidArgument("a consumer is set Connected (journal_consumer_disconnect)".into()));
    }
    let (_, journal) = header_and_journal(store, &req.group_id)?;
    let key = consumer_key(&consumer.name);
    let existing = match store.omap_get(&key)? {
        Some(bytes) => Some((crate::store::decode_listed::<ConsumerRecord>(&key, &bytes)?, bytes.len())),
        None => None,
    };
    if let (Some((old, _)), false) = (&existing, req.reset) {
        if old.state == ConsumerState::Disconnected {
            return Err(stale(format!("consumer {:?} is disconnected: it must register anew", old.name)));
        }
        if consumer.position < old.position {
            return Err(CgError::OutOfRange(format!(
                "consumer {:?} would move back from {} to {}",
                old.name, old.position, consumer.position
            )));
        }
    }
    if existing.as_ref().is_some_and(|(old, _)| *old == consumer) {
        return Ok(());
    }
    let value = encode(&consumer)?;
    // A consumer that grows must leave journal_get able to answer.
    let grows = match &existing {
        Some((_, old_len)) => value.len() > *old_len,
        None => true,
    };
    if grows {
        let others = consumers(store)?.into_iter().filter(|(c, _)| c.name != consumer.name).map(|(_, len)| len);
        check_status_fits(status_len(&journal, others.chain(std::iter::once(value.len())))?)?;
    }
    store.omap_set(&[(&key, &value)])
}

/// Marks a consumer `Disconnected`; the local consumer cannot be (its entries would be
/// trimmed before they reach the images).
pub fn consumer_disconnect(store: &mut dyn ObjectStore, req: ConsumerRequest) -> Result<(), CgError> {
    validate_consumer_name(&req.name)?;
    if req.name == LOCAL_CONSUMER {
        return Err(CgError::PermissionDenied("the local consumer cannot be disconnected".into()));
    }
    header_and_journal(store, &req.group_id)?;
    let key = consumer_key(&req.name);
    let mut consumer = load_key::<ConsumerRecord>(store, &key)?
        .ok_or_else(|| CgError::NotFound(format!("no journal consumer {:?}", req.name)))?;
    if consumer.state == ConsumerState::Disconnected {
        return Ok(());
    }
    consumer.state = ConsumerState::Disconnected;
    store.omap_set(&[(&key, &encode(&consumer)?)])
}

/// Removes a consumer (absent is fine); not the local one.
pub fn consumer_remove(store: &mut dyn ObjectStore, req: ConsumerRequest) -> Result<(), CgError> {
    validate_consumer_name(&req.name)?;
    if req.name == LOCAL_CONSUMER {
        return Err(CgError::PermissionDenied("the local consumer cannot be removed".into()));
    }
    load_header(store, &req.group_id)?;
    store.omap_remove(&consumer_key(&req.name))
}

// ---- snapshot positions on cg_header.<id> ----------------------------------------------------

/// Records the journal position a `Creating` snapshot was cut at. The same position
/// already recorded succeeds in any state (the op that also finished the snapshot, sent
/// again).
pub fn snap_set_position(store: &mut dyn ObjectStore, req: SnapJournalPositionRequest) -> Result<(), CgError> {
    load_header(store, &req.group_id)?;
    let snapshot = snapshot_record(store, &req.name)?;
    let key = snap_journal_key(snapshot.seq);
    let position = SnapJournalPosition { snap_seq: snapshot.seq, position: req.position };
    if load_key::<SnapJournalPosition>(store, &key)?.as_ref() == Some(&position) {
        return Ok(());
    }
    if snapshot.state != SnapshotState::Creating {
        return Err(CgError::InvalidArgument(format!("snapshot {:?} is {:?}, not Creating", req.name, snapshot.state)));
    }
    if load_journal(store)?.is_none() {
        return Err(CgError::NotFound(format!("group {} has no journal", req.group_id)));
    }
    store.omap_set(&[(&key, &encode(&position)?)])
}

/// The journal position of a snapshot.
pub fn snap_get_position(store: &mut dyn ObjectStore, req: SnapRequest) -> Result<SnapJournalPosition, CgError> {
    load_header(store, &req.group_id)?;
    let snapshot = snapshot_record(store, &req.name)?;
    load_key(store, &snap_journal_key(snapshot.seq))?
        .ok_or_else(|| CgError::NotFound(format!("snapshot {:?} has no journal position", req.name)))
}

// ---- segments: cg_journal.<id>.<n> -------------------------------------------------------------

fn load_segment(store: &dyn ObjectStore) -> Result<SegmentRecord, CgError> {
    load_key(store, SEGMENT_KEY)?.ok_or_else(|| CgError::NotFound("no journal segment".into()))
}

/// Creates the segment for a writer; the same epoch and first sequence number again
/// succeed.
pub fn segment_open(store: &mut dyn ObjectStore, req: SegmentOpenRequest) -> Result<(), CgError> {
    if req.epoch == 0 || req.first_seq == 0 {
        return Err(CgError::InvalidArgument("epochs and sequence numbers start at 1".into()));
    }
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&req.capacity) {
        return Err(CgError::OutOfRange(format!(
            "segment capacity {} is not in {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}",
            req.capacity
        )));
    }
    match load_key::<SegmentRecord>(store, SEGMENT_KEY)? {
        Some(existing) if existing.epoch == req.epoch && existing.first_seq == req.first_seq => Ok(()),
        Some(existing) => {
            Err(CgError::Exists(format!("segment opened by epoch {} at seq {}", existing.epoch, existing.first_seq)))
        }
        None if store.stat()?.is_some() => Err(CgError::Exists("the object exists and is not a segment".into())),
        None => {
            store.create(true)?;
            let record = SegmentRecord {
                epoch: req.epoch,
                first_seq: req.first_seq,
                next_seq: req.first_seq,
                committed_len: 0,
                capacity: req.capacity,
                sealed: false,
            };
            store.omap_set(&[(SEGMENT_KEY, &encode(&record)?)])
        }
    }
}

/// Checks the entries of an append in place: exactly `count` well-formed entries (header
/// checksums; payload checksums are left to readers), sequence numbers contiguous from
/// `first_seq`, all of the append's epoch, nothing after the last one.
fn check_entries(append: &SegmentAppend, bytes: &[u8]) -> Result<(), CgError> {
    let mut expected = append.first_seq;
    let mut count = 0u32;
    for entry in iter_entries(bytes, false) {
        let header = entry?.header;
        if count == append.count {
            return Err(CgError::InvalidArgument(format!("more than the {} entries announced", append.count)));
        }
        if header.seq != expected || header.epoch != append.epoch {
            return Err(CgError::InvalidArgument(format!(
                "entry {} of epoch {} where entry {expected} of epoch {} belongs",
                header.seq, header.epoch, append.epoch
            )));
        }
        expected = expected.wrapping_add(1);
        count += 1;
    }
    if count != append.count {
        return Err(CgError::InvalidArgument(format!("{count} entries, {} announced", append.count)));
    }
    Ok(())
}

/// Appends entries at the committed length (the raw `segment_append` input).
pub fn segment_append(store: &mut dyn ObjectStore, input: &[u8]) -> Result<(), CgError> {
    let (append, entries) = decode_append(input)?;
    if entries.len() > MAX_APPEND_BYTES {
        return Err(CgError::OutOfRange(format!("append of {} bytes of entries", entries.len())));
    }
    let mut record = load_segment(store)?;
    if record.sealed {
        return Err(stale("the segment is sealed".into()));
    }
    if append.epoch != record.epoch {
        return Err(stale(format!("epoch {} appends to a segment of epoch {}", append.epoch, record.epoch)));
    }
    if append.first_seq != record.next_seq {
        return Err(CgError::OutOfRange(format!(
            "append at seq {}, the segment is at {}",
            append.first_seq, record.next_seq
        )));
    }
    let len = entries.len() as u64;
    let end = record.committed_len.saturating_add(len);
    if record.committed_len != 0 && end > record.capacity {
        return Err(no_space(format!("{len} bytes do not fit after {} of {}", record.committed_len, record.capacity)));
    }
    let next_seq = append
        .first_seq
        .checked_add(u64::from(append.count))
        .ok_or_else(|| CgError::OutOfRange("sequence numbers exhausted".into()))?;
    check_entries(&append, entries)?;
    store.write(record.committed_len, entries)?;
    record.committed_len = end;
    record.next_seq = next_seq;
    store.omap_set(&[(SEGMENT_KEY, &encode(&record)?)])
}

/// Closes the segment to appends.
pub fn segment_seal(store: &mut dyn ObjectStore, req: SegmentSealRequest) -> Result<(), CgError> {
    let mut record = load_segment(store)?;
    if req.epoch < record.epoch {
        return Err(stale(format!("epoch {} may not seal a segment of epoch {}", req.epoch, record.epoch)));
    }
    if record.sealed {
        return Ok(());
    }
    record.sealed = true;
    store.omap_set(&[(SEGMENT_KEY, &encode(&record)?)])
}

/// The segment's record.
pub fn segment_get(store: &mut dyn ObjectStore, _req: Empty) -> Result<SegmentRecord, CgError> {
    load_segment(store)
}

#[cfg(test)]
mod tests;
