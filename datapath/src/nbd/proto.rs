//! Wire format of the NBD protocol subset this server speaks: constants, decoders for what
//! the client sends, encoders for what the server sends.
//!
//! Everything here is sans-IO and total: every decoder takes a byte slice of any length and
//! returns `Err(ProtoError)` for anything it does not accept; none of them panics or
//! allocates more than the input it was given. The async code in `handshake` and
//! `transmission` only moves bytes between sockets and these functions.

use thiserror::Error;

/// `NBDMAGIC`, the first 8 bytes the server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the newstyle greeting magic, and the magic of every option request.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of every option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

// Handshake flags (server) and client flags.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

// Transmission flags.
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
pub const FLAG_READ_ONLY: u16 = 1 << 1;
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
pub const FLAG_SEND_FUA: u16 = 1 << 3;
pub const FLAG_ROTATIONAL: u16 = 1 << 4;
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
pub const FLAG_SEND_DF: u16 = 1 << 7;
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;
pub const FLAG_SEND_RESIZE: u16 = 1 << 9;
pub const FLAG_SEND_CACHE: u16 = 1 << 10;
pub const FLAG_SEND_FAST_ZERO: u16 = 1 << 11;

// Options.
pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;

// Option reply types.
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
pub const REP_ERR_POLICY: u32 = (1 << 31) + 2;
pub const REP_ERR_INVALID: u32 = (1 << 31) + 3;
pub const REP_ERR_PLATFORM: u32 = (1 << 31) + 4;
pub const REP_ERR_TLS_REQD: u32 = (1 << 31) + 5;
pub const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;
pub const REP_ERR_SHUTDOWN: u32 = (1 << 31) + 7;
pub const REP_ERR_BLOCK_SIZE_REQD: u32 = (1 << 31) + 8;
pub const REP_ERR_TOO_BIG: u32 = (1 << 31) + 9;

// NBD_INFO types.
pub const INFO_EXPORT: u16 = 0;
pub const INFO_NAME: u16 = 1;
pub const INFO_DESCRIPTION: u16 = 2;
pub const INFO_BLOCK_SIZE: u16 = 3;

// Commands.
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_CACHE: u16 = 5;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;

// Command flags.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
pub const CMD_FLAG_DF: u16 = 1 << 2;
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
pub const CMD_FLAG_FAST_ZERO: u16 = 1 << 4;

/// Longest string (export name, description) the protocol allows.
pub const MAX_STRING: usize = 4096;
/// Largest option payload the server reads; a longer option closes the connection.
pub const MAX_OPTION_DATA: u32 = 64 * 1024;

/// Size of the server's greeting.
pub const GREETING_LEN: usize = 18;
/// Size of an option request header (magic, option, length).
pub const OPTION_HEADER_LEN: usize = 16;
/// Size of a transmission request header.
pub const REQUEST_HEADER_LEN: usize = 28;
/// Size of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;

/// Why a client message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    #[error("message too short: {got} bytes, need {need}")]
    Short { got: usize, need: usize },
    #[error("bad magic {0:#x}")]
    BadMagic(u64),
    #[error("client flags {0:#x} lack NBD_FLAG_C_FIXED_NEWSTYLE")]
    NotFixedNewstyle(u32),
    #[error("client flags {0:#x} set unknown bits")]
    UnknownClientFlags(u32),
    #[error("option data of {0} bytes exceeds the limit")]
    OptionTooLong(u32),
    #[error("string of {0} bytes exceeds 4096")]
    StringTooLong(usize),
    #[error("string is not UTF-8 or contains NUL")]
    BadString,
    #[error("malformed option data: {0}")]
    Malformed(&'static str),
}

fn be_u16(b: &[u8], at: usize) -> Result<u16, ProtoError> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_be_bytes)
        .ok_or(ProtoError::Short { got: b.len(), need: at + 2 })
}

fn be_u32(b: &[u8], at: usize) -> Result<u32, ProtoError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(ProtoError::Short { got: b.len(), need: at + 4 })
}

fn be_u64(b: &[u8], at: usize) -> Result<u64, ProtoError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(ProtoError::Short { got: b.len(), need: at + 8 })
}

/// A protocol string: UTF-8, no NUL, at most 4096 bytes.
pub fn parse_string(b: &[u8]) -> Result<&str, ProtoError> {
    if b.len() > MAX_STRING {
        return Err(ProtoError::StringTooLong(b.len()));
    }
    let s = std::str::from_utf8(b).map_err(|_| ProtoError::BadString)?;
    if s.contains('\0') {
        return Err(ProtoError::BadString);
    }
    Ok(s)
}

/// The server's greeting: `NBDMAGIC`, `IHAVEOPT`, handshake flags.
pub fn encode_greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
    g[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    g[16..18].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    g
}

/// What the client answered to the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFlags {
    pub no_zeroes: bool,
}

/// Decodes the client's 32-bit flags. Only fixed-newstyle clients are served, and a client
/// that sets a bit the server did not offer is refused (the spec says to drop it).
pub fn parse_client_flags(b: &[u8]) -> Result<ClientFlags, ProtoError> {
    if b.len() != 4 {
        return Err(ProtoError::Short { got: b.len(), need: 4 });
    }
    let f = be_u32(b, 0)?;
    if f & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(ProtoError::UnknownClientFlags(f));
    }
    if f & FLAG_C_FIXED_NEWSTYLE == 0 {
        return Err(ProtoError::NotFixedNewstyle(f));
    }
    Ok(ClientFlags { no_zeroes: f & FLAG_C_NO_ZEROES != 0 })
}

/// Header of one option request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    pub option: u32,
    pub len: u32,
}

impl OptionHeader {
    /// Decodes a 16-byte option header; the data length is limited to `MAX_OPTION_DATA`.
    pub fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        if b.len() != OPTION_HEADER_LEN {
            return Err(ProtoError::Short { got: b.len(), need: OPTION_HEADER_LEN });
        }
        let magic = be_u64(b, 0)?;
        if magic != IHAVEOPT {
            return Err(ProtoError::BadMagic(magic));
        }
        let option = be_u32(b, 8)?;
        let len = be_u32(b, 12)?;
        if len > MAX_OPTION_DATA {
            return Err(ProtoError::OptionTooLong(len));
        }
        Ok(OptionHeader { option, len })
    }
}

/// Data of `NBD_OPT_INFO` / `NBD_OPT_GO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest<'a> {
    pub name: &'a str,
    /// Information types asked for (duplicates and unknown ones included, as sent).
    pub requests: Vec<u16>,
}

impl InfoRequest<'_> {
    pub fn wants(&self, info: u16) -> bool {
        self.requests.contains(&info)
    }
}

/// Decodes the data of `NBD_OPT_INFO` / `NBD_OPT_GO`: name length, name, count, info types.
/// The lengths must add up exactly to the option's data length.
pub fn parse_info_request(b: &[u8]) -> Result<InfoRequest<'_>, ProtoError> {
    let name_len = be_u32(b, 0)? as usize;
    // At least 4 (name length) + name + 2 (count).
    let name_end = 4usize.checked_add(name_len).ok_or(ProtoError::Malformed("name length"))?;
    if name_len > MAX_STRING {
        return Err(ProtoError::StringTooLong(name_len));
    }
    if b.len() < name_end + 2 {
        return Err(ProtoError::Malformed("name length beyond option data"));
    }
    let name = parse_string(&b[4..name_end])?;
    let count = be_u16(b, name_end)? as usize;
    let list = &b[name_end + 2..];
    if list.len() != count * 2 {
        return Err(ProtoError::Malformed("information request count does not match length"));
    }
    let requests = list.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    Ok(InfoRequest { name, requests })
}

/// Appends one option reply (header and payload) to `out`.
pub fn encode_option_reply(out: &mut Vec<u8>, option: u32, reply_type: u32, payload: &[u8]) {
    // Payloads are built by this server and bounded (strings <= 4096), so they fit in u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply_type.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends an `NBD_REP_SERVER` reply for `NBD_OPT_LIST`: name, then the description.
pub fn encode_rep_server(out: &mut Vec<u8>, name: &str, description: &str) {
    let mut p = Vec::with_capacity(4 + name.len() + description.len());
    p.extend_from_slice(&(name.len() as u32).to_be_bytes());
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(description.as_bytes());
    encode_option_reply(out, OPT_LIST, REP_SERVER, &p);
}

/// Appends `NBD_REP_INFO` / `NBD_INFO_EXPORT`.
pub fn encode_info_export(out: &mut Vec<u8>, option: u32, size: u64, flags: u16) {
    let mut p = [0u8; 12];
    p[0..2].copy_from_slice(&INFO_EXPORT.to_be_bytes());
    p[2..10].copy_from_slice(&size.to_be_bytes());
    p[10..12].copy_from_slice(&flags.to_be_bytes());
    encode_option_reply(out, option, REP_INFO, &p);
}

/// Appends `NBD_REP_INFO` / `NBD_INFO_BLOCK_SIZE`.
pub fn encode_info_block_size(out: &mut Vec<u8>, option: u32, min: u32, preferred: u32, max: u32) {
    let mut p = [0u8; 14];
    p[0..2].copy_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    p[2..6].copy_from_slice(&min.to_be_bytes());
    p[6..10].copy_from_slice(&preferred.to_be_bytes());
    p[10..14].copy_from_slice(&max.to_be_bytes());
    encode_option_reply(out, option, REP_INFO, &p);
}

/// Appends `NBD_REP_INFO` carrying a string (`NBD_INFO_NAME`, `NBD_INFO_DESCRIPTION`).
pub fn encode_info_string(out: &mut Vec<u8>, option: u32, info: u16, s: &str) {
    let mut p = Vec::with_capacity(2 + s.len());
    p.extend_from_slice(&info.to_be_bytes());
    p.extend_from_slice(s.as_bytes());
    encode_option_reply(out, option, REP_INFO, &p);
}

/// The reply to `NBD_OPT_EXPORT_NAME`: size, transmission flags, and 124 zero bytes unless
/// the client negotiated `NBD_FLAG_C_NO_ZEROES`.
pub fn encode_export_name_reply(size: u64, flags: u16, no_zeroes: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + 124);
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        v.resize(10 + 124, 0);
    }
    v
}

/// One transmission request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub flags: u16,
    pub command: u16,
    pub handle: u64,
    pub offset: u64,
    pub len: u32,
}

impl RequestHeader {
    /// Decodes a 28-byte request header; only the magic is checked here, the command and
    /// its flags are judged by the transmission phase (they get error replies, not a close).
    pub fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        if b.len() != REQUEST_HEADER_LEN {
            return Err(ProtoError::Short { got: b.len(), need: REQUEST_HEADER_LEN });
        }
        let magic = be_u32(b, 0)?;
        if magic != REQUEST_MAGIC {
            return Err(ProtoError::BadMagic(u64::from(magic)));
        }
        Ok(RequestHeader {
            flags: be_u16(b, 4)?,
            command: be_u16(b, 6)?,
            handle: be_u64(b, 8)?,
            offset: be_u64(b, 16)?,
            len: be_u32(b, 24)?,
        })
    }

    /// Encodes the header (the test clients use it; the server only decodes).
    pub fn encode(&self) -> [u8; REQUEST_HEADER_LEN] {
        let mut b = [0u8; REQUEST_HEADER_LEN];
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&self.flags.to_be_bytes());
        b[6..8].copy_from_slice(&self.command.to_be_bytes());
        b[8..16].copy_from_slice(&self.handle.to_be_bytes());
        b[16..24].copy_from_slice(&self.offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.len.to_be_bytes());
        b
    }
}

/// A simple reply header: magic, error, handle.
pub fn encode_simple_reply(handle: u64, error: u32) -> [u8; SIMPLE_REPLY_LEN] {
    let mut b = [0u8; SIMPLE_REPLY_LEN];
    b[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&error.to_be_bytes());
    b[8..16].copy_from_slice(&handle.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info_data(name: &[u8], infos: &[u16]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name);
        d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    #[test]
    fn greeting_is_nbdmagic_ihaveopt_fixed_no_zeroes() {
        let g = encode_greeting();
        assert_eq!(&g[0..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(&g[16..18], &[0, 3]);
    }

    #[test]
    fn client_flags() {
        assert_eq!(parse_client_flags(&[0, 0, 0, 1]), Ok(ClientFlags { no_zeroes: false }));
        assert_eq!(parse_client_flags(&[0, 0, 0, 3]), Ok(ClientFlags { no_zeroes: true }));
        assert_eq!(parse_client_flags(&[0, 0, 0, 0]), Err(ProtoError::NotFixedNewstyle(0)));
        assert_eq!(parse_client_flags(&[0, 0, 0, 2]), Err(ProtoError::NotFixedNewstyle(2)));
        assert_eq!(parse_client_flags(&[0, 0, 0, 5]), Err(ProtoError::UnknownClientFlags(5)));
        assert_eq!(parse_client_flags(&[0x80, 0, 0, 1]), Err(ProtoError::UnknownClientFlags(0x8000_0001)));
        assert!(parse_client_flags(&[0, 0, 1]).is_err());
    }

    #[test]
    fn option_header() {
        let mut h = Vec::new();
        h.extend_from_slice(b"IHAVEOPT");
        h.extend_from_slice(&OPT_GO.to_be_bytes());
        h.extend_from_slice(&10u32.to_be_bytes());
        assert_eq!(OptionHeader::parse(&h), Ok(OptionHeader { option: OPT_GO, len: 10 }));
        h[12..16].copy_from_slice(&(MAX_OPTION_DATA + 1).to_be_bytes());
        assert_eq!(OptionHeader::parse(&h), Err(ProtoError::OptionTooLong(MAX_OPTION_DATA + 1)));
        h[0] = b'X';
        assert!(matches!(OptionHeader::parse(&h), Err(ProtoError::BadMagic(_))));
        assert!(OptionHeader::parse(&h[..15]).is_err());
    }

    #[test]
    fn info_request() {
        let d = info_data(b"disk0", &[INFO_BLOCK_SIZE, INFO_NAME]);
        let r = parse_info_request(&d).unwrap();
        assert_eq!(r.name, "disk0");
        assert!(r.wants(INFO_NAME) && r.wants(INFO_BLOCK_SIZE) && !r.wants(INFO_DESCRIPTION));
        // Empty name, no requests: the default export.
        let empty = info_data(b"", &[]);
        let r = parse_info_request(&empty).unwrap();
        assert_eq!(r.name, "");
        assert!(r.requests.is_empty());
        // Trailing garbage, short count, name beyond data, bad UTF-8, NUL, long name.
        let mut long = d.clone();
        long.push(0);
        assert!(parse_info_request(&long).is_err());
        assert!(parse_info_request(&d[..d.len() - 1]).is_err());
        let mut beyond = d.clone();
        beyond[0..4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(parse_info_request(&beyond).is_err());
        assert_eq!(parse_info_request(&info_data(&[0xff, 0xfe], &[])), Err(ProtoError::BadString));
        assert_eq!(parse_info_request(&info_data(b"a\0b", &[])), Err(ProtoError::BadString));
        let big = vec![b'a'; MAX_STRING + 1];
        assert_eq!(parse_info_request(&info_data(&big, &[])), Err(ProtoError::StringTooLong(MAX_STRING + 1)));
        let mut huge = vec![0xff; 4];
        huge.extend_from_slice(&[0, 0]);
        assert!(parse_info_request(&huge).is_err());
        assert!(parse_info_request(&[]).is_err());
    }

    #[test]
    fn request_header_round_trip_and_magic() {
        let h = RequestHeader { flags: CMD_FLAG_FUA, command: CMD_WRITE, handle: 0xdead_beef, offset: 4096, len: 512 };
        let b = h.encode();
        assert_eq!(RequestHeader::parse(&b), Ok(h));
        let mut bad = b;
        bad[0] = 0;
        assert!(matches!(RequestHeader::parse(&bad), Err(ProtoError::BadMagic(_))));
        assert!(RequestHeader::parse(&b[..27]).is_err());
    }

    #[test]
    fn encoders() {
        let r = encode_simple_reply(7, 22);
        assert_eq!(&r[0..4], &SIMPLE_REPLY_MAGIC.to_be_bytes());
        assert_eq!(&r[4..8], &22u32.to_be_bytes());
        assert_eq!(&r[8..16], &7u64.to_be_bytes());
        assert_eq!(encode_export_name_reply(1, 3, true).len(), 10);
        assert_eq!(encode_export_name_reply(1, 3, false).len(), 134);
        let mut v = Vec::new();
        encode_info_export(&mut v, OPT_GO, 1 << 20, FLAG_HAS_FLAGS);
        assert_eq!(v.len(), 20 + 12);
        assert_eq!(&v[16..20], &12u32.to_be_bytes());
        v.clear();
        encode_info_block_size(&mut v, OPT_GO, 1, 4096, 1 << 25);
        assert_eq!(v.len(), 20 + 14);
        v.clear();
        encode_rep_server(&mut v, "ab", "desc");
        assert_eq!(&v[16..20], &10u32.to_be_bytes());
        assert_eq!(&v[20..24], &2u32.to_be_bytes());
        assert_eq!(&v[24..], b"abdesc");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_client_flags(&bytes);
            let _ = OptionHeader::parse(&bytes);
            let _ = parse_info_request(&bytes);
            let _ = RequestHeader::parse(&bytes);
            let _ = parse_string(&bytes);
        }

        #[test]
        fn fixed_size_decoders_reject_wrong_lengths(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if bytes.len() != 4 { prop_assert!(parse_client_flags(&bytes).is_err()); }
            if bytes.len() != OPTION_HEADER_LEN { prop_assert!(OptionHeader::parse(&bytes).is_err()); }
            if bytes.len() != REQUEST_HEADER_LEN { prop_assert!(RequestHeader::parse(&bytes).is_err()); }
        }

        #[test]
        fn random_option_headers(magic in any::<u64>(), opt in any::<u32>(), len in any::<u32>()) {
            let mut b = Vec::new();
            b.extend_from_slice(&magic.to_be_bytes());
            b.extend_from_slice(&opt.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
            match OptionHeader::parse(&b) {
                Ok(h) => prop_assert!(magic == IHAVEOPT && h.len <= MAX_OPTION_DATA && h.option == opt),
                Err(_) => prop_assert!(magic != IHAVEOPT || len > MAX_OPTION_DATA),
            }
        }

        #[test]
        fn info_request_round_trip(name in "[a-z0-9/_-]{0,64}", infos in proptest::collection::vec(any::<u16>(), 0..8)) {
            let d = info_data(name.as_bytes(), &infos);
            let r = parse_info_request(&d).unwrap();
            prop_assert_eq!(r.name, name.as_str());
            prop_assert_eq!(r.requests, infos);
        }

        #[test]
        fn info_request_with_lying_lengths(name_len in any::<u32>(), count in any::<u16>(),
                                           body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = name_len.to_be_bytes().to_vec();
            d.extend_from_slice(&body);
            d.extend_from_slice(&count.to_be_bytes());
            if let Ok(r) = parse_info_request(&d) {
                prop_assert!(r.name.len() == name_len as usize);
                prop_assert!(r.requests.len() == count as usize);
            }
        }

        #[test]
        fn request_header_round_trip(flags in any::<u16>(), command in any::<u16>(), handle in any::<u64>(),
                                     offset in any::<u64>(), len in any::<u32>()) {
            let h = RequestHeader { flags, command, handle, offset, len };
            prop_assert_eq!(RequestHeader::parse(&h.encode()), Ok(h));
        }
    }
}
