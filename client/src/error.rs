//! The client's error: what failed, the errno, and optionally what to do about it.
//!
//! Every failure carries an errno because that is what Ceph tools report and what
//! scripts test for; `rbd-cg` prints `rbd-cg: <what failed>: (<errno>) <strerror>`.

use rbd_cg_contract::CgError;
use rbd_cg_rados::RadosError;

/// A failed client operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct Error {
    context: String,
    errno: i32,
    hint: Option<String>,
    injected: bool,
}

/// Result of a client operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error for `errno` (either sign) while doing `context`.
    pub fn new(context: impl Into<String>, errno: i32) -> Error {
        Error { context: context.into(), errno: errno.checked_abs().unwrap_or(libc::EIO), hint: None, injected: false }
    }

    /// An error made by fault injection: the operation stops dead, and nothing (no undo)
    /// may run after it, as after a crash.
    pub(crate) fn injected(context: impl Into<String>) -> Error {
        Error { injected: true, ..Error::new(context, libc::EINTR) }
    }

    /// Whether fault injection made this error (see [`crate::faults`]).
    pub fn is_injected(&self) -> bool {
        self.injected
    }

    /// Adds advice printed after the error line.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes what was being done: `"<context>: <previous context>"`.
    #[must_use]
    pub fn context(mut self, context: impl std::fmt::Display) -> Error {
        self.context = format!("{context}: {}", self.context);
        self
    }

    /// The positive errno.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The advice, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether this is `ENOENT`.
    pub fn is_not_found(&self) -> bool {
        self.errno == libc::ENOENT
    }

    fn render(&self) -> String {
        let text = std::io::Error::from_raw_os_error(self.errno).to_string();
        // std appends " (os error N)"; Ceph tools print "(N) text".
        let text = text.split(" (os error").next().unwrap_or(&text);
        match &self.hint {
            Some(hint) => format!("{}: ({}) {text}\n{hint}", self.context, self.errno),
            None => format!("{}: ({}) {text}", self.context, self.errno),
        }
    }
}

impl From<RadosError> for Error {
    fn from(e: RadosError) -> Error {
        Error { hint: e.hint, ..Error::new(e.op, e.errno) }
    }
}

impl From<CgError> for Error {
    fn from(e: CgError) -> Error {
        Error::new(e.to_string(), e.errno())
    }
}

/// Treats `ENOENT` as "already done" in steps that remove things.
pub(crate) fn ignore_missing(result: Result<(), impl Into<Error>>) -> Result<()> {
    match result.map_err(Into::into) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_ceph_tools() {
        let e = Error::new("exec", -libc::EEXIST).context("creating group rbd/db");
        assert_eq!(e.to_string(), "creating group rbd/db: exec: (17) File exists");
        assert_eq!(e.errno(), libc::EEXIST);
        let e = e.with_hint("try another name");
        assert!(e.to_string().ends_with("\ntry another name"));
    }
}
