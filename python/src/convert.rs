//! Rust values to Python ones (plain `dict`s, described by the `TypedDict`s of
//! `rbd_cg.pyi`), and Python arguments to the client's types.

use crate::errors::{invalid, out_of_range};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rbd_cg_client::clone::{CloneFormat, ClonedImage};
use rbd_cg_client::groups::{GroupInfo, GroupState, RepairReport};
use rbd_cg_client::image_groups::ImageGroup;
use rbd_cg_client::journal::JournalInfo;
use rbd_cg_client::members::MemberInfo;
use rbd_cg_client::mirror::MirrorStatus;
use rbd_cg_client::snapshots::{SnapshotImage, SnapshotInfo};
use rbd_cg_client::spec::{ImageSpec, PoolSpec};
use rbd_cg_client::Result;
use rbd_cg_contract::mirror::MirrorMode;

/// Milliseconds since the epoch as float seconds, like `time.time()`.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `Groups.info`: `{name, id, pool, namespace, state, created, members, snapshots}`, plus
/// `renaming_to`/`renaming_from` while a rename is pending.
pub(crate) fn group_info<'py>(py: Python<'py>, info: &GroupInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &info.name)?;
    d.set_item("id", &info.id)?;
    d.set_item("pool", &info.pool)?;
    d.set_item("namespace", &info.namespace)?;
    d.set_item("state", info.state.as_str())?;
    d.set_item("created", seconds(info.created_ms))?;
    d.set_item("members", info.member_count)?;
    d.set_item("snapshots", info.snapshot_count)?;
    match &info.state {
        GroupState::RenamingTo(to) => d.set_item("renaming_to", to)?,
        GroupState::RenamingFrom(from) => d.set_item("renaming_from", from)?,
        _ => {}
    }
    Ok(d)
}

/// `Groups.repair`: `{findings, changed}`.
pub(crate) fn repair_report<'py>(py: Python<'py>, report: &RepairReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("findings", &report.findings)?;
    d.set_item("changed", report.changed)?;
    Ok(d)
}

/// `Groups.list_images`: `{pool, pool_id, namespace, name, id, state}` each.
pub(crate) fn members<'py>(py: Python<'py>, members: &[MemberInfo]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for m in members {
        let d = PyDict::new(py);
        d.set_item("pool", &m.pool)?;
        d.set_item("pool_id", m.image.pool_id)?;
        d.set_item("namespace", &m.image.namespace)?;
        d.set_item("name", &m.name)?;
        d.set_item("id", &m.image.image_id)?;
        d.set_item("state", m.state)?;
        list.append(d)?;
    }
    Ok(list)
}

/// `Groups.groups_of_image`: `{pool, pool_id, namespace, group_id, name}` each.
pub(crate) fn image_groups<'py>(py: Python<'py>, groups: &[ImageGroup]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for g in groups {
        let d = PyDict::new(py);
        d.set_item("pool", &g.pool)?;
        d.set_item("pool_id", g.pool_id)?;
        d.set_item("namespace", &g.namespace)?;
        d.set_item("group_id", &g.group_id)?;
        d.set_item("name", &g.name)?;
        list.append(d)?;
    }
    Ok(list)
}

fn snapshot_image<'py>(py: Python<'py>, i: &SnapshotImage) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("pool", &i.pool)?;
    d.set_item("pool_id", i.image.pool_id)?;
    d.set_item("namespace", &i.image.namespace)?;
    d.set_item("image_id", &i.image.image_id)?;
    d.set_item("image_name", &i.image_name)?;
    d.set_item("snap_name", &i.snap_name)?;
    d.set_item("snap_id", i.snap_id)?;
    d.set_item("present", i.present)?;
    Ok(d)
}

/// `Groups.snap_info`: `{id, name, seq, state, created, images: [...]}`.
pub(crate) fn snapshot<'py>(py: Python<'py>, s: &SnapshotInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &s.id)?;
    d.set_item("name", &s.name)?;
    d.set_item("seq", s.seq)?;
    d.set_item("state", s.state)?;
    d.set_item("created", seconds(s.created_ms))?;
    let images = PyList::empty(py);
    for i in &s.images {
        images.append(snapshot_image(py, i)?)?;
    }
    d.set_item("images", images)?;
    d.set_item("journal_position", s.journal_position)?;
    Ok(d)
}

/// `Groups.journal_status`.
pub(crate) fn journal<'py>(py: Python<'py>, j: &JournalInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("enabled", j.enabled)?;
    d.set_item("state", j.state)?;
    d.set_item("head", j.head)?;
    d.set_item("applied", j.applied)?;
    d.set_item("bytes", j.bytes)?;
    d.set_item("max_bytes", j.max_bytes)?;
    d.set_item("segment_size", j.segment_size)?;
    d.set_item("segments", j.segments)?;
    match &j.writer {
        Some(w) => {
            let writer = PyDict::new(py);
            writer.set_item("epoch", w.epoch)?;
            writer.set_item("client", &w.client)?;
            writer.set_item("addr", &w.addr)?;
            writer.set_item("description", &w.description)?;
            writer.set_item("since", seconds(w.since_ms))?;
            d.set_item("writer", writer)?;
        }
        None => d.set_item("writer", py.None())?,
    }
    let consumers = PyList::empty(py);
    for c in &j.consumers {
        let consumer = PyDict::new(py);
        consumer.set_item("name", &c.name)?;
        consumer.set_item("position", c.position)?;
        consumer.set_item("state", c.state)?;
        consumer.set_item("updated", seconds(c.updated_ms))?;
        consumers.append(consumer)?;
    }
    d.set_item("consumers", consumers)?;
    let members = PyList::empty(py);
    for (tag, image, label) in &j.members {
        let member = PyDict::new(py);
        member.set_item("tag", tag)?;
        member.set_item("pool_id", image.pool_id)?;
        member.set_item("namespace", &image.namespace)?;
        member.set_item("id", &image.image_id)?;
        member.set_item("image", label)?;
        members.append(member)?;
    }
    d.set_item("members", members)?;
    Ok(d)
}

/// `Groups.mirror_status`: the fields of `MirrorStatus`, its two times (`last_snapshot_ms`,
/// `updated_ms`) as float seconds named `last_snapshot_time` and `updated`.
pub(crate) fn mirror_status<'py>(py: Python<'py>, s: &MirrorStatus) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("group", &s.group)?;
    d.set_item("enabled", s.enabled)?;
    d.set_item("mode", s.mode)?;
    d.set_item("role", s.role)?;
    d.set_item("state", &s.state)?;
    d.set_item("description", &s.description)?;
    d.set_item("primary_position", s.primary_position)?;
    d.set_item("mirror_position", s.mirror_position)?;
    d.set_item("entries_behind", s.entries_behind)?;
    d.set_item("seconds_behind", s.seconds_behind)?;
    d.set_item("last_snapshot", &s.last_snapshot)?;
    d.set_item("last_snapshot_time", s.last_snapshot_ms.map(seconds))?;
    d.set_item("demoted_at", s.demoted_at)?;
    d.set_item("resync_requested", s.resync_requested)?;
    let members = PyList::empty(py);
    for m in &s.members {
        let member = PyDict::new(py);
        member.set_item("image", &m.image)?;
        member.set_item("state", &m.state)?;
        member.set_item("progress", m.progress)?;
        members.append(member)?;
    }
    d.set_item("members", members)?;
    let peers = PyList::empty(py);
    for p in &s.peers {
        let peer = PyDict::new(py);
        peer.set_item("consumer", &p.consumer)?;
        peer.set_item("state", p.state)?;
        peer.set_item("position", p.position)?;
        peer.set_item("entries_behind", p.entries_behind)?;
        peers.append(peer)?;
    }
    d.set_item("peers", peers)?;
    d.set_item("daemon", &s.daemon)?;
    d.set_item("updated", if s.updated_ms == 0 { None } else { Some(seconds(s.updated_ms)) })?;
    Ok(d)
}

/// `Groups.snap_list`.
pub(crate) fn snapshots<'py>(py: Python<'py>, snapshots: &[SnapshotInfo]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for s in snapshots {
        list.append(snapshot(py, s)?)?;
    }
    Ok(list)
}

/// `Groups.clone`: `{source_pool_id, source_namespace, source_id, source_name,
/// source_snap, pool, pool_id, namespace, id, name}` each.
pub(crate) fn cloned<'py>(py: Python<'py>, images: &[ClonedImage]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for c in images {
        let d = PyDict::new(py);
        d.set_item("source_pool_id", c.source.pool_id)?;
        d.set_item("source_namespace", &c.source.namespace)?;
        d.set_item("source_id", &c.source.image_id)?;
        d.set_item("source_name", &c.source_name)?;
        d.set_item("source_snap", &c.source_snap)?;
        d.set_item("pool", &c.pool)?;
        d.set_item("pool_id", c.image.pool_id)?;
        d.set_item("namespace", &c.image.namespace)?;
        d.set_item("id", &c.image.image_id)?;
        d.set_item("name", &c.name)?;
        list.append(d)?;
    }
    Ok(list)
}

/// `[POOL[/NAMESPACE]/]NAME`; a bare `NAME` is in `default` (the `Groups`' pool and
/// namespace), not in the `rbd` pool the CLI would assume.
pub(crate) fn image_spec(spec: &str, default: &PoolSpec) -> Result<ImageSpec> {
    let mut parsed = ImageSpec::parse(spec)?;
    if !spec.contains('/') {
        parsed.location = default.clone();
    }
    Ok(parsed)
}

/// `"POOL[/NAMESPACE]"`, or `default` for `None`.
pub(crate) fn pool_spec(spec: Option<&str>, default: &PoolSpec) -> Result<PoolSpec> {
    match spec {
        None => Ok(default.clone()),
        Some("") => Err(invalid("image_pool must not be empty (give None for the group's pool)")),
        Some(spec) => PoolSpec::parse(spec),
    }
}

/// `"auto"`, `"v1"`/`"1"` or `"v2"`/`"2"`.
pub(crate) fn clone_format(format: &str) -> Result<CloneFormat> {
    match format {
        "auto" => Ok(CloneFormat::Auto),
        "v1" | "1" => Ok(CloneFormat::V1),
        "v2" | "2" => Ok(CloneFormat::V2),
        other => Err(invalid(format!("clone_format must be \"auto\", \"v1\" or \"v2\", not {other:?}"))),
    }
}

/// `"journal"` or `"snapshot"`.
pub(crate) fn mirror_mode(mode: &str) -> Result<MirrorMode> {
    match mode {
        "journal" => Ok(MirrorMode::Journal),
        "snapshot" => Ok(MirrorMode::Snapshot),
        other => Err(invalid(format!("mode must be \"journal\" or \"snapshot\", not {other:?}"))),
    }
}

/// A Python int limit as a `u32` (`None` = `default`); out of `1..=u32::MAX` is `ERANGE`.
pub(crate) fn limit(value: Option<i64>, what: &str, default: u32) -> Result<u32> {
    match value {
        None => Ok(default),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| out_of_range(format!("{what} must be a positive number, not {n}"))),
    }
}
