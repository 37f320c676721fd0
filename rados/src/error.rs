//! Errors of librados and librbd calls, and the C-string plumbing every call shares.
//!
//! A C call returns `>= 0` or `-errno`; `check` turns that into a [`RadosError`] that
//! names the operation, so a message reads like a Ceph tool's:
//! `rados_connect: (2) No such file or directory`. C strings go through `cstring`, so an
//! interior NUL is `EINVAL` instead of a silently truncated name.

use std::ffi::{c_char, c_int, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Error from a librados / librbd call: what failed and the (positive) errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: ({errno}) {}", strerror(*errno))]
pub struct RadosError {
    /// What failed, e.g. `"rados_connect"` or
    /// `"exec rbd_cg.group_create on cg_header.x"`.
    pub op: String,
    /// Positive errno value (`libc::ENOENT`, ...).
    pub errno: i32,
    /// What to do about it, when that is known (shown after the error line).
    pub hint: Option<String>,
}

/// Result of a librados / librbd operation.
pub type RadosResult<T> = Result<T, RadosError>;

impl RadosError {
    /// Builds an error; `errno` may be given with either sign (C APIs return
    /// `-errno`), it is stored as a positive value.
    pub fn new(op: impl Into<String>, errno: i32) -> Self {
        RadosError { op: op.into(), errno: errno.checked_abs().unwrap_or(i32::MAX), hint: None }
    }

    /// Adds advice for whoever reads the error.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes what was being done: `"<context>: <previous op>"`.
    #[must_use]
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.op = format!("{context}: {}", self.op);
        self
    }

    /// True for `ENOENT` (no such object / pool / image).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.errno == libc::ENOENT
    }
}

/// Text of an errno value, like `strerror(3)`.
fn strerror(errno: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for `buf.len()` bytes for the duration of the
    // call. The libc crate binds the XSI variant on glibc (`__xpg_strerror_r`),
    // which writes a NUL-terminated message of at most `buflen` bytes into
    // `buf` and returns 0 on success.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    match CStr::from_bytes_until_nul(&buf) {
        Ok(s) if rc == 0 => s.to_string_lossy().into_owned(),
        _ => std::io::Error::from_raw_os_error(errno).to_string(),
    }
}

/// Converts a C return value (`>= 0` success, `-errno` failure).
pub(crate) fn check(ret: c_int, op: impl FnOnce() -> String) -> RadosResult<c_int> {
    if ret < 0 {
        Err(RadosError::new(op(), ret))
    } else {
        Ok(ret)
    }
}

/// `CString::new` that reports an interior NUL as `EINVAL` for `what`.
pub(crate) fn cstring(s: &str, what: impl FnOnce() -> String) -> RadosResult<CString> {
    CString::new(s).map_err(|_| RadosError::new(format!("{}: contains a NUL byte", what()), libc::EINVAL))
}

pub(crate) fn path_cstring(p: &Path, what: &str) -> RadosResult<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| RadosError::new(format!("{what}: path {} contains a NUL byte", p.display()), libc::EINVAL))
}

/// Copies a NUL-terminated C string owned by librados into a `String`.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string that stays valid for
/// the duration of the call.
pub(crate) unsafe fn owned_string(p: *const c_char, what: impl FnOnce() -> String) -> RadosResult<String> {
    if p.is_null() {
        return Err(RadosError::new(format!("{}: null string", what()), libc::EIO));
    }
    // SAFETY: guaranteed by the caller (see the function's safety contract).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(str::to_owned).map_err(|_| RadosError::new(format!("{}: not UTF-8", what()), libc::EILSEQ))
}

/// Calls `fill(buf, len)` with growing buffers until it stops returning
/// `-ERANGE`, then returns the NUL-terminated string it wrote.
pub(crate) fn read_c_string(op: &str, mut fill: impl FnMut(*mut c_char, usize) -> c_int) -> RadosResult<String> {
    let mut len = 128usize;
    loop {
        let mut buf = vec![0u8; len];
        let ret = fill(buf.as_mut_ptr().cast::<c_char>(), buf.len());
        if ret == -libc::ERANGE && len < MAX_NAME_BUF {
            len *= 2;
            continue;
        }
        check(ret, || op.to_owned())?;
        let s = CStr::from_bytes_until_nul(&buf)
            .map_err(|_| RadosError::new(format!("{op}: unterminated string"), libc::EIO))?;
        return s.to_str().map(str::to_owned).map_err(|_| RadosError::new(format!("{op}: not UTF-8"), libc::EILSEQ));
    }
}

/// Largest buffer tried for pool / image / namespace names.
const MAX_NAME_BUF: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    #[test]
    fn error_display_has_op_errno_and_text() {
        let e = RadosError::new("rados_connect", -libc::ENOENT);
        assert_eq!(e.errno, libc::ENOENT);
        assert_eq!(e.to_string(), "rados_connect: (2) No such file or directory");
        assert!(e.is_not_found());
    }

    #[test]
    fn error_errno_is_positive_even_for_extremes() {
        assert_eq!(RadosError::new("x", i32::MIN).errno, i32::MAX);
        assert_eq!(RadosError::new("x", libc::EINVAL).errno, libc::EINVAL);
    }

    #[test]
    fn unknown_errno_still_displays() {
        let e = RadosError::new("op", 4000);
        assert!(e.to_string().starts_with("op: (4000) "), "{e}");
    }

    #[test]
    fn check_maps_negative_returns() {
        assert_eq!(check(5, || "op".into()), Ok(5));
        let e = check(-libc::EEXIST, || "op".into()).err();
        assert_eq!(e.map(|e| e.errno), Some(libc::EEXIST));
    }

    #[test]
    fn interior_nul_is_einval() {
        let e = cstring("a\0b", || "thing".into()).err();
        assert_eq!(e.as_ref().map(|e| e.errno), Some(libc::EINVAL));
        assert!(e.map(|e| e.op).unwrap_or_default().contains("thing"));
        assert!(cstring("ok", || "thing".into()).is_ok());
    }

    #[test]
    fn read_c_string_grows_on_erange() {
        let name = "x".repeat(300);
        let mut calls = 0;
        let s = read_c_string("op", |buf, len| {
            calls += 1;
            if len <= name.len() {
                return -libc::ERANGE;
            }
            let bytes = name.as_bytes();
            // SAFETY: `buf` has `len > bytes.len()` writable bytes.
            unsafe {
                ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
                *buf.add(bytes.len()) = 0;
            }
            c_int::try_from(bytes.len()).unwrap_or(c_int::MAX)
        });
        assert_eq!(s.as_deref(), Ok(name.as_str()));
        assert_eq!(calls, 3); // 128, 256, 512
    }

    #[test]
    fn read_c_string_gives_up() {
        let e = read_c_string("op", |_, _| -libc::ERANGE).err();
        assert_eq!(e.map(|e| e.errno), Some(libc::ERANGE));
    }
}
