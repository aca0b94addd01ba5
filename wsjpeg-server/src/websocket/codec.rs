// SPDX-License-Identifier: MIT
//! The WebSocket wire format (RFC 6455) as this server speaks it, both ways: headers of the
//! unmasked frames it sends, and the masked frames clients send, checked, unmasked and
//! reassembled into messages. Clients written against this server (the load tool, the tests)
//! use the same functions from the other side.

use bytes::{Buf, BytesMut};

use crate::protocol::{self, ClientMessage, MAX_CLIENT_MESSAGE};

pub const OPCODE_CONTINUATION: u8 = 0x0;
pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_BINARY: u8 = 0x2;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// What a close frame without a body means (RFC 6455 §7.1.5); never sent.
pub const CLOSE_NO_STATUS: u16 = 1005;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Encodes the header of an unmasked server frame with FIN set.
pub fn frame_header(opcode: u8, payload_len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if payload_len < 126 {
        h[1] = payload_len as u8;
        (h, 2)
    } else if payload_len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        (h, 10)
    }
}

/// One frame read from a client, already unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParsedFrame {
    /// More bytes are needed.
    Incomplete,
    Frame(ClientFrame, usize),
    /// The client broke the protocol: close with this code.
    Violation(u16, &'static str),
}

/// What a frame's first 2 to 14 bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three reserved bits (RSV1–3), which no extension here gives a meaning.
    pub reserved: u8,
    pub opcode: u8,
    /// Clients mask every frame; servers never do.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of the header itself, the payload starts after them.
    pub len: usize,
}

impl FrameHeader {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// How long the header starting with `first_two` bytes is (2 to 14 bytes).
pub fn header_len(first_two: [u8; 2]) -> usize {
    let extended = match first_two[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if first_two[1] & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// Reads a frame header from the front of `buf`; `None` while more bytes are needed.
pub fn parse_header(buf: &[u8]) -> Option<FrameHeader> {
    let first_two = [*buf.first()?, *buf.get(1)?];
    let len = header_len(first_two);
    let header = buf.get(..len)?;
    let (payload_len, rest) = match header[1] & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes([header[2], header[3]])),
            &header[4..],
        ),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[2..10]);
            (u64::from_be_bytes(b), &header[10..])
        }
        n => (u64::from(n), &header[2..]),
    };
    let mask = (header[1] & 0x80 != 0).then(|| [rest[0], rest[1], rest[2], rest[3]]);
    Some(FrameHeader {
        fin: header[0] & 0x80 != 0,
        reserved: (header[0] >> 4) & 0x7,
        opcode: header[0] & 0x0F,
        mask,
        payload_len,
        len,
    })
}

/// `payload` masked (or unmasked: the operation is its own inverse) with `mask`.
pub fn apply_mask(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i & 3])
        .collect()
}

/// A frame as a client sends it: masked, with the shortest length encoding.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | (opcode & 0x0F)];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(apply_mask(payload, mask));
    frame
}

/// A client's `Sec-WebSocket-Key` made of 16 random bytes.
pub fn client_key(nonce: [u8; 16]) -> String {
    use headers::HeaderMapExt;
    let mut headers = http::HeaderMap::new();
    headers.typed_insert(headers::SecWebsocketKey::from(nonce));
    headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_default()
}

/// The request that opens a WebSocket on `path` of `host` (`name:port`), with `key` from
/// [`client_key`] and `extra` header lines, each ending in CRLF.
pub fn upgrade_request(host: &str, path: &str, key: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The server's answer that completes the handshake, with `accept` from [`accept_key`].
pub fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// The `Sec-WebSocket-Accept` answer to a client's `Sec-WebSocket-Key`; `None` for a key that
/// is not a header value.
pub fn accept_key(key: &str) -> Option<String> {
    use headers::HeaderMapExt;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::SEC_WEBSOCKET_KEY,
        http::HeaderValue::from_str(key.trim()).ok()?,
    );
    let key = headers.typed_get::<headers::SecWebsocketKey>()?;
    let mut answer = http::HeaderMap::new();
    answer.typed_insert(headers::SecWebsocketAccept::from(key));
    answer
        .get(http::header::SEC_WEBSOCKET_ACCEPT)?
        .to_str()
        .ok()
        .map(str::to_string)
}

/// Parses one client frame from the front of `buf`. Frames announcing more than `max_payload`
/// bytes are refused before their payload is read.
pub fn parse_client_frame(buf: &[u8], max_payload: usize) -> ParsedFrame {
    let Some(header) = parse_header(buf) else {
        // The rules that the first byte alone settles are checked as early as possible.
        return match buf.first() {
            Some(first) if first & 0x70 != 0 => {
                ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            }
            _ => ParsedFrame::Incomplete,
        };
    };
    if header.reserved != 0 {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "reserved bits set");
    }
    if !matches!(
        header.opcode,
        OPCODE_CONTINUATION
            | OPCODE_TEXT
            | OPCODE_BINARY
            | OPCODE_CLOSE
            | OPCODE_PING
            | OPCODE_PONG
    ) {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "unknown opcode");
    }
    let Some(mask) = header.mask else {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "client frames must be masked");
    };
    if header.is_control() && (header.payload_len > 125 || !header.fin) {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "invalid control frame");
    }
    if header.payload_len > max_payload as u64 {
        return ParsedFrame::Violation(CLOSE_TOO_BIG, "message too big");
    }
    let end = header.len + header.payload_len as usize;
    let Some(payload) = buf.get(header.len..end) else {
        return ParsedFrame::Incomplete;
    };
    ParsedFrame::Frame(
        ClientFrame {
            fin: header.fin,
            opcode: header.opcode,
            payload: apply_mask(payload, mask),
        },
        end,
    )
}

/// What the reading half reports to the viewer's writer.
#[derive(Debug)]
pub enum ClientInput {
    Message(ClientMessage),
    /// A text message the server does not understand; answered with an `error` message.
    Unsupported(String),
    Ping(Vec<u8>),
    /// Any other sign of life (a pong frame).
    Alive,
    Close(u16),
    Violation(u16, &'static str),
}

impl ClientInput {
    /// After this, nothing the client sends is read any more.
    pub fn ends_the_session(&self) -> bool {
        matches!(self, ClientInput::Close(_) | ClientInput::Violation(..))
    }
}

/// Reassembles fragmented messages and turns frames into inputs.
#[derive(Default)]
pub struct MessageAssembler {
    opcode: Option<u8>,
    data: Vec<u8>,
}

impl MessageAssembler {
    pub fn push(&mut self, frame: ClientFrame) -> Option<ClientInput> {
        match frame.opcode {
            OPCODE_PING => return Some(ClientInput::Ping(frame.payload)),
            OPCODE_PONG => return Some(ClientInput::Alive),
            OPCODE_CLOSE => return Some(close_input(&frame.payload)),
            OPCODE_CONTINUATION => {
                if self.opcode.is_none() {
                    return Some(ClientInput::Violation(
                        CLOSE_PROTOCOL_ERROR,
                        "unexpected continuation",
                    ));
                }
            }
            _ => {
                if self.opcode.is_some() {
                    return Some(ClientInput::Violation(
                        CLOSE_PROTOCOL_ERROR,
                        "expected continuation",
                    ));
                }
                self.opcode = Some(frame.opcode);
            }
        }
        if self.data.len() + frame.payload.len() > MAX_CLIENT_MESSAGE {
            return Some(ClientInput::Violation(CLOSE_TOO_BIG, "message too big"));
        }
        self.data.extend_from_slice(&frame.payload);
        if !frame.fin {
            return None;
        }
        let opcode = self.opcode.take();
        let data = std::mem::take(&mut self.data);
        match opcode {
            Some(OPCODE_TEXT) => match String::from_utf8(data) {
                Ok(text) => Some(match protocol::parse_client_message(&text) {
                    Ok(message) => ClientInput::Message(message),
                    Err(err) => ClientInput::Unsupported(err.to_string()),
                }),
                Err(_) => Some(ClientInput::Violation(
                    CLOSE_INVALID_DATA,
                    "text is not UTF-8",
                )),
            },
            _ => Some(ClientInput::Unsupported(
                "binary messages are not accepted".to_string(),
            )),
        }
    }
}

/// Turns the bytes a client sends, as they arrive, into inputs: frames are checked, unmasked
/// and reassembled into messages. After a close or a protocol violation it reports nothing
/// more.
#[derive(Default)]
pub struct MessageReader {
    buf: BytesMut,
    assembler: MessageAssembler,
    done: bool,
}

impl MessageReader {
    /// Starts with bytes that arrived with the HTTP upgrade.
    pub fn new(initial: &[u8]) -> Self {
        MessageReader {
            buf: BytesMut::from(initial),
            ..MessageReader::default()
        }
    }

    /// Where the next bytes from the socket go, with room for `at_least` of them.
    pub fn buffer(&mut self, at_least: usize) -> &mut BytesMut {
        self.buf.reserve(at_least);
        &mut self.buf
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next input the bytes so far make; `None` until more bytes arrive (or for good,
    /// after a close or a violation).
    pub fn next_input(&mut self) -> Option<ClientInput> {
        while !self.done {
            let input = match parse_client_frame(&self.buf, MAX_CLIENT_MESSAGE) {
                ParsedFrame::Incomplete => return None,
                ParsedFrame::Violation(code, reason) => Some(ClientInput::Violation(code, reason)),
                ParsedFrame::Frame(frame, consumed) => {
                    self.buf.advance(consumed);
                    self.assembler.push(frame)
                }
            };
            if let Some(input) = input {
                self.done = input.ends_the_session();
                return Some(input);
            }
        }
        None
    }
}

/// A close frame's body: nothing, or a code a peer may send and a UTF-8 reason.
fn close_input(payload: &[u8]) -> ClientInput {
    match payload {
        [] => ClientInput::Close(CLOSE_NO_STATUS),
        [_] => ClientInput::Violation(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body"),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !close_code_may_be_sent(code) {
                ClientInput::Violation(CLOSE_PROTOCOL_ERROR, "invalid close code")
            } else if std::str::from_utf8(reason).is_err() {
                ClientInput::Violation(CLOSE_INVALID_DATA, "close reason is not UTF-8")
            } else {
                ClientInput::Close(code)
            }
        }
    }
}

/// The codes RFC 6455 §7.4 lets an endpoint put in a close frame: the defined ones that are
/// not reserved for local use (1005, 1006, 1015), the IANA-registered 1012–1014, and the
/// ranges for libraries and applications.
pub fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        client_frame(fin, opcode, payload, [1, 2, 3, 4])
    }

    #[test]
    fn accept_key_is_rfc_6455s() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ==").as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(accept_key("bad\nkey"), None);
        let key = client_key(*b"the sample nonce");
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn headers_read_back_what_was_written() {
        for len in [0usize, 125, 126, 65_535, 65_536, 300_000] {
            let (server, n) = frame_header(OPCODE_BINARY, len);
            let h = parse_header(&server[..n]).unwrap();
            assert_eq!(
                (h.fin, h.opcode, h.mask, h.payload_len, h.len),
                (true, OPCODE_BINARY, None, len as u64, n)
            );
            let client = client_frame(false, OPCODE_TEXT, &vec![7u8; len], [9, 8, 7, 6]);
            let h = parse_header(&client).unwrap();
            assert_eq!(
                (h.fin, h.opcode, h.mask),
                (false, OPCODE_TEXT, Some([9, 8, 7, 6]))
            );
            assert_eq!(h.len + len, client.len());
            assert_eq!(header_len([client[0], client[1]]), h.len);
            assert!(
                parse_header(&client[..h.len - 1]).is_none(),
                "a cut header waits"
            );
        }
    }

    #[test]
    fn header_sizes() {
        assert_eq!(frame_header(OPCODE_BINARY, 5).1, 2);
        assert_eq!(frame_header(OPCODE_BINARY, 300).1, 4);
        let (h, n) = frame_header(OPCODE_BINARY, 250_000);
        assert_eq!(n, 10);
        assert_eq!(h[0], 0x82);
        assert_eq!(u64::from_be_bytes(h[2..10].try_into().unwrap()), 250_000);
    }

    #[test]
    fn parses_masked_text_and_waits_for_more() {
        let f = masked(OPCODE_TEXT, true, b"{\"type\":\"pause\"}");
        assert_eq!(parse_client_frame(&f[..3], 1000), ParsedFrame::Incomplete);
        match parse_client_frame(&f, 1000) {
            ParsedFrame::Frame(frame, used) => {
                assert_eq!(used, f.len());
                assert_eq!(frame.payload, b"{\"type\":\"pause\"}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The close code a server reading `bytes` from a client answers with, if any.
    fn answer(bytes: &[u8]) -> Option<u16> {
        let mut reader = MessageReader::new(bytes);
        while let Some(input) = reader.next_input() {
            match input {
                ClientInput::Violation(code, _) => return Some(code),
                ClientInput::Close(code) if code == CLOSE_GOING_AWAY => return Some(code),
                ClientInput::Close(_) => return Some(CLOSE_NORMAL),
                _ => {}
            }
        }
        None
    }

    fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
        [&code.to_be_bytes()[..], reason].concat()
    }

    fn with_first_byte(mut frame: Vec<u8>, set: u8) -> Vec<u8> {
        frame[0] |= set;
        frame
    }

    fn unmasked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let (header, n) = frame_header(opcode, payload.len());
        [&header[..n], payload].concat()
    }

    /// One test per RFC 6455 rule for what a client sends: `name: bytes => close code`.
    macro_rules! client_frame_rules {
        ($($name:ident: $bytes:expr => $code:expr;)+) => {
            $(
                #[test]
                fn $name() {
                    assert_eq!(answer(&$bytes), $code);
                }
            )+
        };
    }

    client_frame_rules! {
        a_valid_text_frame_closes_nothing: masked(OPCODE_TEXT, true, b"{\"type\":\"pause\"}") => None;
        an_unmasked_client_frame_is_a_protocol_error: unmasked(OPCODE_TEXT, b"hi") => Some(1002);
        reserved_bit_1_is_a_protocol_error: with_first_byte(masked(OPCODE_TEXT, true, b"hi"), 0x40) => Some(1002);
        reserved_bit_2_is_a_protocol_error: with_first_byte(masked(OPCODE_TEXT, true, b"hi"), 0x20) => Some(1002);
        reserved_bit_3_is_a_protocol_error: with_first_byte(masked(OPCODE_TEXT, true, b"hi"), 0x10) => Some(1002);
        a_reserved_bit_is_refused_before_the_header_is_whole: [0xC1u8] => Some(1002);
        a_reserved_data_opcode_is_a_protocol_error: masked(0x3, true, b"x") => Some(1002);
        a_reserved_control_opcode_is_a_protocol_error: masked(0xB, true, b"") => Some(1002);
        a_control_frame_of_126_bytes_is_a_protocol_error: masked(OPCODE_PING, true, &[0u8; 126]) => Some(1002);
        a_control_frame_of_125_bytes_is_fine: masked(OPCODE_PING, true, &[0u8; 125]) => None;
        a_fragmented_control_frame_is_a_protocol_error: masked(OPCODE_PING, false, b"p") => Some(1002);
        a_continuation_without_a_start_is_a_protocol_error: masked(OPCODE_CONTINUATION, true, b"x") => Some(1002);
        a_new_text_inside_a_fragmented_message_is_a_protocol_error: [
            masked(OPCODE_TEXT, false, b"{\"type\":"),
            masked(OPCODE_TEXT, true, b"\"pause\"}"),
        ].concat() => Some(1002);
        a_ping_inside_a_fragmented_message_is_fine: [
            masked(OPCODE_TEXT, false, b"{\"type\":"),
            masked(OPCODE_PING, true, b""),
            masked(OPCODE_CONTINUATION, true, b"\"pause\"}"),
        ].concat() => None;
        text_that_is_not_utf8_is_invalid_data: masked(OPCODE_TEXT, true, &[0xFF, 0xFE]) => Some(1007);
        utf8_cut_between_fragments_and_never_completed_is_invalid_data: [
            masked(OPCODE_TEXT, false, b"\"\xe2\x82"),
            masked(OPCODE_CONTINUATION, true, b"\""),
        ].concat() => Some(1007);
        a_message_over_64_kib_in_one_frame_is_too_big: masked(OPCODE_TEXT, true, &[b' '; MAX_CLIENT_MESSAGE + 1]) => Some(1009);
        a_message_over_64_kib_in_fragments_is_too_big: [
            masked(OPCODE_TEXT, false, &[b' '; 40_000]),
            masked(OPCODE_CONTINUATION, true, &[b' '; 40_000]),
        ].concat() => Some(1009);
        a_2_pow_63_byte_length_is_too_big_before_any_payload: [0x81u8, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4] => Some(1009);
        a_close_without_a_body_is_answered_normally: masked(OPCODE_CLOSE, true, b"") => Some(1000);
        a_close_with_a_one_byte_body_is_a_protocol_error: masked(OPCODE_CLOSE, true, &[0x03]) => Some(1002);
        close_code_1001_is_answered_going_away: masked(OPCODE_CLOSE, true, &close_body(1001, b"")) => Some(1001);
        close_code_4999_with_a_utf8_reason_is_accepted: masked(OPCODE_CLOSE, true, &close_body(4999, "ünï".as_bytes())) => Some(1000);
        close_code_999_is_a_protocol_error: masked(OPCODE_CLOSE, true, &close_body(999, b"")) => Some(1002);
        close_code_1005_is_a_protocol_error: masked(OPCODE_CLOSE, true, &close_body(1005, b"")) => Some(1002);
        close_code_1006_is_a_protocol_error: masked(OPCODE_CLOSE, true, &close_body(1006, b"")) => Some(1002);
        close_code_1015_is_a_protocol_error: masked(OPCODE_CLOSE, true, &close_body(1015, b"")) => Some(1002);
        close_code_5000_is_a_protocol_error: masked(OPCODE_CLOSE, true, &close_body(5000, b"")) => Some(1002);
        a_close_reason_that_is_not_utf8_is_invalid_data: masked(OPCODE_CLOSE, true, &close_body(1000, &[0xFF, 0xFE])) => Some(1007);
    }

    #[test]
    fn nothing_is_read_after_a_violation() {
        let bytes = [
            masked(OPCODE_CONTINUATION, true, b"x"),
            masked(OPCODE_TEXT, true, b"{\"type\":\"pause\"}"),
        ]
        .concat();
        let mut reader = MessageReader::new(&bytes);
        assert!(matches!(
            reader.next_input(),
            Some(ClientInput::Violation(1002, _))
        ));
        assert!(reader.next_input().is_none());
    }

    #[test]
    fn assembles_fragments_and_limits_size() {
        let mut a = MessageAssembler::default();
        let part = |opcode, fin, p: &[u8]| ClientFrame {
            fin,
            opcode,
            payload: p.to_vec(),
        };
        assert!(a.push(part(OPCODE_TEXT, false, b"{\"type\":")).is_none());
        assert!(matches!(
            a.push(part(OPCODE_PING, true, b"")),
            Some(ClientInput::Ping(_))
        ));
        assert!(matches!(
            a.push(part(OPCODE_CONTINUATION, true, b"\"resume\"}")),
            Some(ClientInput::Message(ClientMessage::Resume))
        ));
        let chunk = vec![b' '; 40_000];
        assert!(a.push(part(OPCODE_TEXT, false, &chunk)).is_none());
        assert!(matches!(
            a.push(part(OPCODE_CONTINUATION, true, &chunk)),
            Some(ClientInput::Violation(CLOSE_TOO_BIG, _))
        ));
        let mut b = MessageAssembler::default();
        assert!(matches!(
            b.push(part(OPCODE_TEXT, true, &[0xFF, 0xFE])),
            Some(ClientInput::Violation(CLOSE_INVALID_DATA, _))
        ));
        assert!(matches!(
            b.push(part(OPCODE_TEXT, true, b"not json")),
            Some(ClientInput::Unsupported(_))
        ));
    }
}
