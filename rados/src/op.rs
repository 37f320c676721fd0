//! Class-method calls as librados compound operations: one read op or one atomic write op
//! per object, with any number of `exec` calls inside.
//!
//! Each guard here owns one librados allocation (an op, an output buffer, an omap
//! iterator) and releases it on drop, so an early return cannot leak or double-free.

use std::ffi::{c_char, c_int, CString};
use std::ptr;

use crate::cls::{WriteBatch, WriteStep};
use crate::error::{check, cstring, RadosError, RadosResult};
use crate::ioctx::IoCtx;
use crate::sys;

/// Page size of [`IoCtx::omap_get_all`] when the caller passes 0.
const DEFAULT_OMAP_PAGE: u32 = 512;

/// Owned `rados_read_op_t`, released on drop.
pub(crate) struct ReadOp(pub(crate) sys::rados_read_op_t);

impl ReadOp {
    pub(crate) fn new(op: &str) -> RadosResult<ReadOp> {
        // SAFETY: no preconditions; returns a new op or NULL.
        let raw = unsafe { sys::rados_create_read_op() };
        if raw.is_null() {
            return Err(RadosError::new(format!("{op}: rados_create_read_op"), libc::ENOMEM));
        }
        Ok(ReadOp(raw))
    }
}

impl Drop for ReadOp {
    fn drop(&mut self) {
        // SAFETY: the op came from `rados_create_read_op` and is released once;
        // any operate on it has returned (all calls here are synchronous).
        unsafe { sys::rados_release_read_op(self.0) };
    }
}

/// Owned `rados_write_op_t`, released on drop.
pub(crate) struct WriteOp(pub(crate) sys::rados_write_op_t);

impl WriteOp {
    pub(crate) fn new(op: &str) -> RadosResult<WriteOp> {
        // SAFETY: no preconditions; returns a new op or NULL.
        let raw = unsafe { sys::rados_create_write_op() };
        if raw.is_null() {
            return Err(RadosError::new(format!("{op}: rados_create_write_op"), libc::ENOMEM));
        }
        Ok(WriteOp(raw))
    }
}

impl Drop for WriteOp {
    fn drop(&mut self) {
        // SAFETY: the op came from `rados_create_write_op` and is released
        // once; any operate on it has returned.
        unsafe { sys::rados_release_write_op(self.0) };
    }
}

/// Output buffer allocated by librados, freed with `rados_buffer_free`.
pub(crate) struct RadosBuffer {
    pub(crate) ptr: *mut c_char,
    pub(crate) len: usize,
}

impl RadosBuffer {
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        if self.ptr.is_null() || self.len == 0 {
            return Vec::new();
        }
        // SAFETY: librados allocated `len` bytes at `ptr` (do_out_buffer) and
        // they stay valid until `rados_buffer_free` in Drop.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }.to_vec()
    }
}

impl Drop for RadosBuffer {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the buffer was allocated by librados for us and is freed
            // exactly once.
            unsafe { sys::rados_buffer_free(self.ptr) };
        }
    }
}

/// Omap iterator, closed with `rados_omap_get_end`.
pub(crate) struct OmapIter(pub(crate) sys::rados_omap_iter_t);

impl Drop for OmapIter {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the iterator was created by rados_read_op_omap_get_vals2
            // and is closed exactly once; no key/value pointer obtained from it
            // is used after this point (they were copied).
            unsafe { sys::rados_omap_get_end(self.0) };
        }
    }
}

impl IoCtx {
    /// Runs a class method that only reads; returns its output bytes (any
    /// length: librados sizes the buffer). The errno comes from the method's
    /// return value or from the operation.
    pub fn exec_read(&self, oid: &str, class: &str, method: &str, input: &[u8]) -> RadosResult<Vec<u8>> {
        let mut results = self.exec_read_batch(oid, &[(class, method, input)])?;
        results.pop().unwrap_or_else(|| Err(RadosError::new(format!("exec {class}.{method} on {oid}"), libc::EIO)))
    }

    /// Several read-method calls on one object in one read op (one round trip, one OSD
    /// operation); each call succeeds or fails on its own (`FAILOK`), so the result has
    /// one entry per call. The outer error is for the operation as a whole (e.g. no such
    /// object).
    pub fn exec_read_batch(&self, oid: &str, calls: &[(&str, &str, &[u8])]) -> RadosResult<Vec<RadosResult<Vec<u8>>>> {
        let what = || format!("exec of {} read methods on {oid}", calls.len());
        let c_oid = Self::oid(oid, &what())?;
        let names = calls
            .iter()
            .map(|(class, method, _)| {
                Ok((
                    cstring(class, || format!("{}: class name", what()))?,
                    cstring(method, || format!("{}: method", what()))?,
                ))
            })
            .collect::<RadosResult<Vec<_>>>()?;
        let op = ReadOp::new(&what())?;
        // One fixed slot per call, never moved after its address is given to librados.
        let mut outs: Box<[(*mut c_char, usize, c_int)]> =
            vec![(ptr::null_mut(), 0, 0); calls.len()].into_boxed_slice();
        for ((slot, (_, _, input)), (c_class, c_method)) in outs.iter_mut().zip(calls).zip(&names) {
            // SAFETY: `op.0` is a live read op; class/method are NUL-terminated and `input`
            // is readable for its length (copied into the op here). The three out-pointers
            // point into `outs`, a boxed slice that is neither moved nor dropped before
            // `rados_read_op_operate` below returns, which is when librados writes them.
            unsafe {
                sys::rados_read_op_exec(
                    op.0,
                    c_class.as_ptr(),
                    c_method.as_ptr(),
                    input.as_ptr().cast::<c_char>(),
                    input.len(),
                    &mut slot.0,
                    &mut slot.1,
                    &mut slot.2,
                );
                // The flag applies to the op just added: its failure ends only its call.
                sys::rados_read_op_set_flags(op.0, sys::LIBRADOS_OP_FLAG_FAILOK as c_int);
            }
        }
        // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; synchronous, so the
        // out-pointers registered above are written before it returns.
        let ret = unsafe { sys::rados_read_op_operate(op.0, self.raw, c_oid.as_ptr(), 0) };
        let buffers: Vec<(RadosBuffer, c_int)> =
            outs.iter().map(|&(ptr, len, prval)| (RadosBuffer { ptr, len }, prval)).collect();
        check(ret, what)?;
        Ok(buffers
            .iter()
            .zip(calls)
            .map(|((buffer, prval), (class, method, _))| {
                check(*prval, || format!("exec {class}.{method} on {oid}")).map(|_| buffer.to_vec())
            })
            .collect())
    }

    /// Runs a class method that writes. The OSD drops the output of write
    /// methods, so only the status is returned.
    pub fn exec_write(&self, oid: &str, class: &'static str, method: &'static str, input: &[u8]) -> RadosResult<()> {
        let mut batch = WriteBatch::new();
        batch.add_raw(class, method, input.to_vec());
        self.write_batch(oid, &batch)
    }

    /// Runs every step of `batch` on `oid` in one atomic write op: all take effect or none
    /// does. An empty batch is a no-op. On failure the error names the first class call
    /// whose return value was negative, when the OSD reports it, else the whole batch.
    pub fn write_batch(&self, oid: &str, batch: &WriteBatch) -> RadosResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let c_oid = Self::oid(oid, &batch.describe(oid))?;
        let built = BuiltWriteOp::new(batch, oid)?;
        // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; NULL mtime means "now";
        // synchronous, so the prval slots of `built` are written before it returns.
        let ret = unsafe { sys::rados_write_op_operate(built.op.0, self.raw, c_oid.as_ptr(), ptr::null_mut(), 0) };
        built.result(ret)
    }

    /// The omap values of `keys` on `oid` (absent keys are left out), in one read op.
    /// `ENOENT` if the object does not exist.
    pub fn omap_get_by_keys(&self, oid: &str, keys: &[String]) -> RadosResult<Vec<(String, Vec<u8>)>> {
        let what = || format!("omap_get_vals_by_keys({oid})");
        let c_oid = Self::oid(oid, "omap_get_vals_by_keys")?;
        let op = ReadOp::new(&what())?;
        let key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr().cast::<c_char>()).collect();
        let key_lens: Vec<usize> = keys.iter().map(String::len).collect();
        let mut iter_raw: sys::rados_omap_iter_t = ptr::null_mut();
        let mut prval: c_int = 0;
        // SAFETY: live read op; `key_ptrs`/`key_lens` describe `keys.len()` readable keys
        // (copied into the op here); the out-pointers refer to locals untouched until
        // operate below has returned.
        unsafe {
            sys::rados_read_op_omap_get_vals_by_keys2(
                op.0,
                key_ptrs.as_ptr(),
                keys.len(),
                key_lens.as_ptr(),
                &mut iter_raw,
                &mut prval,
            );
        }
        let iter = OmapIter(iter_raw);
        // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; synchronous.
        let ret = unsafe { sys::rados_read_op_operate(op.0, self.raw, c_oid.as_ptr(), 0) };
        check(ret, what)?;
        check(prval, what)?;
        let mut entries = Vec::new();
        loop {
            let mut key: *mut c_char = ptr::null_mut();
            let mut val: *mut c_char = ptr::null_mut();
            let mut key_len: usize = 0;
            let mut val_len: usize = 0;
            // SAFETY: `iter.0` is a live iterator filled by the operate above; all
            // out-pointers refer to live locals.
            let ret = unsafe { sys::rados_omap_get_next2(iter.0, &mut key, &mut val, &mut key_len, &mut val_len) };
            check(ret, what)?;
            if key.is_null() {
                break;
            }
            // SAFETY: librados returned `key_len` bytes at `key`, valid until the iterator
            // is closed (when `iter` drops); copied now.
            let k = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) }.to_vec();
            let v = if val.is_null() || val_len == 0 {
                Vec::new()
            } else {
                // SAFETY: as for the key.
                unsafe { std::slice::from_raw_parts(val.cast::<u8>(), val_len) }.to_vec()
            };
            entries.push((String::from_utf8_lossy(&k).into_owned(), v));
        }
        Ok(entries)
    }

    /// All omap entries of the object, in key order, fetched in pages of
    /// `max_per_page` (0 = a default of 512). `ENOENT` if the object does not
    /// exist; `EILSEQ` if a key is not UTF-8. Pages are separate reads, so a
    /// concurrent writer may be observed mid-way.
    pub fn omap_get_all(&self, oid: &str, max_per_page: u32) -> RadosResult<Vec<(String, Vec<u8>)>> {
        let what = || format!("omap_get_vals({oid})");
        let c_oid = Self::oid(oid, "omap_get_vals")?;
        let page = if max_per_page == 0 { DEFAULT_OMAP_PAGE } else { max_per_page };
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        let mut start_after = CString::default();
        loop {
            let op = ReadOp::new(&what())?;
            let mut iter_raw: sys::rados_omap_iter_t = ptr::null_mut();
            let mut more: u8 = 0;
            let mut prval: c_int = 0;
            // SAFETY: live read op; `start_after` and the empty filter prefix
            // are NUL-terminated and copied into the op; the out-pointers refer
            // to locals that stay untouched until operate below has returned.
            unsafe {
                sys::rados_read_op_omap_get_vals2(
                    op.0,
                    start_after.as_ptr(),
                    c"".as_ptr(),
                    u64::from(page),
                    &mut iter_raw,
                    &mut more,
                    &mut prval,
                );
            }
            // The iterator is allocated right away; own it before anything can fail.
            let iter = OmapIter(iter_raw);
            // SAFETY: valid op and ioctx; `c_oid` NUL-terminated; synchronous.
            let ret = unsafe { sys::rados_read_op_operate(op.0, self.raw, c_oid.as_ptr(), 0) };
            check(ret, what)?;
            check(prval, what)?;

            let mut got = 0usize;
            loop {
                let mut key: *mut c_char = ptr::null_mut();
                let mut val: *mut c_char = ptr::null_mut();
                let mut key_len: usize = 0;
                let mut val_len: usize = 0;
                // SAFETY: `iter.0` is a live iterator filled by the operate
                // above; all out-pointers refer to live locals.
                let ret = unsafe { sys::rados_omap_get_next2(iter.0, &mut key, &mut val, &mut key_len, &mut val_len) };
                check(ret, what)?;
                if key.is_null() {
                    break;
                }
                // SAFETY: librados returned `key_len` bytes at `key`, valid
                // until `rados_omap_get_end` (when `iter` drops); copied now.
                let k = unsafe { std::slice::from_raw_parts(key.cast::<u8>(), key_len) }.to_vec();
                let v = if val.is_null() || val_len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: as for the key: `val_len` bytes at `val`, valid
                    // until the iterator is closed; copied now.
                    unsafe { std::slice::from_raw_parts(val.cast::<u8>(), val_len) }.to_vec()
                };
                let k = String::from_utf8(k).map_err(|e| {
                    RadosError::new(
                        format!("{}: omap key {:?} is not UTF-8", what(), String::from_utf8_lossy(e.as_bytes())),
                        libc::EILSEQ,
                    )
                })?;
                entries.push((k, v));
                got += 1;
            }
            drop(iter);

            if more == 0 {
                return Ok(entries);
            }
            let Some((last, _)) = entries.last().filter(|_| got > 0) else {
                return Err(RadosError::new(
                    format!("{}: OSD reported more entries but returned none", what()),
                    libc::EIO,
                ));
            };
            start_after = cstring(last, || format!("{}: omap key {last:?}", what()))?;
        }
    }
}

/// A librados write op built from a [`WriteBatch`], with the return-value slots of its
/// class calls, which librados writes when the op completes (so they live as long as it).
pub(crate) struct BuiltWriteOp {
    pub(crate) op: WriteOp,
    /// One slot per step, in step order; only class calls fill theirs.
    prvals: Box<[c_int]>,
    /// `class.method` of each step that is a class call, for errors.
    calls: Vec<Option<String>>,
    /// What the whole op does, for errors.
    what: String,
}

// SAFETY: the op handle has no thread affinity (it may be operated on and released from any
// thread) and the prval slots are plain integers read only after completion.
unsafe impl Send for BuiltWriteOp {}

impl BuiltWriteOp {
    pub(crate) fn new(batch: &WriteBatch, oid: &str) -> RadosResult<BuiltWriteOp> {
        let what = batch.describe(oid);
        let op = WriteOp::new(&what)?;
        let mut prvals: Box<[c_int]> = vec![0; batch.steps.len()].into_boxed_slice();
        let mut calls = Vec::with_capacity(batch.steps.len());
        for (step, prval) in batch.steps.iter().zip(prvals.iter_mut()) {
            match step {
                WriteStep::Exec { class, method, input } => {
                    let call = format!("{class}.{method}");
                    let c_class = cstring(class, || format!("{call} on {oid}: class name"))?;
                    let c_method = cstring(method, || format!("{call} on {oid}: method name"))?;
                    // SAFETY: `op.0` is a live write op; class and method are NUL-terminated
                    // and `input` readable for its length, all copied into the op here;
                    // `prval` points into the boxed slice `prvals`, which moves with this
                    // value (the heap slots themselves never move) and outlives the op's
                    // completion (the caller keeps this value until then).
                    unsafe {
                        sys::rados_write_op_exec(
                            op.0,
                            c_class.as_ptr(),
                            c_method.as_ptr(),
                            input.as_ptr().cast::<c_char>(),
                            input.len(),
                            prval,
                        );
                    }
                    calls.push(Some(call));
                }
                WriteStep::Create { exclusive } => {
                    let mode =
                        if *exclusive { sys::LIBRADOS_CREATE_EXCLUSIVE } else { sys::LIBRADOS_CREATE_IDEMPOTENT };
                    // SAFETY: live write op; integer flags; NULL category (deprecated).
                    unsafe { sys::rados_write_op_create(op.0, mode as c_int, ptr::null()) };
                    calls.push(None);
                }
                WriteStep::Write { offset, data } => {
                    // SAFETY: live write op; `data` readable for its length and copied into
                    // the op by librados.
                    unsafe { sys::rados_write_op_write(op.0, data.as_ptr().cast::<c_char>(), data.len(), *offset) };
                    calls.push(None);
                }
                WriteStep::Zero { offset, len } => {
                    // SAFETY: live write op; integer arguments.
                    unsafe { sys::rados_write_op_zero(op.0, *offset, *len) };
                    calls.push(None);
                }
                WriteStep::Truncate { offset } => {
                    // SAFETY: live write op; integer argument.
                    unsafe { sys::rados_write_op_truncate(op.0, *offset) };
                    calls.push(None);
                }
                WriteStep::Remove => {
                    // SAFETY: live write op.
                    unsafe { sys::rados_write_op_remove(op.0) };
                    calls.push(None);
                }
                WriteStep::OmapCmpEq { key, value } => {
                    // SAFETY: live write op; `key` and `value` readable for their lengths and
                    // copied into the op; `prval` points into `prvals` (see Exec above).
                    unsafe {
                        sys::rados_write_op_omap_cmp2(
                            op.0,
                            key.as_ptr().cast::<c_char>(),
                            sys::LIBRADOS_CMPXATTR_OP_EQ as u8,
                            value.as_ptr().cast::<c_char>(),
                            key.len(),
                            value.len(),
                            prval,
                        );
                    }
                    calls.push(None);
                }
                WriteStep::OmapSet { key, value } => {
                    let keys = [key.as_ptr().cast::<c_char>()];
                    let values = [value.as_ptr().cast::<c_char>()];
                    let (key_lens, value_lens) = ([key.len()], [value.len()]);
                    // SAFETY: live write op; one key and one value, each readable for its
                    // length (the arrays and lengths are locals valid for the call; librados
                    // copies them into the op).
                    unsafe {
                        sys::rados_write_op_omap_set2(
                            op.0,
                            keys.as_ptr(),
                            values.as_ptr(),
                            key_lens.as_ptr(),
                            value_lens.as_ptr(),
                            1,
                        );
                    }
                    calls.push(None);
                }
                WriteStep::AssertExists => {
                    // SAFETY: live write op.
                    unsafe { sys::rados_write_op_assert_exists(op.0) };
                    calls.push(None);
                }
                WriteStep::AllocHint { object_size, write_size, flags } => {
                    // SAFETY: live write op; integer arguments.
                    unsafe { sys::rados_write_op_set_alloc_hint2(op.0, *object_size, *write_size, *flags) };
                    calls.push(None);
                }
            }
        }
        Ok(BuiltWriteOp { op, prvals, calls, what })
    }

    /// The op's outcome from the operate return value `ret`: names the first class call
    /// that failed, when the OSD reports it.
    pub(crate) fn result(&self, ret: c_int) -> RadosResult<()> {
        if ret >= 0 {
            return Ok(());
        }
        let failed = self.calls.iter().zip(self.prvals.iter()).find(|(call, &rv)| call.is_some() && rv < 0);
        Err(match failed {
            Some((Some(call), &rv)) => RadosError::new(format!("exec {call} on {}", self.what_oid()), rv),
            _ => RadosError::new(format!("exec {}", self.what), ret),
        })
    }

    fn what_oid(&self) -> &str {
        self.what.rsplit_once(" on ").map_or(self.what.as_str(), |(_, oid)| oid)
    }
}
