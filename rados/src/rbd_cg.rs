//! Our own class, `rbd_cg`, as a client sees it: whether the OSDs run it, and which
//! version; and the two reads every client of a group starts with (a name's directory entry,
//! a group's members), shared by the control plane and the data path.
//!
//! Its method descriptors come from `rbd_cg_contract::methods` and are called like any
//! other class method through [`crate::cls`] (`ioctx.call(oid, &GROUP_GET, &Empty {})`),
//! so a call can only send the request type the class decodes and only expect the reply
//! type it encodes.

use crate::error::{RadosError, RadosResult};
use crate::ioctx::IoCtx;
use rbd_cg_contract::methods::{
    Empty, MemberListRequest, NameRequest, VersionReply, DIR_GET, GET_VERSION, MAX_LIST_PAGE, MEMBER_LIST,
};
use rbd_cg_contract::names::{header_object, DIRECTORY_OBJECT};
use rbd_cg_contract::records::{DirEntry, MemberRecord};
use rbd_cg_contract::{CLASS_NAME, PROTOCOL_MAX, PROTOCOL_MIN};

/// What [`check_class`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassStatus {
    /// The class answered with its version.
    Version {
        /// Class crate version.
        class_version: String,
        /// Protocol range it speaks.
        protocol: (u16, u16),
    },
    /// The class and method are registered, but the pool has no directory yet, so no
    /// object exists to ask (the OSD resolves the method before it checks the object).
    PresentNoDirectory,
}

/// The config and caps an operator needs, for the error when the class is missing.
pub fn install_hint() -> String {
    format!(
        "The OSDs cannot run the `{CLASS_NAME}` object class. Install libcls_{CLASS_NAME}.so (this \
         version or newer) into every OSD's `osd class dir` (e.g. /usr/lib/x86_64-linux-gnu/rados-classes), \
         set in ceph.conf [osd] (or `ceph config set osd ...`):\n    osd class load list = {CLASS_NAME}  \
         (or *, plus the classes already listed)\n    osd class default list = {CLASS_NAME}  (or *; else \
         give clients `allow class {CLASS_NAME}` in their osd caps)\nand restart the OSDs one at a time. \
         See README.md, \"Installing the class on a cluster\"."
    )
}

/// The class's version as reported on object `oid` (so by the OSD that holds `oid`).
pub fn class_version(ioctx: &IoCtx, oid: &str) -> RadosResult<VersionReply> {
    ioctx.call(oid, &GET_VERSION, &Empty {})
}

/// The release whose class first has the group journal's methods (`journal_*`, `segment_*`,
/// `image_journal_fence`, `snap_*_journal_position`), as (major, minor).
pub const JOURNAL_METHODS_SINCE: (u64, u64) = (0, 2);

/// (major, minor) of a class version string (`"0.1.0"`, `"0.2.0-dev"`); `None` if it is not
/// one.
pub fn major_minor(class_version: &str) -> Option<(u64, u64)> {
    let mut parts = class_version.split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the class that leads object `oid` (its primary OSD's) is older than release
/// `since`: how a client tells, from an `EOPNOTSUPP`, that this OSD still runs a class
/// without a method (the mixed period of a rolling upgrade, docs/PRODUCTION.md) rather than
/// that a record is too new for it. A class whose version cannot be read counts as older.
pub fn class_predates(ioctx: &IoCtx, oid: &str, since: (u64, u64)) -> RadosResult<bool> {
    let reply = class_version(ioctx, oid)?;
    Ok(major_minor(&reply.class_version).is_none_or(|version| version < since))
}

/// Asks the class for its version on `cg_directory` and checks the protocol range.
///
/// Missing class or method: `EOPNOTSUPP` from the OSD. Not permitted to load or call it:
/// `EPERM`. Both come back with [`install_hint`].
pub fn check_class(ioctx: &IoCtx) -> RadosResult<ClassStatus> {
    let context = || format!("checking the {CLASS_NAME} class");
    match class_version(ioctx, DIRECTORY_OBJECT) {
        Ok(v) => {
            let overlap = v.protocol_min <= PROTOCOL_MAX && PROTOCOL_MIN <= v.protocol_max;
            if !overlap {
                return Err(RadosError::new(
                    format!(
                        "class {CLASS_NAME} {} speaks protocol {}..={}, this client {PROTOCOL_MIN}..={PROTOCOL_MAX}",
                        v.class_version, v.protocol_min, v.protocol_max
                    ),
                    libc::EOPNOTSUPP,
                )
                .with_hint(install_hint()));
            }
            Ok(ClassStatus::Version { class_version: v.class_version, protocol: (v.protocol_min, v.protocol_max) })
        }
        Err(e) if e.is_not_found() => Ok(ClassStatus::PresentNoDirectory),
        Err(e) if matches!(e.errno, libc::EOPNOTSUPP | libc::EPERM | libc::EIO) => {
            Err(e.context(context()).with_hint(install_hint()))
        }
        Err(e) => Err(e.context(context())),
    }
}

/// The directory entry of group `name` in `ioctx`'s pool and namespace; `None` when there is
/// no such group (or no directory yet).
pub fn dir_entry(ioctx: &IoCtx, name: &str) -> RadosResult<Option<DirEntry>> {
    match ioctx.call(DIRECTORY_OBJECT, &DIR_GET, &NameRequest { name: name.into() }) {
        Ok(entry) => Ok(Some(entry)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every member record of group `group_id`, page by page.
pub fn member_records(ioctx: &IoCtx, group_id: &str) -> RadosResult<Vec<MemberRecord>> {
    let mut records = Vec::new();
    let mut start_after = None;
    loop {
        let request = MemberListRequest { start_after: start_after.clone(), max_entries: MAX_LIST_PAGE };
        let page = ioctx.call(&header_object(group_id), &MEMBER_LIST, &request)?;
        start_after = page.members.last().map(|m| m.image.clone());
        records.extend(page.members);
        if !page.more || start_after.is_none() {
            return Ok(records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_versions_compare_by_release() {
        assert_eq!(major_minor("0.1.0"), Some((0, 1)));
        assert_eq!(major_minor("0.2.0-dev"), Some((0, 2)));
        assert_eq!(major_minor("1.10.3+g1234"), Some((1, 10)));
        assert_eq!(major_minor("x"), None);
        assert!(major_minor("0.1.0").is_some_and(|v| v < JOURNAL_METHODS_SINCE));
        assert!(major_minor("0.2.0-dev").is_some_and(|v| v >= JOURNAL_METHODS_SINCE));
    }
}
