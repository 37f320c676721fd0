//! The storage the handlers see: one object's data and omap, inside one transaction.
//!
//! Semantics the handlers may rely on, shared by the OSD and [`MemStore`]:
//! - All writes of one method call commit together, or not at all when the method
//!   returns an error.
//! - Reads see the state before the call: a handler reads what it needs first, decides,
//!   and then writes. (Inside the OSD, omap reads do not see the same call's writes.)
//! - Setting omap keys on an absent object creates it.

#![forbid(unsafe_code)]

mod memory;

pub use memory::{MemObject, MemStore};

use rbd_cg_contract::{decode, encode, CgError, Versioned};

/// One page of omap entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OmapPage {
    /// Keys and values in key order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// Whether more keys with the prefix follow.
    pub more: bool,
}

/// The OSD returns at most this many omap entries per `cls_cxx_map_get_vals` call
/// (`osd_max_omap_entries_per_request`, 1024 by default in Pacific) and says `more`.
/// [`MemStore`] applies the same cap, so a handler that forgets to page fails in unit tests.
pub const OSD_OMAP_ENTRIES_PER_CALL: u32 = 1024;

/// Largest object data a handler ever reads (headers and id records are far smaller).
pub const MAX_OBJECT_DATA_LEN: usize = 64 * 1024;

/// Largest offset and length of [`ObjectStore::write`] and [`ObjectStore::read`]: the
/// OSD's `cls_cxx_write`/`cls_cxx_read` take both as a C `int`.
pub const MAX_IO_OFFSET: u64 = i32::MAX as u64;

/// `ERANGE` unless `offset` and `len` fit [`MAX_IO_OFFSET`].
pub(crate) fn check_io_range(offset: u64, len: usize) -> Result<(), CgError> {
    if offset > MAX_IO_OFFSET || len as u64 > MAX_IO_OFFSET {
        return Err(CgError::OutOfRange(format!("I/O of {len} bytes at offset {offset}")));
    }
    Ok(())
}

/// The object a method runs on.
pub trait ObjectStore {
    /// Size of the data, or `None` when the object does not exist.
    fn stat(&self) -> Result<Option<u64>, CgError>;
    /// The whole data; `ENOENT` when absent, `ERANGE` when longer than `max_len`.
    fn read_all(&self, max_len: usize) -> Result<Vec<u8>, CgError>;
    /// Creates the object; with `exclusive`, `EEXIST` when it exists.
    fn create(&mut self, exclusive: bool) -> Result<(), CgError>;
    /// Replaces the data (creating the object).
    fn write_full(&mut self, data: &[u8]) -> Result<(), CgError>;
    /// Writes `data` at `offset` of the data (creating the object; a gap before `offset`
    /// reads as zeros). `ERANGE` when `offset` or the length exceeds [`MAX_IO_OFFSET`].
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), CgError>;
    /// Up to `len` bytes of the data from `offset`: fewer at the end of the data, none
    /// past it. `ENOENT` when absent, `ERANGE` when `offset` or `len` exceeds
    /// [`MAX_IO_OFFSET`].
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, CgError>;
    /// Removes the object, data and omap; `ENOENT` when absent.
    fn remove(&mut self) -> Result<(), CgError>;
    /// One omap value, `None` when the key (or the object) is absent.
    fn omap_get(&self, key: &str) -> Result<Option<Vec<u8>>, CgError>;
    /// Up to `max_entries` keys strictly after `start_after` that start with `prefix`.
    fn omap_list(&self, start_after: &str, prefix: &str, max_entries: u32) -> Result<OmapPage, CgError>;
    /// Sets omap keys (creating the object).
    fn omap_set(&mut self, entries: &[(&str, &[u8])]) -> Result<(), CgError>;
    /// Removes one omap key (absent keys are fine).
    fn omap_remove(&mut self, key: &str) -> Result<(), CgError>;
}

/// A decode failure of *stored* bytes is not bad client input: a record from a newer,
/// incompatible class stays `EOPNOTSUPP` (mixed versions during an upgrade); anything
/// else is corruption (`EIO`).
fn corrupt<T: Versioned>(where_: &str, e: CgError) -> CgError {
    match e {
        CgError::Unsupported(why) => CgError::Unsupported(format!("stored {} in {where_}: {why}", T::TYPE_NAME)),
        other => CgError::Io(format!("stored {} in {where_} is unreadable: {other}", T::TYPE_NAME)),
    }
}

/// Reads and decodes the object's data record; `None` when the object does not exist.
pub fn load_data<T: Versioned>(store: &dyn ObjectStore) -> Result<Option<T>, CgError> {
    if store.stat()?.is_none() {
        return Ok(None);
    }
    let bytes = store.read_all(MAX_OBJECT_DATA_LEN)?;
    decode(&bytes).map(Some).map_err(|e| corrupt::<T>("object data", e))
}

/// Encodes `record` as the object's whole data.
pub fn save_data<T: Versioned>(store: &mut dyn ObjectStore, record: &T) -> Result<(), CgError> {
    store.write_full(&encode(record)?)
}

/// Reads and decodes an omap record; `None` when the key is absent.
pub fn load_key<T: Versioned>(store: &dyn ObjectStore, key: &str) -> Result<Option<T>, CgError> {
    match store.omap_get(key)? {
        None => Ok(None),
        Some(bytes) => decode(&bytes).map(Some).map_err(|e| corrupt::<T>(key, e)),
    }
}

/// Calls `each` for every omap entry with `prefix`, page by page, in key order; stops
/// early when `each` returns `Ok(false)`. Never holds more than one page.
pub fn for_each_with_prefix(
    store: &dyn ObjectStore,
    prefix: &str,
    mut each: impl FnMut(&str, &[u8]) -> Result<bool, CgError>,
) -> Result<(), CgError> {
    let mut after = String::new();
    loop {
        let page = store.omap_list(&after, prefix, OSD_OMAP_ENTRIES_PER_CALL)?;
        for (key, value) in &page.entries {
            if !each(key, value)? {
                return Ok(());
            }
        }
        match page.entries.last() {
            Some((last, _)) if page.more => after = last.clone(),
            _ => return Ok(()),
        }
    }
}

/// Decodes a value returned by [`ObjectStore::omap_list`].
pub fn decode_listed<T: Versioned>(key: &str, bytes: &[u8]) -> Result<T, CgError> {
    decode(bytes).map_err(|e| corrupt::<T>(key, e))
}
