//! `get_version`: lets a client check, before anything else, that the class is loaded
//! and speaks its protocol.

use crate::ObjectStore;
use rbd_cg_contract::methods::{Empty, VersionReply};
use rbd_cg_contract::{CgError, CLASS_VERSION, PROTOCOL_MAX, PROTOCOL_MIN};

/// Reports the class version and protocol range. Touches no object.
pub fn get_version(_store: &mut dyn ObjectStore, _req: Empty) -> Result<VersionReply, CgError> {
    Ok(VersionReply { class_version: CLASS_VERSION.to_owned(), protocol_min: PROTOCOL_MIN, protocol_max: PROTOCOL_MAX })
}

/// Panics on purpose (registered only with the `fault-injection` feature) so that tests
/// can prove that a panic inside a method turns into `EIO` and leaves the OSD running.
#[cfg(feature = "fault-injection")]
pub fn test_panic(_store: &mut dyn ObjectStore, _req: Empty) -> Result<Empty, CgError> {
    panic!("test_panic was called: this panic is deliberate");
}
