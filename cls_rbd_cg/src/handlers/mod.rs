//! Method handlers: safe, small functions over [`crate::ObjectStore`].
//!
//! Every handler validates its request before touching the store, reads what it needs,
//! decides, and only then writes. Repeating a step that already happened succeeds
//! (idempotence), so an interrupted client sequence can simply be rerun.

#![forbid(unsafe_code)]

pub mod backrefs;
pub mod clone;
pub mod directory;
pub mod header;
pub mod id_object;
pub mod image_fence;
pub mod journal;
pub mod members;
pub mod mirror;
pub mod snapshots;
pub mod version;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod decoder_tests;
#[cfg(test)]
mod model_tests;
