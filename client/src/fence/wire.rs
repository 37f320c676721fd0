//! Ceph's wire formats that a fence speaks: librbd's watch/notify messages on the image
//! header, `cls_lock` requests, `cls_rbd`'s `snapshot_add`, and the notify reply librados
//! hands back.
//!
//! These are Ceph's encodings, not ours, so they live here and not in `contract/`. They
//! follow Ceph's `encoding.h`: little-endian integers, strings as `u32 length` + bytes, and
//! versioned structs as `u8 struct_v, u8 compat, u32 length` + body. Decoders accept newer
//! versions with more trailing fields (they skip to the length), as `DECODE_FINISH` does.
//! Layouts and golden bytes: `docs/FENCING-DESIGN.md` §1, pinned by the tests at the bottom.

use std::fmt;

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

/// Why a buffer did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A little-endian reader over a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// `ENCODE_START` header: returns (struct_v, a reader over exactly the body).
    fn versioned(&mut self, max_compat: u8, what: &'static str) -> Result<(u8, Reader<'a>), DecodeError> {
        let struct_v = self.u8(what)?;
        let compat = self.u8(what)?;
        if compat > max_compat {
            return Err(DecodeError("incompatible struct version"));
        }
        let len = self.u32(what)? as usize;
        Ok((struct_v, Reader { buf: self.take(len, what)? }))
    }
}

/// A little-endian writer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        // Every string we encode is a short name; lengths beyond u32 cannot occur.
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }
    fn client(&mut self, c: ClientId) -> &mut Self {
        self.u64(c.gid).u64(c.handle)
    }
    /// `ENCODE_START(v, compat)` … `ENCODE_FINISH` around what `body` writes.
    fn versioned(&mut self, v: u8, compat: u8, body: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::default();
        body(&mut inner);
        self.u8(v).u8(compat).u32(inner.buf.len() as u32);
        self.buf.extend_from_slice(&inner.buf);
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
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
        w.client(me).u8(0);
    })
}

/// `ACQUIRED_LOCK{client}`.
pub fn acquired_lock(me: ClientId) -> Vec<u8> {
    notify_message(op::ACQUIRED_LOCK, |w| {
        w.client(me);
    })
}

/// `RELEASED_LOCK{client}`.
pub fn released_lock(me: ClientId) -> Vec<u8> {
    notify_message(op::RELEASED_LOCK, |w| {
        w.client(me);
    })
}

/// `HEADER_UPDATE{}`.
pub fn header_update() -> Vec<u8> {
    notify_message(op::HEADER_UPDATE, |_| {})
}

/// `QUIESCE{AsyncRequestId(client, request_id)}`.
pub fn quiesce(me: ClientId, request_id: u64) -> Vec<u8> {
    notify_message(op::QUIESCE, |w| {
        w.client(me).u64(request_id);
    })
}

/// `UNQUIESCE{AsyncRequestId(client, request_id)}`.
pub fn unquiesce(me: ClientId, request_id: u64) -> Vec<u8> {
    notify_message(op::UNQUIESCE, |w| {
        w.client(me).u64(request_id);
    })
}

/// Decodes a notification a watcher received. An empty buffer is `HEADER_UPDATE`.
pub fn decode_notification(buf: &[u8]) -> Result<Notification, DecodeError> {
    if buf.is_empty() {
        return Ok(Notification { op: op::HEADER_UPDATE, client: None });
    }
    let (struct_v, mut body) = Reader { buf }.versioned(1, "truncated notify message")?;
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
    let (_, mut body) = Reader { buf }.versioned(1, "truncated response message")?;
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
    let mut r = Reader { buf };
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
    if r.buf.is_empty() {
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

/// librbd's exclusive-lock name on `rbd_header.<id>` and `rbd_object_map.<id>`.
pub const RBD_LOCK_NAME: &str = "rbd_lock";
/// The tag every librbd/krbd exclusive-lock owner uses.
pub const RBD_LOCK_TAG: &str = "internal";
/// `ClsLockType::EXCLUSIVE`.
const LOCK_EXCLUSIVE: u8 = 1;

/// librbd's lock cookie for a watch handle: `auto <handle>`.
pub fn lock_cookie(handle: u64) -> String {
    format!("auto {handle}")
}

/// The watch handle in an `auto <handle>` cookie; `None` for any other cookie (an
/// "external" lock that librbd itself refuses to break).
pub fn parse_lock_cookie(cookie: &str) -> Option<u64> {
    cookie.strip_prefix("auto ")?.parse().ok()
}

/// `cls_lock_lock_op` for the `lock` class's `lock` method: an exclusive lock that
/// expires after `duration_secs` (0 = never).
pub fn lock_request(name: &str, cookie: &str, tag: &str, description: &str, duration_secs: u32) -> Vec<u8> {
    Writer::default()
        .versioned(1, 1, |w| {
            w.string(name).u8(LOCK_EXCLUSIVE).string(cookie).string(tag).string(description);
            w.u32(duration_secs).u32(0); // utime_t: seconds, nanoseconds
            w.u8(0); // flags: no LOCK_FLAG_MAY_RENEW
        })
        .finish()
}

/// `cls_lock_assert_op` for the `lock` class's `assert_locked` method.
pub fn assert_locked_request(name: &str, cookie: &str, tag: &str) -> Vec<u8> {
    Writer::default()
        .versioned(1, 1, |w| {
            w.string(name).u8(LOCK_EXCLUSIVE).string(cookie).string(tag);
        })
        .finish()
}

/// `cls_rbd`'s `snapshot_add` input: name, id, and the user snapshot namespace.
pub fn snapshot_add_request(snap_name: &str, snap_id: u64) -> Vec<u8> {
    Writer::default()
        .string(snap_name)
        .u64(snap_id)
        .versioned(1, 1, |w| {
            w.u32(0); // SNAPSHOT_NAMESPACE_TYPE_USER, no fields
        })
        .finish()
}

/// A Ceph-encoded string (`u32` length + bytes): the input of `cls_rbd`'s `dir_get_name`.
pub fn string_request(s: &str) -> Vec<u8> {
    Writer::default().string(s).finish()
}

/// A `snapid_t` (`u64`): the input of `cls_rbd`'s `get_snapshot_name`.
pub fn snap_id_request(snap_id: u64) -> Vec<u8> {
    Writer::default().u64(snap_id).finish()
}

/// `CEPH_NOSNAP`: the image head, as a snapshot id.
pub const CEPH_NOSNAP: u64 = u64::MAX - 1;

/// `cls_rbd`'s `get_features` input for the image head, read-only: `snapid_t`, `bool`.
pub fn get_features_request() -> Vec<u8> {
    Writer::default().u64(CEPH_NOSNAP).u8(1).finish()
}

/// `cls_rbd`'s `get_features` reply: (features, incompatible features).
pub fn decode_features(buf: &[u8]) -> Result<(u64, u64), DecodeError> {
    let mut r = Reader { buf };
    Ok((r.u64("truncated features")?, r.u64("truncated features")?))
}

/// `cls_rbd`'s `get_data_pool` reply: the data pool id, -1 for "the image's own pool".
pub fn decode_data_pool(buf: &[u8]) -> Result<i64, DecodeError> {
    Ok(Reader { buf }.u64("truncated data pool")? as i64)
}

/// Decodes a Ceph-encoded string reply (`dir_get_name`, `get_snapshot_name`).
pub fn decode_string(buf: &[u8]) -> Result<String, DecodeError> {
    let mut r = Reader { buf };
    let len = r.u32("truncated string")? as usize;
    let bytes = r.take(len, "truncated string")?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
}

/// The object map object of an image (`snap_id: None`) or of one of its snapshots.
pub fn object_map_oid(image_id: &str, snap_id: Option<u64>) -> String {
    match snap_id {
        None => format!("rbd_object_map.{image_id}"),
        Some(id) => format!("rbd_object_map.{image_id}.{id:016x}"),
    }
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

    #[test]
    fn cls_lock_requests_match_golden_bytes() {
        let cookie = lock_cookie(0x0000_5600_1234_5678);
        assert_eq!(cookie, "auto 94558305408632");
        assert_eq!(parse_lock_cookie(&cookie), Some(0x0000_5600_1234_5678));
        assert_eq!(parse_lock_cookie("external"), None);
        let lock = lock_request(RBD_LOCK_NAME, &cookie, RBD_LOCK_TAG, "rbd-cg fence 0123456789abcdef/fedcba98", 30);
        assert_eq!(lock.len(), 105);
        assert_eq!(hex(&lock[..6]), "01 01 63 00 00 00");
        assert_eq!(hex(&lock[lock.len() - 9..]), "1e 00 00 00 00 00 00 00 00");
        let assert_op = assert_locked_request(RBD_LOCK_NAME, &cookie, RBD_LOCK_TAG);
        assert_eq!(assert_op.len(), 54);
        assert_eq!(hex(&assert_op[..6]), "01 01 30 00 00 00");
    }

    #[test]
    fn snapshot_add_matches_golden_bytes() {
        let name = ".rbd_cg.0000000000000002_0123456789abcdef_fedcba9876543210";
        let req = snapshot_add_request(name, 0x1c);
        assert_eq!(req.len(), 80);
        assert_eq!(hex(&req[..4]), "3a 00 00 00");
        assert_eq!(hex(&req[62..]), "1c 00 00 00 00 00 00 00 01 01 04 00 00 00 00 00 00 00");
        assert_eq!(object_map_oid("abc", Some(0x1c)), "rbd_object_map.abc.000000000000001c");
        assert_eq!(object_map_oid("abc", None), "rbd_object_map.abc");
    }

    #[test]
    fn cls_rbd_features_and_data_pool() {
        assert_eq!(hex(&get_features_request()), "fe ff ff ff ff ff ff ff 01");
        let mut reply = 61u64.to_le_bytes().to_vec();
        reply.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(decode_features(&reply), Ok((61, 0)));
        assert!(decode_features(&reply[..12]).is_err());
        assert_eq!(decode_data_pool(&(-1i64).to_le_bytes()), Ok(-1));
        assert_eq!(decode_data_pool(&7i64.to_le_bytes()), Ok(7));
    }

    #[test]
    fn cls_rbd_strings_and_snap_ids() {
        assert_eq!(hex(&string_request("ab")), "02 00 00 00 61 62");
        assert_eq!(hex(&snap_id_request(0x1c)), "1c 00 00 00 00 00 00 00");
        assert_eq!(decode_string(&string_request("disk-1")), Ok("disk-1".to_owned()));
        assert!(decode_string(&[5, 0, 0, 0, b'a']).is_err());
        assert!(decode_string(&[1, 0, 0, 0, 0xff]).is_err());
    }
}
