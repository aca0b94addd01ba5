// SPDX-License-Identifier: MIT
//! Helpers shared by the integration tests: real pipelines, real sockets on 127.0.0.1.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstwsjpeg::plugin_register_static().expect("wsjpeg plugin registers");
    });
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
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server accepts");
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
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

/// Waits for a `status` message announcing `state`.
pub async fn wait_camera_state(
    ws: &mut WebSocket,
    state: &str,
    within: Duration,
) -> Option<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let status = next_text_of_type(ws, "status", left).await?;
        if status["camera"] == state {
            return Some(status);
        }
    }
}
