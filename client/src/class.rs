//! Typed calls of the `rbd_cg` class methods, and the check that the class is there.
//!
//! The method descriptors come from `rbd_cg_contract`, so a call can only send the
//! request type the class decodes and only expect the reply type it encodes.

use crate::error::{Error, Result};
use crate::rados::IoCtx;
use rbd_cg_contract::methods::{Empty, ReadMethod, WriteMethod, GET_VERSION};
use rbd_cg_contract::names::DIRECTORY_OBJECT;
use rbd_cg_contract::{decode, encode, Versioned, CLASS_NAME, PROTOCOL_MAX, PROTOCOL_MIN};

/// Calls a read method on `oid` and decodes its reply.
pub(crate) fn read<Req: Versioned, Reply: Versioned>(
    ioctx: &IoCtx,
    oid: &str,
    method: &ReadMethod<Req, Reply>,
    request: &Req,
) -> Result<Reply> {
    let reply = ioctx.exec_read(oid, CLASS_NAME, method.name, &encode(request)?)?;
    decode(&reply).map_err(|e| Error::from(e).context(format!("reply of {CLASS_NAME}.{} on {oid}", method.name)))
}

/// Calls a write method on `oid`.
pub(crate) fn write<Req: Versioned>(ioctx: &IoCtx, oid: &str, method: &WriteMethod<Req>, request: &Req) -> Result<()> {
    Ok(ioctx.exec_write(oid, CLASS_NAME, method.name, &encode(request)?)?)
}

/// One write call for [`write_batch`]: the method name and its encoded request.
pub(crate) fn call<Req: Versioned>(method: &WriteMethod<Req>, request: &Req) -> Result<(&'static str, Vec<u8>)> {
    Ok((method.name, encode(request)?))
}

/// Several write methods on `oid` in one atomic op: all take effect or none does.
pub(crate) fn write_batch(ioctx: &IoCtx, oid: &str, calls: &[(&'static str, Vec<u8>)]) -> Result<()> {
    let calls: Vec<(&str, &str, &[u8])> = calls.iter().map(|(m, req)| (CLASS_NAME, *m, req.as_slice())).collect();
    Ok(ioctx.exec_write_batch(oid, &calls)?)
}

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

/// Asks the class for its version on `cg_directory` and checks the protocol range.
///
/// Missing class or method: `EOPNOTSUPP` from the OSD. Not permitted to load or call it:
/// `EPERM`. Both come back with [`install_hint`].
pub fn check_class(ioctx: &IoCtx) -> Result<ClassStatus> {
    match read(ioctx, DIRECTORY_OBJECT, &GET_VERSION, &Empty {}) {
        Ok(v) => {
            let overlap = v.protocol_min <= PROTOCOL_MAX && PROTOCOL_MIN <= v.protocol_max;
            if !overlap {
                return Err(Error::new(
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
        Err(e) if matches!(e.errno(), libc::EOPNOTSUPP | libc::EPERM | libc::EIO) => {
            Err(e.context(format!("checking the {CLASS_NAME} class")).with_hint(install_hint()))
        }
        Err(e) => Err(e.context(format!("checking the {CLASS_NAME} class"))),
    }
}
