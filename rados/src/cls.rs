//! Typed object-class calls: a method descriptor knows its class, its name, whether it
//! reads or writes, and how to encode its request and decode its reply, so a call site
//! can only send what the method decodes and only expect what it answers.
//!
//! Two kinds of descriptor implement [`ClsMethod`]:
//! - the `rbd_cg` class's own methods, [`rbd_cg_contract::methods::ReadMethod`] and
//!   `WriteMethod`, in the contract's versioned
//!   envelope;
//! - stock Ceph methods ([`StockRead`], [`StockWrite`], declared in [`crate::ceph`]), in
//!   Ceph's own encoding.
//!
//! [`IoCtx::call`] runs a read method, [`IoCtx::call_write`] a write method (which
//! replies with nothing but a status: the OSD drops write methods' output). Several calls
//! on one object share one OSD operation through [`ReadBatch`] (each call succeeds or fails
//! on its own) or [`WriteBatch`] (all take effect or none does).

use std::marker::PhantomData;

use crate::ceph::encoding::{Decode, Encode};
use crate::error::{RadosError, RadosResult};
use crate::ioctx::IoCtx;
use rbd_cg_contract::methods::{ReadMethod, WriteMethod};
use rbd_cg_contract::{decode, encode, Versioned, CLASS_NAME};

/// A class method: where it is registered and how its messages are encoded.
pub trait ClsMethod {
    /// What the method takes.
    type Request;
    /// What it answers (`()` for write methods).
    type Reply;
    /// The class it belongs to (`rbd`, `lock`, `rbd_cg`, ...).
    fn class(&self) -> &'static str;
    /// Its registered name.
    fn method(&self) -> &'static str;
    /// The request bytes.
    fn encode_request(&self, request: &Self::Request) -> RadosResult<Vec<u8>>;
    /// The reply, from the bytes the OSD returned.
    fn decode_reply(&self, reply: &[u8]) -> RadosResult<Self::Reply>;

    /// `class.method`, for messages.
    fn full_name(&self) -> String {
        format!("{}.{}", self.class(), self.method())
    }
}

/// A method registered as reading only (`CLS_METHOD_RD`): callable in a read op.
pub trait ReadCall: ClsMethod {}

/// A method registered as writing (`CLS_METHOD_WR`): its reply is dropped by the OSD.
pub trait WriteCall: ClsMethod<Reply = ()> {}

impl<Req: Versioned, Reply: Versioned> ClsMethod for ReadMethod<Req, Reply> {
    type Request = Req;
    type Reply = Reply;
    fn class(&self) -> &'static str {
        CLASS_NAME
    }
    fn method(&self) -> &'static str {
        self.name
    }
    fn encode_request(&self, request: &Req) -> RadosResult<Vec<u8>> {
        encode(request).map_err(|e| RadosError::new(format!("encoding {}: {e}", self.full_name()), e.errno()))
    }
    fn decode_reply(&self, reply: &[u8]) -> RadosResult<Reply> {
        decode(reply).map_err(|e| RadosError::new(format!("reply of {}: {e}", self.full_name()), e.errno()))
    }
}

impl<Req: Versioned, Reply: Versioned> ReadCall for ReadMethod<Req, Reply> {}

impl<Req: Versioned> ClsMethod for WriteMethod<Req> {
    type Request = Req;
    type Reply = ();
    fn class(&self) -> &'static str {
        CLASS_NAME
    }
    fn method(&self) -> &'static str {
        self.name
    }
    fn encode_request(&self, request: &Req) -> RadosResult<Vec<u8>> {
        encode(request).map_err(|e| RadosError::new(format!("encoding {}: {e}", self.full_name()), e.errno()))
    }
    fn decode_reply(&self, _reply: &[u8]) -> RadosResult<()> {
        Ok(())
    }
}

impl<Req: Versioned> WriteCall for WriteMethod<Req> {}

/// A read method of a stock Ceph class, in Ceph's encoding.
pub struct StockRead<Req, Reply> {
    class: &'static str,
    method: &'static str,
    marker: PhantomData<fn(&Req) -> Reply>,
}

impl<Req, Reply> StockRead<Req, Reply> {
    /// Declares `class.method`.
    pub const fn new(class: &'static str, method: &'static str) -> Self {
        StockRead { class, method, marker: PhantomData }
    }
}

/// A write method of a stock Ceph class, in Ceph's encoding.
pub struct StockWrite<Req> {
    class: &'static str,
    method: &'static str,
    marker: PhantomData<fn(&Req)>,
}

impl<Req> StockWrite<Req> {
    /// Declares `class.method`.
    pub const fn new(class: &'static str, method: &'static str) -> Self {
        StockWrite { class, method, marker: PhantomData }
    }
}

impl<Req: Encode, Reply: Decode> ClsMethod for StockRead<Req, Reply> {
    type Request = Req;
    type Reply = Reply;
    fn class(&self) -> &'static str {
        self.class
    }
    fn method(&self) -> &'static str {
        self.method
    }
    fn encode_request(&self, request: &Req) -> RadosResult<Vec<u8>> {
        Ok(request.to_bytes())
    }
    fn decode_reply(&self, reply: &[u8]) -> RadosResult<Reply> {
        Reply::from_bytes(reply).map_err(|e| RadosError::new(format!("reply of {}: {e}", self.full_name()), libc::EIO))
    }
}

impl<Req: Encode, Reply: Decode> ReadCall for StockRead<Req, Reply> {}

impl<Req: Encode> ClsMethod for StockWrite<Req> {
    type Request = Req;
    type Reply = ();
    fn class(&self) -> &'static str {
        self.class
    }
    fn method(&self) -> &'static str {
        self.method
    }
    fn encode_request(&self, request: &Req) -> RadosResult<Vec<u8>> {
        Ok(request.to_bytes())
    }
    fn decode_reply(&self, _reply: &[u8]) -> RadosResult<()> {
        Ok(())
    }
}

impl<Req: Encode> WriteCall for StockWrite<Req> {}

/// One encoded call: class, method, request bytes.
type Encoded = (&'static str, &'static str, Vec<u8>);

/// Several steps on one object in one atomic write op: all take effect or none does.
/// Class calls (read methods too, e.g. `lock.assert_locked` guarding a write) and plain
/// data steps (write, zero, truncate, remove, create) mix freely, in order.
#[derive(Default)]
pub struct WriteBatch {
    pub(crate) steps: Vec<WriteStep>,
}

/// One step of a [`WriteBatch`].
pub(crate) enum WriteStep {
    /// `rados_write_op_exec`.
    Exec { class: &'static str, method: &'static str, input: Vec<u8> },
    /// `rados_write_op_create`.
    Create { exclusive: bool },
    /// `rados_write_op_write`.
    Write { offset: u64, data: Vec<u8> },
    /// `rados_write_op_zero`.
    Zero { offset: u64, len: u64 },
    /// `rados_write_op_truncate`.
    Truncate { offset: u64 },
    /// `rados_write_op_remove`.
    Remove,
    /// `rados_write_op_omap_cmp2` (equal): the whole op fails `ECANCELED` otherwise.
    OmapCmpEq { key: String, value: Vec<u8> },
    /// `rados_write_op_omap_set2` of one key.
    OmapSet { key: String, value: Vec<u8> },
    /// `rados_write_op_assert_exists`.
    AssertExists,
    /// `rados_write_op_set_alloc_hint2`.
    AllocHint { object_size: u64, write_size: u64, flags: u32 },
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Adds `method(request)`.
    pub fn add<M: ClsMethod>(&mut self, method: &M, request: &M::Request) -> RadosResult<&mut Self> {
        let input = method.encode_request(request)?;
        self.steps.push(WriteStep::Exec { class: method.class(), method: method.method(), input });
        Ok(self)
    }

    /// Adds a call of `class.method` with input bytes already encoded (a raw method).
    pub fn add_raw(&mut self, class: &'static str, method: &'static str, input: Vec<u8>) -> &mut Self {
        self.steps.push(WriteStep::Exec { class, method, input });
        self
    }

    /// Creates the object (`EEXIST` when `exclusive` and it exists).
    pub fn create(&mut self, exclusive: bool) -> &mut Self {
        self.steps.push(WriteStep::Create { exclusive });
        self
    }

    /// Writes `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: Vec<u8>) -> &mut Self {
        self.steps.push(WriteStep::Write { offset, data });
        self
    }

    /// Zeroes `len` bytes at `offset` (a hole where the store can). A zero of no bytes is
    /// left out: a 16.2.15 OSD asserts on it (`FAILED ceph_assert(op.extent.length)` in
    /// `PrimaryLogPG::do_osd_ops`) and dies.
    pub fn zero(&mut self, offset: u64, len: u64) -> &mut Self {
        if len > 0 {
            self.steps.push(WriteStep::Zero { offset, len });
        }
        self
    }

    /// Truncates the object to `offset` bytes.
    pub fn truncate(&mut self, offset: u64) -> &mut Self {
        self.steps.push(WriteStep::Truncate { offset });
        self
    }

    /// Removes the object.
    pub fn remove(&mut self) -> &mut Self {
        self.steps.push(WriteStep::Remove);
        self
    }

    /// Compares omap value `key` with `value`: unless they are equal, the whole batch fails
    /// with `ECANCELED` and changes nothing (a compare-and-swap with [`Self::omap_set`]).
    pub fn omap_cmp_eq(&mut self, key: &str, value: Vec<u8>) -> &mut Self {
        self.steps.push(WriteStep::OmapCmpEq { key: key.into(), value });
        self
    }

    /// Sets omap value `key`.
    pub fn omap_set(&mut self, key: &str, value: Vec<u8>) -> &mut Self {
        self.steps.push(WriteStep::OmapSet { key: key.into(), value });
        self
    }

    /// Fails the whole op (`ENOENT`) unless the object exists.
    pub fn assert_exists(&mut self) -> &mut Self {
        self.steps.push(WriteStep::AssertExists);
        self
    }

    /// Tells the OSD the object's expected size and write size (`LIBRADOS_ALLOC_HINT_FLAG_*`
    /// in `flags`), as librbd does on writes. It creates a missing object, and it counts as
    /// a change of an existing one (a snapshot gets its clone) even when nothing else in
    /// the op changes it.
    pub fn alloc_hint(&mut self, object_size: u64, write_size: u64, flags: u32) -> &mut Self {
        self.steps.push(WriteStep::AllocHint { object_size, write_size, flags });
        self
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// What the batch does, for messages: `exec [lock.assert_locked, rbd.snapshot_add]`.
    pub(crate) fn describe(&self, oid: &str) -> String {
        let names: Vec<String> = self
            .steps
            .iter()
            .map(|step| match step {
                WriteStep::Exec { class, method, .. } => format!("{class}.{method}"),
                WriteStep::Create { .. } => "create".to_owned(),
                WriteStep::Write { .. } => "write".to_owned(),
                WriteStep::Zero { .. } => "zero".to_owned(),
                WriteStep::Truncate { .. } => "truncate".to_owned(),
                WriteStep::Remove => "remove".to_owned(),
                WriteStep::OmapCmpEq { key, .. } => format!("omap_cmp({key})"),
                WriteStep::OmapSet { key, .. } => format!("omap_set({key})"),
                WriteStep::AssertExists => "assert_exists".to_owned(),
                WriteStep::AllocHint { .. } => "set_alloc_hint".to_owned(),
            })
            .collect();
        match names.as_slice() {
            [one] => format!("{one} on {oid}"),
            _ => format!("[{}] on {oid}", names.join(", ")),
        }
    }
}

/// Several read calls on one object in one read op (one round trip); each succeeds or
/// fails on its own. [`ReadBatch::add`] hands out a [`Pending`] that decodes its reply.
#[derive(Default)]
pub struct ReadBatch {
    calls: Vec<Encoded>,
}

/// A call of a [`ReadBatch`], waiting for its reply.
pub struct Pending<'m, M> {
    method: &'m M,
    index: usize,
}

/// The raw replies of a [`ReadBatch`], one per call in order.
pub struct BatchReplies {
    oid: String,
    replies: Vec<Option<RadosResult<Vec<u8>>>>,
}

impl ReadBatch {
    /// An empty batch.
    pub fn new() -> ReadBatch {
        ReadBatch::default()
    }

    /// Adds `method(request)`.
    pub fn add<'m, M: ReadCall>(&mut self, method: &'m M, request: &M::Request) -> RadosResult<Pending<'m, M>> {
        self.calls.push((method.class(), method.method(), method.encode_request(request)?));
        Ok(Pending { method, index: self.calls.len() - 1 })
    }
}

impl<M: ReadCall> Pending<'_, M> {
    /// This call's decoded reply (each reply can be taken once).
    pub fn take(&self, replies: &mut BatchReplies) -> RadosResult<M::Reply> {
        let what = || format!("exec {} on {}", self.method.full_name(), replies.oid);
        let reply = replies
            .replies
            .get_mut(self.index)
            .and_then(Option::take)
            .ok_or_else(|| RadosError::new(format!("{}: no reply", what()), libc::EIO))?;
        self.method.decode_reply(&reply?)
    }
}

fn borrowed(calls: &[Encoded]) -> Vec<(&str, &str, &[u8])> {
    calls.iter().map(|(class, method, input)| (*class, *method, input.as_slice())).collect()
}

impl IoCtx {
    /// Runs read method `method` on `oid`.
    pub fn call<M: ReadCall>(&self, oid: &str, method: &M, request: &M::Request) -> RadosResult<M::Reply> {
        let reply = self.exec_read(oid, method.class(), method.method(), &method.encode_request(request)?)?;
        method.decode_reply(&reply)
    }

    /// Runs write method `method` on `oid` (success is all it can tell).
    pub fn call_write<M: WriteCall>(&self, oid: &str, method: &M, request: &M::Request) -> RadosResult<()> {
        self.exec_write(oid, method.class(), method.method(), &method.encode_request(request)?)
    }

    /// Runs read method `method` once per request on `oid`, all in one read op; one result
    /// per request. The outer error is for the operation as a whole (e.g. no such object).
    pub fn call_many<M: ReadCall>(
        &self,
        oid: &str,
        method: &M,
        requests: &[M::Request],
    ) -> RadosResult<Vec<RadosResult<M::Reply>>> {
        let inputs = requests.iter().map(|r| method.encode_request(r)).collect::<RadosResult<Vec<_>>>()?;
        let calls: Vec<(&str, &str, &[u8])> =
            inputs.iter().map(|input| (method.class(), method.method(), input.as_slice())).collect();
        let replies = self.exec_read_batch(oid, &calls)?;
        Ok(replies.into_iter().map(|reply| reply.and_then(|bytes| method.decode_reply(&bytes))).collect())
    }

    /// Runs every call of `batch` on `oid` in one read op.
    pub fn read_batch(&self, oid: &str, batch: &ReadBatch) -> RadosResult<BatchReplies> {
        let replies = self.exec_read_batch(oid, &borrowed(&batch.calls))?;
        Ok(BatchReplies { oid: oid.to_owned(), replies: replies.into_iter().map(Some).collect() })
    }
}
