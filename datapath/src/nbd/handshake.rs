//! Fixed newstyle negotiation, up to the start of transmission.

use std::io;

use log::{debug, warn};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::backend::{ExportInfo, ExportSet};
use super::proto::{self, ProtoError};

/// The handshake's parameters, from the server config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandshakeLimits {
    /// Advertised maximum block size (the largest READ/WRITE accepted).
    pub max_request: u32,
}

/// The block size constraints advertised with `NBD_INFO_BLOCK_SIZE`.
pub(crate) const MIN_BLOCK: u32 = 1;
pub(crate) const PREFERRED_BLOCK: u32 = 4096;

/// A finished negotiation.
pub(crate) enum HandshakeEnd<E> {
    /// The client chose an export and transmission starts.
    Transmission { info: ExportInfo, export: E, flags: u16 },
    /// The client ended the negotiation with `NBD_OPT_ABORT`.
    Aborted,
}

#[derive(Debug, Error)]
pub(crate) enum HandshakeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("protocol violation: {0}")]
    Proto(#[from] ProtoError),
    #[error("NBD_OPT_EXPORT_NAME for unknown export {0:?}")]
    UnknownExport(String),
}

impl HandshakeError {
    /// A client that went away is routine; anything else is worth a warning.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, HandshakeError::Io(e) if matches!(e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe))
    }
}

/// Transmission flags for an export.
pub(crate) fn transmission_flags(info: &ExportInfo) -> u16 {
    let mut f = proto::FLAG_HAS_FLAGS
        | proto::FLAG_SEND_FLUSH
        | proto::FLAG_SEND_FUA
        | proto::FLAG_SEND_TRIM
        | proto::FLAG_SEND_WRITE_ZEROES
        | proto::FLAG_SEND_CACHE;
    if info.read_only {
        f |= proto::FLAG_READ_ONLY;
    }
    if info.multi_conn {
        f |= proto::FLAG_CAN_MULTI_CONN;
    }
    f
}

/// The export an option names: an empty name is the default export, if there is one.
fn resolve<B: ExportSet>(backend: &B, name: &str) -> Option<String> {
    if name.is_empty() {
        backend.default_export()
    } else {
        Some(name.to_owned())
    }
}

/// Runs the negotiation on `s` until the client enters transmission, aborts, or breaks the
/// protocol. The caller bounds it with the handshake timeout.
pub(crate) async fn negotiate<S, B>(
    s: &mut S,
    backend: &B,
    limits: HandshakeLimits,
    peer: &str,
) -> Result<HandshakeEnd<B::Export>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: ExportSet,
{
    s.write_all(&proto::encode_greeting()).await?;
    s.flush().await?;
    let mut cf = [0u8; 4];
    s.read_exact(&mut cf).await?;
    let client = proto::parse_client_flags(&cf)?;

    let mut out = Vec::with_capacity(256);
    loop {
        let mut hb = [0u8; proto::OPTION_HEADER_LEN];
        s.read_exact(&mut hb).await?;
        let h = proto::OptionHeader::parse(&hb)?;
        let mut data = vec![0u8; h.len as usize];
        s.read_exact(&mut data).await?;
        out.clear();

        match h.option {
            proto::OPT_EXPORT_NAME => {
                // No way to send an error: a bad or unknown name ends the session.
                let name = proto::parse_string(&data)?;
                let found = resolve(backend, name).and_then(|n| backend.open(&n));
                let Some((info, export)) = found else {
                    return Err(HandshakeError::UnknownExport(name.to_owned()));
                };
                let flags = transmission_flags(&info);
                s.write_all(&proto::encode_export_name_reply(info.size, flags, client.no_zeroes)).await?;
                s.flush().await?;
                return Ok(HandshakeEnd::Transmission { info, export, flags });
            }
            proto::OPT_ABORT => {
                proto::encode_option_reply(&mut out, h.option, proto::REP_ACK, &[]);
                // The client may already be gone; that is fine.
                let _ = s.write_all(&out).await;
                let _ = s.flush().await;
                return Ok(HandshakeEnd::Aborted);
            }
            proto::OPT_LIST => {
                if data.is_empty() {
                    for e in backend.list() {
                        proto::encode_rep_server(&mut out, &e.name, &e.description);
                    }
                    proto::encode_option_reply(&mut out, h.option, proto::REP_ACK, &[]);
                } else {
                    warn!("nbd: {peer}: NBD_OPT_LIST with {} bytes of data", data.len());
                    proto::encode_option_reply(
                        &mut out,
                        h.option,
                        proto::REP_ERR_INVALID,
                        b"NBD_OPT_LIST takes no data",
                    );
                }
            }
            proto::OPT_INFO | proto::OPT_GO => {
                let go = h.option == proto::OPT_GO;
                match proto::parse_info_request(&data) {
                    Err(e) => {
                        warn!("nbd: {peer}: malformed NBD_OPT_{}: {e}", if go { "GO" } else { "INFO" });
                        proto::encode_option_reply(&mut out, h.option, proto::REP_ERR_INVALID, b"malformed request");
                    }
                    Ok(req) => {
                        let name = resolve(backend, req.name);
                        let found = match (&name, go) {
                            (None, _) => None,
                            (Some(n), true) => backend.open(n).map(|(i, e)| (i, Some(e))),
                            (Some(n), false) => backend.info(n).map(|i| (i, None)),
                        };
                        match found {
                            None => {
                                debug!("nbd: {peer}: unknown export {:?}", req.name);
                                proto::encode_option_reply(
                                    &mut out,
                                    h.option,
                                    proto::REP_ERR_UNKNOWN,
                                    b"no such export",
                                );
                            }
                            Some((info, export)) => {
                                let flags = transmission_flags(&info);
                                proto::encode_info_export(&mut out, h.option, info.size, flags);
                                proto::encode_info_block_size(
                                    &mut out,
                                    h.option,
                                    MIN_BLOCK,
                                    PREFERRED_BLOCK,
                                    limits.max_request,
                                );
                                if req.wants(proto::INFO_NAME) {
                                    proto::encode_info_string(&mut out, h.option, proto::INFO_NAME, &info.name);
                                }
                                if req.wants(proto::INFO_DESCRIPTION) && !info.description.is_empty() {
                                    proto::encode_info_string(
                                        &mut out,
                                        h.option,
                                        proto::INFO_DESCRIPTION,
                                        &info.description,
                                    );
                                }
                                proto::encode_option_reply(&mut out, h.option, proto::REP_ACK, &[]);
                                if let Some(export) = export {
                                    s.write_all(&out).await?;
                                    s.flush().await?;
                                    return Ok(HandshakeEnd::Transmission { info, export, flags });
                                }
                            }
                        }
                    }
                }
            }
            other => {
                // STARTTLS, STRUCTURED_REPLY, meta contexts, extended headers, unknown.
                debug!("nbd: {peer}: unsupported option {other}");
                proto::encode_option_reply(&mut out, other, proto::REP_ERR_UNSUP, &[]);
            }
        }
        s.write_all(&out).await?;
        s.flush().await?;
    }
}
