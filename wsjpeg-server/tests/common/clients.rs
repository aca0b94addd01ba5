// SPDX-License-Identifier: MIT
//! Clients of a running server on 127.0.0.1, with no GStreamer: WebSocket viewers, HTTP
//! requests, and raw sockets for clients that misbehave in ways tungstenite will not. Shared by
//! the tests of the server and of the plugin.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsjpeg_server::protocol::parse_meta_header;
use wsjpeg_server::websocket::codec;

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub fn is_complete_jpeg(data: &[u8]) -> bool {
    data.len() > 4 && data.starts_with(&[0xFF, 0xD8]) && data.ends_with(&[0xFF, 0xD9])
}

pub async fn connect(port: u16, path: &str) -> WebSocket {
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (ws, response) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connects in time")
    .expect("WebSocket handshake succeeds");
    assert_eq!(response.status(), 101);
    ws
}

/// Connects with extra request headers.
pub async fn connect_with_headers(port: u16, path: &str, headers: &[(&str, &str)]) -> WebSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("a valid request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("a header name"),
            tokio_tungstenite::tungstenite::http::HeaderValue::from_str(value)
                .expect("a header value"),
        );
    }
    let (ws, response) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("connects in time")
    .expect("WebSocket handshake succeeds");
    assert_eq!(response.status(), 101);
    ws
}

/// What a viewer receives, split into JSON texts and binary frames.
pub enum Received {
    Text(serde_json::Value),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

pub async fn next_message(ws: &mut WebSocket, within: Duration) -> Option<Received> {
    loop {
        let message = match tokio::time::timeout(within, ws.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(Received::Closed(None)),
            Ok(Some(Err(_))) => return Some(Received::Closed(None)),
            Ok(Some(Ok(message))) => message,
        };
        return Some(match message {
            Message::Text(text) => {
                Received::Text(serde_json::from_str(text.as_str()).expect("server text is JSON"))
            }
            Message::Binary(data) => Received::Binary(data.to_vec()),
            Message::Close(frame) => Received::Closed(frame.map(|f| u16::from(f.code))),
            _ => continue,
        });
    }
}

/// Waits for the next binary frame, skipping text messages.
pub async fn next_frame(ws: &mut WebSocket, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match next_message(ws, left).await? {
            Received::Binary(data) => return Some(data),
            Received::Text(_) => continue,
            Received::Closed(_) => return None,
        }
    }
}

/// Waits for a text message of the given type.
pub async fn next_text_of_type(
    ws: &mut WebSocket,
    kind: &str,
    within: Duration,
) -> Option<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match next_message(ws, left).await? {
            Received::Text(value) if value["type"] == kind => return Some(value),
            Received::Closed(_) => return None,
            _ => continue,
        }
    }
}

/// Waits for the close frame and returns its code.
pub async fn close_code(ws: &mut WebSocket, within: Duration) -> Option<u16> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if let Received::Closed(code) = next_message(ws, left).await? {
            return code;
        }
    }
}

/// Counts binary frames for `duration`, checking each is a complete JPEG.
pub async fn count_frames(ws: &mut WebSocket, duration: Duration) -> usize {
    let deadline = Instant::now() + duration;
    let mut frames = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match next_message(ws, left).await {
            Some(Received::Binary(data)) => {
                assert!(is_complete_jpeg(&data), "every frame is a whole JPEG");
                frames += 1;
            }
            Some(Received::Text(_)) => {}
            Some(Received::Closed(code)) => panic!("viewer closed unexpectedly: {code:?}"),
            None => break,
        }
    }
    frames
}

/// Frames a viewer got over a window, next to the frames the server took in meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    pub received: usize,
    pub taken_in: u64,
}

impl Share {
    /// The viewer got (nearly) every frame the source gave over the same window: a busy
    /// machine may cost it a frame here and there (latest frame wins), a stalled fan-out most.
    pub fn assert_most(&self, what: &str) {
        assert!(self.taken_in > 0, "{what}: the source gave no frame");
        assert!(
            self.received as f64 >= 0.75 * self.taken_in as f64,
            "{what}: {} of the {} frames the server took in",
            self.received,
            self.taken_in
        );
    }
}

/// [`count_frames`] for `duration`, with the server's own count of frames taken in (`/status`
/// over plain HTTP on `port`).
pub async fn count_share(ws: &mut WebSocket, port: u16, duration: Duration) -> Share {
    let frames_in = || status_blocking(port)["frames"]["in"].as_u64().unwrap_or(0);
    let before = frames_in();
    let received = count_frames(ws, duration).await;
    Share {
        received,
        taken_in: frames_in().saturating_sub(before),
    }
}

pub async fn send_json(ws: &mut WebSocket, value: serde_json::Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("client message is sent");
}

/// A raw HTTP/1.1 response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

/// Sends a GET with `Connection: close` and reads the whole response, or at most `limit` body
/// bytes for endless streams.
pub async fn http_get(
    port: u16,
    path: &str,
    extra_headers: &[(&str, &str)],
    limit: usize,
) -> Response {
    http_exchange(port, "GET", path, extra_headers, b"", limit).await
}

/// One request on a fresh connection; reading stops at EOF, after 10 s, or once `limit` body
/// bytes are in.
async fn http_exchange(
    port: u16,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    limit: usize,
) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server accepts");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut raw_request = request.into_bytes();
    raw_request.extend_from_slice(body);
    stream
        .write_all(&raw_request)
        .await
        .expect("request is sent");
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = find(&raw, b"\r\n\r\n")
            && raw.len() - end - 4 >= limit
        {
            break;
        }
    }
    parse_response(&raw)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(raw: &[u8]) -> Response {
    let end = find(raw, b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || data.len() < start + size {
            out.extend_from_slice(&data[start.min(data.len())..(start + size).min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// Polls `condition` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the camera to be announced in `state`: by the `hello` (which says the state on
/// arrival) or a later `status` message. Returns that message.
pub async fn wait_camera_state(
    ws: &mut WebSocket,
    state: &str,
    within: Duration,
) -> Option<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match next_message(ws, left).await? {
            Received::Text(message)
                if matches!(message["type"].as_str(), Some("hello" | "status"))
                    && message["camera"] == state =>
            {
                return Some(message);
            }
            Received::Closed(_) => return None,
            _ => continue,
        }
    }
}

// ---- Raw sockets: for clients that misbehave in ways tungstenite will not. ----

/// Connects with a 16 KB receive window and sends `request`; the caller then reads as little
/// as it likes, down to nothing.
pub async fn stalled_client(port: u16, request: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let mut stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("server accepts");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request is sent");
    stream
}

/// A WebSocket upgrade request for `path`, with `extra` header lines (each ending in CRLF).
pub fn upgrade_request(port: u16, path: &str, extra: &str) -> String {
    let key = codec::client_key(*b"wsjpeg test key!");
    codec::upgrade_request(&format!("127.0.0.1:{port}"), path, &key, extra)
}

/// Reads a response head byte by byte, so that nothing after it is consumed. Returns the
/// status code, or `None` if the connection ended or `within` passed first.
pub async fn read_response_head(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut head = Vec::new();
    let deadline = Instant::now() + within;
    while !head.ends_with(b"\r\n\r\n") {
        let left = deadline.checked_duration_since(Instant::now())?;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return None,
        }
    }
    String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
}

/// Completes a WebSocket handshake on a raw socket; the stream is positioned at the first
/// server frame.
pub async fn raw_websocket(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server accepts");
    stream
        .write_all(upgrade_request(port, path, "").as_bytes())
        .await
        .expect("upgrade request is sent");
    let status = read_response_head(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status, Some(101), "raw WebSocket handshake");
    stream
}

/// A client frame as RFC 6455 wants it: masked, with the shortest length encoding.
#[allow(unused_imports)]
pub use wsjpeg_server::websocket::codec::client_frame as masked_frame;

/// One frame from the server, read from a raw socket.
#[derive(Debug)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The code of a close frame (1005 when it carries none).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == codec::OPCODE_CLOSE).then(|| {
            self.payload
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .unwrap_or(codec::CLOSE_NO_STATUS)
        })
    }
}

/// Reads the next server frame; `None` on EOF, error or timeout.
pub async fn read_server_frame(stream: &mut TcpStream, within: Duration) -> Option<ServerFrame> {
    tokio::time::timeout(within, async {
        let mut head = [0u8; 14];
        stream.read_exact(&mut head[..2]).await.ok()?;
        let len = codec::header_len([head[0], head[1]]);
        stream.read_exact(&mut head[2..len]).await.ok()?;
        let header = codec::parse_header(&head[..len])?;
        assert_eq!(header.mask, None, "server frames are never masked");
        let mut payload = vec![0u8; usize::try_from(header.payload_len).ok()?];
        stream.read_exact(&mut payload).await.ok()?;
        Some(ServerFrame {
            fin: header.fin,
            opcode: header.opcode,
            payload,
        })
    })
    .await
    .ok()
    .flatten()
}

/// Reads server frames until a close frame and returns its code; `None` if the connection
/// ended without one or `within` passed.
pub async fn raw_close_code(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let frame = read_server_frame(stream, left).await?;
        if let Some(code) = frame.close_code() {
            return Some(code);
        }
    }
}

/// What a `?meta=1` viewer saw over a while: frames received, and how many the server
/// published meanwhile (from the sequence numbers of the first and last frame received).
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    pub received: u64,
    pub published: u64,
    pub seconds: f64,
}

impl Delivery {
    pub fn fps(&self) -> f64 {
        self.received as f64 / self.seconds.max(1e-3)
    }

    /// Share of the published frames that reached the viewer.
    pub fn ratio(&self) -> f64 {
        self.received as f64 / self.published.max(1) as f64
    }
}

/// Reads a `?meta=1` viewer's frames for `duration`; panics if the viewer is closed.
pub async fn measure_delivery(ws: &mut WebSocket, duration: Duration) -> Delivery {
    let deadline = Instant::now() + duration;
    measure_delivery_while(ws, || Instant::now() < deadline).await
}

/// Reads a `?meta=1` viewer's frames as long as `go_on` says so (checked at least every
/// 100 ms); panics if the viewer is closed.
pub async fn measure_delivery_while(
    ws: &mut WebSocket,
    mut go_on: impl FnMut() -> bool,
) -> Delivery {
    let start = Instant::now();
    let (mut first, mut last, mut received) = (None, 0u64, 0u64);
    while go_on() {
        match next_message(ws, Duration::from_millis(100)).await {
            Some(Received::Binary(data)) => {
                let meta = parse_meta_header(&data).expect("a meta header");
                assert!(
                    is_complete_jpeg(&data[meta.len..]),
                    "every frame is a whole JPEG"
                );
                let sequence = meta.sequence;
                first.get_or_insert(sequence);
                last = sequence;
                received += 1;
            }
            Some(Received::Text(_)) | None => {}
            Some(Received::Closed(code)) => panic!("viewer closed unexpectedly: {code:?}"),
        }
    }
    Delivery {
        received,
        published: first.map(|f| last - f + 1).unwrap_or(0),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Sends any request (`method`, headers, body) with `Connection: close` and reads the whole
/// response. A HEAD response is read up to its head only.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let limit = if method == "HEAD" { 0 } else { usize::MAX };
    http_exchange(port, method, path, extra_headers, body, limit).await
}

/// `GET path` over HTTP/1.0 on a blocking socket: usable from synchronous conditions. The
/// status is 0 when no answer came.
pub fn get_blocking(port: u16, path: &str) -> (u16, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    exchange_blocking(port, request.as_bytes())
}

/// Sends `request` on a fresh blocking connection and reads until the server closes it (or
/// 5 s pass): the status (0 when no answer came) and the body.
pub fn exchange_blocking(port: u16, request: &[u8]) -> (u16, Vec<u8>) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // Refused halfway is fine: the server may answer as soon as it has seen enough.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let status = raw
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = find(&raw, b"\r\n\r\n")
        .map(|end| raw[end + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

/// The server's `/status`; `Null` when there is no JSON answer (refused, unauthorized, timed
/// out).
pub fn status_blocking(port: u16) -> serde_json::Value {
    let (_, body) = get_blocking(port, "/status");
    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
}

/// What a viewer receives for a while: detections messages and frame sequence numbers, in
/// order.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Detections(serde_json::Value),
    Frame(u64),
}

pub async fn watch(ws: &mut WebSocket, duration: Duration) -> Vec<Seen> {
    let deadline = std::time::Instant::now() + duration;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match next_message(ws, left).await {
            Some(Received::Binary(data)) => seen.push(Seen::Frame(
                parse_meta_header(&data).expect("meta").sequence,
            )),
            Some(Received::Text(value)) if value["type"] == "detections" => {
                seen.push(Seen::Detections(value))
            }
            Some(Received::Text(_)) => {}
            Some(Received::Closed(_)) | None => break,
        }
    }
    seen
}
