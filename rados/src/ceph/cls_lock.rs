//! The `cls_lock` methods we call (class `lock`, `src/cls/lock/cls_lock.cc`), typed, and
//! librbd's conventions for its exclusive lock.
//!
//! librbd's exclusive lock is a `cls_lock` lock named `rbd_lock`, tag `internal`, cookie
//! `auto <watch handle>` on `rbd_header.<id>`; with the object-map feature a second lock of
//! the same name (empty cookie and tag) guards `rbd_object_map.<id>`. Listing, unlocking
//! and breaking go through librados' C API ([`crate::IoCtx::list_lockers`] and friends);
//! taking and asserting go through these descriptors so they can share an atomic op with
//! the write they guard.

use super::encoding::{Encode, Writer};
use crate::cls::{StockRead, StockWrite};

/// librbd's exclusive-lock name on `rbd_header.<id>` and `rbd_object_map.<id>`.
pub const RBD_LOCK_NAME: &str = "rbd_lock";
/// The tag every librbd/krbd exclusive-lock owner uses.
pub const RBD_LOCK_TAG: &str = "internal";
/// `ClsLockType::EXCLUSIVE`.
const LOCK_EXCLUSIVE: u8 = 1;

/// librbd's lock cookie for a watch handle: `auto <handle>`.
pub fn lock_cookie(handle: u64) -> String {
    format!("auto {handle}")
}

/// The watch handle in an `auto <handle>` cookie; `None` for any other cookie (an
/// "external" lock that librbd itself refuses to break).
pub fn parse_lock_cookie(cookie: &str) -> Option<u64> {
    cookie.strip_prefix("auto ")?.parse().ok()
}

/// `cls_lock_lock_op`: an exclusive lock that expires after `duration_secs` (0 = never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// Lock name.
    pub name: String,
    /// Cookie.
    pub cookie: String,
    /// Tag.
    pub tag: String,
    /// Shown by `rados lock info` / `rbd lock ls`.
    pub description: String,
    /// Expiry in seconds (0 = never).
    pub duration_secs: u32,
    /// `LOCK_FLAG_MAY_RENEW`: taking it again with the same cookie restarts its expiry
    /// (without it that is `EEXIST`).
    pub may_renew: bool,
}

impl Encode for LockRequest {
    fn encode(&self, w: &mut Writer) {
        w.versioned(1, 1, |w| {
            w.string(&self.name).u8(LOCK_EXCLUSIVE).string(&self.cookie).string(&self.tag).string(&self.description);
            w.u32(self.duration_secs).u32(0); // utime_t: seconds, nanoseconds
            w.u8(u8::from(self.may_renew)); // flags: LOCK_FLAG_MAY_RENEW = 1
        });
    }
}

/// `cls_lock_assert_op`: the caller holds exclusive lock `name` with this cookie and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertLocked {
    /// Lock name.
    pub name: String,
    /// Cookie.
    pub cookie: String,
    /// Tag.
    pub tag: String,
}

impl Encode for AssertLocked {
    fn encode(&self, w: &mut Writer) {
        w.versioned(1, 1, |w| {
            w.string(&self.name).u8(LOCK_EXCLUSIVE).string(&self.cookie).string(&self.tag);
        });
    }
}

/// Takes a lock (`EBUSY` when another holder has it, `EEXIST` when we already do).
pub const LOCK: StockWrite<LockRequest> = StockWrite::new("lock", "lock");
/// Fails (`EBUSY`) unless the caller holds the lock: put in front of a write to guard it.
pub const ASSERT_LOCKED: StockRead<AssertLocked, ()> = StockRead::new("lock", "assert_locked");

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn cls_lock_requests_match_golden_bytes() {
        let cookie = lock_cookie(0x0000_5600_1234_5678);
        assert_eq!(cookie, "auto 94558305408632");
        assert_eq!(parse_lock_cookie(&cookie), Some(0x0000_5600_1234_5678));
        assert_eq!(parse_lock_cookie("external"), None);
        let lock = LockRequest {
            name: RBD_LOCK_NAME.into(),
            cookie: cookie.clone(),
            tag: RBD_LOCK_TAG.into(),
            description: "rbd-cg fence 0123456789abcdef/fedcba98".into(),
            duration_secs: 30,
            may_renew: false,
        }
        .to_bytes();
        assert_eq!(lock.len(), 105);
        assert_eq!(hex(&lock[..6]), "01 01 63 00 00 00");
        assert_eq!(hex(&lock[lock.len() - 9..]), "1e 00 00 00 00 00 00 00 00");
        let assert_op = AssertLocked { name: RBD_LOCK_NAME.into(), cookie, tag: RBD_LOCK_TAG.into() }.to_bytes();
        assert_eq!(assert_op.len(), 54);
        assert_eq!(hex(&assert_op[..6]), "01 01 30 00 00 00");
    }
}
