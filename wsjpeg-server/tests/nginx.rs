// SPDX-License-Identifier: MIT
//! Behind a real nginx reverse proxy (Debian's `nginx` package), started by the test on
//! loopback with the configuration the README recommends: the WebSocket stream, the MJPEG
//! stream and the Origin check work end to end.
//!
//! Skipped (with a message) when nginx is not installed, unless `WSJPEG_REQUIRE_NGINX` is set,
//! as CI does: then a missing nginx is a failure.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsjpeg_server::protocol::parse_meta_header;
use wsjpeg_server::{AllowedOrigins, Settings};

const SECOND: Duration = Duration::from_secs(1);
const FPS: u32 = 30;

/// The configuration under test. `/` is the recommended setup; the other locations show what
/// happens when part of it is left out.
fn config(dir: &Path, port: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"# Single process: nothing to switch users for, and killing it leaves no workers behind.
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # "Connection: upgrade" only for upgrade requests, so plain requests keep their semantics.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream wsjpeg {{
        server 127.0.0.1:{upstream};
    }}
    server {{
        listen 127.0.0.1:{port};

        # The recommended setup.
        location / {{
            proxy_pass http://wsjpeg;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # The Host the browser used, port included: wsjpegsink's same-host Origin check
            # compares the page's Origin with it.
            proxy_set_header Host $http_host;
            # The page's scheme, for the same check when nginx terminates TLS.
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            # Streams are long; keepalive pings come every 30 s at the latest.
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}

        # Host not forwarded: nginx sends the upstream's name ("wsjpeg") instead.
        location /no-host/ {{
            proxy_pass http://wsjpeg/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
        }}

        # nginx's default buffering left on: the server's "X-Accel-Buffering: no" turns it
        # off for its streams.
        location /buffered/ {{
            proxy_pass http://wsjpeg/;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_buffering on;
        }}

    }}
}}
"#
    )
}

/// nginx with the configuration under test, proxying to `upstream`.
fn start_nginx(binary: &Path, upstream: u16) -> Nginx {
    Nginx::start(binary, "nginx", 1, |dir, ports| {
        config(dir, ports[0], upstream)
    })
}

fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_viewer_through_nginx_gets_every_frame() {
    let Some(binary) = find_nginx("websocket_viewer_through_nginx_gets_every_frame") else {
        return;
    };
    let server = Live::test_pattern(320, 240, FPS, Settings::default());
    let nginx = start_nginx(&binary, server.port);

    let mut ws = connect(nginx.port(), "/stream?meta=1").await;
    let hello = next_text_of_type(&mut ws, "hello", 5 * SECOND)
        .await
        .expect("hello through nginx");
    assert_eq!(hello["width"], 320);
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    let frames_in = || {
        status_blocking(server.port)["frames"]["in"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = frames_in();
    let delivery = measure_delivery(&mut ws, 3 * SECOND).await;
    let taken_in = frames_in() - before;
    eprintln!("through nginx: {delivery:?}, {taken_in} frames in meanwhile");
    assert!(
        delivery.received as f64 >= 0.8 * taken_in as f64 && taken_in >= u64::from(FPS),
        "{} of the {taken_in} frames the server took in came through nginx",
        delivery.received
    );
    // A proxy that held frames back would hand them over seconds late; passed through, they
    // are as old as the machine's scheduling makes them.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let frame = next_frame(&mut ws, 5 * SECOND).await.expect("a frame");
        let captured = parse_meta_header(&frame)
            .expect("a meta header")
            .capture_time_us;
        worst = worst.max(Duration::from_micros(
            unix_now_us().saturating_sub(captured),
        ));
    }
    assert!(worst < 2 * SECOND, "frames are {worst:?} old through nginx");
    // Time sync and control messages go the other way through the proxy too.
    send_json(&mut ws, serde_json::json!({"type": "time", "client": 7})).await;
    let time = next_text_of_type(&mut ws, "time", 5 * SECOND)
        .await
        .expect("time reply through nginx");
    assert_eq!(time["client"], 7);

    // Stopping the server says "going away" to viewers behind the proxy as well.
    server.server.stop();
    assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1001));
    drop(nginx);
}

/// Reads an MJPEG response through `path` and returns, for each of the first `parts` parts,
/// its frame's capture time and when its last byte arrived (Unix µs).
async fn mjpeg_parts(port: u16, path: &str, parts: usize, within: Duration) -> Vec<(u64, u64)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        // HTTP/1.0: the body comes unchunked, so parts can be cut out of the raw bytes (over
        // HTTP/1.1 nginx re-chunks the stream and chunk headers land inside the JPEGs).
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut found = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + within;
    let mut scanned = 0;
    while found.len() < parts {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        let arrived = unix_now_us();
        // A part counts once its whole JPEG is in.
        loop {
            let rest = &raw[scanned..];
            let Some(at) = find(rest, b"X-Timestamp: ") else {
                break;
            };
            let Some(head_end) = find(&rest[at..], b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&rest[..at + head_end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("parts have a Content-Length");
            let body_start = at + head_end + 4;
            if rest.len() < body_start + length {
                break;
            }
            assert!(is_complete_jpeg(&rest[body_start..body_start + length]));
            let stamp = &rest[at + 13..at + head_end];
            let stamp = String::from_utf8_lossy(stamp);
            let (secs, micros) = stamp.trim().split_once('.').expect("seconds.micros");
            let captured =
                secs.parse::<u64>().unwrap() * 1_000_000 + micros.parse::<u64>().unwrap();
            found.push((captured, arrived));
            scanned += body_start + length;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_through_nginx_arrives_frame_by_frame() {
    let Some(binary) = find_nginx("mjpeg_through_nginx_arrives_frame_by_frame") else {
        return;
    };
    // One small frame a second: a proxy that waited for its buffers to fill would hold
    // several back; passed through, each arrives before the next is even captured.
    let server = Live::test_pattern(160, 120, 1, Settings::default());
    let nginx = start_nginx(&binary, server.port);

    for path in ["/stream.mjpg", "/buffered/stream.mjpg", "/?action=stream"] {
        let parts = mjpeg_parts(nginx.port(), path, 4, 10 * SECOND).await;
        eprintln!("{path}: (captured, arrived) {parts:?}");
        assert_eq!(parts.len(), 4, "{path}: parts arrived in time");
        for pair in parts.windows(2) {
            let ((_, arrived), (next_captured, _)) = (pair[0], pair[1]);
            assert!(
                arrived < next_captured,
                "{path}: a part arrived only after the next frame was captured: {parts:?}"
            );
        }
    }
}

async fn upgrade_status(port: u16, path: &str, origin: Option<&str>) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let extra = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(upgrade_request(port, path, &extra).as_bytes())
        .await
        .unwrap();
    read_response_head(&mut stream, 5 * SECOND).await
}

/// Same-host behind a proxy: the browser talks to nginx, so its page's Origin is nginx's
/// (`http://127.0.0.1:<nginx port>`), and the Host the browser sent is nginx's too. The check
/// compares the two, so it works when nginx forwards the browser's Host unchanged
/// (`proxy_set_header Host $http_host`, port included). Without that, nginx sends the upstream
/// name as Host and every browser is refused; `allowed-origins` then has to name the public
/// origin(s) explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_check_works_behind_nginx() {
    let Some(binary) = find_nginx("origin_check_works_behind_nginx") else {
        return;
    };
    let server = Live::test_pattern(160, 120, 10, Settings::default());
    let nginx = start_nginx(&binary, server.port);
    let own = format!("http://127.0.0.1:{}", nginx.port());

    assert_eq!(
        upgrade_status(nginx.port(), "/stream", Some(&own)).await,
        Some(101)
    );
    assert_eq!(
        upgrade_status(nginx.port(), "/stream", None).await,
        Some(101)
    );
    for foreign in [
        "http://evil.example",
        "http://127.0.0.1",
        &format!("http://127.0.0.1:{}", server.port),
        "null",
    ] {
        assert_eq!(
            upgrade_status(nginx.port(), "/stream", Some(foreign)).await,
            Some(403),
            "{foreign}"
        );
    }
    // Host not forwarded: even the proxy's own pages are refused.
    assert_eq!(
        upgrade_status(nginx.port(), "/no-host/stream", Some(&own)).await,
        Some(403)
    );
    assert_eq!(
        upgrade_status(nginx.port(), "/no-host/stream", None).await,
        Some(101)
    );
    drop(nginx);
    drop(server);

    // …unless allowed-origins names the public origin.
    let server = Live::test_pattern(
        160,
        120,
        10,
        Settings {
            allowed_origins: AllowedOrigins::parse("https://cam.example"),
            ..Settings::default()
        },
    );
    let nginx = start_nginx(&binary, server.port);
    assert_eq!(
        upgrade_status(nginx.port(), "/no-host/stream", Some("https://cam.example")).await,
        Some(101)
    );
    assert_eq!(
        upgrade_status(
            nginx.port(),
            "/no-host/stream",
            Some("https://evil.example")
        )
        .await,
        Some(403)
    );
    assert_eq!(
        upgrade_status(nginx.port(), "/stream", Some("https://evil.example")).await,
        Some(403)
    );
}
