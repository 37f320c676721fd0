//! [`MemStore`]: an [`ObjectStore`] in memory, with the OSD's transaction semantics.
//!
//! Writes go to a staged copy that [`MemStore::commit`] applies; reads always see the
//! state from before the call. A handler that returns an error is simply not committed,
//! exactly as the OSD drops the transaction of a failed method.

use super::{check_io_range, ObjectStore, OmapPage, OSD_OMAP_ENTRIES_PER_CALL};
use rbd_cg_contract::CgError;
use std::collections::BTreeMap;
use std::ops::Bound;

/// One object: data and omap.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemObject {
    /// Object data.
    pub data: Vec<u8>,
    /// Omap keys and values.
    pub omap: BTreeMap<String, Vec<u8>>,
}

/// The object a method call sees: committed state plus staged writes.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    committed: Option<MemObject>,
    /// `None`: nothing written yet. `Some(None)`: removed. `Some(Some(o))`: new state.
    staged: Option<Option<MemObject>>,
}

impl MemStore {
    /// A store over `object` (`None` = the object does not exist).
    pub fn new(object: Option<MemObject>) -> Self {
        MemStore { committed: object, staged: None }
    }

    /// The state after committing the staged writes.
    pub fn commit(self) -> Option<MemObject> {
        match self.staged {
            None => self.committed,
            Some(state) => state,
        }
    }

    fn staged_mut(&mut self) -> &mut Option<MemObject> {
        let committed = &self.committed;
        self.staged.get_or_insert_with(|| committed.clone())
    }

    fn staged_or_created(&mut self) -> &mut MemObject {
        self.staged_mut().get_or_insert_with(MemObject::default)
    }
}

impl ObjectStore for MemStore {
    fn stat(&self) -> Result<Option<u64>, CgError> {
        Ok(self.committed.as_ref().map(|o| o.data.len() as u64))
    }

    fn read_all(&self, max_len: usize) -> Result<Vec<u8>, CgError> {
        let object = self.committed.as_ref().ok_or_else(|| CgError::NotFound("object".into()))?;
        if object.data.len() > max_len {
            return Err(CgError::OutOfRange(format!("object data of {} bytes", object.data.len())));
        }
        Ok(object.data.clone())
    }

    fn create(&mut self, exclusive: bool) -> Result<(), CgError> {
        if exclusive && self.committed.is_some() {
            return Err(CgError::Exists("object".into()));
        }
        self.staged_or_created();
        Ok(())
    }

    fn write_full(&mut self, data: &[u8]) -> Result<(), CgError> {
        self.staged_or_created().data = data.to_vec();
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), CgError> {
        check_io_range(offset, data.len())?;
        let object = self.staged_or_created();
        let start = offset as usize;
        let end = start + data.len();
        if object.data.len() < end {
            object.data.resize(end, 0);
        }
        object.data[start..end].copy_from_slice(data);
        Ok(())
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, CgError> {
        check_io_range(offset, len)?;
        let object = self.committed.as_ref().ok_or_else(|| CgError::NotFound("object".into()))?;
        let start = (offset as usize).min(object.data.len());
        let end = start.saturating_add(len).min(object.data.len());
        Ok(object.data[start..end].to_vec())
    }

    fn remove(&mut self) -> Result<(), CgError> {
        if self.committed.is_none() {
            return Err(CgError::NotFound("object".into()));
        }
        *self.staged_mut() = None;
        Ok(())
    }

    fn omap_get(&self, key: &str) -> Result<Option<Vec<u8>>, CgError> {
        Ok(self.committed.as_ref().and_then(|o| o.omap.get(key).cloned()))
    }

    fn omap_list(&self, start_after: &str, prefix: &str, max_entries: u32) -> Result<OmapPage, CgError> {
        let Some(object) = &self.committed else {
            return Err(CgError::NotFound("object".into()));
        };
        // Same start rule as the OSD: the later of the prefix and just after start_after;
        // and the same per-call cap.
        let mut matching = object
            .omap
            .range::<str, _>((Bound::Excluded(start_after), Bound::Unbounded))
            .skip_while(|(k, _)| k.as_str() < prefix)
            .take_while(|(k, _)| k.starts_with(prefix));
        let cap = max_entries.min(OSD_OMAP_ENTRIES_PER_CALL) as usize;
        let entries: Vec<(String, Vec<u8>)> =
            matching.by_ref().take(cap).map(|(k, v)| (k.clone(), v.clone())).collect();
        let more = matching.next().is_some();
        Ok(OmapPage { entries, more })
    }

    fn omap_set(&mut self, entries: &[(&str, &[u8])]) -> Result<(), CgError> {
        let object = self.staged_or_created();
        for (key, value) in entries {
            object.omap.insert((*key).to_owned(), value.to_vec());
        }
        Ok(())
    }

    fn omap_remove(&mut self, key: &str) -> Result<(), CgError> {
        if let Some(object) = self.staged_mut() {
            object.omap.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_do_not_see_staged_writes_until_commit() {
        let mut store = MemStore::new(None);
        store.omap_set(&[("k", b"v")]).unwrap();
        assert_eq!(store.omap_get("k").unwrap(), None);
        let object = store.commit().unwrap();
        assert_eq!(object.omap.get("k").map(Vec::as_slice), Some(&b"v"[..]));
    }

    #[test]
    fn listing_pages_by_prefix() {
        let mut object = MemObject::default();
        for k in ["a_1", "b_1", "b_2", "b_3", "c_1"] {
            object.omap.insert(k.into(), vec![]);
        }
        let store = MemStore::new(Some(object));
        let page = store.omap_list("", "b_", 2).unwrap();
        assert_eq!(page.entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["b_1", "b_2"]);
        assert!(page.more);
        let page = store.omap_list("b_2", "b_", 2).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(!page.more);
    }

    #[test]
    fn writes_at_offsets_extend_with_zeros_and_reads_see_the_state_before() {
        let mut store = MemStore::new(None);
        assert_eq!(store.read(0, 4).unwrap_err().errno(), libc::ENOENT);
        store.write(4, b"abcd").unwrap();
        let object = store.commit().unwrap();
        assert_eq!(object.data, b"\0\0\0\0abcd");
        let mut store = MemStore::new(Some(object));
        store.write(6, b"XYZ").unwrap();
        assert_eq!(store.read(2, 4).unwrap(), b"\0\0ab", "reads see the state before the call");
        assert_eq!(store.read(6, 100).unwrap(), b"cd", "a short read at the end");
        assert!(store.read(100, 4).unwrap().is_empty(), "nothing past the end");
        assert_eq!(store.write(1 << 31, b"x").unwrap_err().errno(), libc::ERANGE);
        assert_eq!(store.read(0, 1 << 31).unwrap_err().errno(), libc::ERANGE);
        assert_eq!(store.commit().unwrap().data, b"\0\0\0\0abXYZ");
    }

    #[test]
    fn exclusive_create_and_remove_follow_existence() {
        let mut store = MemStore::new(Some(MemObject::default()));
        assert_eq!(store.create(true).unwrap_err().errno(), libc::EEXIST);
        store.remove().unwrap();
        assert_eq!(store.commit(), None);
        let mut absent = MemStore::new(None);
        assert_eq!(absent.remove().unwrap_err().errno(), libc::ENOENT);
    }
}
