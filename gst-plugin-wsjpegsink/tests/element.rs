// SPDX-License-Identifier: MIT
//! The element as GStreamer sees it: states, properties, signals, bus messages, errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn harness_delivers_pushed_buffers_to_a_viewer() {
    init();
    let mut harness = gst_check::Harness::new("wsjpegsink");
    let sink = harness.element().expect("the sink");
    sink.set_property("port", 0u32);
    sink.set_property("address", "127.0.0.1");
    harness.set_src_caps_str("image/jpeg,width=320,height=240,framerate=30/1");
    harness.play();
    let port = sink.property::<u32>("bound-port") as u16;
    assert_ne!(port, 0);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut ws = runtime.block_on(connect(port, "/stream"));
    // Three different pictures: whichever the viewer gets first (latest frame wins), it ends
    // with the newest, byte for byte, and never gets one twice or out of order.
    let frames: Vec<Vec<u8>> = ["smpte", "snow", "ball"]
        .iter()
        .map(|pattern| encode_jpeg(320, 240, pattern, 80))
        .collect();
    for jpeg in &frames {
        assert_eq!(
            harness.push(gst::Buffer::from_slice(jpeg.clone())),
            Ok(gst::FlowSuccess::Ok)
        );
    }
    let mut got = Vec::new();
    while got.last() != Some(&(frames.len() - 1)) {
        let frame = runtime
            .block_on(next_frame(&mut ws, 5 * SECOND))
            .expect("frames up to the newest");
        let index = frames
            .iter()
            .position(|f| *f == frame)
            .expect("the viewer gets the bytes that were pushed");
        assert!(
            got.last().is_none_or(|last| index > *last),
            "in order, once each"
        );
        got.push(index);
    }
    let stats = sink.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames-in").unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_jpeg_is_dropped_counted_and_streaming_goes_on() {
    // The element's warnings, as GStreamer's log shows them.
    init();
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = warnings.clone();
    gst::log::set_active(true);
    gst::log::set_threshold_for_name("wsjpegsink", gst::DebugLevel::Warning);
    let logger = gst::log::add_log_function(move |category, level, _, _, _, _, message| {
        if category.name() == "wsjpegsink"
            && level == gst::DebugLevel::Warning
            && let Some(text) = message.get()
        {
            seen.lock().unwrap().push(text.to_string());
        }
    });
    let server = Server::fed("");
    let good = encode_jpeg(320, 240, "smpte", 80);
    let mut ws = connect(server.port, "/stream").await;
    server.push(&good);
    assert_eq!(next_frame(&mut ws, 5 * SECOND).await.unwrap(), good);
    server.push(&good[..good.len() / 2]);
    server.push(&[0u8; 10]);
    let other = encode_jpeg(320, 240, "snow", 80);
    server.push(&other);
    assert_eq!(
        next_frame(&mut ws, 5 * SECOND).await.unwrap(),
        other,
        "the broken frames were skipped and the next good one delivered"
    );
    let stats = server.stats();
    assert_eq!(stats.get::<u64>("frames-invalid").unwrap(), 2);
    assert_eq!(stats.get::<u64>("frames-in").unwrap(), 2);
    let metrics = http_get(server.port, "/metrics", &[], usize::MAX)
        .await
        .text();
    assert!(
        metrics.contains("wsjpeg_frames_invalid_total 2"),
        "metrics count the invalid frames:\n{metrics}"
    );
    gst::log::remove_log_function(logger);
    let warnings = warnings.lock().unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("invalid frame")),
        "the dropped frames are warned about: {warnings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_announced_by_property_signals_and_bus() {
    // READY: the server is up but no frame flows, like a parked camera.
    let server = Server::build("appsrc name=src ! wsjpegsink name=sink port=0 address=127.0.0.1");
    let events = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
    for signal in ["client-connected", "client-disconnected"] {
        let events = events.clone();
        server.sink.connect(signal, false, move |args| {
            let address = args[1].get::<String>().unwrap();
            let n = args[2].get::<u32>().unwrap();
            assert!(address.starts_with("127.0.0.1:"));
            events.lock().unwrap().push((signal.to_string(), n));
            None
        });
    }
    let notified = Arc::new(Mutex::new(Vec::<u32>::new()));
    {
        let notified = notified.clone();
        server
            .sink
            .connect_notify(Some("n-clients"), move |sink, _| {
                notified
                    .lock()
                    .unwrap()
                    .push(sink.property::<u32>("n-clients"));
            });
    }

    let mut first = connect(server.port, "/stream").await;
    let second = connect(server.port, "/stream").await;
    assert!(eventually(5 * SECOND, || server.n_clients() == 2).await);
    first.close(None).await.unwrap();
    assert!(eventually(5 * SECOND, || server.n_clients() == 1).await);
    // A closed tab: the TCP connection goes away without a close frame.
    drop(second);
    assert!(eventually(5 * SECOND, || server.n_clients() == 0).await);
    assert!(eventually(5 * SECOND, || events.lock().unwrap().len() == 4).await);

    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            ("client-connected".to_string(), 1),
            ("client-connected".to_string(), 2),
            ("client-disconnected".to_string(), 1),
            ("client-disconnected".to_string(), 0),
        ]
    );
    // notify::n-clients says "changed"; the value read in the handler is the current one,
    // which may already be past the change that was notified. Each change is signalled first
    // and notified right after, on the same thread.
    assert!(eventually(5 * SECOND, || notified.lock().unwrap().len() >= 4).await);
    let notified = notified.lock().unwrap().clone();
    assert_eq!(
        notified.len(),
        4,
        "one notification per change: {notified:?}"
    );
    assert_eq!(notified.last(), Some(&0));

    let bus = server.pipeline.bus().unwrap();
    let mut seen = Vec::new();
    while let Some(message) = bus.pop_filtered(&[gst::MessageType::Element]) {
        if let Some(s) = message.structure()
            && s.name() == "wsjpegsink-clients"
        {
            seen.push(s.get::<u32>("n-clients").unwrap());
        }
    }
    assert_eq!(seen, vec![1, 2, 1, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_keeps_viewers_and_null_closes_them_with_1001() {
    let server = Server::test_pattern(320, 240, 30, "");
    let mut ws = connect(server.port, "/stream").await;
    next_frame(&mut ws, 5 * SECOND).await.expect("a frame");

    server.pipeline.set_state(gst::State::Ready).unwrap();
    assert!(
        wait_camera_state(&mut ws, "idle", 5 * SECOND)
            .await
            .is_some(),
        "viewers learn the camera went idle"
    );
    // Still served in READY: a new viewer can connect, the old one answers time requests.
    let mut late = connect(server.port, "/stream").await;
    send_json(&mut ws, serde_json::json!({"type": "time", "client": 1})).await;
    assert!(
        next_text_of_type(&mut ws, "time", 5 * SECOND)
            .await
            .is_some()
    );
    assert_eq!(server.n_clients(), 2);

    server.pipeline.set_state(gst::State::Playing).unwrap();
    assert!(
        next_frame(&mut ws, 5 * SECOND).await.is_some(),
        "frames resume"
    );
    assert!(next_frame(&mut late, 5 * SECOND).await.is_some());

    let port = server.port;
    server.pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1001));
    assert_eq!(close_code(&mut late, 5 * SECOND).await, Some(1001));
    assert_eq!(server.sink.property::<u32>("bound-port"), 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
}

fn start_error(description: &str) -> String {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    assert!(
        pipeline.set_state(gst::State::Ready).is_err(),
        "the state change fails"
    );
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])
        .expect("an error message on the bus");
    let gst::MessageView::Error(error) = message.view() else {
        unreachable!()
    };
    pipeline.set_state(gst::State::Null).unwrap();
    error.error().to_string()
}

#[test]
fn port_already_taken_fails_with_a_message_naming_the_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = start_error(&format!(
        "appsrc ! wsjpegsink address=127.0.0.1 port={port}"
    ));
    assert!(
        text.contains(&port.to_string()),
        "message names the port: {text}"
    );
    assert!(text.contains("in use"), "message says why: {text}");
}

#[test]
fn bad_address_fails_with_a_message_naming_it() {
    let text = start_error("appsrc ! wsjpegsink address=not-an-address port=0");
    assert!(
        text.contains("not-an-address"),
        "message names the address: {text}"
    );
}

#[test]
fn properties_have_documented_defaults() {
    init();
    let sink = gst::ElementFactory::make("wsjpegsink").build().unwrap();
    assert_eq!(sink.property::<String>("address"), "0.0.0.0");
    assert_eq!(sink.property::<u32>("port"), 3003);
    assert_eq!(sink.property::<u32>("max-clients"), 64);
    assert_eq!(sink.property::<u32>("keepalive"), 30);
    assert_eq!(sink.property::<u32>("write-timeout"), 30);
    assert_eq!(sink.property::<u32>("max-connections"), 0);
    assert_eq!(sink.property::<u32>("bound-port"), 0);
    assert_eq!(sink.property::<u32>("n-clients"), 0);
    assert!(sink.property::<Option<String>>("auth-token").is_none());
    assert!(sink.property::<Option<String>>("document-root").is_none());
    let pad = sink.static_pad("sink").unwrap();
    let caps = pad.pad_template_caps();
    assert_eq!(caps.structure(0).unwrap().name(), "image/jpeg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_signal_handler_never_queues_viewer_changes_without_bound() {
    let server = Server::build("appsrc name=src ! wsjpegsink name=sink port=0 address=127.0.0.1");
    server
        .pipeline
        .bus()
        .unwrap()
        .set_sync_handler(|_, _| gst::BusSyncReply::Drop);
    // The application's handler blocks on the first viewer until the test releases it.
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let blocked = Mutex::new(Some(blocked));
    let signalled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for signal in ["client-connected", "client-disconnected"] {
        let signalled = signalled.clone();
        let blocked = Mutex::new(blocked.lock().unwrap().take());
        server.sink.connect(signal, false, move |_| {
            if let Some(blocked) = blocked.lock().unwrap().take() {
                let _ = blocked.recv();
            }
            signalled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        });
    }
    let last_notified = Arc::new(Mutex::new(None::<u32>));
    {
        let last_notified = last_notified.clone();
        server
            .sink
            .connect_notify(Some("n-clients"), move |sink, _| {
                *last_notified.lock().unwrap() = Some(sink.property::<u32>("n-clients"));
            });
    }
    // 1,500 visits make 3,000 changes while the handler is stuck.
    let port = server.port;
    let workers = (0..6).map(|w| {
        tokio::spawn(async move {
            for _ in (w..1500).step_by(6) {
                let mut stream = raw_websocket(port, "/stream").await;
                let _ = read_server_frame(&mut stream, 5 * SECOND).await;
            }
        })
    });
    for worker in futures_util::future::join_all(workers).await {
        worker.unwrap();
    }
    assert!(eventually(10 * SECOND, || server.n_clients() == 0).await);
    release.send(()).unwrap();
    assert!(
        eventually(10 * SECOND, || *last_notified.lock().unwrap() == Some(0)).await,
        "after the drops, n-clients is notified and reads the live count"
    );
    let signalled = signalled.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("3,000 viewer changes, {signalled} signalled");
    assert!(
        signalled <= 1100,
        "{signalled} changes were queued for a handler that was stuck"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_cannot_be_read_back() {
    let server = Server::fed("auth-token=Read-Back-7c2e");
    let read = server.sink.property::<Option<String>>("auth-token");
    assert_eq!(read.as_deref(), Some("*****"), "set, and masked");
    // Still the real token that is checked.
    let response = http_get(server.port, "/status?token=Read-Back-7c2e", &[], usize::MAX).await;
    assert_eq!(response.status, 200);
    let masked = http_get(server.port, "/status?token=*****", &[], usize::MAX).await;
    assert_eq!(masked.status, 401);
    server.sink.set_property("auth-token", None::<String>);
    assert!(
        server
            .sink
            .property::<Option<String>>("auth-token")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_in_one_process_serve_independently() {
    let a = Server::fed("");
    let b = Server::fed("");
    assert_ne!(a.port, b.port);
    let frame_a = encode_jpeg(320, 240, "smpte", 80);
    let frame_b = encode_jpeg(320, 240, "ball", 80);
    let mut viewer_a = connect(a.port, "/stream").await;
    let mut viewer_b = connect(b.port, "/stream").await;
    for _ in 0..3 {
        a.push(&frame_a);
        b.push(&frame_b);
        assert_eq!(
            next_frame(&mut viewer_a, 5 * SECOND).await.as_ref(),
            Some(&frame_a)
        );
        assert_eq!(
            next_frame(&mut viewer_b, 5 * SECOND).await.as_ref(),
            Some(&frame_b)
        );
    }
    // Their figures are their own too.
    assert_eq!(a.stats().get::<u64>("frames-in").unwrap(), 3);
    assert_eq!(b.stats().get::<u64>("frames-in").unwrap(), 3);
    assert_eq!((a.n_clients(), b.n_clients()), (1, 1));
    // One stopping leaves the other serving.
    a.pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(close_code(&mut viewer_a, 5 * SECOND).await, Some(1001));
    b.push(&frame_b);
    assert_eq!(
        next_frame(&mut viewer_b, 5 * SECOND).await.as_ref(),
        Some(&frame_b)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_error_is_cleared_by_the_next_frame() {
    let server = Server::fed("");
    let frame = encode_jpeg(320, 240, "smpte", 80);
    let mut ws = connect(server.port, "/stream").await;
    server.push(&frame);
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    server.sink.set_property("camera-error", "unplugged");
    let error = wait_camera_state(&mut ws, "error", 5 * SECOND)
        .await
        .expect("an error status");
    assert_eq!(error["message"], "unplugged");
    assert_eq!(
        http_get(server.port, "/healthz", &[], usize::MAX)
            .await
            .status,
        503
    );
    server.push(&frame);
    assert!(
        wait_camera_state(&mut ws, "streaming", 5 * SECOND)
            .await
            .is_some(),
        "the next frame says the camera works again"
    );
    assert_eq!(
        http_get(server.port, "/healthz", &[], usize::MAX)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_frame_is_forgotten_on_ready() {
    let server = Server::fed("snapshot-timeout=300");
    let frame = encode_jpeg(320, 240, "smpte", 80);
    server.push(&frame);
    let mut ws = connect(server.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    server.pipeline.set_state(gst::State::Ready).unwrap();
    assert!(
        wait_camera_state(&mut ws, "idle", 5 * SECOND)
            .await
            .is_some()
    );
    // Seconds younger than the freshness limit, but the camera is parked: nothing to show.
    let mut newcomer = connect(server.port, "/stream").await;
    assert!(
        next_frame(&mut newcomer, SECOND / 2).await.is_none(),
        "a parked camera's last picture is not shown as live"
    );
    let snapshot = http_get(server.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(snapshot.status, 503, "no snapshot of a parked camera");
}
