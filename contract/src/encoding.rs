//! The versioned binary envelope around every stored record and every request/response.
//!
//! Layout (all integers little-endian), modelled on Ceph's own `ENCODE_START`:
//!
//! ```text
//! offset 0  u8   struct_v     version the writer encoded
//! offset 1  u8   compat_v     oldest version a reader must understand to decode it
//! offset 2  u32  payload_len  number of payload bytes that follow
//! offset 6  ...  payload      bincode 2.x, fixed-width little-endian integers
//! ```
//!
//! Versions work both ways, as Ceph's `DECODE_START` / `if (struct_v >= 2)` does:
//!
//! - **Newer writer, older reader.** A reader accepts any `struct_v` whose `compat_v` it
//!   understands; fields appended by the newer writer are skipped because the payload
//!   length is known. A writer raises `compat_v` for a value an older reader must not
//!   decode, because dropping the new fields would change its meaning
//!   ([`Versioned::compat_v`], e.g. a group header with a feature the old class does not
//!   know: the old class then answers `EOPNOTSUPP` instead of rewriting it without it).
//! - **Older writer, newer reader.** Every type keeps the layout of each earlier version
//!   it had (`crate::history`) and converts it ([`Versioned::decode_older`]), so a record
//!   written by any earlier release still reads — and is written back in the current
//!   version by the next change.
//!
//! Decoding never trusts a length it has not checked: the whole input is bounded by the
//! type's [`Versioned::MAX_ENCODED_LEN`] before anything is allocated, and bincode runs
//! with a hard allocation limit. Nothing here can panic on hostile input.

use crate::error::CgError;
use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use serde::{de::DeserializeOwned, Serialize};

/// Size of the envelope header in bytes.
pub const ENVELOPE_HEADER_LEN: usize = 6;

/// Upper bound on any payload, whatever the type (1 MiB).
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;

type WireConfig = Configuration<LittleEndian, Fixint, Limit<MAX_PAYLOAD_LEN>>;

/// The one bincode configuration used on the wire and on disk. Changing it changes
/// every byte layout, which the golden tests will catch.
const fn wire_config() -> WireConfig {
    bincode::config::standard().with_little_endian().with_fixed_int_encoding().with_limit::<MAX_PAYLOAD_LEN>()
}

/// A type that travels inside the envelope.
pub trait Versioned: Serialize + DeserializeOwned {
    /// Human name, for error messages.
    const TYPE_NAME: &'static str;
    /// Version this build writes.
    const STRUCT_V: u8;
    /// Oldest reader version that can decode what this build writes.
    const COMPAT_V: u8;
    /// Longest encoded form (header included) accepted on decode.
    const MAX_ENCODED_LEN: usize;

    /// The `compat_v` written for this value: the oldest reader that may decode it. Raised
    /// above [`Self::COMPAT_V`] for values whose new fields an older reader must not drop.
    fn compat_v(&self) -> u8 {
        Self::COMPAT_V
    }

    /// Decodes the payload of an earlier version `struct_v` (< [`Self::STRUCT_V`]) into the
    /// current layout. Types that never changed have no earlier version to read.
    fn decode_older(struct_v: u8, _payload: &[u8]) -> Result<Self, CgError> {
        Err(CgError::InvalidArgument(format!("{} has no version {struct_v}", Self::TYPE_NAME)))
    }
}

/// Decodes a payload that must be exactly one `T` in the wire layout (no trailing bytes):
/// for [`Versioned::decode_older`], with an earlier version's layout as `T`.
pub fn decode_exact<T: DeserializeOwned>(type_name: &str, struct_v: u8, payload: &[u8]) -> Result<T, CgError> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(payload, wire_config())
        .map_err(|e| CgError::InvalidArgument(format!("decoding {type_name} version {struct_v}: {e}")))?;
    if used != payload.len() {
        return Err(CgError::InvalidArgument(format!(
            "{type_name} version {struct_v}: {} trailing bytes",
            payload.len() - used
        )));
    }
    Ok(value)
}

/// Declares a [`Versioned`] implementation:
/// `versioned!(Type, "name", struct_v, compat_v, max_len)`, or, for a type with earlier
/// versions, `versioned!(Type, "name", struct_v, compat_v, max_len, older { 1 => V1Layout, ... })`
/// where each `VnLayout` is that version's layout and converts `Into<Type>`.
#[macro_export]
macro_rules! versioned {
    ($ty:ty, $name:literal, $struct_v:literal, $compat_v:literal, $max_len:expr) => {
        impl $crate::encoding::Versioned for $ty {
            const TYPE_NAME: &'static str = $name;
            const STRUCT_V: u8 = $struct_v;
            const COMPAT_V: u8 = $compat_v;
            const MAX_ENCODED_LEN: usize = $max_len;
        }
    };
    ($ty:ty, $name:literal, $struct_v:literal, $compat_v:literal, $max_len:expr, older { $($v:literal => $old:ty),+ $(,)? }) => {
        impl $crate::encoding::Versioned for $ty {
            const TYPE_NAME: &'static str = $name;
            const STRUCT_V: u8 = $struct_v;
            const COMPAT_V: u8 = $compat_v;
            const MAX_ENCODED_LEN: usize = $max_len;
            fn decode_older(struct_v: u8, payload: &[u8]) -> Result<Self, $crate::CgError> {
                match struct_v {
                    $($v => $crate::encoding::decode_exact::<$old>($name, struct_v, payload).map(Into::into),)+
                    other => Err($crate::CgError::InvalidArgument(format!("{} has no version {other}", $name))),
                }
            }
        }
    };
}

/// Encodes `value` in its envelope.
pub fn encode<T: Versioned>(value: &T) -> Result<Vec<u8>, CgError> {
    let payload = bincode::serde::encode_to_vec(value, wire_config())
        .map_err(|e| CgError::Io(format!("encoding {}: {e}", T::TYPE_NAME)))?;
    let payload_len =
        u32::try_from(payload.len()).map_err(|_| CgError::OutOfRange(format!("{} payload too large", T::TYPE_NAME)))?;
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + payload.len());
    out.push(T::STRUCT_V);
    out.push(value.compat_v());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&payload);
    if out.len() > T::MAX_ENCODED_LEN {
        return Err(CgError::OutOfRange(format!(
            "{} encodes to {} bytes, more than the {} allowed",
            T::TYPE_NAME,
            out.len(),
            T::MAX_ENCODED_LEN
        )));
    }
    Ok(out)
}

/// Decodes an envelope holding a `T`, of any version this build can read: the current one,
/// a newer compatible one (its appended fields skipped), or an earlier one (converted).
///
/// Errors: `ERANGE` when the input is longer than `T` may be, `EINVAL` when it is
/// malformed or has trailing bytes, `EOPNOTSUPP` when it needs a newer reader.
pub fn decode<T: Versioned>(bytes: &[u8]) -> Result<T, CgError> {
    if bytes.len() > T::MAX_ENCODED_LEN {
        return Err(CgError::OutOfRange(format!(
            "{} input of {} bytes exceeds the {} allowed",
            T::TYPE_NAME,
            bytes.len(),
            T::MAX_ENCODED_LEN
        )));
    }
    let Some((header, payload)) = bytes.split_at_checked(ENVELOPE_HEADER_LEN) else {
        return Err(CgError::InvalidArgument(format!(
            "{}: {} bytes is too short for an envelope",
            T::TYPE_NAME,
            bytes.len()
        )));
    };
    let (struct_v, compat_v) = (header[0], header[1]);
    let payload_len = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if struct_v == 0 || compat_v == 0 || compat_v > struct_v {
        return Err(CgError::InvalidArgument(format!("{}: bad envelope versions {struct_v}/{compat_v}", T::TYPE_NAME)));
    }
    if payload_len != payload.len() {
        return Err(CgError::InvalidArgument(format!(
            "{}: envelope says {payload_len} payload bytes, {} present",
            T::TYPE_NAME,
            payload.len()
        )));
    }
    if compat_v > T::STRUCT_V {
        return Err(CgError::Unsupported(format!(
            "{} version {struct_v} needs a reader of version {compat_v}; this one is {}",
            T::TYPE_NAME,
            T::STRUCT_V
        )));
    }
    if struct_v < T::STRUCT_V {
        return T::decode_older(struct_v, payload);
    }
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(payload, wire_config())
        .map_err(|e| CgError::InvalidArgument(format!("decoding {}: {e}", T::TYPE_NAME)))?;
    // Same version: every byte must be ours. Newer writer: the tail holds fields we skip.
    if used != payload.len() && struct_v == T::STRUCT_V {
        return Err(CgError::InvalidArgument(format!("{}: {} trailing bytes", T::TYPE_NAME, payload.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Probe {
        a: u32,
        s: String,
    }
    versioned!(Probe, "Probe", 2, 1, 64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ProbeV3 {
        a: u32,
        s: String,
        extra: u64,
    }
    versioned!(ProbeV3, "Probe", 3, 1, 64);

    /// Probe's version 1: `a` only.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ProbeV1 {
        a: u32,
    }
    versioned!(ProbeV1, "Probe", 1, 1, 64);

    impl From<ProbeV1> for Probe {
        fn from(v1: ProbeV1) -> Probe {
            Probe { a: v1.a, s: "from v1".into() }
        }
    }

    /// Probe as a reader that also knows version 1.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ProbeReadsV1 {
        a: u32,
        s: String,
    }
    versioned!(ProbeReadsV1, "Probe", 2, 1, 64, older { 1 => ProbeV1 });

    impl From<ProbeV1> for ProbeReadsV1 {
        fn from(v1: ProbeV1) -> ProbeReadsV1 {
            ProbeReadsV1 { a: v1.a, s: "from v1".into() }
        }
    }

    /// A value whose compat_v depends on its content.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Guarded {
        a: u32,
        critical: bool,
    }
    impl Versioned for Guarded {
        const TYPE_NAME: &'static str = "Guarded";
        const STRUCT_V: u8 = 2;
        const COMPAT_V: u8 = 1;
        const MAX_ENCODED_LEN: usize = 64;
        fn compat_v(&self) -> u8 {
            if self.critical {
                2
            } else {
                1
            }
        }
    }

    #[test]
    fn an_older_version_is_read_through_its_own_layout() {
        let v1 = encode(&ProbeV1 { a: 7 }).unwrap();
        assert_eq!(v1[..2], [1, 1]);
        assert_eq!(decode::<ProbeReadsV1>(&v1).unwrap(), ProbeReadsV1 { a: 7, s: "from v1".into() });
        // The current layout is written back.
        let rewritten = encode(&decode::<ProbeReadsV1>(&v1).unwrap()).unwrap();
        assert_eq!(rewritten[..2], [2, 1]);
        // A reader without the old layout refuses it; trailing bytes in an old layout too.
        assert_eq!(decode::<Probe>(&v1).unwrap_err().errno(), libc::EINVAL);
        let mut padded = v1.clone();
        padded.push(0);
        padded[2] += 1;
        assert_eq!(decode::<ProbeReadsV1>(&padded).unwrap_err().errno(), libc::EINVAL);
    }

    #[test]
    fn compat_v_follows_the_value() {
        assert_eq!(encode(&Guarded { a: 1, critical: false }).unwrap()[..2], [2, 1]);
        let critical = encode(&Guarded { a: 1, critical: true }).unwrap();
        assert_eq!(critical[..2], [2, 2]);
        // A version-1 reader of the same type refuses what it must not rewrite.
        assert_eq!(decode::<ProbeV1>(&critical).unwrap_err().errno(), libc::EOPNOTSUPP);
    }

    #[test]
    fn round_trips() {
        let p = Probe { a: 7, s: "x".into() };
        assert_eq!(decode::<Probe>(&encode(&p).unwrap()).unwrap(), p);
    }

    #[test]
    fn newer_compatible_writer_is_read_without_its_new_fields() {
        let bytes = encode(&ProbeV3 { a: 1, s: "y".into(), extra: 9 }).unwrap();
        assert_eq!(decode::<Probe>(&bytes).unwrap(), Probe { a: 1, s: "y".into() });
    }

    #[test]
    fn rejects_what_it_cannot_trust() {
        let good = encode(&Probe { a: 1, s: "z".into() }).unwrap();
        let errno = |b: &[u8]| decode::<Probe>(b).unwrap_err().errno();
        assert_eq!(errno(&[]), libc::EINVAL);
        assert_eq!(errno(&good[..good.len() - 1]), libc::EINVAL);
        let mut trailing = good.clone();
        trailing.push(0);
        trailing[2] += 1;
        assert_eq!(errno(&trailing), libc::EINVAL);
        let mut too_new = good.clone();
        too_new[0] = 9;
        too_new[1] = 9;
        assert_eq!(errno(&too_new), libc::EOPNOTSUPP);
        assert_eq!(errno(b"garbage"), libc::EINVAL);
        let mut zero = good.clone();
        zero[0] = 0;
        assert_eq!(errno(&zero), libc::EINVAL);
        assert_eq!(errno(&[0u8; 65]), libc::ERANGE);
        // A string length prefix claiming 2^63 bytes must not allocate.
        let mut huge = vec![2, 1, 12, 0, 0, 0, 1, 0, 0, 0];
        huge.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert_eq!(errno(&huge), libc::EINVAL);
    }
}
