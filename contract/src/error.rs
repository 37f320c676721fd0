//! Errors both sides understand, each tied to one errno.
//!
//! A class method can hand the client nothing but a negative errno when it fails, so the
//! errno *is* the error on the wire. [`CgError::errno`] chooses it on the class side and
//! [`CgError::from_errno`] turns it back into a variant on the client side; the text of a
//! class-side error only reaches the OSD log.

/// An error with a precise errno. The `String` says what was wrong (for logs and messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgError {
    /// Malformed input, or a request that makes no sense (`EINVAL`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The object, key, group or entry does not exist (`ENOENT`).
    #[error("not found: {0}")]
    NotFound(String),
    /// The name, id or entry is already taken (`EEXIST`).
    #[error("already exists: {0}")]
    Exists(String),
    /// The target is in use or in the middle of another operation (`EBUSY`).
    #[error("busy: {0}")]
    Busy(String),
    /// A size, count or page is outside what is allowed (`ERANGE`).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The group is read-only here: non-primary in a mirrored pair, or a primary asked to do
    /// what only a non-primary does (`EROFS`).
    #[error("read-only: {0}")]
    ReadOnly(String),
    /// Not allowed (`EPERM`); cephx denials reach the client as this too.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The class does not know the method or the record version (`EOPNOTSUPP`).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Something failed inside the OSD, or a method panicked (`EIO`).
    #[error("I/O error: {0}")]
    Io(String),
    /// Any other errno, kept as it came.
    #[error("errno {0}")]
    Other(i32),
}

impl CgError {
    /// The positive errno this error travels as.
    pub fn errno(&self) -> i32 {
        match self {
            CgError::InvalidArgument(_) => libc::EINVAL,
            CgError::NotFound(_) => libc::ENOENT,
            CgError::Exists(_) => libc::EEXIST,
            CgError::Busy(_) => libc::EBUSY,
            CgError::OutOfRange(_) => libc::ERANGE,
            CgError::ReadOnly(_) => libc::EROFS,
            CgError::PermissionDenied(_) => libc::EPERM,
            CgError::Unsupported(_) => libc::EOPNOTSUPP,
            CgError::Io(_) => libc::EIO,
            CgError::Other(errno) => *errno,
        }
    }

    /// The variant for a (positive or negative) errno; the text is left empty.
    pub fn from_errno(errno: i32) -> CgError {
        let errno = errno.abs();
        let text = String::new();
        match errno {
            libc::EINVAL => CgError::InvalidArgument(text),
            libc::ENOENT => CgError::NotFound(text),
            libc::EEXIST => CgError::Exists(text),
            libc::EBUSY => CgError::Busy(text),
            libc::ERANGE => CgError::OutOfRange(text),
            libc::EROFS => CgError::ReadOnly(text),
            libc::EPERM | libc::EACCES => CgError::PermissionDenied(text),
            libc::EOPNOTSUPP => CgError::Unsupported(text),
            libc::EIO => CgError::Io(text),
            other => CgError::Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips_for_every_named_variant() {
        for errno in [
            libc::EINVAL,
            libc::ENOENT,
            libc::EEXIST,
            libc::EBUSY,
            libc::ERANGE,
            libc::EROFS,
            libc::EPERM,
            libc::EOPNOTSUPP,
            libc::EIO,
            libc::ENOSPC,
        ] {
            assert_eq!(CgError::from_errno(-errno).errno(), errno);
        }
    }
}
