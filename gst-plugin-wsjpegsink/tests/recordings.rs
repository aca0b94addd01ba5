// SPDX-License-Identifier: MIT
//! The recording surface of the element: the `recording-control` signal behind
//! `POST /api/record/start|stop`, and `recording-state` in WebSocket messages, `/status` and
//! `/metrics`. Real sockets, real files in a temp folder. The listing and downloads of a
//! `recording-dir` are tested in the server's own `recordings.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::glib;
use gst::prelude::*;

const SECOND: Duration = Duration::from_secs(1);

const SINK: &str = "wsjpegsink name=sink port=0 address=127.0.0.1";

/// A server in READY (listening, nothing streaming), with `props` on the sink.
fn server(props: &str) -> Server {
    Server::build(&format!("appsrc name=src ! {SINK} {props}"))
}

fn with_dir(props: &str, dir: &TempDir) -> Server {
    let server = server(props);
    server
        .sink
        .set_property("recording-dir", dir.path().to_str().expect("UTF-8 path"));
    server
}

fn recording_state(fields: &[(&str, glib::SendValue)]) -> gst::Structure {
    let mut s = gst::Structure::new_empty("recording");
    for (name, value) in fields {
        s.set_value(*name, value.clone());
    }
    s
}

fn state_active(file: &str) -> gst::Structure {
    recording_state(&[
        ("active", true.to_send_value()),
        ("control", true.to_send_value()),
        ("started", "2026-11-25T03:13:00Z".to_send_value()),
        ("file", file.to_send_value()),
        ("format", "mjpeg".to_send_value()),
        ("bytes-written", 12345u64.to_send_value()),
        ("segments-deleted", 2u64.to_send_value()),
        ("frames-dropped", 3u64.to_send_value()),
        ("detections-dropped", 4u64.to_send_value()),
    ])
}

fn assert_no_store(response: &Response) {
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

/// The status of an empty POST.
async fn post(port: u16, path: &str, headers: &[(&str, &str)]) -> u16 {
    http_request(port, "POST", path, headers, b"").await.status
}

/// Connects a `recording-control` handler that records each action and answers `accept`.
fn control_handler(sink: &gst::Element, accept: bool) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    sink.connect("recording-control", false, move |args| {
        let action = args[1].get::<String>().expect("a string action");
        log.lock().expect("lock").push(action);
        Some(accept.to_value())
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_stop_reach_the_handler() {
    let server = server("");
    // No handler yet: not available.
    let response = http_request(server.port, "POST", "/api/record/start", &[], b"").await;
    assert_eq!(response.status, 409);
    assert_eq!(
        response.json(),
        serde_json::json!({"error": "recording control is not available"})
    );
    assert_no_store(&response);

    let seen = control_handler(&server.sink, true);
    let response = http_request(server.port, "POST", "/api/record/start", &[], b"").await;
    assert_eq!(response.status, 202, "{}", response.text());
    assert_eq!(response.json(), serde_json::json!({"ok": true}));
    assert_no_store(&response);
    let response = http_request(server.port, "POST", "/api/record/stop", &[], b"{}").await;
    assert_eq!(response.status, 202);
    assert_eq!(*seen.lock().expect("lock"), ["start", "stop"]);

    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        for path in ["/api/record/start", "/api/record/stop"] {
            let response = http_request(server.port, method, path, &[], b"").await;
            assert_eq!(response.status, 405, "{method} {path}");
            assert_eq!(response.header("allow"), Some("POST"), "{method} {path}");
            assert_no_store(&response);
        }
    }
    // Not an action: like any unknown path, whatever the method.
    let response = http_request(server.port, "POST", "/api/record/pause", &[], b"").await;
    assert_eq!(response.status, 404);
    let response = http_get(server.port, "/api/record/pause", &[], usize::MAX).await;
    assert_eq!(response.status, 404);
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "refused requests never reach the handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_declines_gets_409_and_may_set_the_state() {
    let server = server("");
    // This handler sets recording-state from inside the signal: no lock of the element is held.
    server
        .sink
        .connect("recording-control", false, move |args| {
            let sink = args[0].get::<gst::Element>().expect("the element");
            let action = args[1].get::<String>().expect("a string action");
            sink.set_property(
                "recording-state",
                recording_state(&[
                    ("active", false.to_send_value()),
                    ("control", true.to_send_value()),
                    (
                        "error",
                        format!("cannot {action}: disk full").to_send_value(),
                    ),
                ]),
            );
            Some(false.to_value())
        });
    let response = http_request(server.port, "POST", "/api/record/start", &[], b"").await;
    assert_eq!(response.status, 409);
    let status = http_get(server.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(status["recording"]["error"], "cannot start: disk full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_origin_rules_apply() {
    let dir = TempDir::new("token");
    dir.write("2026-11-25T03-12-00Z_cam0.mkv", b"video");
    let server = with_dir("auth-token=s3cret", &dir);
    let seen = control_handler(&server.sink, true);
    let origin = format!("http://127.0.0.1:{}", server.port);

    for path in [
        "/api/recordings",
        "/recordings/2026-11-25T03-12-00Z_cam0.mkv",
    ] {
        let response = http_get(server.port, path, &[], usize::MAX).await;
        assert_eq!(response.status, 401, "{path}");
        let response = http_get(
            server.port,
            &format!("{path}?token=s3cret"),
            &[],
            usize::MAX,
        )
        .await;
        assert_eq!(response.status, 200, "{path}");
    }
    let response = http_request(server.port, "POST", "/api/record/start", &[], b"").await;
    assert_eq!(response.status, 401);
    assert_eq!(
        post(
            server.port,
            "/api/record/start?token=wrong",
            &[("Origin", origin.as_str())]
        )
        .await,
        401
    );
    assert!(seen.lock().expect("lock").is_empty());

    // A page on another site, even with the token (e.g. in a cookie): refused.
    let response = http_request(
        server.port,
        "POST",
        "/api/record/start",
        &[
            ("Authorization", "Bearer s3cret"),
            ("Origin", "http://evil.example"),
        ],
        b"",
    )
    .await;
    assert_eq!(response.status, 403);
    assert_eq!(
        post(
            server.port,
            "/api/record/stop",
            &[("Cookie", "wsjpeg_token=s3cret"), ("Origin", "null")]
        )
        .await,
        403
    );
    assert_no_store(&response);
    assert!(
        seen.lock().expect("lock").is_empty(),
        "refused requests never reach the handler"
    );

    // The viewer page itself (same host), and scripts without an Origin.
    assert_eq!(
        post(
            server.port,
            "/api/record/start?token=s3cret",
            &[("Origin", origin.as_str())]
        )
        .await,
        202
    );
    assert_eq!(
        post(
            server.port,
            "/api/record/stop",
            &[("Authorization", "Bearer s3cret")]
        )
        .await,
        202
    );

    // allowed-origins lets a named site in.
    server
        .sink
        .set_property("allowed-origins", "https://app.example");
    assert_eq!(
        post(
            server.port,
            "/api/record/start?token=s3cret",
            &[("Origin", "https://app.example")]
        )
        .await,
        202
    );
    assert_eq!(
        post(
            server.port,
            "/api/record/start?token=s3cret",
            &[("Origin", "https://other.example")]
        )
        .await,
        403
    );
    assert_eq!(*seen.lock().expect("lock"), ["start", "stop", "start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_recording_messages() {
    let server = server("");
    let mut ws = connect(server.port, "/stream").await;
    assert!(
        next_text_of_type(&mut ws, "hello", 2 * SECOND)
            .await
            .is_some()
    );
    // recording-state unset: no recording message.
    assert!(
        next_text_of_type(&mut ws, "recording", SECOND / 2)
            .await
            .is_none()
    );

    server.sink.set_property(
        "recording-state",
        state_active("2026-11-25T03-13-00Z_cam0.mkv"),
    );
    let message = next_text_of_type(&mut ws, "recording", 2 * SECOND)
        .await
        .expect("a recording message");
    assert_eq!(
        message,
        serde_json::json!({
            "type": "recording", "active": true, "control": true,
            "started": "2026-11-25T03:13:00Z", "file": "2026-11-25T03-13-00Z_cam0.mkv",
            "format": "mjpeg", "error": null,
        })
    );

    // Counters alone do not bother viewers.
    let mut busier = state_active("2026-11-25T03-13-00Z_cam0.mkv");
    busier.set("bytes-written", 99_999u64);
    server.sink.set_property("recording-state", busier);
    assert!(
        next_text_of_type(&mut ws, "recording", SECOND / 2)
            .await
            .is_none()
    );

    // A new viewer hears about it right after hello.
    let mut second = connect(server.port, "/stream").await;
    let mut order = Vec::new();
    while order.len() < 2 {
        match next_message(&mut second, 2 * SECOND).await {
            Some(Received::Text(v)) => order.push(v["type"].as_str().unwrap_or("").to_string()),
            Some(Received::Binary(_)) => {}
            other => panic!("second viewer: {:?}", other.is_some()),
        }
    }
    assert_eq!(order, ["hello", "recording"]);

    server.sink.set_property(
        "recording-state",
        recording_state(&[
            ("active", false.to_send_value()),
            ("control", true.to_send_value()),
            ("format", "mjpeg".to_send_value()),
            ("error", "No space left on device".to_send_value()),
        ]),
    );
    let message = next_text_of_type(&mut ws, "recording", 2 * SECOND)
        .await
        .expect("the error is pushed");
    assert_eq!(message["active"], false);
    assert_eq!(message["error"], "No space left on device");
    assert!(message["started"].is_null());

    // Unset: viewers are told that recording is gone.
    server
        .sink
        .set_property("recording-state", None::<gst::Structure>);
    let message = next_text_of_type(&mut ws, "recording", 2 * SECOND)
        .await
        .expect("the end is pushed");
    assert_eq!(message["active"], false);
    assert_eq!(message["control"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_report_the_recording() {
    let server = server("");
    let status = http_get(server.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert!(status["recording"].is_null(), "{}", status["recording"]);
    let metrics = http_get(server.port, "/metrics", &[], usize::MAX)
        .await
        .text();
    assert!(!metrics.contains("wsjpeg_recording_"), "{metrics}");

    server.sink.set_property(
        "recording-state",
        state_active("2026-11-25T03-13-00Z_cam0.mkv"),
    );
    let status = http_get(server.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(
        status["recording"],
        serde_json::json!({
            "active": true, "control": true, "started": "2026-11-25T03:13:00Z",
            "file": "2026-11-25T03-13-00Z_cam0.mkv", "format": "mjpeg",
            "bytes_written": 12345, "segments_deleted": 2, "frames_dropped": 3,
            "detections_dropped": 4, "error": null,
        })
    );
    let metrics = http_get(server.port, "/metrics", &[], usize::MAX)
        .await
        .text();
    for line in [
        "# TYPE wsjpeg_recording_active gauge",
        "wsjpeg_recording_active 1",
        "# TYPE wsjpeg_recording_bytes_written_total counter",
        "wsjpeg_recording_bytes_written_total 12345",
        "wsjpeg_recording_segments_deleted_total 2",
        "wsjpeg_recording_frames_dropped_total 3",
        "wsjpeg_recording_detections_dropped_total 4",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let read_back = server
        .sink
        .property::<Option<gst::Structure>>("recording-state");
    assert_eq!(
        read_back.map(|s| s.name().to_string()).as_deref(),
        Some("recording")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_state_from_a_launch_line() {
    // What gst-launch-1.0 users type: plain ints and unquoted values work too.
    let server = Server::build(&format!(
        "appsrc name=src ! {SINK} recording-state=\"recording,active=true,control=false,\
         started=(string)2026-11-26T10:00:00Z,format=(string)h264,bytes-written=42\""
    ));
    let status = http_get(server.port, "/status", &[], usize::MAX)
        .await
        .json();
    let recording = &status["recording"];
    assert_eq!(recording["active"], true);
    assert_eq!(recording["control"], false);
    assert_eq!(recording["started"], "2026-11-26T10:00:00Z");
    assert_eq!(recording["format"], "h264");
    assert_eq!(recording["bytes_written"], 42);
    assert!(recording["file"].is_null());

    let mut ws = connect(server.port, "/stream").await;
    let message = next_text_of_type(&mut ws, "recording", 2 * SECOND)
        .await
        .expect("sent after hello");
    assert_eq!(message["control"], false);
}
