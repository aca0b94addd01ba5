// SPDX-License-Identifier: MIT
//! Hostile and broken clients on real sockets: each is answered with an error or cut off within
//! a bounded time, and a well-behaved viewer watching at the same time never notices.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);

on_both_hosts!(
    garbage_bytes_get_400_or_are_closed,
    oversized_request_line_and_headers_get_4xx_and_are_closed,
    requests_that_never_finish_are_cut_off,
    an_idle_keep_alive_connection_is_closed,
    invalid_websocket_frames_are_closed_with_the_right_code,
    invalid_json_gets_an_error_and_the_viewer_stays,
    max_clients_refuses_with_503_and_1013_until_a_slot_frees,
    document_root_cannot_be_escaped,
    error_answers_reveal_no_server_details,
    max_fps_at_the_edges_of_a_double_neither_panics_nor_loses_a_viewer,
    viewers_that_read_nothing_lose_their_slots_after_the_write_timeout,
    a_slow_viewer_that_keeps_reading_keeps_its_slot,
    idle_connections_make_room_for_real_clients,
    when_every_connection_is_at_work_a_newcomer_gets_503,
);
const FPS: u32 = 25;

/// The watcher judges the delivery over at least this long, however quick the attacks are.
const MIN_WATCH: Duration = Duration::from_secs(3);

/// A `?meta=1` viewer reading in the background for the whole test.
struct Watcher {
    port: u16,
    frames_in_before: u64,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Delivery>,
}

/// Frames the server has taken in, from its own `/status`.
fn frames_in(port: u16) -> u64 {
    status_blocking(port)["frames"]["in"]
        .as_u64()
        .expect("/status answers with frame counters")
}

impl Watcher {
    async fn start(port: u16) -> Watcher {
        let mut ws = connect(port, "/stream?meta=1").await;
        assert!(
            next_frame(&mut ws, 5 * SECOND).await.is_some(),
            "the watcher gets a first frame"
        );
        let frames_in_before = frames_in(port);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let min_end = Instant::now() + MIN_WATCH;
        let task = tokio::spawn(async move {
            measure_delivery_while(&mut ws, || {
                Instant::now() < min_end || !flag.load(Ordering::Relaxed)
            })
            .await
        });
        Watcher {
            port,
            frames_in_before,
            stop,
            task,
        }
    }

    /// Stops watching and checks that the viewer got the frames the server took in meanwhile.
    /// An attack that held up the accept loop or the runtime would leave it with next to
    /// nothing; a busy test machine costs it a frame here and there (latest frame wins).
    async fn assert_undisturbed(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let delivery = self.task.await.expect("the watcher did not panic");
        let frames_in = frames_in(self.port) - self.frames_in_before;
        eprintln!("{what}: watcher {delivery:?}, {frames_in} frames in meanwhile");
        assert!(
            frames_in >= u64::from(FPS),
            "{what}: the source gave only {frames_in} frames in {:.1} s",
            delivery.seconds
        );
        assert!(
            delivery.received as f64 >= 0.75 * frames_in as f64,
            "{what}: the watcher got {} of the {frames_in} frames the server took in",
            delivery.received
        );
    }
}

/// What came back on a raw connection.
#[derive(Debug)]
struct Outcome {
    /// The status of the first response, if one came.
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
    /// The server closed the connection (FIN or reset) before the time was up.
    closed: bool,
    elapsed: Duration,
}

impl Outcome {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Sends `request` (from a task of its own, so that a server that stops reading cannot block
/// the test) and reads whatever comes back until the connection ends or `within` passes.
async fn exchange(port: u16, request: Vec<u8>, within: Duration) -> Outcome {
    exchange_until(port, request, within, false).await
}

/// [`exchange`], returning as soon as a complete response with a `Content-Length` is in when
/// `whole_response` is set (for requests that leave the connection open).
async fn exchange_until(
    port: u16,
    request: Vec<u8>,
    within: Duration,
    whole_response: bool,
) -> Outcome {
    let start = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server accepts");
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        // Refused halfway is fine: the server may close as soon as it has seen enough.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut closed = false;
    let deadline = start + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
        if whole_response && response_complete(&raw) {
            break;
        }
    }
    let elapsed = start.elapsed();
    sender.abort();
    let (head, body) = match find(&raw, b"\r\n\r\n") {
        Some(end) => (
            String::from_utf8_lossy(&raw[..end]).into_owned(),
            raw[end + 4..].to_vec(),
        ),
        None => (String::from_utf8_lossy(&raw).into_owned(), Vec::new()),
    };
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok());
    Outcome {
        status,
        head,
        body,
        closed,
        elapsed,
    }
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|length| raw.len() >= end + 4 + length)
}

/// A fixed pseudo-random byte sequence (no RNG crate needed for a few KB of noise).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn assert_still_serving(port: u16) {
    let health = http_get(port, "/healthz", &[], usize::MAX).await;
    assert_eq!(health.status, 200, "the server still answers");
}

async fn garbage_bytes_get_400_or_are_closed(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    let watcher = Watcher::start(server.port()).await;

    let mut tls_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    tls_hello.extend(noise(7, 160));
    let mut binary = noise(1, 4096);
    binary.extend_from_slice(b"\r\n\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary noise", binary),
        ("NUL bytes", vec![0u8; 1024]),
        ("TLS ClientHello on the plain port", tls_hello),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        (
            "no request line",
            b"\r\n\r\n\r\n\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("lowercase junk", b"hello there\r\n\r\n".to_vec()),
        (
            "NUL in path",
            b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "space in path",
            b"GET /a b/c HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n".to_vec(),
        ),
        (
            "header name with space",
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n".to_vec(),
        ),
        (
            "bad content-length",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".to_vec(),
        ),
        (
            "conflicting content-lengths",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
        ),
        (
            "unknown version",
            b"GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "bare LF mixed with control bytes",
            b"GET / HTTP/1.1\nHost: \x01\x02\n\n".to_vec(),
        ),
    ];
    for (what, request) in cases {
        let outcome = exchange(server.port(), request, 5 * SECOND).await;
        eprintln!(
            "{what}: {:?} closed={} in {:?}",
            outcome.status, outcome.closed, outcome.elapsed
        );
        assert!(
            outcome.closed,
            "{what}: the connection is closed within 5 s"
        );
        // hyper answers what it can parse as HTTP/1 with 400; the HTTP/2 preface it closes.
        let expected = if what == "HTTP/2 preface" {
            None
        } else {
            Some(400)
        };
        assert_eq!(outcome.status, expected, "{what}");
    }
    assert_still_serving(server.port()).await;
    watcher.assert_undisturbed("garbage").await;
    server.finish();
}

async fn oversized_request_line_and_headers_get_4xx_and_are_closed(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    let watcher = Watcher::start(server.port()).await;

    let long_path = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        (0..300)
            .map(|i| format!("X-Filler-{i}: {}\r\n", "v".repeat(80)))
            .collect::<String>()
    );
    let one_huge_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n",
        "c".repeat(64 * 1024)
    );
    // Small, but more of them than the parser takes.
    let header_count = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect::<String>()
    );
    let cases = [
        ("100 KB request line", long_path),
        ("25 KB of headers", many_headers),
        ("one 64 KB header", one_huge_header),
        ("150 small headers", header_count),
    ];
    for (what, request) in cases {
        let outcome = exchange(server.port(), request.into_bytes(), 5 * SECOND).await;
        eprintln!(
            "{what}: {:?} closed={} in {:?}",
            outcome.status, outcome.closed, outcome.elapsed
        );
        // Past the 16 KiB limit for a request head: "Request Header Fields Too Large".
        assert_eq!(outcome.status, Some(431), "{what}");
        assert!(outcome.closed, "{what}: closed after the answer");
    }
    assert_still_serving(server.port()).await;
    watcher.assert_undisturbed("oversized").await;
    server.finish();
}

/// Sends `prefix`, then one more byte of an endless header every `every`, never finishing.
async fn slowloris(port: u16, prefix: &'static [u8], every: Duration) -> (bool, Duration) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server accepts");
    if !prefix.is_empty() && stream.write_all(prefix).await.is_err() {
        return (true, start.elapsed());
    }
    let mut byte = [0u8; 1024];
    while start.elapsed() < 20 * SECOND {
        match tokio::time::timeout(every, stream.read(&mut byte)).await {
            // A 408 (or any answer) followed by the end is fine; the end is what matters.
            Ok(Ok(0)) | Ok(Err(_)) => return (true, start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => {
                if !every.is_zero() && stream.write_all(b"a").await.is_err() {
                    return (true, start.elapsed());
                }
            }
        }
    }
    (false, start.elapsed())
}

async fn requests_that_never_finish_are_cut_off(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    let watcher = Watcher::start(server.port()).await;
    let port = server.port();

    let mut attacks = Vec::new();
    // Many at once: none of them may hold up the accept loop or the others.
    for i in 0..40 {
        let (prefix, every): (&'static [u8], Duration) = match i % 4 {
            0 => (b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ", SECOND / 2),
            1 => (b"GET /stream HTTP/1.1\r\n", 2 * SECOND),
            2 => (b"G", 3 * SECOND),
            _ => (b"", Duration::ZERO),
        };
        attacks.push(tokio::spawn(slowloris(port, prefix, every)));
    }
    // Meanwhile ordinary requests are served: not after the attackers (who hold on far longer
    // than this bound), whatever a busy machine adds.
    for _ in 0..5 {
        let started = Instant::now();
        let status = http_get(port, "/status", &[], usize::MAX).await.status;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < 5 * SECOND,
            "served in {:?}",
            started.elapsed()
        );
        tokio::time::sleep(SECOND).await;
    }
    let mut connect_only = 0;
    for (i, attack) in attacks.into_iter().enumerate() {
        let (closed, after) = attack.await.unwrap();
        if i % 4 == 3 {
            connect_only += 1;
        }
        assert!(
            closed,
            "slowloris #{i} (kind {}) still open after {after:?}",
            i % 4
        );
        assert!(
            after < 13 * SECOND,
            "slowloris #{i} (kind {}) cut off only after {after:?}",
            i % 4
        );
    }
    assert_eq!(connect_only, 10);
    assert_still_serving(port).await;
    watcher.assert_undisturbed("slowloris").await;
    server.finish();
}

async fn an_idle_keep_alive_connection_is_closed(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response_head(&mut stream, 5 * SECOND).await, Some(200));
    let start = Instant::now();
    let mut rest = [0u8; 256];
    loop {
        match tokio::time::timeout(15 * SECOND, stream.read(&mut rest)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("an idle keep-alive connection stays open for ever"),
        }
    }
    eprintln!(
        "idle keep-alive connection closed after {:?}",
        start.elapsed()
    );
    // Closed by the idle timeout (10 s), not kept for ever; the exact moment is the machine's.
    assert!(
        start.elapsed() < 30 * SECOND,
        "closed after {:?}",
        start.elapsed()
    );
    server.finish();
}

/// Sends `frames` on a fresh raw WebSocket and returns the close code the server answers with.
async fn violation(port: u16, frames: &[Vec<u8>]) -> Option<u16> {
    let mut stream = raw_websocket(port, "/stream").await;
    for frame in frames {
        if stream.write_all(frame).await.is_err() {
            break;
        }
    }
    let code = raw_close_code(&mut stream, 5 * SECOND).await;
    // After its close frame the server ends the connection too.
    let mut rest = [0u8; 4096];
    let ended = tokio::time::timeout(5 * SECOND, async {
        loop {
            match stream.read(&mut rest).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection ends after the close frame");
    code
}

async fn invalid_websocket_frames_are_closed_with_the_right_code(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    let watcher = Watcher::start(server.port()).await;
    let m = [0x37, 0xfa, 0x21, 0x3d];
    let pause = br#"{"type":"pause"}"#;

    let mut unmasked = masked_frame(true, 0x1, pause, m);
    unmasked[1] &= 0x7F;
    unmasked.truncate(2);
    unmasked.extend_from_slice(pause);
    let mut rsv1 = masked_frame(true, 0x1, pause, m);
    rsv1[0] |= 0x40;
    let mut ping_126 = vec![0x89, 0x80 | 126, 0, 126];
    ping_126.extend_from_slice(&m);
    ping_126.extend(std::iter::repeat_n(0u8, 126));
    let mut huge_len = vec![0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
    huge_len.extend_from_slice(&m);
    let chunk = vec![b' '; 40 * 1024];

    let cases: Vec<(&str, Vec<Vec<u8>>, u16)> = vec![
        ("unmasked frame", vec![unmasked], 1002),
        ("reserved bit", vec![rsv1], 1002),
        (
            "reserved data opcode",
            vec![masked_frame(true, 0x3, b"x", m)],
            1002,
        ),
        (
            "reserved control opcode",
            vec![masked_frame(true, 0xB, b"", m)],
            1002,
        ),
        ("oversized ping", vec![ping_126], 1002),
        (
            "fragmented ping",
            vec![masked_frame(false, 0x9, b"p", m)],
            1002,
        ),
        (
            "continuation without a start",
            vec![masked_frame(true, 0x0, pause, m)],
            1002,
        ),
        (
            "new message inside a fragmented one",
            vec![
                masked_frame(false, 0x1, b"{\"type\":", m),
                masked_frame(true, 0x1, pause, m),
            ],
            1002,
        ),
        (
            "invalid UTF-8",
            vec![masked_frame(true, 0x1, b"{\"type\":\"\xff\xfe\"}", m)],
            1007,
        ),
        (
            "UTF-8 cut between fragments and never completed",
            vec![
                masked_frame(false, 0x1, b"\"\xe2\x82", m),
                masked_frame(true, 0x0, b"\"", m),
            ],
            1007,
        ),
        ("2^63-byte length", vec![huge_len], 1009),
        (
            "message over 64 KiB in one frame",
            vec![masked_frame(true, 0x1, &vec![b' '; 70 * 1024], m)],
            1009,
        ),
        (
            "message over 64 KiB in fragments",
            vec![
                masked_frame(false, 0x1, &chunk, m),
                masked_frame(true, 0x0, &chunk, m),
            ],
            1009,
        ),
    ];
    for (what, frames, expected) in cases {
        let started = Instant::now();
        let code = violation(server.port(), &frames).await;
        eprintln!("{what}: close {code:?} in {:?}", started.elapsed());
        assert_eq!(code, Some(expected), "{what}");
    }
    // A valid fragmented message with a ping in between is fine.
    let mut stream = raw_websocket(server.port(), "/stream").await;
    stream
        .write_all(
            &[
                masked_frame(false, 0x1, b"{\"type\":\"ti", m),
                masked_frame(true, 0x9, b"hi", m),
                masked_frame(true, 0x0, b"me\",\"client\":42}", m),
            ]
            .concat(),
        )
        .await
        .unwrap();
    let (mut pong, mut time) = (false, false);
    let deadline = Instant::now() + 5 * SECOND;
    while !(pong && time) && Instant::now() < deadline {
        let frame = read_server_frame(&mut stream, 5 * SECOND)
            .await
            .expect("the valid client is served");
        assert_eq!(frame.close_code(), None, "the valid client is not closed");
        pong |= frame.opcode == 0xA && frame.payload == b"hi";
        time |= frame.opcode == 0x1
            && String::from_utf8_lossy(&frame.payload).contains("\"client\":42");
    }
    assert!(pong && time, "pong {pong}, time reply {time}");
    assert_still_serving(server.port()).await;
    watcher.assert_undisturbed("invalid frames").await;
    server.finish();
}

async fn invalid_json_gets_an_error_and_the_viewer_stays(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    let watcher = Watcher::start(server.port()).await;
    let mut ws = connect(server.port(), "/stream").await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let texts = [
        "not json",
        "",
        "{",
        "{}",
        "[]",
        "null",
        r#"{"type":"reboot"}"#,
        r#"{"type":"max-fps","fps":"fast"}"#,
        r#"{"type":"max-fps","fps":1e999}"#,
        r#"{"type":"time"}"#,
        r#"{"type":"time","client":"yesterday"}"#,
        r#"{"type":42}"#,
        "\u{feff}{\"type\":\"pong\"}x",
        &deep,
    ];
    for text in texts {
        ws.send(Message::text(text)).await.unwrap();
        let error = next_text_of_type(&mut ws, "error", 5 * SECOND).await;
        let error = error.unwrap_or_else(|| panic!("no error answer to {:.40}", text));
        let message = error["message"].as_str().expect("an error message");
        assert!(message.len() < 300, "a short error: {message}");
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert!(
        next_text_of_type(&mut ws, "error", 5 * SECOND)
            .await
            .is_some()
    );
    // Still a viewer, still getting frames.
    count_share(&mut ws, server.port(), 2 * SECOND)
        .await
        .assert_most("after the bad messages");
    assert_eq!(server.n_clients(), 2);
    watcher.assert_undisturbed("invalid JSON").await;
    server.finish();
}

async fn max_clients_refuses_with_503_and_1013_until_a_slot_frees(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "max-clients=2");
    let watcher = Watcher::start(server.port()).await;
    // The second slot: an MJPEG viewer on a raw socket that the test can drop.
    let mut mjpeg = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    mjpeg
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response_head(&mut mjpeg, 5 * SECOND).await, Some(200));
    assert!(eventually(5 * SECOND, || server.n_clients() == 2).await);

    for path in ["/stream.mjpg", "/?action=stream", "/stream"] {
        let refused = http_get(server.port(), path, &[], 0).await;
        assert_eq!(refused.status, 503, "{path}");
        assert!(refused.header("retry-after").is_some(), "{path}");
    }
    let mut ws = connect(server.port(), "/stream").await;
    assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1013));
    let mut raw = raw_websocket(server.port(), "/stream").await;
    assert_eq!(raw_close_code(&mut raw, 5 * SECOND).await, Some(1013));
    assert_eq!(server.n_clients(), 2, "refused viewers are not counted");

    drop(mjpeg);
    assert!(
        eventually(5 * SECOND, || server.n_clients() == 1).await,
        "the MJPEG viewer's slot frees"
    );
    let mut ws = connect(server.port(), "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    let refused = http_get(server.port(), "/stream.mjpg", &[], 0).await;
    assert_eq!(refused.status, 503, "full again");
    drop(ws);
    assert!(eventually(5 * SECOND, || server.n_clients() == 1).await);
    let response = http_get(server.port(), "/stream.mjpg", &[], 50_000).await;
    assert_eq!(response.status, 200, "an MJPEG viewer gets the freed slot");
    watcher.assert_undisturbed("max-clients").await;
    server.finish();
}

/// A document root with a secret next to it and symlinks that point out of it.
struct DocumentRoot {
    dir: std::path::PathBuf,
    root: std::path::PathBuf,
}

const SECRET: &str = "SECRET-6f1d2c: never served";
const PAGE: &str = "<!doctype html><title>custom page 93ab</title>";

impl DocumentRoot {
    fn new() -> DocumentRoot {
        let dir = unique_temp_dir("robustness");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::create_dir_all(dir.join("rootx")).unwrap();
        std::fs::write(root.join("index.html"), PAGE).unwrap();
        std::fs::write(root.join("sub/page.html"), PAGE).unwrap();
        std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
        std::fs::write(dir.join("outside/secret.txt"), SECRET).unwrap();
        std::fs::write(dir.join("rootx/secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), root.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("../../secret.txt", root.join("sub/rel.txt")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/page.html"), root.join("inside.html")).unwrap();
        DocumentRoot { dir, root }
    }
}

impl Drop for DocumentRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn document_root_cannot_be_escaped(kind: HostKind) {
    let docs = DocumentRoot::new();
    let server = Host::test_pattern(
        kind,
        320,
        240,
        FPS,
        &format!("document-root={}", docs.root.display()),
    );
    let watcher = Watcher::start(server.port()).await;

    for path in ["/", "/index.html", "/sub/page.html", "/inside.html"] {
        let response = http_get(server.port(), path, &[], usize::MAX).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.text(), PAGE, "{path}");
    }
    let attacks = [
        "/../secret.txt",
        "/../../../../../../etc/passwd",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/%252e%252e/secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/%2Fetc/passwd",
        "/./../secret.txt",
        "/../root/../secret.txt",
        "/../rootx/secret.txt",
        "/link.txt",
        "/linkdir/secret.txt",
        "/sub/rel.txt",
        "/passwd",
        "/secret.txt%00.html",
        "/%c0%ae%c0%ae/secret.txt",
        "/%u002e%u002e/secret.txt",
        "/index.html/../../secret.txt",
        "/?/../secret.txt",
    ];
    for path in attacks {
        let outcome = exchange(
            server.port(),
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").into_bytes(),
            5 * SECOND,
        )
        .await;
        let body = String::from_utf8_lossy(&outcome.body);
        eprintln!("{path}: {:?}", outcome.status);
        assert!(!body.contains("SECRET-6f1d2c"), "{path} served the secret");
        assert!(!body.contains("root:x:0"), "{path} served /etc/passwd");
        let status = outcome.status.unwrap_or(0);
        if path == "/?/../secret.txt" {
            // The query is not part of the path: this is the page.
            assert_eq!(status, 200, "{path}");
            assert_eq!(body, PAGE, "{path}");
        } else {
            // One answer for everything outside the root: not found, as if it did not exist.
            assert_eq!(status, 404, "{path}");
        }
    }
    watcher.assert_undisturbed("traversal").await;
    server.finish();
}

/// Checks that an error answer says nothing about the software behind it.
fn assert_discreet(what: &str, status: u16, head: &str, body: &[u8]) {
    let head_lower = head.to_ascii_lowercase();
    let body_text = String::from_utf8_lossy(body).to_ascii_lowercase();
    for line in head_lower.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim() {
            "server" => assert!(
                !value.chars().any(|c| c.is_ascii_digit()),
                "{what} ({status}): Server header with a version: {value}"
            ),
            "x-powered-by" | "via" | "x-runtime" | "x-version" => {
                panic!("{what} ({status}): {name} header")
            }
            _ => {}
        }
    }
    assert!(
        body.len() <= 200,
        "{what} ({status}): {} byte error body",
        body.len()
    );
    for word in [
        "hyper",
        "warp",
        "tokio",
        "rust",
        "gstreamer",
        "wsjpeg",
        "panic",
        "/work",
        "/tmp",
        env!("CARGO_PKG_VERSION"),
    ] {
        assert!(
            !body_text.contains(word) && !head_lower.contains(word),
            "{what} ({status}) mentions {word}: {head} {body_text}"
        );
    }
}

async fn error_answers_reveal_no_server_details(kind: HostKind) {
    let docs = DocumentRoot::new();
    let open = Host::test_pattern(
        kind,
        320,
        240,
        FPS,
        &format!("document-root={}", docs.root.display()),
    );
    let locked = Host::test_pattern(kind, 320, 240, FPS, "auth-token=hunter2hunter2");
    let watcher = Watcher::start(open.port()).await;

    let request = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{extra}\r\n").into_bytes()
    };
    let cases: Vec<(&str, u16, Vec<u8>, u16)> = vec![
        ("unknown path", open.port(), request("/nope", ""), 404),
        ("traversal", open.port(), request("/../secret.txt", ""), 404),
        (
            "wrong method",
            open.port(),
            b"DELETE /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(),
            405,
        ),
        (
            "garbage",
            open.port(),
            b"\x01\x02\x03\r\n\r\n".to_vec(),
            400,
        ),
        (
            "huge header",
            open.port(),
            request("/", &format!("X-Big: {}\r\n", "b".repeat(20_000))),
            431,
        ),
        (
            "foreign origin",
            open.port(),
            upgrade_request(open.port(), "/stream", "Origin: http://evil.example\r\n").into_bytes(),
            403,
        ),
        (
            "old WebSocket version",
            open.port(),
            upgrade_request(open.port(), "/stream", "")
                .replace("Version: 13", "Version: 8")
                .into_bytes(),
            426,
        ),
        ("no token", locked.port(), request("/status", ""), 401),
        (
            "wrong token",
            locked.port(),
            request("/snapshot.jpg?token=hunter3hunter3", ""),
            401,
        ),
    ];
    for (what, port, bytes, expected) in cases {
        let outcome = exchange_until(port, bytes, 5 * SECOND, true).await;
        assert_eq!(outcome.status, Some(expected), "{what}: {}", outcome.head);
        assert_discreet(what, expected, &outcome.head, &outcome.body);
        if expected == 401 {
            assert!(
                !outcome.head.contains("hunter") && outcome.header("set-cookie").is_none(),
                "{what}: {}",
                outcome.head
            );
        }
    }
    watcher.assert_undisturbed("error answers").await;
    open.finish();
    locked.finish();
}

/// Text messages up to (and including) the first one of type `kind`.
async fn texts_until(ws: &mut WebSocket, kind: &str) -> Vec<serde_json::Value> {
    let mut texts = Vec::new();
    let deadline = Instant::now() + 5 * SECOND;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match next_message(ws, left).await {
            Some(Received::Text(value)) => {
                let done = value["type"] == kind;
                texts.push(value);
                if done {
                    break;
                }
            }
            Some(Received::Binary(_)) => {}
            Some(Received::Closed(code)) => panic!("viewer closed: {code:?}"),
            None => break,
        }
    }
    texts
}

async fn max_fps_at_the_edges_of_a_double_neither_panics_nor_loses_a_viewer(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "");
    // (value, refused with an error, frames in 2 s at most)
    let cases: [(&str, bool, Option<usize>); 9] = [
        ("1e-300", false, Some(2)),
        ("5e-324", false, Some(2)),
        ("1e300", false, None),
        ("1.7976931348623157e308", false, None),
        ("0", false, None),
        ("-0.0", false, None),
        ("-1", true, None),
        ("-1e-300", true, None),
        ("\"NaN\"", true, None),
    ];
    let mut viewers = Vec::new();
    for (value, _, _) in cases {
        let mut ws = connect(server.port(), "/stream").await;
        ws.send(Message::text(format!(
            r#"{{"type":"max-fps","fps":{value}}}"#
        )))
        .await
        .unwrap();
        viewers.push(ws);
    }
    for ((value, refused, _), ws) in cases.iter().zip(&mut viewers) {
        // Every viewer's session still runs: it answers a clock request after the cap.
        send_json(ws, serde_json::json!({"type": "time", "client": 1})).await;
        let texts = texts_until(ws, "time").await;
        assert!(
            texts.last().is_some_and(|t| t["type"] == "time"),
            "fps {value}: the viewer is still served: {texts:?}"
        );
        let errors = texts.iter().filter(|t| t["type"] == "error").count();
        assert_eq!(errors, usize::from(*refused), "fps {value}: {texts:?}");
    }
    for ((value, _, at_most), ws) in cases.iter().zip(&mut viewers) {
        let share = count_share(ws, server.port(), 2 * SECOND).await;
        match at_most {
            // Clamped to a frame every 10 s: the one due at once, perhaps, and no more.
            Some(limit) => assert!(share.received <= *limit, "fps {value}: {share:?} in 2 s"),
            None => share.assert_most(&format!("fps {value}")),
        }
    }
    assert_eq!(
        server.n_clients() as usize,
        viewers.len(),
        "every connection still open is counted"
    );
    drop(viewers);
    assert!(eventually(5 * SECOND, || server.n_clients() == 0).await);
    server.finish();
}

/// A frame of about 250 KB, like a busy 720p camera picture.
fn big_frame() -> Vec<u8> {
    static FRAME: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FRAME
        .get_or_init(|| encode_jpeg(1280, 720, "snow", 20))
        .clone()
}

async fn viewers_that_read_nothing_lose_their_slots_after_the_write_timeout(kind: HostKind) {
    const WRITE_TIMEOUT: u32 = 2;
    let server = Host::repeating(
        kind,
        &big_frame(),
        30,
        &format!("max-clients=3 write-timeout={WRITE_TIMEOUT}"),
    );
    let port = server.port();
    let mjpeg = format!("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let stalled = [
        stalled_client(port, &upgrade_request(port, "/stream", "")).await,
        stalled_client(port, &upgrade_request(port, "/stream?meta=1", "")).await,
        stalled_client(port, &mjpeg).await,
    ];
    assert!(eventually(5 * SECOND, || server.n_clients() == 3).await);
    let mut refused = connect(port, "/stream").await;
    assert_eq!(
        close_code(&mut refused, 5 * SECOND).await,
        Some(1013),
        "full while the three hold their slots"
    );
    let started = Instant::now();
    assert!(
        eventually(5 * WRITE_TIMEOUT * SECOND, || server.n_clients() == 0).await,
        "the viewers that read nothing were let go ({} left)",
        server.n_clients()
    );
    let freed_after = started.elapsed();
    eprintln!("stalled viewers dropped {freed_after:?} after the server was full");
    let mut newcomer = connect(port, "/stream").await;
    assert!(
        next_frame(&mut newcomer, 5 * SECOND).await.is_some(),
        "a new viewer gets the freed slot and frames"
    );
    // What they were sent before is still theirs to read, then the connection ends.
    for mut stream in stalled {
        let mut sink = Vec::new();
        let ended = tokio::time::timeout(10 * SECOND, stream.read_to_end(&mut sink)).await;
        assert!(ended.is_ok(), "a dropped viewer's connection is closed");
    }
    server.finish();
}

async fn a_slow_viewer_that_keeps_reading_keeps_its_slot(kind: HostKind) {
    let server = Host::repeating(kind, &big_frame(), 30, "write-timeout=1");
    let port = server.port();
    let mut slow = stalled_client(port, &upgrade_request(port, "/stream?meta=1", "")).await;
    assert_eq!(read_response_head(&mut slow, 5 * SECOND).await, Some(101));
    // Two frames a second for three times the write timeout: its socket is full most of the
    // time, but it takes bytes whenever the server offers them.
    let mut sequences = Vec::new();
    let until = Instant::now() + 3 * SECOND;
    while Instant::now() < until {
        let frame = read_server_frame(&mut slow, 5 * SECOND)
            .await
            .expect("the slow viewer is still served");
        if frame.opcode == 0x2 {
            sequences.push(
                parse_meta_header(&frame.payload)
                    .expect("a meta header")
                    .sequence,
            );
            tokio::time::sleep(SECOND / 2).await;
        }
    }
    assert_eq!(server.n_clients(), 1, "the slow viewer is still counted");
    assert!(sequences.len() >= 4, "frames: {sequences:?}");
    let jumps = sequences.windows(2).filter(|w| w[1] > w[0] + 1).count();
    assert!(
        jumps > 0,
        "it skips to newer frames instead of queueing: {sequences:?}"
    );
    drop(slow);
    server.finish();
}

async fn idle_connections_make_room_for_real_clients(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "max-connections=8");
    let port = server.port();
    let mut idle = Vec::new();
    for _ in 0..7 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Seven idle ones and the request asking: the table is full, nobody had to make room.
    assert!(
        eventually(5 * SECOND, || {
            server.status()["connections"]["open"].as_u64() == Some(8)
        })
        .await,
        "the server took the idle connections"
    );
    idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    let started = Instant::now();
    let health = http_get(port, "/healthz", &[], usize::MAX).await;
    assert_eq!(health.status, 200);
    let mut viewer = connect(port, "/stream").await;
    assert!(next_frame(&mut viewer, 5 * SECOND).await.is_some());
    // Made by closing idle connections, not by waiting for them to time out (30 s).
    assert!(
        started.elapsed() < 10 * SECOND,
        "room was made at once: {:?}",
        started.elapsed()
    );
    // Room was made by closing idle connections, the oldest first; the rest are still open.
    // (How many depends on when the requests above gave their places back.)
    let mut closed = Vec::new();
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(SECOND / 10, stream.read(&mut byte)).await;
        closed.push(matches!(read, Ok(Ok(0) | Err(_))));
    }
    let n_closed = closed.iter().filter(|c| **c).count();
    assert!(
        (1..=3).contains(&n_closed) && closed[..n_closed].iter().all(|c| *c),
        "the oldest idle connections are closed, and only as many as needed: {closed:?}"
    );
    assert_eq!(server.n_clients(), 1);
    drop(viewer);
    server.finish();
}

async fn when_every_connection_is_at_work_a_newcomer_gets_503(kind: HostKind) {
    let server = Host::test_pattern(kind, 320, 240, FPS, "max-clients=4 max-connections=4");
    let port = server.port();
    let mut viewers = Vec::new();
    for _ in 0..4 {
        let mut ws = connect(port, "/stream").await;
        assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
        viewers.push(ws);
    }
    let refused = http_get(port, "/healthz", &[], usize::MAX).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.text(), "Too many connections\n");
    assert!(refused.header("retry-after").is_some());
    for ws in &mut viewers {
        assert!(
            count_frames(ws, SECOND / 2).await > 0,
            "the viewers are unaffected"
        );
    }
    viewers.pop();
    assert!(
        eventually(5 * SECOND, || get_blocking(port, "/healthz").0 == 200).await,
        "a freed connection lets the next client in"
    );
    drop(viewers);
    server.finish();
}
