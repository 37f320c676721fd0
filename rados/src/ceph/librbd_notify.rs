//! librbd's watch/notify messages on an image header (`src/librbd/WatchNotifyTypes.h`),
//! and the notify reply librados hands back (`librados.h`).
//!
//! An exclusive-lock owner of ours speaks these to librbd and krbd clients of the same
//! image: it asks for the lock, answers lock requests, announces header updates and
//! quiesces. Layouts and golden bytes: `docs/FENCING-DESIGN.md` §1, pinned by the tests
//! below with bytes captured from a real librbd.

use std::fmt;

use super::encoding::{DecodeError, Reader, Writer};

/// librbd's notify timeout (`watcher::Notifier::NOTIFY_TIMEOUT`), in milliseconds.
pub const NOTIFY_TIMEOUT_MS: u64 = 5_000;

/// librbd's `NotifyOp` (`WatchNotifyTypes.h`); only the ones a fence reacts to by name.
pub mod op {
    /// A client took the exclusive lock.
    pub const ACQUIRED_LOCK: u32 = 0;
    /// A client released the exclusive lock.
    pub const RELEASED_LOCK: u32 = 1;
    /// A client asks the lock owner to release.
    pub const REQUEST_LOCK: u32 = 2;
    /// The header changed: watchers refresh.
    pub const HEADER_UPDATE: u32 = 3;
    /// First of the owner-directed maintenance requests (flatten, resize, snap create, ...).
    pub const FIRST_OWNER_REQUEST: u32 = 6;
    /// Last of them (sparsify).
    pub const LAST_OWNER_REQUEST: u32 = 17;
    /// Quiesce I/O (application hooks).
    pub const QUIESCE: u32 = 18;
    /// Resume after a quiesce.
    pub const UNQUIESCE: u32 = 19;
}

/// The `NotifyMessage` version librbd (Pacific) sends; we send the same.
const NOTIFY_STRUCT_V: u8 = 7;

/// Identifies a lock owner: the client's instance id (gid) and its watch handle on the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId {
    /// `rados_get_instance_id` of the connection that holds the watch and the lock.
    pub gid: u64,
    /// The watch cookie on the header object.
    pub handle: u64,
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client.{} (watch {})", self.gid, self.handle)
    }
}

/// A decoded librbd notification (only what a fence needs from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The `NotifyOp`; an empty notify buffer is `HEADER_UPDATE` (legacy).
    pub op: u32,
    /// The sender, for the three lock messages when it is encoded (v >= 2).
    pub client: Option<ClientId>,
}

fn client(w: &mut Writer, c: ClientId) -> &mut Writer {
    w.u64(c.gid).u64(c.handle)
}

fn notify_message(op: u32, payload: impl FnOnce(&mut Writer)) -> Vec<u8> {
    Writer::default()
        .versioned(NOTIFY_STRUCT_V, 1, |w| {
            w.u32(op);
            payload(w);
        })
        .finish()
}

/// `REQUEST_LOCK{client, force = false}`.
pub fn request_lock(me: ClientId) -> Vec<u8> {
    notify_message(op::REQUEST_LOCK, |w| {
        client(w, me).u8(0);
    })
}

/// `ACQUIRED_LOCK{client}`.
pub fn acquired_lock(me: ClientId) -> Vec<u8> {
    notify_message(op::ACQUIRED_LOCK, |w| {
        client(w, me);
    })
}

/// `RELEASED_LOCK{client}`.
pub fn released_lock(me: ClientId) -> Vec<u8> {
    notify_message(op::RELEASED_LOCK, |w| {
        client(w, me);
    })
}

/// `HEADER_UPDATE{}`.
pub fn header_update() -> Vec<u8> {
    notify_message(op::HEADER_UPDATE, |_| {})
}

/// `QUIESCE{AsyncRequestId(client, request_id)}`.
pub fn quiesce(me: ClientId, request_id: u64) -> Vec<u8> {
    notify_message(op::QUIESCE, |w| {
        client(w, me).u64(request_id);
    })
}

/// `UNQUIESCE{AsyncRequestId(client, request_id)}`.
pub fn unquiesce(me: ClientId, request_id: u64) -> Vec<u8> {
    notify_message(op::UNQUIESCE, |w| {
        client(w, me).u64(request_id);
    })
}

/// Decodes a notification a watcher received. An empty buffer is `HEADER_UPDATE`.
pub fn decode_notification(buf: &[u8]) -> Result<Notification, DecodeError> {
    if buf.is_empty() {
        return Ok(Notification { op: op::HEADER_UPDATE, client: None });
    }
    let (struct_v, mut body) = Reader::new(buf).versioned(1, "truncated notify message")?;
    let op = body.u32("notify message without op")?;
    let lock_op = matches!(op, op::ACQUIRED_LOCK | op::RELEASED_LOCK | op::REQUEST_LOCK);
    let client = if lock_op && struct_v >= 2 {
        Some(ClientId { gid: body.u64("truncated client id")?, handle: body.u64("truncated client id")? })
    } else {
        None
    };
    Ok(Notification { op, client })
}

/// `ResponseMessage{result}`: the ack payload with which an owner answers a request.
pub fn response(result: i32) -> Vec<u8> {
    Writer::default()
        .versioned(1, 1, |w| {
            w.i32(result);
        })
        .finish()
}

/// Decodes a `ResponseMessage` ack payload into its result.
pub fn decode_response(buf: &[u8]) -> Result<i32, DecodeError> {
    let (_, mut body) = Reader::new(buf).versioned(1, "truncated response message")?;
    Ok(body.u32("response message without result")? as i32)
}

/// One watcher's answer in a notify reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAck {
    /// The watcher's instance id.
    pub gid: u64,
    /// The watcher's watch cookie.
    pub cookie: u64,
    /// What it acked with (empty: "not answering").
    pub payload: Vec<u8>,
}

/// The reply to a notify: who acked (with what), and whose watch did not answer in time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyReply {
    /// Acks in the order the OSD lists them.
    pub acks: Vec<NotifyAck>,
    /// (gid, cookie) of watchers that timed out.
    pub timeouts: Vec<(u64, u64)>,
}

/// Most watchers a reply is decoded for; a header has a handful.
const MAX_NOTIFY_ENTRIES: u32 = 65_536;

/// Decodes the buffer `rados_notify2` returns (layout in `librados.h`).
pub fn decode_notify_reply(buf: &[u8]) -> Result<NotifyReply, DecodeError> {
    let mut r = Reader::new(buf);
    let mut reply = NotifyReply::default();
    let acks = r.u32("truncated notify reply")?;
    if acks > MAX_NOTIFY_ENTRIES {
        return Err(DecodeError("implausible ack count in notify reply"));
    }
    for _ in 0..acks {
        let gid = r.u64("truncated ack")?;
        let cookie = r.u64("truncated ack")?;
        let len = r.u32("truncated ack")? as usize;
        let payload = r.take(len, "truncated ack payload")?.to_vec();
        reply.acks.push(NotifyAck { gid, cookie, payload });
    }
    // Older OSDs omit the timeout list when it is empty.
    if r.remaining().is_empty() {
        return Ok(reply);
    }
    let timeouts = r.u32("truncated notify reply")?;
    if timeouts > MAX_NOTIFY_ENTRIES {
        return Err(DecodeError("implausible timeout count in notify reply"));
    }
    for _ in 0..timeouts {
        reply.timeouts.push((r.u64("truncated timeout")?, r.u64("truncated timeout")?));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    const ME: ClientId = ClientId { gid: 0x1092, handle: 0x0000_5600_1234_5678 };

    #[test]
    fn lock_notifications_match_librbd_bytes() {
        let id = "92 10 00 00 00 00 00 00 78 56 34 12 00 56 00 00";
        assert_eq!(hex(&request_lock(ME)), format!("07 01 15 00 00 00 02 00 00 00 {id} 00"));
        assert_eq!(hex(&acquired_lock(ME)), format!("07 01 14 00 00 00 00 00 00 00 {id}"));
        assert_eq!(hex(&released_lock(ME)), format!("07 01 14 00 00 00 01 00 00 00 {id}"));
        assert_eq!(hex(&header_update()), "07 01 04 00 00 00 03 00 00 00");
        assert_eq!(hex(&quiesce(ME, 1)), format!("07 01 1c 00 00 00 12 00 00 00 {id} 01 00 00 00 00 00 00 00"));
        assert_eq!(hex(&unquiesce(ME, 1)), format!("07 01 1c 00 00 00 13 00 00 00 {id} 01 00 00 00 00 00 00 00"));
    }

    #[test]
    fn notifications_decode_including_old_and_newer_versions() {
        let n = decode_notification(&request_lock(ME)).unwrap();
        assert_eq!(n, Notification { op: op::REQUEST_LOCK, client: Some(ME) });
        assert_eq!(decode_notification(&[]).unwrap().op, op::HEADER_UPDATE);
        // krbd sends struct_v 2 (no `force`).
        let krbd = [2, 1, 0x14, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_notification(&krbd).unwrap(),
            Notification { op: op::REQUEST_LOCK, client: Some(ClientId { gid: 1, handle: 2 }) }
        );
        // v1 lock messages carry no client id.
        assert_eq!(decode_notification(&[1, 1, 4, 0, 0, 0, 0, 0, 0, 0]).unwrap().client, None);
        // A newer version with extra trailing bytes still decodes.
        let mut newer = acquired_lock(ME);
        newer[0] = 9;
        newer[2] += 3;
        newer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_notification(&newer).unwrap().client, Some(ME));
        // Truncated or incompatible input is an error, never a panic.
        assert!(decode_notification(&request_lock(ME)[..10]).is_err());
        assert!(decode_notification(&[7, 9, 4, 0, 0, 0, 2, 0, 0, 0]).is_err());
    }

    /// Bytes a Ceph 16.2.15 python3-rbd writer (client.6715, watch handle 0x7f8cf00101f0)
    /// sent while we fenced its image, and its answer to our REQUEST_LOCK, captured with
    /// `RUST_LOG=rbd_cg_client::fence=trace rbd-cg snap create …`.
    #[test]
    fn decodes_what_a_real_librbd_sent() {
        let unhex = |s: &str| s.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()).collect::<Vec<u8>>();
        let writer = ClientId { gid: 6715, handle: 0x7f8c_f001_01f0 };
        let request = unhex("07 01 15 00 00 00 02 00 00 00 3b 1a 00 00 00 00 00 00 f0 01 01 f0 8c 7f 00 00 00");
        assert_eq!(decode_notification(&request), Ok(Notification { op: op::REQUEST_LOCK, client: Some(writer) }));
        assert_eq!(request, request_lock(writer), "we encode exactly as librbd does");
        let released = unhex("07 01 14 00 00 00 01 00 00 00 3b 1a 00 00 00 00 00 00 f0 01 01 f0 8c 7f 00 00");
        assert_eq!(decode_notification(&released), Ok(Notification { op: op::RELEASED_LOCK, client: Some(writer) }));
        assert_eq!(decode_response(&unhex("01 01 04 00 00 00 00 00 00 00")), Ok(0));
    }

    #[test]
    fn responses_match_librbd_bytes() {
        assert_eq!(hex(&response(0)), "01 01 04 00 00 00 00 00 00 00");
        assert_eq!(hex(&response(-libc::EBUSY)), "01 01 04 00 00 00 f0 ff ff ff");
        assert_eq!(hex(&response(-libc::EROFS)), "01 01 04 00 00 00 e2 ff ff ff");
        assert_eq!(hex(&response(-libc::EOPNOTSUPP)), "01 01 04 00 00 00 a1 ff ff ff");
        assert_eq!(decode_response(&response(-libc::EBUSY)), Ok(-libc::EBUSY));
        assert!(decode_response(&[1, 1, 4, 0]).is_err());
    }

    #[test]
    fn notify_reply_decodes() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&2u32.to_le_bytes());
        for (gid, cookie, payload) in [(5u64, 6u64, response(0)), (7, 8, Vec::new())] {
            buf.extend_from_slice(&gid.to_le_bytes());
            buf.extend_from_slice(&cookie.to_le_bytes());
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&payload);
        }
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.extend_from_slice(&9u64.to_le_bytes());
        buf.extend_from_slice(&10u64.to_le_bytes());
        let reply = decode_notify_reply(&buf).unwrap();
        assert_eq!(reply.acks.len(), 2);
        assert_eq!(reply.acks[0].payload, response(0));
        assert_eq!(reply.timeouts, vec![(9, 10)]);
        assert!(decode_notify_reply(&buf[..buf.len() - 3]).is_err());
        assert!(decode_notify_reply(&u32::MAX.to_le_bytes()).is_err());
    }
}
