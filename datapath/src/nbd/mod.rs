//! An NBD (Network Block Device) protocol server over a pluggable backend.
//!
//! # What it speaks, and why only that
//!
//! The protocol is `NetworkBlockDevice/nbd` `doc/proto.md`. This server implements its
//! *baseline* (what every implementation must) plus the write-side commands a journaled
//! block device needs, and answers everything else with the protocol's own "unsupported":
//!
//! - **Handshake**: fixed newstyle only (greeting flags `FIXED_NEWSTYLE | NO_ZEROES`); a
//!   client that does not answer with `FIXED_NEWSTYLE`, or sets unknown flags, is closed.
//!   Options: `EXPORT_NAME` (honours `NO_ZEROES`), `ABORT`, `LIST`, `INFO`, `GO`.
//!   `INFO`/`GO` always send `NBD_INFO_EXPORT` and `NBD_INFO_BLOCK_SIZE` (minimum 1,
//!   preferred 4096, maximum = the maximum request size), and `NBD_INFO_NAME` /
//!   `NBD_INFO_DESCRIPTION` when asked. Everything else (`STARTTLS`, `STRUCTURED_REPLY`,
//!   meta contexts, extended headers, unknown options) gets `NBD_REP_ERR_UNSUP`, so clients
//!   fall back to simple replies; an unknown export gets `NBD_REP_ERR_UNKNOWN`; the empty
//!   name selects the backend's default export if it declares one.
//! - **Transmission**: simple replies only. `READ`, `WRITE` (+FUA), `DISC`, `FLUSH`, `TRIM`
//!   (+FUA), `WRITE_ZEROES` (+FUA, +NO_HOLE), and `CACHE` (advertised, a checked no-op).
//!   `BLOCK_STATUS` needs structured replies and is not offered. Flags advertised:
//!   `HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES, SEND_CACHE`, plus
//!   `CAN_MULTI_CONN` when the backend allows it and `READ_ONLY` for read-only exports.
//!   No TLS: serve on loopback, a Unix socket, or a trusted network.
//!
//! Structured replies would only buy sparse reads and block status; both are for later,
//! and both are optional in the protocol.
//!
//! # Ordering contract with the backend
//!
//! Each connection has one reader. It reads a request (and a write's whole payload),
//! checks it, and calls the backend's synchronous `submit_*` **before reading the next
//! request**; the backend fixes the request's place in its single total order inside that
//! call and returns a future for the completion. So the backend's order is the order the
//! server read requests off its sockets, and a request a client sent after seeing another's
//! reply is ordered after it. See [`ExportSet`] for the whole contract.
//!
//! Replies go out as requests complete (out of order), written by one writer task per
//! connection so a reply header and its read payload are never split by another reply.
//!
//! # Limits and hostile input
//!
//! Nothing a client sends can panic the server or stop other connections:
//! - decoders are total ([`proto`], fuzzed with proptest);
//! - a request out of the export's bounds gets `EINVAL` (reads, trims, cache) or `ENOSPC`
//!   (writes, write-zeroes), as the protocol recommends; unknown commands and flags get
//!   `EINVAL`; writes to a read-only export get `EPERM`; the connection goes on;
//! - zero-length requests are successful no-ops (the protocol leaves them unspecified);
//! - a READ over the maximum request size gets `EINVAL`; a WRITE over it closes the
//!   connection (its payload cannot be skipped safely); a bad request magic closes it;
//! - option data over 64 KiB, bad option magic, or an unknown `EXPORT_NAME` closes the
//!   connection; malformed `INFO`/`GO` data gets `NBD_REP_ERR_INVALID`; the handshake must
//!   end within [`ServerConfig::handshake_timeout`];
//! - per connection at most [`ServerConfig::max_in_flight`] requests and
//!   [`ServerConfig::max_in_flight_bytes`] payload bytes are unanswered; when either is
//!   reached the connection stops reading its socket (back-pressure);
//! - at most [`ServerConfig::max_connections`] connections; more are closed on accept.
//!
//! # Shutdown
//!
//! [`ShutdownHandle::shutdown`] (or SIGTERM/SIGINT via [`shutdown_on_signals`]) stops the
//! listeners, stops every connection from reading further requests, waits until every
//! request already read has completed in the backend and been answered, then closes the
//! connections; `serve_*` return after that. Connections still negotiating are simply
//! closed. A backend future that never completes blocks shutdown: the backend must bound
//! its own I/O. A client that stops reading its replies gets
//! [`ServerConfig::shutdown_grace`] before its replies are dropped (its requests still
//! complete in the backend).
//!
//! Every close after the transmission phase is a *lingering* close: the server sends its
//! last reply and a FIN, then reads and discards what the client still sends until the
//! client closes (at most 2 s). Closing with unread requests in the socket would send a
//! reset, and a reset makes the client's kernel drop replies it has received but not yet
//! delivered, i.e. acknowledged writes the client would never hear about.

mod backend;
mod handshake;
mod mem;
pub mod proto;
mod server;
mod transmission;

pub use backend::{BackendError, ExportInfo, ExportSet, IoFuture, NbdErrno};
pub use mem::{Fault, MemBackend, MemExport, MemStats};
pub use server::{shutdown_on_signals, Server, ServerConfig, ShutdownHandle, Transport};
