// SPDX-License-Identifier: MIT
//! Detections beside the frames: pushed by a detector client over its WebSocket, by the
//! application with the `push-detections` signal, or carried by region-of-interest metas on the
//! buffers; sent to the viewers that asked, before the frame they belong to.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use serde_json::{Value, json};
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);

/// The next binary frame's sequence number (the viewer asked for `?meta=1`).
async fn next_sequence(ws: &mut WebSocket) -> u64 {
    let frame = next_frame(ws, 5 * SECOND).await.expect("a frame");
    parse_meta_header(&frame).expect("a meta header").sequence
}

fn person(bbox: [f64; 4]) -> Value {
    json!({"label": "person", "score": 0.9, "box": bbox})
}

/// What a viewer receives for a while: detections messages and frame sequence numbers, in
/// order.
#[derive(Debug, PartialEq)]
enum Seen {
    Detections(Value),
    Frame(u64),
}

async fn watch(ws: &mut WebSocket, duration: Duration) -> Vec<Seen> {
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

fn detections_in(seen: &[Seen]) -> Vec<&Value> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Detections(d) => Some(d),
            Seen::Frame(_) => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_pushes_detections_for_a_frame_and_viewers_get_them_for_that_frame() {
    let server = Server::fed("detector-token=s3cret");
    let _feeder = server.feed(encode_jpeg(320, 240, "smpte", 80), 30);
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let mut plain = connect(server.port, "/stream?meta=1").await;
    let mut detector = connect(server.port, "/stream?meta=1&detector_token=s3cret").await;

    let hello = next_text_of_type(&mut viewer, "hello", 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(hello["detections"], true, "announced in hello");
    let hello = next_text_of_type(&mut detector, "hello", 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(hello["detector"], true, "the token was taken");

    let frame = next_sequence(&mut detector).await;
    send_json(
        &mut detector,
        json!({"type": "detections", "frame": frame, "objects": [person([10.0, 20.0, 30.0, 40.0])]}),
    )
    .await;
    let message = next_text_of_type(&mut viewer, "detections", 5 * SECOND)
        .await
        .expect("the viewer gets them");
    assert_eq!(
        message["frame"], frame,
        "tied to the frame they were found in"
    );
    assert_eq!(message["width"], 320);
    assert_eq!(message["height"], 240);
    assert!(message["time"].as_u64().is_some_and(|t| t > 0));
    assert_eq!(
        message["objects"],
        json!([{"label": "person", "score": 0.9, "box": [10.0, 20.0, 30.0, 40.0]}])
    );
    // Viewers that did not ask see frames only.
    let seen = watch(&mut plain, SECOND).await;
    assert!(seen.iter().any(|s| matches!(s, Seen::Frame(_))));
    assert!(detections_in(&seen).is_empty(), "{seen:?}");

    // Nothing found any more: the boxes go away, once.
    let frame = next_sequence(&mut detector).await;
    let empty = json!({"type": "detections", "frame": frame, "objects": []});
    send_json(&mut detector, empty.clone()).await;
    let message = next_text_of_type(&mut viewer, "detections", 5 * SECOND)
        .await
        .expect("the empty one too");
    assert_eq!(message["objects"], json!([]));
    send_json(&mut detector, empty).await;
    let seen = watch(&mut viewer, SECOND).await;
    assert!(
        detections_in(&seen).is_empty(),
        "no boxes, nothing to say: {seen:?}"
    );

    let status = status_blocking(server.port);
    assert_eq!(status["detections"]["total"], 3);
    assert!(status["detections"]["delay_ms"].as_f64().is_some());
    let metrics = http_get(server.port, "/metrics", &[], usize::MAX)
        .await
        .text();
    assert!(metrics.contains("wsjpeg_detections_total 3"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_may_come_in_a_header() {
    let server = Server::fed("detector-token=s3cret");
    let _feeder = server.feed(encode_jpeg(320, 240, "smpte", 80), 30);
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let mut detector = connect_with_headers(
        server.port,
        "/stream?meta=1",
        &[("X-Detector-Token", "s3cret")],
    )
    .await;
    let frame = next_sequence(&mut detector).await;
    send_json(
        &mut detector,
        json!({"type": "detections", "frame": frame, "objects": [person([1.0, 2.0, 3.0, 4.0])]}),
    )
    .await;
    let message = next_text_of_type(&mut viewer, "detections", 5 * SECOND).await;
    assert_eq!(message.unwrap()["frame"], frame);
}

/// Sends a detections message and returns the error text the sender gets back.
async fn refused(ws: &mut WebSocket, message: Value) -> String {
    send_json(ws, message).await;
    let error = next_text_of_type(ws, "error", 5 * SECOND)
        .await
        .expect("an error message");
    error["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_nobody_may_push_and_nothing_changes() {
    for props in ["detector-token=s3cret", ""] {
        let server = Server::fed(props);
        let _feeder = server.feed(encode_jpeg(320, 240, "smpte", 80), 30);
        let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
        for path in ["/stream?meta=1", "/stream?meta=1&detector_token=wrong"] {
            let mut client = connect(server.port, path).await;
            let hello = next_text_of_type(&mut client, "hello", 5 * SECOND)
                .await
                .unwrap();
            assert_eq!(hello["detector"], false);
            let frame = next_sequence(&mut client).await;
            let message = json!({"type": "detections", "frame": frame,
                "objects": [person([1.0, 2.0, 3.0, 4.0])]});
            let error = refused(&mut client, message).await;
            assert!(
                error.contains("detector token"),
                "{props:?} {path}: {error}"
            );
            assert!(
                next_frame(&mut client, 5 * SECOND).await.is_some(),
                "the refused client stays connected"
            );
        }
        let seen = watch(&mut viewer, SECOND).await;
        assert!(detections_in(&seen).is_empty(), "{props:?}: {seen:?}");
        assert_eq!(status_blocking(server.port)["detections"]["total"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_site_cannot_even_connect() {
    let server = Server::fed("detector-token=s3cret");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(
            upgrade_request(
                server.port,
                "/stream?meta=1&detector_token=s3cret",
                "Origin: http://evil.example\r\n",
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(read_response_head(&mut stream, 5 * SECOND).await, Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_oversized_detections_get_an_error_and_change_nothing() {
    let server = Server::fed("detector-token=s3cret");
    let _feeder = server.feed(encode_jpeg(320, 240, "smpte", 80), 30);
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let mut detector = connect(server.port, "/stream?meta=1&detector_token=s3cret").await;
    let frame = next_sequence(&mut detector).await;
    let too_many: Vec<Value> = (0..300)
        .map(|i| person([i as f64, 0.0, 1.0, 1.0]))
        .collect();
    let cases = [
        (json!({"type": "detections", "objects": []}), "frame"),
        (
            json!({"type": "detections", "frame": frame, "time": 5, "objects": []}),
            "one of the two",
        ),
        (
            json!({"type": "detections", "frame": 1_000_000_000u64, "objects": []}),
            "not among the recent",
        ),
        (
            json!({"type": "detections", "frame": frame, "objects": too_many}),
            "more than 256",
        ),
        (
            json!({"type": "detections", "frame": frame,
                "objects": [{"label": "x", "box": [0, 0, -5, 5]}]}),
            "box",
        ),
        (
            json!({"type": "detections", "frame": frame,
                "objects": [{"label": "x".repeat(65), "box": [0, 0, 5, 5]}]}),
            "label",
        ),
        (
            json!({"type": "detections", "frame": frame,
                "objects": [{"label": "x", "score": 7, "box": [0, 0, 5, 5]}]}),
            "score",
        ),
        (
            json!({"type": "detections", "frame": frame, "objects": [{"label": "x"}]}),
            "box",
        ),
        (
            json!({"type": "detections", "frame": frame, "objects": "many"}),
            "invalid detections message",
        ),
    ];
    for (message, says) in cases {
        let error = refused(&mut detector, message.clone()).await;
        assert!(error.contains(says), "{message}: {error}");
    }
    let seen = watch(&mut viewer, SECOND).await;
    assert!(detections_in(&seen).is_empty(), "{seen:?}");
    assert!(
        seen.iter().any(|s| matches!(s, Seen::Frame(_))),
        "frames go on"
    );
    // The detector is still connected and may push good ones.
    let frame = next_sequence(&mut detector).await;
    send_json(
        &mut detector,
        json!({"type": "detections", "frame": frame, "objects": [person([1.0, 1.0, 2.0, 2.0])]}),
    )
    .await;
    assert!(
        next_text_of_type(&mut viewer, "detections", 5 * SECOND)
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_older_than_those_shown_are_dropped() {
    let server = Server::fed("detector-token=s3cret");
    let _feeder = server.feed(encode_jpeg(320, 240, "smpte", 80), 30);
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let mut detector = connect(server.port, "/stream?meta=1&detector_token=s3cret").await;
    let older = next_sequence(&mut detector).await;
    let newer = next_sequence(&mut detector).await;
    send_json(
        &mut detector,
        json!({"type": "detections", "frame": newer, "objects": [person([1.0, 1.0, 2.0, 2.0])]}),
    )
    .await;
    let error = refused(
        &mut detector,
        json!({"type": "detections", "frame": older, "objects": [person([5.0, 5.0, 2.0, 2.0])]}),
    )
    .await;
    assert!(error.contains("older"), "{error}");
    let seen = watch(&mut viewer, SECOND).await;
    let frames: Vec<u64> = detections_in(&seen)
        .iter()
        .filter_map(|d| d["frame"].as_u64())
        .collect();
    assert_eq!(frames, [newer], "latest wins");
}

/// A pipeline whose frames carry the region-of-interest metas a detector upstream would attach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_of_interest_metas_go_out_before_their_frame() {
    let server = Server::fed("");
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let signalled = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let signalled = signalled.clone();
        server.sink.connect("detections", false, move |args| {
            signalled
                .lock()
                .unwrap()
                .push(args[1].get::<String>().unwrap());
            None
        });
    }
    let jpeg = encode_jpeg(320, 240, "smpte", 80);
    let with_face = |x: u32| {
        let mut buffer = gst::Buffer::from_slice(jpeg.clone());
        {
            let buffer = buffer.get_mut().unwrap();
            let mut meta =
                gst_video::VideoRegionOfInterestMeta::add(buffer, "face", (x, 50, 60, 70));
            meta.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.5f64)
                    .build(),
            );
        }
        buffer
    };
    let plain = || gst::Buffer::from_slice(jpeg.clone());
    // A fifth of a second apart: a viewer passes over a frame only when a newer one is out
    // before it has sent this one (latest frame wins), which a busy machine does not make
    // take that long.
    for buffer in [plain(), with_face(10), with_face(20), plain(), plain()] {
        server.push_buffer(buffer);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = watch(&mut viewer, SECOND).await;
    // Frames before any meta carry nothing; each frame with metas is preceded by its
    // detections; the first frame without metas after them takes the boxes away.
    let mut expected_order = Vec::new();
    let mut sequences = seen.iter().filter_map(|s| match s {
        Seen::Frame(n) => Some(*n),
        Seen::Detections(_) => None,
    });
    let first = sequences.next().expect("frames");
    for (i, boxes) in [None, Some(10.0), Some(20.0), Some(-1.0), None]
        .iter()
        .enumerate()
    {
        let sequence = first + i as u64;
        match boxes {
            Some(x) if *x >= 0.0 => expected_order.push(Seen::Detections(json!({
                "type": "detections", "frame": sequence, "width": 320, "height": 240,
                "objects": [{"label": "face", "score": 0.5, "box": [x, 50.0, 60.0, 70.0]}]}))),
            Some(_) => expected_order.push(Seen::Detections(json!({
                "type": "detections", "frame": sequence, "width": 320, "height": 240,
                "objects": []}))),
            None => {}
        }
        expected_order.push(Seen::Frame(sequence));
    }
    let without_time: Vec<Seen> = seen
        .into_iter()
        .map(|s| match s {
            Seen::Detections(mut d) => {
                d.as_object_mut().unwrap().remove("time");
                Seen::Detections(d)
            }
            frame => frame,
        })
        .collect();
    assert_eq!(without_time, expected_order);
    assert!(
        eventually(5 * SECOND, || signalled.lock().unwrap().len() == 3).await,
        "the detections signal: {:?}",
        signalled.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_pushes_detections_with_the_action_signal() {
    let server = Server::fed("");
    let _feeder = server.feed(encode_jpeg(320, 240, "smpte", 80), 30);
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let frame = next_sequence(&mut viewer).await;
    let objects = gst::List::new([gst::Structure::builder("object")
        .field("label", "cat")
        .field("score", 0.8f64)
        .field("x", 5i32)
        .field("y", 6i32)
        .field("width", 70u32)
        .field("height", 80.5f64)
        .field("id", 3i32)
        .build()
        .to_send_value()]);
    let detections = gst::Structure::builder("detections")
        .field("frame", frame)
        .field("objects", objects.clone())
        .build();
    assert!(
        server
            .sink
            .emit_by_name::<bool>("push-detections", &[&detections])
    );
    let message = next_text_of_type(&mut viewer, "detections", 5 * SECOND)
        .await
        .expect("detections");
    assert_eq!(message["frame"], frame);
    assert_eq!(
        message["objects"],
        json!([{"label": "cat", "score": 0.8, "box": [5.0, 6.0, 70.0, 80.5], "id": 3}])
    );
    // By capture time, as a detector with timestamps would.
    let time = message["time"].as_u64().unwrap();
    let by_time = gst::Structure::builder("detections")
        .field("capture-time", time + 1_000)
        .field("objects", gst::List::new::<gst::glib::SendValue>([]))
        .build();
    assert!(
        server
            .sink
            .emit_by_name::<bool>("push-detections", &[&by_time])
    );
    let message = next_text_of_type(&mut viewer, "detections", 5 * SECOND).await;
    assert_eq!(message.unwrap()["frame"], frame);
    // A frame nobody published is refused.
    let unknown = gst::Structure::builder("detections")
        .field("frame", 1_000_000_000u64)
        .field("objects", objects)
        .build();
    assert!(
        !server
            .sink
            .emit_by_name::<bool>("push-detections", &[&unknown])
    );
}

#[test]
fn the_detector_token_cannot_be_read_back() {
    init();
    let sink = gst::ElementFactory::make("wsjpegsink")
        .property("detector-token", "s3cret")
        .build()
        .unwrap();
    assert_eq!(
        sink.property::<Option<String>>("detector-token").as_deref(),
        Some("*****")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_that_reads_nothing_is_still_heard() {
    use tokio::io::AsyncWriteExt;
    // Big frames, and a detector whose socket takes little and who never reads: every frame
    // written to it waits for a link that takes nothing. What it sends meanwhile must be taken
    // all the same, not wait behind that write.
    let server = Server::fed("detector-token=s3cret");
    let big = encode_jpeg(640, 480, "snow", 50);
    assert!(big.len() > 64 * 1024, "a frame of {} bytes", big.len());
    let _feeder = server.feed(big, 15);
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let request = upgrade_request(server.port, "/stream?meta=1&detector_token=s3cret", "");
    let mut detector = stalled_client(server.port, &request).await;
    assert_eq!(
        read_response_head(&mut detector, 5 * SECOND).await,
        Some(101)
    );
    // Long enough for the frames to fill the detector's socket: the server waits on it now.
    tokio::time::sleep(SECOND).await;
    let frame = next_sequence(&mut viewer).await;
    let message =
        json!({"type": "detections", "frame": frame, "objects": [person([1.0, 2.0, 3.0, 4.0])]});
    detector
        .write_all(&masked_frame(
            true,
            1,
            message.to_string().as_bytes(),
            [7, 1, 3, 9],
        ))
        .await
        .expect("the detector sends");
    let got = next_text_of_type(&mut viewer, "detections", 5 * SECOND)
        .await
        .expect("the stalled detector's detections reach the viewer");
    assert_eq!(got["frame"], frame);
    assert_eq!(got["objects"], json!([person([1.0, 2.0, 3.0, 4.0])]));
}
