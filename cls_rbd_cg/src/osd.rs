//! Everything that touches the OSD: the only `unsafe` code of the class.
//!
//! - [`init`] registers the class and every method of the table, installs the `log`
//!   backend and a panic hook that write to the OSD log.
//! - [`run_method`] is what each method's trampoline calls: it copies the input, runs the
//!   method under `catch_unwind` (a panic becomes `-EIO` and a line in the OSD log; it
//!   must never unwind into the OSD, which would abort the daemon), and hands the reply
//!   back in memory from `cls_alloc`, which the OSD frees.
//! - [`OsdStore`] implements [`ObjectStore`] over the C++ shim. Data comes back through
//!   sink callbacks that copy into Rust vectors, so no allocation crosses allocators.

use crate::methods::{Invoker, MethodEntry};
use crate::store::{check_io_range, ObjectStore, OmapPage};
use cls_rbd_cg_sys as sys;
use rbd_cg_contract::{CgError, CLASS_NAME};
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

// ---- logging ------------------------------------------------------------------------

/// Writes one line to the OSD log at a Ceph debug level (0 = always logged).
fn log_line(level: c_int, message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `text` is a valid NUL-terminated string that outlives the call; the shim
    // passes it to cls_log as a "%s" argument and catches every exception.
    unsafe { sys::cg_shim_log(level, text.as_ptr()) }
}

/// `log` backend over `cls_log`. Ceph levels: error/warn 0 (always in the OSD log at the
/// default `debug_objclass = 0/5`), info 5, debug 10, trace 20.
struct ClsLogger;

impl log::Log for ClsLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error | log::Level::Warn => 0,
            log::Level::Info => 5,
            log::Level::Debug => 10,
            log::Level::Trace => 20,
        };
        log_line(level, &format!("<cls> {CLASS_NAME}: {}: {}", record.level(), record.args()));
    }

    fn flush(&self) {}
}

static LOGGER: ClsLogger = ClsLogger;

// ---- registration ---------------------------------------------------------------------

/// Registers the class and its methods. Called once by the OSD through `__cls_init`.
pub(crate) fn init(methods: &'static [MethodEntry]) {
    let outcome = catch_unwind(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
        std::panic::set_hook(Box::new(|info| {
            log_line(0, &format!("<cls> {CLASS_NAME}: panic: {info}"));
        }));
        register(methods)
    });
    match outcome {
        Ok(Ok(())) => log::info!("class {CLASS_NAME} {} loaded", rbd_cg_contract::CLASS_VERSION),
        Ok(Err(e)) => log_line(0, &format!("<cls> {CLASS_NAME}: registration failed: {e}")),
        Err(_) => log_line(0, &format!("<cls> {CLASS_NAME}: registration panicked")),
    }
}

fn register(methods: &'static [MethodEntry]) -> Result<(), CgError> {
    let class_name = CString::new(CLASS_NAME).map_err(|e| CgError::Io(e.to_string()))?;
    let mut class: sys::cg_class_handle = std::ptr::null_mut();
    // SAFETY: valid C string and out-pointer; the handle is owned by the OSD.
    let r = unsafe { sys::cg_shim_register_class(class_name.as_ptr(), &mut class) };
    if r < 0 {
        return Err(CgError::from_errno(r));
    }
    for method in methods {
        // The OSD keeps the name pointer for the life of the process: leak it on purpose.
        let name = CString::new(method.name).map_err(|e| CgError::Io(e.to_string()))?;
        // SAFETY: `class` came from cls_register; `entry` is a trampoline with the
        // cls_method_call_t signature that never unwinds; the name is leaked, so it
        // stays valid as long as the OSD may read it.
        let r =
            unsafe { sys::cg_shim_register_method(class, name.into_raw(), method.access.cls_flags(), method.entry) };
        if r < 0 {
            return Err(CgError::Io(format!("registering {} failed: errno {}", method.name, -r)));
        }
    }
    Ok(())
}

// ---- method calls ---------------------------------------------------------------------

/// Runs one method call for the OSD and returns 0 or a negative errno.
///
/// # Safety
/// `input` must be valid for `input_len` bytes (or null with length 0); `output` and
/// `output_len` must be valid for writes; `ctx` must be the context of this call. These
/// are exactly what the OSD passes to a `cls_method_call_t`.
pub(crate) unsafe fn run_method(
    name: &'static str,
    invoke: Invoker,
    ctx: sys::cg_method_ctx,
    input: *mut c_char,
    input_len: c_int,
    output: *mut *mut c_char,
    output_len: *mut c_int,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let input: &[u8] = match usize::try_from(input_len) {
            Ok(0) | Err(_) => &[],
            // SAFETY: the caller guarantees `input` is valid for `input_len` bytes.
            Ok(len) if !input.is_null() => unsafe { std::slice::from_raw_parts(input.cast::<u8>(), len) },
            Ok(_) => &[],
        };
        let mut store = OsdStore { ctx };
        invoke(&mut store, input)
    }));
    match outcome {
        Ok(Ok(reply)) => {
            // SAFETY: forwarded from this function's own contract.
            match unsafe { hand_over(&reply, output, output_len) } {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{name}: {e}");
                    -e.errno()
                }
            }
        }
        Ok(Err(e)) => {
            log::debug!("{name}: {e}");
            -e.errno()
        }
        Err(_) => {
            log_line(0, &format!("<cls> {CLASS_NAME}: method {name} panicked; the client gets EIO"));
            -libc::EIO
        }
    }
}

/// Copies the reply into `cls_alloc` memory that the OSD takes over.
///
/// # Safety
/// `output` and `output_len` must be valid for writes.
unsafe fn hand_over(reply: &[u8], output: *mut *mut c_char, output_len: *mut c_int) -> Result<(), CgError> {
    if reply.is_empty() {
        return Ok(());
    }
    let len = c_int::try_from(reply.len()).map_err(|_| CgError::OutOfRange("reply too large".into()))?;
    // SAFETY: plain allocation call; a null result is handled below.
    let buffer = unsafe { sys::cg_shim_alloc(reply.len()) }.cast::<u8>();
    if buffer.is_null() {
        return Err(CgError::Io("cls_alloc failed".into()));
    }
    // SAFETY: `buffer` holds `reply.len()` fresh bytes; the regions cannot overlap;
    // `output`/`output_len` are valid per this function's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(reply.as_ptr(), buffer, reply.len());
        *output = buffer.cast::<c_char>();
        *output_len = len;
    }
    Ok(())
}

// ---- the store ------------------------------------------------------------------------

/// The object of the current call, through the shim.
struct OsdStore {
    ctx: sys::cg_method_ctx,
}

fn check(r: c_int) -> Result<(), CgError> {
    if r < 0 {
        Err(CgError::from_errno(r))
    } else {
        Ok(())
    }
}

/// Bytes sink: appends to the `Vec<u8>` behind `sink`.
unsafe extern "C" fn bytes_sink(sink: *mut c_void, data: *const u8, len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if data.is_null() || len == 0 {
            return;
        }
        // SAFETY: `sink` is the `&mut Vec<u8>` passed by this module for this call only;
        // the shim passes `len` readable bytes at `data`.
        unsafe { (*sink.cast::<Vec<u8>>()).extend_from_slice(std::slice::from_raw_parts(data, len)) }
    }));
}

/// Omap sink: appends the raw `(key, value)` to the `Vec` behind `sink`. Keys are
/// checked for UTF-8 afterwards, in safe code.
unsafe extern "C" fn omap_sink(sink: *mut c_void, key: *const c_char, key_len: usize, val: *const u8, val_len: usize) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the shim passes `key_len` readable bytes at `key` and `val_len` at `val`
        // (each pointer non-null when its length is non-zero); `sink` is the
        // `&mut Vec<(Vec<u8>, Vec<u8>)>` this module passed for this call only.
        unsafe {
            let key = if key_len == 0 { &[][..] } else { std::slice::from_raw_parts(key.cast::<u8>(), key_len) };
            let val = if val_len == 0 { &[][..] } else { std::slice::from_raw_parts(val, val_len) };
            (*sink.cast::<Vec<(Vec<u8>, Vec<u8>)>>()).push((key.to_vec(), val.to_vec()));
        }
    }));
}

impl ObjectStore for OsdStore {
    fn stat(&self) -> Result<Option<u64>, CgError> {
        let mut size = 0u64;
        // SAFETY: `ctx` is this call's context; `size` is a valid out-pointer.
        match unsafe { sys::cg_shim_stat(self.ctx, &mut size) } {
            r if r == -libc::ENOENT => Ok(None),
            r => check(r).map(|()| Some(size)),
        }
    }

    fn read_all(&self, max_len: usize) -> Result<Vec<u8>, CgError> {
        let size = self.stat()?.ok_or_else(|| CgError::NotFound("object".into()))?;
        if size > max_len as u64 {
            return Err(CgError::OutOfRange(format!("object data of {size} bytes")));
        }
        let mut data: Vec<u8> = Vec::with_capacity(size as usize);
        // SAFETY: `bytes_sink` matches cg_bytes_sink and gets `&mut data`, which outlives
        // the synchronous call.
        check(unsafe { sys::cg_shim_read(self.ctx, size, Some(bytes_sink), (&mut data as *mut Vec<u8>).cast()) })?;
        Ok(data)
    }

    fn create(&mut self, exclusive: bool) -> Result<(), CgError> {
        // SAFETY: `ctx` is this call's context.
        check(unsafe { sys::cg_shim_create(self.ctx, c_int::from(exclusive)) })
    }

    fn write_full(&mut self, data: &[u8]) -> Result<(), CgError> {
        // SAFETY: `data` is valid for `data.len()` bytes during the call; the shim copies.
        check(unsafe { sys::cg_shim_write_full(self.ctx, data.as_ptr(), data.len()) })
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), CgError> {
        check_io_range(offset, data.len())?;
        // SAFETY: `data` is valid for `data.len()` bytes during the call; the shim copies.
        check(unsafe { sys::cg_shim_write(self.ctx, offset, data.as_ptr(), data.len()) })
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, CgError> {
        check_io_range(offset, len)?;
        let mut data: Vec<u8> = Vec::new();
        // SAFETY: `bytes_sink` matches cg_bytes_sink and gets `&mut data`, which outlives
        // the synchronous call.
        check(unsafe {
            sys::cg_shim_read_at(self.ctx, offset, len as u64, Some(bytes_sink), (&mut data as *mut Vec<u8>).cast())
        })?;
        Ok(data)
    }

    fn remove(&mut self) -> Result<(), CgError> {
        // SAFETY: `ctx` is this call's context.
        check(unsafe { sys::cg_shim_remove(self.ctx) })
    }

    fn omap_get(&self, key: &str) -> Result<Option<Vec<u8>>, CgError> {
        let mut value: Vec<u8> = Vec::new();
        // SAFETY: `key` is valid for its length; the sink gets `&mut value`, which
        // outlives the synchronous call.
        let r = unsafe {
            sys::cg_shim_omap_get(
                self.ctx,
                key.as_ptr().cast(),
                key.len(),
                Some(bytes_sink),
                (&mut value as *mut Vec<u8>).cast(),
            )
        };
        match r {
            r if r == -libc::ENOENT => Ok(None),
            r => check(r).map(|()| Some(value)),
        }
    }

    fn omap_list(&self, start_after: &str, prefix: &str, max_entries: u32) -> Result<OmapPage, CgError> {
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut more: c_int = 0;
        // SAFETY: both strings are valid for their lengths; the sink gets `&mut entries`,
        // which outlives the synchronous call; `more` is a valid out-pointer.
        check(unsafe {
            sys::cg_shim_omap_list(
                self.ctx,
                start_after.as_ptr().cast(),
                start_after.len(),
                prefix.as_ptr().cast(),
                prefix.len(),
                u64::from(max_entries),
                Some(omap_sink),
                (&mut raw as *mut Vec<(Vec<u8>, Vec<u8>)>).cast(),
                &mut more,
            )
        })?;
        // None of our keys is anything but UTF-8; a key that is not was not written by us
        // and could hide an entry, so refuse rather than skip it.
        let entries = raw
            .into_iter()
            .map(|(key, value)| match String::from_utf8(key) {
                Ok(key) => Ok((key, value)),
                Err(_) => Err(CgError::Io(format!("omap key under {prefix:?} is not UTF-8"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OmapPage { entries, more: more != 0 })
    }

    fn omap_set(&mut self, entries: &[(&str, &[u8])]) -> Result<(), CgError> {
        let keys: Vec<*const c_char> = entries.iter().map(|(k, _)| k.as_ptr().cast()).collect();
        let key_lens: Vec<usize> = entries.iter().map(|(k, _)| k.len()).collect();
        let vals: Vec<*const u8> = entries.iter().map(|(_, v)| v.as_ptr()).collect();
        let val_lens: Vec<usize> = entries.iter().map(|(_, v)| v.len()).collect();
        // SAFETY: four parallel arrays of `entries.len()` elements, each pointer valid for
        // its length during the call (borrowed from `entries`); the shim copies.
        check(unsafe {
            sys::cg_shim_omap_set(
                self.ctx,
                keys.as_ptr(),
                key_lens.as_ptr(),
                vals.as_ptr(),
                val_lens.as_ptr(),
                entries.len(),
            )
        })
    }

    fn omap_remove(&mut self, key: &str) -> Result<(), CgError> {
        // SAFETY: `key` is valid for its length during the call; the shim copies.
        check(unsafe { sys::cg_shim_omap_remove(self.ctx, key.as_ptr().cast(), key.len()) })
    }
}
