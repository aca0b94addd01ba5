// SPDX-License-Identifier: MIT
//! The plain HTTP endpoints: MJPEG, snapshot, status, metrics, health, the page, errors.

mod common;

use std::time::Duration;

use common::*;
use wsjpeg_server::{CameraState, Settings};

const SECOND: Duration = Duration::from_secs(1);

fn assert_no_store(response: &Response) {
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

/// Splits a multipart/x-mixed-replace body into its parts' payloads.
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..head_end]).to_ascii_lowercase();
        let Some(length) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        else {
            break;
        };
        assert!(
            head.contains("content-type: image/jpeg"),
            "part head: {head}"
        );
        let payload_start = head_end + 4;
        if rest.len() < payload_start + length {
            break;
        }
        parts.push(rest[payload_start..payload_start + length].to_vec());
        rest = &rest[payload_start + length..];
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_stream_is_multipart_with_jpeg_parts() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    for path in ["/stream.mjpg", "/?action=stream", "/stream"] {
        let response = http_get(server.port, path, &[], 200_000).await;
        assert_eq!(response.status, 200, "{path}");
        let content_type = response.header("content-type").unwrap().to_string();
        assert!(
            content_type.starts_with("multipart/x-mixed-replace"),
            "{content_type}"
        );
        let boundary = content_type.split("boundary=").nth(1).expect("a boundary");
        assert_no_store(&response);
        assert_eq!(response.header("x-accel-buffering"), Some("no"));
        let parts = multipart_parts(&response.body, boundary.trim_matches('"'));
        assert!(parts.len() >= 3, "{path}: got {} parts", parts.len());
        for part in parts {
            assert!(is_complete_jpeg(&part));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_returns_the_latest_frame() {
    let server = Live::fed(Settings::default());
    for (path, patterns) in [
        ("/snapshot.jpg", ["smpte", "snow", "ball"]),
        ("/?action=snapshot", ["ball", "smpte", "snow"]),
    ] {
        // Three different pictures in a row: the snapshot is the last one, byte for byte.
        let frames: Vec<Vec<u8>> = patterns
            .iter()
            .map(|pattern| picture(pattern, 320, 240))
            .collect();
        for frame in &frames {
            server.push(frame);
        }
        let newest = frames.last().expect("frames");
        assert!(
            eventually(5 * SECOND, || server.frames_in()
                >= if path == "/snapshot.jpg" { 3 } else { 6 })
            .await
        );
        let response = http_get(server.port, path, &[], usize::MAX).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("image/jpeg"));
        assert_no_store(&response);
        assert!(&response.body == newest, "{path} gives the newest frame");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_without_frames_waits_then_answers_503() {
    let server = Live::idle(Settings {
        snapshot_timeout: Duration::from_millis(300),
        ..Settings::default()
    });
    let started = std::time::Instant::now();
    let response = http_get(server.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(response.status, 503);
    assert!(response.header("retry-after").is_some());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_waits_for_the_next_frame() {
    let server = Live::fed(Settings {
        snapshot_timeout: 5 * SECOND,
        ..Settings::default()
    });
    let jpeg = picture("smpte", 320, 240);
    let port = server.port;
    let request =
        tokio::spawn(async move { http_get(port, "/snapshot.jpg", &[], usize::MAX).await });
    // The waiting request counts as a viewer: that is what wakes a parked camera.
    assert!(eventually(5 * SECOND, || server.n_clients() == 1).await);
    server.push(&jpeg);
    let response = request.await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, jpeg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_clients_camera_and_settings() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut ws = connect(server.port, "/stream").await;
    next_frame(&mut ws, 5 * SECOND).await.unwrap();
    count_frames(&mut ws, SECOND).await;
    let response = http_get(server.port, "/status", &[], usize::MAX).await;
    assert_eq!(response.status, 200);
    assert_no_store(&response);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let status = response.json();
    assert_eq!(status["connected_clients"], 1);
    assert_eq!(status["camera_active"], true);
    assert_eq!(status["camera"]["state"], "streaming");
    assert_eq!(status["settings"]["width"], 320);
    assert_eq!(status["settings"]["height"], 240);
    assert_eq!(status["settings"]["target_fps"], 30.0);
    assert!(status["uptime_seconds"].is_number());
    assert!(status["fps_in"].as_f64().unwrap() > 0.0);
    let clients = status["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0]["kind"], "websocket");
    assert!(clients[0]["frames_sent"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_the_owner_serves_itself_are_counted_and_capped() {
    let settings = Settings {
        max_clients: 1,
        ..Settings::default()
    };
    let server = Live::idle(settings);
    let address: std::net::SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let guard = server
        .server
        .register_viewer(wsjpeg_server::ClientKind::Rtsp, address)
        .expect("room for one");
    assert_eq!(server.server.n_clients(), 1);
    let status = http_get(server.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(status["clients"][0]["kind"], "rtsp");
    assert_eq!(status["clients"][0]["address"], "192.0.2.7:5000");
    assert!(
        server
            .server
            .register_viewer(wsjpeg_server::ClientKind::Rtsp, address)
            .is_none(),
        "max-clients holds"
    );
    drop(guard);
    assert_eq!(server.server.n_clients(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut ws = connect(server.port, "/stream").await;
    next_frame(&mut ws, 5 * SECOND).await.unwrap();
    let response = http_get(server.port, "/metrics", &[], usize::MAX).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text();
    let mut samples = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut fields = rest.split(' ');
            let name = fields.next().unwrap();
            let kind = fields.next().unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(' ').expect("name value");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name}"
        );
        assert!(typed.contains(name), "{name} has a TYPE line before it");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {name}: {value}"));
        samples.insert(name.to_string(), value);
    }
    assert!(samples["wsjpeg_frames_in_total"] >= 1.0);
    assert!(samples["wsjpeg_frames_sent_total"] >= 1.0);
    assert!(samples["wsjpeg_bytes_sent_total"] > 0.0);
    assert_eq!(samples["wsjpeg_clients"], 1.0);
    assert!(samples["wsjpeg_last_frame_age_seconds"] < 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_only_while_the_camera_is_in_error() {
    let server = Live::idle(Settings::default());
    let idle = http_get(server.port, "/healthz", &[], usize::MAX).await;
    assert_eq!(idle.status, 200, "idle counts as healthy");
    server.server.report_camera_error("camera unplugged");
    let error = http_get(server.port, "/healthz", &[], usize::MAX).await;
    assert_eq!(error.status, 503);
    let status = http_get(server.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(status["camera"]["state"], "error");
    assert_eq!(status["camera"]["message"], "camera unplugged");
    server.server.clear_camera_error(CameraState::Idle);
    assert_eq!(
        http_get(server.port, "/healthz", &[], usize::MAX)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_unknown_paths_and_methods() {
    let server = Live::idle(Settings::default());
    let page = http_get(server.port, "/", &[], usize::MAX).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_no_store(&page);
    assert!(page.text().contains("<html"));
    let missing = http_get(server.port, "/no/such/thing", &[], usize::MAX).await;
    assert_eq!(missing.status, 404);
    assert_no_store(&missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_is_required_everywhere_but_healthz() {
    let server = Live::test_pattern(
        320,
        240,
        30,
        Settings {
            auth_token: Some("s3cret".into()),
            ..Settings::default()
        },
    );
    for path in ["/", "/stream.mjpg", "/snapshot.jpg", "/status", "/metrics"] {
        let response = http_get(server.port, path, &[], 1).await;
        assert_eq!(response.status, 401, "{path} without token");
        let with_query = if path.contains('?') {
            format!("{path}&token=s3cret")
        } else {
            format!("{path}?token=s3cret")
        };
        assert_eq!(
            http_get(server.port, &with_query, &[], 1).await.status,
            200,
            "{path} with token"
        );
        let bearer = http_get(server.port, path, &[("Authorization", "Bearer s3cret")], 1).await;
        assert_eq!(bearer.status, 200, "{path} with bearer");
        let cookie = http_get(
            server.port,
            path,
            &[("Cookie", "a=b; wsjpeg_token=s3cret")],
            1,
        )
        .await;
        assert_eq!(cookie.status, 200, "{path} with cookie");
        let wrong = http_get(server.port, path, &[("Authorization", "Bearer nope")], 1).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
    }
    assert_eq!(http_get(server.port, "/healthz", &[], 1).await.status, 200);
    match tokio_tungstenite::connect_async(server.url("/stream")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401, "WebSocket without token")
        }
        other => panic!(
            "WebSocket without token: expected 401, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    let mut ws = connect(server.port, "/stream?token=s3cret").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_websocket_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut request = server.url("/stream").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    let mut same_host = server.url("/stream").into_client_request().unwrap();
    let origin = format!("http://127.0.0.1:{}", server.port);
    same_host
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(same_host).await.unwrap();
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
}

/// Whether this machine has IPv6 loopback. In CI its absence is a failure, not a skip.
fn ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(err) => cannot_run(
            "IPv6 test",
            &format!("[::1] cannot be bound ({err})"),
            "WSJPEG_REQUIRE_IPV6",
        ),
    }
}

async fn snapshot_status(host: &str, port: u16) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .unwrap_or_else(|e| panic!("{host}:{port} accepts: {e}"));
    stream
        .write_all(b"GET /snapshot.jpg HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_alone_and_dual_stack() {
    if !ipv6_loopback() {
        return;
    }
    let v6 = Live::test_pattern_on("::1", 160, 120, 30, Settings::default());
    assert_eq!(snapshot_status("::1", v6.port).await, 200);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", v6.port))
            .await
            .is_err(),
        "::1 alone does not listen on IPv4"
    );
    let dual = Live::test_pattern_on("::", 160, 120, 30, Settings::default());
    assert_eq!(snapshot_status("::1", dual.port).await, 200, "IPv6 on ::");
    assert_eq!(
        snapshot_status("127.0.0.1", dual.port).await,
        200,
        "IPv4 on ::"
    );
}
