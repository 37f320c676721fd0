//! The lookups every group operation starts with, in one place: a name's directory entry,
//! a group's header, its members, its snapshot records and an unfinished clone's plan.
//! Each is one class read (or one per page); the operations that change things are in
//! their own modules.

use crate::error::{Error, Result};
use crate::groups::Groups;
use rbd_cg_contract::methods::{
    Empty, IdRequest, SnapListRequest, SnapRequest, CLONE_GET, GROUP_GET, MAX_LIST_PAGE, SNAP_GET, SNAP_LIST,
};
use rbd_cg_contract::names::header_object;
use rbd_cg_contract::records::{
    ClonePlan, DirEntry, DirState, GroupHeader, GroupRef, MemberRecord, SnapInProgress, SnapshotRecord,
};

impl Groups {
    pub(crate) fn dir_entry(&self, name: &str) -> Result<Option<DirEntry>> {
        Ok(rbd_cg_rados::rbd_cg::dir_entry(&self.ioctx, name)?)
    }

    pub(crate) fn header(&self, id: &str) -> Result<Option<GroupHeader>> {
        match self.ioctx.call(&header_object(id), &GROUP_GET, &Empty {}) {
            Ok(header) => Ok(Some(header)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The id of group `name`, which must be complete.
    pub(crate) fn ready_group_id(&self, name: &str, doing: &str) -> Result<String> {
        let context = || format!("{doing} group {}", self.spec(name));
        let entry = self.dir_entry(name)?.ok_or_else(|| Error::new(context(), libc::ENOENT))?;
        if entry.state != DirState::Ready {
            return Err(Error::new(format!("{}: group is {:?}", context(), entry.state), libc::EBUSY)
                .with_hint("An earlier operation on it was interrupted: rerun it, or run `rbd-cg repair`."));
        }
        Ok(entry.id)
    }

    pub(crate) fn group_ref(&self, group_id: &str) -> GroupRef {
        GroupRef {
            pool_id: self.ioctx.pool_id(),
            namespace: self.location.namespace.clone(),
            group_id: group_id.to_owned(),
        }
    }

    /// Every member record of group `group_id`, page by page.
    pub(crate) fn member_records(&self, group_id: &str) -> Result<Vec<MemberRecord>> {
        Ok(rbd_cg_rados::rbd_cg::member_records(&self.ioctx, group_id)?)
    }

    pub(crate) fn snap_record(&self, group_id: &str, name: &str) -> Result<SnapshotRecord> {
        let request = SnapRequest { group_id: group_id.into(), name: name.into() };
        Ok(self.ioctx.call(&header_object(group_id), &SNAP_GET, &request)?)
    }

    /// Every snapshot record of the group (page by page) and the operation in progress.
    pub(crate) fn snap_records(&self, group_id: &str) -> Result<(Vec<SnapshotRecord>, Option<SnapInProgress>)> {
        let mut records = Vec::new();
        let mut after = 0;
        loop {
            let request = SnapListRequest { start_after_seq: after, max_entries: MAX_LIST_PAGE };
            let page = self.ioctx.call(&header_object(group_id), &SNAP_LIST, &request)?;
            after = page.snapshots.last().map_or(after, |s| s.seq);
            let done = !page.more || page.snapshots.is_empty();
            records.extend(page.snapshots);
            if done {
                return Ok((records, page.in_progress));
            }
        }
    }

    /// The clone plan recorded on group `id`'s header, if any.
    pub(crate) fn clone_plan(&self, id: &str) -> Result<Option<ClonePlan>> {
        match self.ioctx.call(&header_object(id), &CLONE_GET, &IdRequest { id: id.into() }) {
            Ok(plan) => Ok(Some(plan)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
