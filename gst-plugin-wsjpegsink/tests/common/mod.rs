// SPDX-License-Identifier: MIT
//! Helpers shared by the integration tests: real pipelines, real sockets on 127.0.0.1.
#![allow(dead_code)]

mod host;
#[allow(unused_imports)]
pub use host::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsjpeg_server::protocol::parse_meta_header;
use wsjpeg_server::websocket::codec;

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        count_server_panics();
        end_a_hanging_test_binary();
        gst::init().expect("GStreamer initialises");
        gstwsjpeg::plugin_register_static().expect("wsjpeg plugin registers");
    });
}

/// A test that cannot run here (no nginx, no OpenCV, no IPv6, not root…). Under CI (`CI` set)
/// or with `require` set (such as `WSJPEG_REQUIRE_NGINX`), that is a failure. Otherwise the test
/// skips and says so: on stderr, and in the file `WSJPEG_SKIP_LOG` names, which
/// `scripts/test.sh` prints as a summary at the end. Returns whether the test may go on (never).
pub fn cannot_run(group: &str, why: &str, require: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os(require).is_none(),
        "{group} must run here ({}), but cannot: {why}",
        if std::env::var_os("CI").is_some() {
            "CI"
        } else {
            require
        }
    );
    eprintln!("SKIP {group}: {why}");
    if let Some(log) = std::env::var_os("WSJPEG_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{group}: {why}");
        }
    }
    false
}

/// A port of 127.0.0.1 kept for a server the test starts in another process: bound with
/// SO_REUSEADDR but not listening, so nothing else takes it and connections are refused until
/// the server (which binds with SO_REUSEADDR too, as nginx and ours do) listens there.
pub struct ReservedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl ReservedPort {
    pub fn any() -> ReservedPort {
        ReservedPort::at(0).expect("a free port")
    }

    /// `port` itself, if it is free.
    pub fn at(port: u16) -> Option<ReservedPort> {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        socket.set_reuse_address(true).ok()?;
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .ok()?;
        let port = socket.local_addr().ok()?.as_socket()?.port();
        Some(ReservedPort {
            _socket: socket,
            port,
        })
    }

    pub fn text(&self) -> String {
        self.port.to_string()
    }
}

/// No test binary runs this long when its features work (the longest takes about a minute
/// on a busy machine); one that does is stuck waiting on something that broke.
const TEST_BINARY_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Ends the test binary with a failure once [`TEST_BINARY_DEADLINE`] has passed, so that a
/// broken feature fails the suite instead of hanging it (every wait of a test has its own
/// bound too; this is the bound of last resort).
fn end_a_hanging_test_binary() {
    let _ = std::thread::Builder::new()
        .name("test-deadline".into())
        .spawn(|| {
            std::thread::sleep(TEST_BINARY_DEADLINE);
            eprintln!(
                "a test of {} still runs after {} min: it hangs",
                std::env::args().next().unwrap_or_default(),
                TEST_BINARY_DEADLINE.as_secs() / 60
            );
            std::process::exit(101);
        });
}

static SERVER_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts panics on the element's own threads (`wsjpeg-…`), which tokio would otherwise only
/// print: a panicking viewer task is a bug even when the test around it passes.
fn count_server_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("wsjpeg"))
        {
            SERVER_PANICS.fetch_add(1, Ordering::Relaxed);
        }
        previous(info)
    }));
}

/// Panics on the element's threads in this process so far.
pub fn server_panics() -> usize {
    SERVER_PANICS.load(Ordering::Relaxed)
}

/// A new folder under the temp dir, unique in this process and among processes.
pub fn unique_temp_dir(label: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wsjpeg-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// Takes this process's lock for tests that measure the process (memory, descriptors) and
/// must not share it with other tests of their binary.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Encodes one JPEG with GStreamer's own encoder.
pub fn encode_jpeg(width: u32, height: u32, pattern: &str, quality: u32) -> Vec<u8> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern={pattern} ! video/x-raw,width={width},height={height} \
         ! jpegenc quality={quality} ! appsink name=out"
    ))
    .expect("encode pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let appsink = pipeline
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("plays");
    let sample = appsink.pull_sample().expect("one sample");
    let jpeg = sample
        .buffer()
        .expect("a buffer")
        .map_readable()
        .expect("readable")
        .to_vec();
    pipeline.set_state(gst::State::Null).expect("stops");
    jpeg
}

pub fn is_complete_jpeg(data: &[u8]) -> bool {
    data.len() > 4 && data.starts_with(&[0xFF, 0xD8]) && data.ends_with(&[0xFF, 0xD9])
}

/// A running pipeline that ends in a `wsjpegsink` named `sink`.
pub struct Server {
    pub pipeline: gst::Pipeline,
    pub sink: gst::Element,
    pub port: u16,
}

impl Server {
    /// `description` must contain `wsjpegsink name=sink port=0`.
    pub fn launch(description: &str) -> Server {
        let server = Server::build(description);
        server
            .pipeline
            .set_state(gst::State::Playing)
            .expect("pipeline plays");
        server
    }

    /// Builds the pipeline and brings it to READY, so the server listens but nothing streams.
    pub fn build(description: &str) -> Server {
        init();
        let pipeline = gst::parse::launch(description)
            .expect("pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let sink = pipeline.by_name("sink").expect("an element named sink");
        pipeline
            .set_state(gst::State::Ready)
            .expect("server starts in READY");
        let port = sink.property::<u32>("bound-port") as u16;
        assert_ne!(port, 0, "bound-port is known once READY");
        Server {
            pipeline,
            sink,
            port,
        }
    }

    /// A live test pattern at `fps`, `width`×`height`.
    pub fn test_pattern(width: u32, height: u32, fps: u32, sink_props: &str) -> Server {
        Server::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 \
             ! jpegenc quality=80 ! wsjpegsink name=sink port=0 address=127.0.0.1 {sink_props}"
        ))
    }

    /// A pipeline fed by the test through `appsrc`; frames are pushed with [`Server::push`].
    pub fn fed(sink_props: &str) -> Server {
        Server::launch(&format!(
            "appsrc name=src is-live=true format=time do-timestamp=true \
             caps=image/jpeg,width=320,height=240,framerate=30/1 \
             ! wsjpegsink name=sink port=0 address=127.0.0.1 {sink_props}"
        ))
    }

    /// Pushes a buffer as it is (with whatever metas it carries).
    pub fn push_buffer(&self, buffer: gst::Buffer) {
        let src = self
            .pipeline
            .by_name("src")
            .expect("an appsrc named src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        src.push_buffer(buffer).expect("appsrc accepts the buffer");
    }

    pub fn push(&self, jpeg: &[u8]) {
        let src = self
            .pipeline
            .by_name("src")
            .expect("an appsrc named src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        src.push_buffer(gst::Buffer::from_slice(jpeg.to_vec()))
            .expect("appsrc accepts the buffer");
    }

    /// Pushes `jpeg` at `fps` from a thread of its own until the returned flag is set.
    pub fn feed(&self, jpeg: Vec<u8>, fps: u32) -> Feeder {
        let src = self
            .pipeline
            .by_name("src")
            .expect("an appsrc named src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let interval = Duration::from_secs_f64(1.0 / fps as f64);
        let thread = std::thread::spawn(move || {
            let buffer = gst::Buffer::from_slice(jpeg);
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if src.push_buffer(buffer.copy()).is_err() {
                    break;
                }
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        });
        Feeder {
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }

    pub fn stats(&self) -> gst::Structure {
        self.sink.property::<gst::Structure>("stats")
    }

    pub fn n_clients(&self) -> u32 {
        self.sink.property::<u32>("n-clients")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

/// The server process's resident memory, from /proc.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
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

/// Open file descriptors of this process (the server's, plus whatever the test holds).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
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
