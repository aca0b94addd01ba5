// SPDX-License-Identifier: MIT
//! Detections pushed by a detector client over its WebSocket, sent to the viewers that asked,
//! before the frame they belong to; only a client with the detector token may push.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wsjpeg_server::Settings;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);

/// A server waiting for frames, that takes detections from clients with the token `s3cret`.
fn with_detector_token() -> Live {
    Live::fed(Settings {
        detector_token: Some("s3cret".into()),
        ..Settings::default()
    })
}

/// The next binary frame's sequence number (the viewer asked for `?meta=1`).
async fn next_sequence(ws: &mut WebSocket) -> u64 {
    let frame = next_frame(ws, 5 * SECOND).await.expect("a frame");
    parse_meta_header(&frame).expect("a meta header").sequence
}

fn person(bbox: [f64; 4]) -> Value {
    json!({"label": "person", "score": 0.9, "box": bbox})
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
    let server = with_detector_token();
    let _feeder = server.feed(picture("smpte", 320, 240), 30);
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
    let server = with_detector_token();
    let _feeder = server.feed(picture("smpte", 320, 240), 30);
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
        let server = Live::fed(Settings {
            detector_token: props.strip_prefix("detector-token=").map(Into::into),
            ..Settings::default()
        });
        let _feeder = server.feed(picture("smpte", 320, 240), 30);
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
    let server = with_detector_token();
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
    let server = with_detector_token();
    let _feeder = server.feed(picture("smpte", 320, 240), 30);
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
    let server = with_detector_token();
    let _feeder = server.feed(picture("smpte", 320, 240), 30);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_that_reads_nothing_is_still_heard() {
    use tokio::io::AsyncWriteExt;
    // Big frames, and a detector whose socket takes little and who never reads: every frame
    // written to it waits for a link that takes nothing. What it sends meanwhile must be taken
    // all the same, not wait behind that write.
    let server = with_detector_token();
    let big = big_frame(128 * 1024);
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
