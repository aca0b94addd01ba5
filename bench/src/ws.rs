//! A lean WebSocket client for load generation.
//!
//! The load tool shares the machine's two cores with the server it measures, so its viewers
//! must cost as little as possible: frames are parsed incrementally straight out of the read
//! buffer, binary payloads are skipped without being copied or assembled (only the first 24
//! bytes are kept, for the `?meta=1` header), and nothing is allocated per frame.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use wsjpeg_server::websocket::codec;
// The wire format is the server's own codec, seen from the client's side.
pub use wsjpeg_server::websocket::codec::{
    OPCODE_BINARY, OPCODE_CLOSE, OPCODE_CONTINUATION, OPCODE_PING, OPCODE_PONG, OPCODE_TEXT,
};

use crate::util::{Target, XorShift};

/// Longest text or control message kept (server JSON messages are far smaller).
const MAX_KEPT_PAYLOAD: usize = 64 * 1024;
/// Longest HTTP response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The `?meta=1` header as the server's protocol reads it.
pub use wsjpeg_server::protocol::{META_HEADER_LEN as META_LEN, MetaHeader as Meta};

/// Bytes kept of each binary message: enough for the longest header (an H.264 unit's).
/// Enough of a binary message for its header, or for a fragmented-MP4 fragment's sequence
/// number and decode time.
const PREFIX_LEN: usize = 96;

/// What the parser found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete binary message of `len` payload bytes.
    Binary {
        len: u64,
        meta: Option<Meta>,
    },
    /// A complete text message (truncated to 64 KiB).
    Text(&'a [u8]),
    Ping(&'a [u8]),
    Pong,
    Close(Option<u16>),
}

#[derive(Debug)]
enum State {
    /// Collecting a frame header (2 to 14 bytes).
    Header,
    /// Inside a frame's payload.
    Payload { remaining: u64 },
}

/// Incremental parser of server→client WebSocket frames.
#[derive(Debug)]
pub struct Parser {
    state: State,
    header: [u8; 14],
    header_have: usize,
    /// Opcode of the frame being read.
    frame_opcode: u8,
    frame_fin: bool,
    /// Opcode of the data message being assembled (for continuation frames).
    message_opcode: u8,
    message_len: u64,
    /// First bytes of a binary message (the `?meta=1` header).
    prefix: [u8; PREFIX_LEN],
    prefix_have: usize,
    /// Payload of a text or control frame.
    kept: Vec<u8>,
    /// Control frames may arrive in the middle of a fragmented message.
    control: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Header,
            header: [0; 14],
            header_have: 0,
            frame_opcode: 0,
            frame_fin: false,
            message_opcode: 0,
            message_len: 0,
            prefix: [0; PREFIX_LEN],
            prefix_have: 0,
            kept: Vec::new(),
            control: Vec::new(),
        }
    }
}

/// A fragment of fragmented MP4 (`container=fmp4`) read as a header: its decode time is the
/// capture time.
fn fragment_meta(prefix: &[u8]) -> Option<Meta> {
    let (sequence, capture_time_us) = wsjpeg_server::media::fmp4::fragment_times(prefix)?;
    Some(Meta {
        sequence: u64::from(sequence),
        capture_time_us,
        len: 0,
        keyframe: false,
    })
}

impl Parser {
    /// Feeds received bytes; `on_event` is called for every complete message or control frame.
    pub fn feed(&mut self, mut data: &[u8], mut on_event: impl FnMut(Event<'_>)) -> Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    let want = self.header_len_needed();
                    let take = (want - self.header_have).min(data.len());
                    self.header[self.header_have..self.header_have + take]
                        .copy_from_slice(&data[..take]);
                    self.header_have += take;
                    data = &data[take..];
                    if self.header_have == self.header_len_needed() {
                        self.start_frame(&mut on_event)?;
                    }
                }
                State::Payload { remaining } => {
                    let take = remaining.min(data.len() as u64) as usize;
                    let chunk = &data[..take];
                    if self.frame_opcode & 0x8 != 0 {
                        self.control.extend_from_slice(chunk);
                    } else if self.message_opcode == OPCODE_BINARY {
                        if self.prefix_have < PREFIX_LEN {
                            let n = (PREFIX_LEN - self.prefix_have).min(chunk.len());
                            self.prefix[self.prefix_have..self.prefix_have + n]
                                .copy_from_slice(&chunk[..n]);
                            self.prefix_have += n;
                        }
                    } else if self.kept.len() < MAX_KEPT_PAYLOAD {
                        let n = (MAX_KEPT_PAYLOAD - self.kept.len()).min(chunk.len());
                        self.kept.extend_from_slice(&chunk[..n]);
                    }
                    data = &data[take..];
                    let remaining = remaining - take as u64;
                    self.state = State::Payload { remaining };
                    if remaining == 0 {
                        self.end_frame(&mut on_event);
                    }
                }
            }
        }
        Ok(())
    }

    fn header_len_needed(&self) -> usize {
        if self.header_have < 2 {
            return 2;
        }
        codec::header_len([self.header[0], self.header[1]])
    }

    fn start_frame(&mut self, on_event: &mut impl FnMut(Event<'_>)) -> Result<()> {
        let Some(h) = codec::parse_header(&self.header[..self.header_have]) else {
            bail!("incomplete frame header");
        };
        let (fin, opcode, len) = (h.fin, h.opcode, h.payload_len);
        if h.mask.is_some() {
            bail!("server frame is masked (RFC 6455 §5.1)");
        }
        self.header_have = 0;
        self.frame_opcode = opcode;
        self.frame_fin = fin;
        match opcode {
            OPCODE_CLOSE | OPCODE_PING | OPCODE_PONG => {
                if len > 125 || !fin {
                    bail!("invalid control frame");
                }
                self.control.clear();
            }
            OPCODE_TEXT | OPCODE_BINARY => {
                if self.message_opcode != 0 {
                    bail!("new message before the previous one ended");
                }
                self.message_opcode = opcode;
                self.message_len = 0;
                self.prefix_have = 0;
                self.kept.clear();
            }
            OPCODE_CONTINUATION => {
                if self.message_opcode == 0 {
                    bail!("continuation frame without a message");
                }
            }
            other => bail!("unknown opcode {other:#x}"),
        }
        if opcode & 0x8 == 0 {
            self.message_len += len;
        }
        self.state = State::Payload { remaining: len };
        if len == 0 {
            self.end_frame(on_event);
        }
        Ok(())
    }

    fn end_frame(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        self.state = State::Header;
        match self.frame_opcode {
            OPCODE_PING => on_event(Event::Ping(&self.control)),
            OPCODE_PONG => on_event(Event::Pong),
            OPCODE_CLOSE => {
                let code = (self.control.len() >= 2)
                    .then(|| u16::from_be_bytes([self.control[0], self.control[1]]));
                on_event(Event::Close(code));
            }
            _ if self.frame_fin => {
                let opcode = std::mem::take(&mut self.message_opcode);
                if opcode == OPCODE_BINARY {
                    let prefix = &self.prefix[..self.prefix_have];
                    let meta = if self.prefix_have >= META_LEN {
                        wsjpeg_server::protocol::parse_meta_header(prefix)
                    } else {
                        None
                    }
                    .or_else(|| fragment_meta(prefix));
                    on_event(Event::Binary {
                        len: self.message_len,
                        meta,
                    });
                } else {
                    on_event(Event::Text(&self.kept));
                }
            }
            _ => {}
        }
    }
}

/// A masked client frame (client→server frames must be masked), final.
pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    codec::client_frame(true, opcode, payload, mask)
}

/// Why a viewer could not be connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    Connect(String),
    Timeout,
    /// The server answered with this HTTP status instead of 101.
    Status(u16),
    Handshake(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Connect(e) => write!(f, "connect: {e}"),
            ConnectError::Timeout => write!(f, "timeout"),
            ConnectError::Status(s) => write!(f, "HTTP {s}"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

/// Opens a TCP connection, optionally with a small receive buffer (set before connecting so
/// that the TCP window is negotiated with it).
pub async fn tcp_connect(target: &Target, recv_buffer: Option<u32>) -> Result<TcpStream> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("socket")?;
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .context("setting SO_RCVBUF")?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads an HTTP response head; returns (status, head text, bytes read past the head).
pub async fn read_response_head(stream: &mut TcpStream) -> Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("malformed status line"))?;
            return Ok((status, head, rest));
        }
        if buf.len() > MAX_HEAD {
            bail!("response head larger than {MAX_HEAD} bytes");
        }
    }
}

/// The value of header `name` in a response head.
pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Opens a WebSocket: TCP connect plus the RFC 6455 handshake, checking the accept key.
/// Returns the stream and any frame bytes that arrived with the handshake response.
pub async fn connect(
    target: &Target,
    recv_buffer: Option<u32>,
    rng: &mut XorShift,
    timeout: Duration,
) -> Result<(TcpStream, Vec<u8>), ConnectError> {
    let attempt = async {
        let mut stream = tcp_connect(target, recv_buffer)
            .await
            .map_err(|e| ConnectError::Connect(format!("{e:#}")))?;
        let mut key_bytes = [0u8; 16];
        key_bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        key_bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let key = codec::client_key(key_bytes);
        let request = codec::upgrade_request(
            &target.host,
            &target.path,
            &key,
            "User-Agent: wsjpeg-bench\r\n",
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        let (status, head, rest) = read_response_head(&mut stream)
            .await
            .map_err(|e| ConnectError::Handshake(format!("{e:#}")))?;
        if status != 101 {
            return Err(ConnectError::Status(status));
        }
        let expected = codec::accept_key(&key);
        match header_value(&head, "sec-websocket-accept") {
            Some(v) if Some(v) == expected.as_deref() => Ok((stream, rest)),
            Some(_) => Err(ConnectError::Handshake("wrong Sec-WebSocket-Accept".into())),
            None => Err(ConnectError::Handshake("no Sec-WebSocket-Accept".into())),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let (mut header, n) = codec::frame_header(opcode, payload.len());
        if !fin {
            header[0] &= 0x7F;
        }
        let mut v = header[..n].to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn meta_payload(seq: u64, cap: u64, jpeg_len: usize) -> Vec<u8> {
        let mut p = wsjpeg_server::protocol::meta_header(seq, cap).to_vec();
        p.extend(std::iter::repeat_n(0xAB, jpeg_len));
        p
    }

    fn collect(parser: &mut Parser, data: &[u8], step: usize) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in data.chunks(step) {
            parser
                .feed(chunk, |e| out.push(format!("{e:?}")))
                .expect("valid stream");
        }
        out
    }

    #[test]
    fn parses_messages_split_anywhere() {
        let mut stream = server_frame(OPCODE_TEXT, true, br#"{"type":"hello"}"#);
        stream.extend(server_frame(
            OPCODE_BINARY,
            true,
            &meta_payload(7, 99, 70_000),
        ));
        stream.extend(server_frame(OPCODE_PING, true, b"p"));
        stream.extend(server_frame(OPCODE_BINARY, true, &[1, 2, 3]));
        stream.extend(server_frame(OPCODE_CLOSE, true, &1001u16.to_be_bytes()));
        let expected = vec![
            format!("{:?}", Event::Text(br#"{"type":"hello"}"#)),
            format!(
                "{:?}",
                Event::Binary {
                    len: 70_024,
                    meta: Some(Meta {
                        sequence: 7,
                        capture_time_us: 99,
                        len: META_LEN,
                        keyframe: true,
                    })
                }
            ),
            format!("{:?}", Event::Ping(b"p")),
            format!("{:?}", Event::Binary { len: 3, meta: None }),
            format!("{:?}", Event::Close(Some(1001))),
        ];
        for step in [1, 3, 7, 1000, 1 << 20] {
            let mut p = Parser::default();
            assert_eq!(collect(&mut p, &stream, step), expected, "step {step}");
        }
    }

    #[test]
    fn assembles_fragments_with_interleaved_control() {
        let payload = meta_payload(3, 5, 10);
        let mut stream = server_frame(OPCODE_BINARY, false, &payload[..10]);
        stream.extend(server_frame(OPCODE_PING, true, b""));
        stream.extend(server_frame(OPCODE_CONTINUATION, true, &payload[10..]));
        let mut p = Parser::default();
        let events = collect(&mut p, &stream, 4);
        assert_eq!(events.len(), 2);
        assert!(events[1].contains("sequence: 3"), "{events:?}");
        assert!(events[1].contains("len: 34"), "{events:?}");
    }

    #[test]
    fn refuses_masked_server_frames() {
        let mut p = Parser::default();
        assert!(p.feed(&[0x82, 0x81, 0, 0, 0, 0, 0], |_| {}).is_err());
    }

    #[test]
    fn client_frames_are_masked() {
        let f = client_frame(OPCODE_PONG, b"ab", [1, 2, 3, 4]);
        assert_eq!(f, vec![0x8A, 0x82, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2]);
    }
}
