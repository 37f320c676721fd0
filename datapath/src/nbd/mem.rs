//! [`MemBackend`]: sparse in-memory exports, for tests, examples and benchmarks.
//!
//! Each export is a map of 4 KiB blocks behind one mutex; absent blocks read as zeroes.
//! Requests take effect **at submission**, under the export's lock, which is exactly the
//! ordering point the [`ExportSet`] contract asks for: the image always equals the requests
//! applied in the order the server read them. With a latency configured, the *completion*
//! (the reply) is delayed, as a journal's would be, but the order is not changed.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::backend::{BackendError, ExportInfo, ExportSet, IoFuture, NbdErrno};

const BLOCK: u64 = 4096;

/// Counts of submitted operations (for tests).
#[derive(Debug, Default)]
pub struct MemStats {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub write_zeroes: AtomicU64,
    pub trims: AtomicU64,
    pub flushes: AtomicU64,
    pub fua: AtomicU64,
}

/// An injected failure: every operation on `export` that touches `range` (flushes: any
/// flush when the range is empty) fails with `kind`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub export: String,
    pub range: Range<u64>,
    pub kind: NbdErrno,
}

/// One in-memory export.
pub struct MemExport {
    info: ExportInfo,
    blocks: Mutex<HashMap<u64, Box<[u8]>>>,
    stats: MemStats,
}

impl MemExport {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Box<[u8]>>> {
        // A panic while holding the lock cannot leave a block half-written in a way that
        // matters for a test image; keep serving.
        self.blocks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_into(blocks: &HashMap<u64, Box<[u8]>>, offset: u64, out: &mut [u8]) {
        let mut pos = 0usize;
        while pos < out.len() {
            let abs = offset + pos as u64;
            let (idx, within) = (abs / BLOCK, (abs % BLOCK) as usize);
            let n = (BLOCK as usize - within).min(out.len() - pos);
            match blocks.get(&idx) {
                Some(b) => out[pos..pos + n].copy_from_slice(&b[within..within + n]),
                None => out[pos..pos + n].fill(0),
            }
            pos += n;
        }
    }

    fn write_at(blocks: &mut HashMap<u64, Box<[u8]>>, offset: u64, data: &[u8]) {
        let mut pos = 0usize;
        while pos < data.len() {
            let abs = offset + pos as u64;
            let (idx, within) = (abs / BLOCK, (abs % BLOCK) as usize);
            let n = (BLOCK as usize - within).min(data.len() - pos);
            let b = blocks.entry(idx).or_insert_with(|| vec![0u8; BLOCK as usize].into_boxed_slice());
            b[within..within + n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
        }
    }

    /// Zeroes a range: whole blocks are dropped (they read as zeroes), partial ones cleared.
    fn zero_at(blocks: &mut HashMap<u64, Box<[u8]>>, offset: u64, len: u64) {
        let end = offset + len;
        let mut abs = offset;
        while abs < end {
            let (idx, within) = (abs / BLOCK, abs % BLOCK);
            let n = (BLOCK - within).min(end - abs);
            if n == BLOCK {
                blocks.remove(&idx);
            } else if let Some(b) = blocks.get_mut(&idx) {
                b[within as usize..(within + n) as usize].fill(0);
            }
            abs += n;
        }
    }

    /// The export's description.
    pub fn info(&self) -> &ExportInfo {
        &self.info
    }

    /// Operation counters.
    pub fn stats(&self) -> &MemStats {
        &self.stats
    }

    /// Reads the current contents (outside the NBD path), e.g. to check a test's writes.
    pub fn snapshot(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        Self::read_into(&self.lock(), offset, &mut out);
        out
    }

    /// Writes outside the NBD path, e.g. to seed a test image.
    pub fn fill(&self, offset: u64, data: &[u8]) {
        Self::write_at(&mut self.lock(), offset, data);
    }

    /// Number of allocated 4 KiB blocks.
    pub fn allocated_blocks(&self) -> usize {
        self.lock().len()
    }
}

impl std::fmt::Debug for MemExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemExport").field("info", &self.info).field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// Sparse in-memory exports with optional artificial completion latency and fault
/// injection. Cheap to share: hold it in an `Arc`.
pub struct MemBackend {
    exports: Vec<Arc<MemExport>>,
    default: Option<String>,
    latency: Option<Duration>,
    fault: Mutex<Option<Fault>>,
}

impl std::fmt::Debug for MemBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemBackend")
            .field("exports", &self.exports)
            .field("default", &self.default)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl MemBackend {
    /// Exports as described (sizes are allocated lazily).
    pub fn new(exports: Vec<ExportInfo>) -> Self {
        let exports = exports
            .into_iter()
            .map(|info| Arc::new(MemExport { info, blocks: Mutex::new(HashMap::new()), stats: MemStats::default() }))
            .collect();
        MemBackend { exports, default: None, latency: None, fault: Mutex::new(None) }
    }

    /// Makes `name` the export an empty export name selects.
    pub fn with_default(mut self, name: impl Into<String>) -> Self {
        self.default = Some(name.into());
        self
    }

    /// Delays every completion by `latency` (the effect still happens at submission).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// The export called `name`.
    pub fn export(&self, name: &str) -> Option<&Arc<MemExport>> {
        self.exports.iter().find(|e| e.info.name == name)
    }

    /// Installs (or with `None` removes) an injected failure.
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    fn check_fault(&self, export: &MemExport, offset: u64, len: u64) -> Result<(), BackendError> {
        let guard = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_ref() {
            let hit = if len == 0 { f.range.is_empty() } else { offset < f.range.end && f.range.start < offset + len };
            if f.export == export.info.name && hit {
                return Err(BackendError::new(f.kind, format!("injected fault at {offset}+{len}")));
            }
        }
        Ok(())
    }

    fn complete<T: Send + 'static>(&self, result: Result<T, BackendError>) -> IoFuture<T> {
        match self.latency {
            None => Box::pin(std::future::ready(result)),
            Some(d) => Box::pin(async move {
                tokio::time::sleep(d).await;
                result
            }),
        }
    }
}

impl ExportSet for MemBackend {
    type Export = Arc<MemExport>;

    fn list(&self) -> Vec<ExportInfo> {
        self.exports.iter().map(|e| e.info.clone()).collect()
    }

    fn default_export(&self) -> Option<String> {
        self.default.clone()
    }

    fn info(&self, name: &str) -> Option<ExportInfo> {
        self.export(name).map(|e| e.info.clone())
    }

    fn open(&self, name: &str) -> Option<(ExportInfo, Self::Export)> {
        self.export(name).map(|e| (e.info.clone(), Arc::clone(e)))
    }

    fn submit_read(&self, export: &Self::Export, offset: u64, len: u32) -> IoFuture<Vec<u8>> {
        export.stats.reads.fetch_add(1, Ordering::Relaxed);
        let r = self.check_fault(export, offset, u64::from(len)).map(|()| {
            let mut out = vec![0u8; len as usize];
            MemExport::read_into(&export.lock(), offset, &mut out);
            out
        });
        self.complete(r)
    }

    fn submit_write(&self, export: &Self::Export, offset: u64, data: Vec<u8>, fua: bool) -> IoFuture<()> {
        export.stats.writes.fetch_add(1, Ordering::Relaxed);
        if fua {
            export.stats.fua.fetch_add(1, Ordering::Relaxed);
        }
        let r = self.check_fault(export, offset, data.len() as u64).map(|()| {
            MemExport::write_at(&mut export.lock(), offset, &data);
        });
        self.complete(r)
    }

    fn submit_write_zeroes(
        &self,
        export: &Self::Export,
        offset: u64,
        len: u32,
        fua: bool,
        _may_trim: bool,
    ) -> IoFuture<()> {
        export.stats.write_zeroes.fetch_add(1, Ordering::Relaxed);
        if fua {
            export.stats.fua.fetch_add(1, Ordering::Relaxed);
        }
        let r = self.check_fault(export, offset, u64::from(len)).map(|()| {
            MemExport::zero_at(&mut export.lock(), offset, u64::from(len));
        });
        self.complete(r)
    }

    fn submit_trim(&self, export: &Self::Export, offset: u64, len: u32, fua: bool) -> IoFuture<()> {
        export.stats.trims.fetch_add(1, Ordering::Relaxed);
        if fua {
            export.stats.fua.fetch_add(1, Ordering::Relaxed);
        }
        // Trimmed data reads back as zeroes here (allowed: contents become unspecified).
        let r = self.check_fault(export, offset, u64::from(len)).map(|()| {
            MemExport::zero_at(&mut export.lock(), offset, u64::from(len));
        });
        self.complete(r)
    }

    fn submit_flush(&self, export: &Self::Export) -> IoFuture<()> {
        export.stats.flushes.fetch_add(1, Ordering::Relaxed);
        let r = self.check_fault(export, 0, 0);
        self.complete(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now<T>(f: IoFuture<T>) -> Result<T, BackendError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(f)
    }

    #[test]
    fn sparse_read_write_zero() {
        let b = MemBackend::new(vec![ExportInfo::new("a", 1 << 20)]);
        let (_, e) = b.open("a").unwrap();
        assert_eq!(now(b.submit_read(&e, 0, 10)).unwrap(), vec![0; 10]);
        now(b.submit_write(&e, 4090, vec![7; 20], false)).unwrap();
        let r = now(b.submit_read(&e, 4088, 24)).unwrap();
        assert_eq!(&r[..2], &[0, 0]);
        assert_eq!(&r[2..22], &[7; 20]);
        assert_eq!(&r[22..], &[0, 0]);
        assert_eq!(e.allocated_blocks(), 2);
        now(b.submit_write_zeroes(&e, 4095, 2, false, true)).unwrap();
        assert_eq!(e.snapshot(4094, 4), vec![7, 0, 0, 7]);
        now(b.submit_trim(&e, 0, 8192, false)).unwrap();
        assert_eq!(e.allocated_blocks(), 0);
        assert!(b.open("b").is_none());
    }

    #[test]
    fn faults_and_latency() {
        let b = MemBackend::new(vec![ExportInfo::new("a", 1 << 20)]).with_latency(Duration::from_millis(1));
        let (_, e) = b.open("a").unwrap();
        b.set_fault(Some(Fault { export: "a".into(), range: 100..200, kind: NbdErrno::NoSpc }));
        assert_eq!(now(b.submit_write(&e, 150, vec![1], false)).unwrap_err().kind, NbdErrno::NoSpc);
        assert!(now(b.submit_write(&e, 200, vec![1], false)).is_ok());
        assert!(now(b.submit_flush(&e)).is_ok());
        b.set_fault(Some(Fault { export: "a".into(), range: 0..0, kind: NbdErrno::Io }));
        assert_eq!(now(b.submit_flush(&e)).unwrap_err().kind, NbdErrno::Io);
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(NbdErrno::from_errno(-libc::EROFS), NbdErrno::Perm);
        assert_eq!(NbdErrno::from_errno(libc::EDQUOT), NbdErrno::NoSpc);
        assert_eq!(NbdErrno::from_errno(-libc::EOPNOTSUPP), NbdErrno::NotSup);
        assert_eq!(NbdErrno::from_errno(-libc::ETIMEDOUT), NbdErrno::Io);
        assert_eq!(NbdErrno::from_errno(i32::MIN), NbdErrno::Io);
        assert_eq!(BackendError::from(std::io::Error::from_raw_os_error(libc::ENOSPC)).kind, NbdErrno::NoSpc);
    }
}
