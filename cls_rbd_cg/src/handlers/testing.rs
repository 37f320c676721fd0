//! A pool of in-memory objects that runs methods exactly as the OSD would: by name,
//! through the registration table, on encoded bytes, committing only on success.

use crate::methods;
use crate::store::{MemObject, MemStore};
use rbd_cg_contract::methods::{ReadMethod, WriteMethod};
use rbd_cg_contract::{decode, encode, CgError, Versioned};
use std::collections::BTreeMap;

#[derive(Default, Clone)]
pub(crate) struct Harness {
    objects: BTreeMap<String, MemObject>,
}

impl Harness {
    /// Calls method `name` on `oid` with raw input bytes.
    pub fn call_raw(&mut self, oid: &str, name: &str, input: &[u8]) -> Result<Vec<u8>, CgError> {
        let entry = methods::find(name).ok_or_else(|| CgError::Unsupported(name.into()))?;
        let mut store = MemStore::new(self.objects.get(oid).cloned());
        let reply = (entry.invoke)(&mut store, input)?;
        self.put(oid, store.commit());
        Ok(reply)
    }

    pub fn read<Req: Versioned, Reply: Versioned>(
        &mut self,
        oid: &str,
        method: &ReadMethod<Req, Reply>,
        req: &Req,
    ) -> Result<Reply, CgError> {
        let reply = self.call_raw(oid, method.name, &encode(req)?)?;
        decode(&reply)
    }

    pub fn write<Req: Versioned>(&mut self, oid: &str, method: &WriteMethod<Req>, req: &Req) -> Result<(), CgError> {
        let reply = self.call_raw(oid, method.name, &encode(req)?)?;
        assert!(reply.is_empty(), "write methods reply with a status only");
        Ok(())
    }

    pub fn object(&self, oid: &str) -> Option<MemObject> {
        self.objects.get(oid).cloned()
    }

    pub fn put(&mut self, oid: &str, object: Option<MemObject>) {
        match object {
            Some(object) => self.objects.insert(oid.to_owned(), object),
            None => self.objects.remove(oid),
        };
    }
}
