// SPDX-License-Identifier: MIT
//! Detections the element takes: from the application with the `push-detections` signal, or
//! carried by region-of-interest metas on the buffers; sent to the viewers that asked, before
//! the frame they belong to. Detections a detector client pushes over its WebSocket are tested
//! in the server's own `detections.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;
use serde_json::json;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);

/// The next binary frame's sequence number (the viewer asked for `?meta=1`).
async fn next_sequence(ws: &mut WebSocket) -> u64 {
    let frame = next_frame(ws, 5 * SECOND).await.expect("a frame");
    parse_meta_header(&frame).expect("a meta header").sequence
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
