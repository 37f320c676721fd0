//! The NBD exports of a group: one per member, named as `rbd-cg image ls` prints it
//! (`pool[/namespace]/image`), sized as the image.
//!
//! Two backends behind the same [`ExportSet`] seam:
//! - [`JournaledExports`]: every write, discard and write-zeroes goes through the group's
//!   journal writer ([`rbd_cg_journal::writer::JournalWriter`]): ordered across all members,
//!   acknowledged once durable in the journal, applied to the images in the background;
//!   reads see every acknowledged write.
//! - [`PlainExports`]: straight to the images through librbd (groups without journaling,
//!   and the baseline the benchmark compares with).

use std::sync::Arc;

use rbd_cg_journal::writer::JournalWriter;
use rbd_cg_rados::aio::AioImage;
use rbd_cg_rados::RadosError;

use crate::nbd::{BackendError, ExportInfo, ExportSet, IoFuture, NbdErrno};

fn backend_error(e: RadosError) -> BackendError {
    BackendError::from_errno(e.errno, e.to_string())
}

/// One member export.
#[derive(Debug, Clone)]
pub struct MemberExport {
    /// Its name: `pool[/namespace]/image`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Its journal tag (journaled) or index (plain).
    pub key: u32,
}

/// Exports that write through the group journal.
pub struct JournaledExports {
    writer: Arc<JournalWriter>,
    exports: Vec<MemberExport>,
}

impl std::fmt::Debug for JournaledExports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournaledExports").field("exports", &self.exports).finish()
    }
}

impl JournaledExports {
    /// The members of `writer`, as exports.
    pub fn new(writer: Arc<JournalWriter>) -> JournaledExports {
        let exports =
            writer.members().iter().map(|m| MemberExport { name: m.label.clone(), size: m.size, key: m.tag }).collect();
        JournaledExports { writer, exports }
    }

    /// The exports.
    pub fn exports(&self) -> &[MemberExport] {
        &self.exports
    }
}

fn info(export: &MemberExport, description: &str) -> ExportInfo {
    ExportInfo::new(export.name.clone(), export.size).description(description.to_owned()).multi_conn(true)
}

impl ExportSet for JournaledExports {
    type Export = MemberExport;

    fn list(&self) -> Vec<ExportInfo> {
        self.exports.iter().map(|e| info(e, "rbd_cg group member, journaled")).collect()
    }

    fn open(&self, name: &str) -> Option<(ExportInfo, MemberExport)> {
        let export = self.exports.iter().find(|e| e.name == name)?;
        Some((info(export, "rbd_cg group member, journaled"), export.clone()))
    }

    fn submit_read(&self, export: &MemberExport, offset: u64, len: u32) -> IoFuture<Vec<u8>> {
        let done = self.writer.submit_read(export.key, offset, u64::from(len));
        Box::pin(async move { done.await.map_err(backend_error) })
    }

    fn submit_write(&self, export: &MemberExport, offset: u64, data: Vec<u8>, _fua: bool) -> IoFuture<()> {
        // Acknowledged only once durable: FUA holds for every write.
        let done = self.writer.submit_write(export.key, offset, data);
        Box::pin(async move { done.await.map_err(backend_error) })
    }

    fn submit_write_zeroes(
        &self,
        export: &MemberExport,
        offset: u64,
        len: u32,
        _fua: bool,
        _may_trim: bool,
    ) -> IoFuture<()> {
        let done = self.writer.submit_write_zeroes(export.key, offset, u64::from(len));
        Box::pin(async move { done.await.map_err(backend_error) })
    }

    fn submit_trim(&self, export: &MemberExport, offset: u64, len: u32, _fua: bool) -> IoFuture<()> {
        let done = self.writer.submit_discard(export.key, offset, u64::from(len));
        Box::pin(async move { done.await.map_err(backend_error) })
    }

    fn submit_flush(&self, _export: &MemberExport) -> IoFuture<()> {
        let done = self.writer.submit_flush();
        Box::pin(async move { done.await.map_err(backend_error) })
    }
}

/// Exports that write the member images directly through librbd.
pub struct PlainExports {
    images: Vec<(MemberExport, Arc<AioImage>)>,
}

impl std::fmt::Debug for PlainExports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exports: Vec<&MemberExport> = self.images.iter().map(|(e, _)| e).collect();
        f.debug_struct("PlainExports").field("exports", &exports).finish()
    }
}

impl PlainExports {
    /// Exports of open images, named.
    pub fn new(images: Vec<(String, AioImage)>) -> Result<PlainExports, RadosError> {
        let mut exports = Vec::with_capacity(images.len());
        for (key, (name, image)) in images.into_iter().enumerate() {
            let size = image.size()?;
            exports.push((MemberExport { name, size, key: key as u32 }, Arc::new(image)));
        }
        Ok(PlainExports { images: exports })
    }

    /// The exports.
    pub fn exports(&self) -> Vec<MemberExport> {
        self.images.iter().map(|(e, _)| e.clone()).collect()
    }

    fn image(&self, export: &MemberExport) -> Result<Arc<AioImage>, BackendError> {
        self.images
            .get(export.key as usize)
            .map(|(_, image)| Arc::clone(image))
            .ok_or_else(|| BackendError::new(NbdErrno::Inval, "unknown export"))
    }
}

impl ExportSet for PlainExports {
    type Export = MemberExport;

    fn list(&self) -> Vec<ExportInfo> {
        self.images.iter().map(|(e, _)| info(e, "rbd_cg group member")).collect()
    }

    fn open(&self, name: &str) -> Option<(ExportInfo, MemberExport)> {
        let (export, _) = self.images.iter().find(|(e, _)| e.name == name)?;
        Some((info(export, "rbd_cg group member"), export.clone()))
    }

    fn submit_read(&self, export: &MemberExport, offset: u64, len: u32) -> IoFuture<Vec<u8>> {
        let done = self.image(export).map(|image| image.aio_read(offset, len as usize));
        Box::pin(async move { done?.await.map_err(backend_error) })
    }

    fn submit_write(&self, export: &MemberExport, offset: u64, data: Vec<u8>, fua: bool) -> IoFuture<()> {
        let image = self.image(export);
        let done = image.as_ref().map(|image| image.aio_write(offset, data)).map_err(BackendError::clone);
        let flush = match (&image, fua) {
            (Ok(image), true) => Some(Arc::clone(image)),
            _ => None,
        };
        Box::pin(async move {
            done?.await.map_err(backend_error)?;
            if let Some(image) = flush {
                image.aio_flush().await.map_err(backend_error)?;
            }
            Ok(())
        })
    }

    fn submit_write_zeroes(
        &self,
        export: &MemberExport,
        offset: u64,
        len: u32,
        _fua: bool,
        _may_trim: bool,
    ) -> IoFuture<()> {
        let done = self.image(export).map(|image| image.aio_write_zeroes(offset, u64::from(len)));
        Box::pin(async move { done?.await.map_err(backend_error) })
    }

    fn submit_trim(&self, export: &MemberExport, offset: u64, len: u32, _fua: bool) -> IoFuture<()> {
        let done = self.image(export).map(|image| image.aio_discard(offset, u64::from(len)));
        Box::pin(async move { done?.await.map_err(backend_error) })
    }

    fn submit_flush(&self, export: &MemberExport) -> IoFuture<()> {
        let done = self.image(export).map(|image| image.aio_flush());
        Box::pin(async move { done?.await.map_err(backend_error) })
    }
}
