// SPDX-License-Identifier: MIT
//! The WebSocket stream: fan-out, latest-frame-wins, the protocol's control messages.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use wsjpeg_server::Settings;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_each_get_whole_jpegs_at_the_source_rate() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut viewers = Vec::new();
    for _ in 0..20 {
        viewers.push(connect(server.port, "/stream").await);
    }
    assert!(eventually(5 * SECOND, || server.n_clients() == 20).await);
    let frames_in = || server.frames_in();
    let before = frames_in();
    let tasks = viewers.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            next_frame(&mut ws, 5 * SECOND)
                .await
                .expect("a first frame");
            count_frames(&mut ws, 3 * SECOND).await
        })
    });
    let counts = futures_util::future::join_all(tasks).await;
    // Each viewer counted for 3 s within this window.
    let taken_in = frames_in() - before;
    for count in counts {
        let received = count.expect("viewer task ends");
        Share { received, taken_in }.assert_most("one of twenty viewers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_says_the_camera_state_then_frames_follow() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    // Once the caps are known the hello carries them.
    assert!(eventually(5 * SECOND, || server.frames_in() > 0).await);
    let mut ws = connect(server.port, "/stream").await;
    let Some(Received::Text(hello)) = next_message(&mut ws, 5 * SECOND).await else {
        panic!("the first message is the hello");
    };
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["server"], "wsjpeg");
    assert_eq!(hello["width"], 320);
    assert_eq!(hello["height"], 240);
    assert_eq!(hello["framerate"], 30.0);
    assert_eq!(hello["camera"], "streaming");
    assert!(
        hello.get("message").is_none(),
        "no message while all is well"
    );
    // The very next message is a frame: no `status` repeats what the hello said.
    let Some(Received::Binary(frame)) = next_message(&mut ws, 5 * SECOND).await else {
        panic!("a frame follows the hello");
    };
    assert!(is_complete_jpeg(&frame));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_header_carries_sequence_and_capture_time() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut ws = connect(server.port, "/stream?meta=1").await;
    let mut last_sequence = 0u64;
    for _ in 0..15 {
        let message = next_frame(&mut ws, 5 * SECOND).await.expect("a frame");
        assert_eq!(&message[..4], b"WSJ1");
        assert_eq!(u32::from_be_bytes(message[4..8].try_into().unwrap()), 24);
        let sequence = u64::from_be_bytes(message[8..16].try_into().unwrap());
        let capture_us = u64::from_be_bytes(message[16..24].try_into().unwrap());
        assert!(sequence > last_sequence, "sequence numbers increase");
        last_sequence = sequence;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(
            now_us.abs_diff(capture_us) < 1_000_000,
            "capture time {capture_us} is within a second of now {now_us}"
        );
        assert!(is_complete_jpeg(&message[24..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_sync_answers_with_server_clock() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut ws = connect(server.port, "/stream").await;
    send_json(&mut ws, json!({"type": "time", "client": 12345})).await;
    let reply = next_text_of_type(&mut ws, "time", 5 * SECOND)
        .await
        .expect("a time reply");
    assert_eq!(reply["client"], 12345);
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let server_us = reply["server"].as_u64().expect("server time in µs");
    assert!(now_us.abs_diff(server_us) < 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_fps_caps_one_viewer_only() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut capped = connect(server.port, "/stream").await;
    let mut free = connect(server.port, "/stream").await;
    send_json(&mut capped, json!({"type": "max-fps", "fps": 5})).await;
    next_frame(&mut capped, 5 * SECOND).await.expect("a frame");
    next_frame(&mut free, 5 * SECOND).await.expect("a frame");
    let (capped_count, free_share) = tokio::join!(
        count_frames(&mut capped, 3 * SECOND),
        count_share(&mut free, server.port, 3 * SECOND)
    );
    assert!(
        (10..=17).contains(&capped_count),
        "5 fps for 3 s, got {capped_count}"
    );
    free_share.assert_most("the uncapped viewer");
    send_json(&mut capped, json!({"type": "max-fps", "fps": 0})).await;
    next_frame(&mut capped, 5 * SECOND).await.expect("a frame");
    count_share(&mut capped, server.port, 2 * SECOND)
        .await
        .assert_most("fps 0 removes the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_frames_and_resume_restarts_them() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut ws = connect(server.port, "/stream").await;
    next_frame(&mut ws, 5 * SECOND).await.expect("a frame");
    send_json(&mut ws, json!({"type": "pause"})).await;
    // The server took the pause (its stats say so) however long a busy machine made that take;
    // a frame already on its way drains, and then nothing comes.
    let paused = || server.stats().clients.iter().any(|c| c.paused);
    let mut drained = 0;
    let deadline = Instant::now() + 10 * SECOND;
    while !paused() {
        assert!(Instant::now() < deadline, "stats show the viewer paused");
        drained += count_frames(&mut ws, Duration::from_millis(50)).await;
    }
    drained += count_frames(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(
        count_frames(&mut ws, SECOND).await,
        0,
        "paused viewer gets no frames (after {drained} on their way)"
    );
    send_json(&mut ws, json!({"type": "resume"})).await;
    count_share(&mut ws, server.port, SECOND)
        .await
        .assert_most("the resumed viewer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_client_message_closes_only_that_client_with_1009() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut offender = connect(server.port, "/stream").await;
    let mut bystander = connect(server.port, "/stream").await;
    next_frame(&mut bystander, 5 * SECOND)
        .await
        .expect("a frame");
    let huge = "x".repeat(1024 * 1024);
    let _ = offender.send(Message::text(huge)).await;
    assert_eq!(close_code(&mut offender, 5 * SECOND).await, Some(1009));
    count_share(&mut bystander, server.port, SECOND)
        .await
        .assert_most("the other viewer");
    assert!(eventually(5 * SECOND, || server.n_clients() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_answered_and_the_viewer_stays() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    let mut ws = connect(server.port, "/stream").await;
    ws.send(Message::text("{not json")).await.unwrap();
    let error = next_text_of_type(&mut ws, "error", 5 * SECOND)
        .await
        .expect("an error message");
    assert!(error["message"].as_str().is_some());
    count_share(&mut ws, server.port, SECOND)
        .await
        .assert_most("the viewer that sent it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_ping_after_idle() {
    // A server with no frames sends none, so the connection goes idle.
    let server = Live::idle(Settings {
        keepalive: SECOND,
        ..Settings::default()
    });
    let mut ws = connect(server.port, "/stream").await;
    let started = Instant::now();
    let ping = next_text_of_type(&mut ws, "ping", 5 * SECOND).await;
    assert!(ping.is_some(), "a ping after keepalive seconds idle");
    assert!(started.elapsed() >= Duration::from_millis(800));
    send_json(&mut ws, json!({"type": "pong"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_answers_pings_is_dropped_after_three_intervals() {
    let server = Live::idle(Settings {
        keepalive: SECOND,
        ..Settings::default()
    });
    // A raw socket reads everything and answers nothing, not even the protocol ping.
    let mut silent = raw_websocket(server.port, "/stream").await;
    // tungstenite answers protocol pings by itself while it reads, as browsers do; this one
    // reads all along and ignores the JSON pings.
    let mut answering = connect(server.port, "/stream").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = {
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(Received::Closed(code)) =
                    next_message(&mut answering, Duration::from_millis(100)).await
                {
                    panic!("the viewer that answers pings was closed: {code:?}");
                }
            }
            answering
        })
    };
    let started = Instant::now();
    let mut pings = 0;
    let code = loop {
        assert!(
            started.elapsed() < 60 * SECOND,
            "the silent viewer is still served after a minute"
        );
        let frame = read_server_frame(&mut silent, 10 * SECOND)
            .await
            .expect("the server ends the silent viewer with a close frame");
        if frame.opcode == 0x9 {
            pings += 1;
        }
        if let Some(code) = frame.close_code() {
            break code;
        }
    };
    let after = started.elapsed();
    eprintln!("silent viewer closed with {code} after {after:?} and {pings} pings");
    assert_eq!(code, 1001);
    assert!(pings >= 1, "it was pinged before being dropped");
    assert!(
        after >= Duration::from_millis(2500),
        "dropped after {after:?}, before three intervals of silence"
    );
    // The one that answers is still there, and counted alone.
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answering = reading.await.expect("the answering viewer stayed");
    send_json(&mut answering, json!({"type": "time", "client": 7})).await;
    assert!(
        next_text_of_type(&mut answering, "time", 5 * SECOND)
            .await
            .is_some()
    );
    assert!(eventually(5 * SECOND, || server.n_clients() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_beyond_max_clients_gets_1013() {
    let server = Live::test_pattern(
        320,
        240,
        30,
        Settings {
            max_clients: 1,
            ..Settings::default()
        },
    );
    let mut first = connect(server.port, "/stream").await;
    next_frame(&mut first, 5 * SECOND).await.expect("a frame");
    let mut second = connect(server.port, "/stream").await;
    assert_eq!(close_code(&mut second, 5 * SECOND).await, Some(1013));
    drop(second);
    first.close(None).await.unwrap();
    drop(first);
    assert!(eventually(5 * SECOND, || server.n_clients() == 0).await);
    let mut third = connect(server.port, "/stream").await;
    assert!(
        next_frame(&mut third, 5 * SECOND).await.is_some(),
        "a freed slot is usable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_viewer_gets_a_fresh_frame_at_once() {
    let server = Live::fed(Settings::default());
    let jpeg = picture("smpte", 320, 240);
    server.push(&jpeg);
    assert!(eventually(5 * SECOND, || server.frames_in() == 1).await);
    let mut ws = connect(server.port, "/stream").await;
    let frame = next_frame(&mut ws, SECOND)
        .await
        .expect("the latest frame without waiting");
    assert_eq!(frame, jpeg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_is_never_shown_a_frame_older_than_a_second() {
    let server = Live::fed(Settings::default());
    let old = picture("smpte", 320, 240);
    let new = picture("ball", 320, 240);
    server.push(&old);
    let mut early = connect(server.port, "/stream").await;
    assert_eq!(
        next_frame(&mut early, 5 * SECOND).await.as_ref(),
        Some(&old),
        "fresh: shown at once"
    );
    // Wait until the frame is past its second, by the server's own account.
    assert!(
        eventually(5 * SECOND, || {
            status_blocking(server.port)["last_frame_age_seconds"]
                .as_f64()
                .is_some_and(|age| age > 1.05)
        })
        .await
    );
    let mut late = connect(server.port, "/stream").await;
    assert!(
        next_frame(&mut late, SECOND / 2).await.is_none(),
        "the stale frame is not shown as live"
    );
    server.push(&new);
    assert_eq!(
        next_frame(&mut late, 5 * SECOND).await.as_ref(),
        Some(&new),
        "the next one is"
    );
    // A snapshot waits for a fresh frame too (and gets the newest).
    let snapshot = http_get(server.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(snapshot.body, new);
}

/// Sends a close frame with `body` and returns the code of the server's close frame.
async fn close_answer(body: &[u8]) -> Option<u16> {
    let server = Live::fed(Settings::default());
    let mut stream = raw_websocket(server.port, "/stream").await;
    stream
        .write_all(&masked_frame(true, 0x8, body, [9, 8, 7, 6]))
        .await
        .expect("close frame is sent");
    raw_close_code(&mut stream, 5 * SECOND).await
}

fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

/// One test per RFC 6455 rule for a client's close frame: `name: body => the server's code`.
macro_rules! close_frame_cases {
    ($($name:ident: $body:expr => $answer:expr;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                assert_eq!(close_answer(&$body).await, Some($answer));
            }
        )+
    };
}

close_frame_cases! {
    close_without_a_body_is_answered_normally: [] => 1000;
    close_1000_is_answered_normally: close_body(1000, b"bye") => 1000;
    close_1001_is_answered_going_away: close_body(1001, b"") => 1001;
    close_1012_registered_code_is_accepted: close_body(1012, b"") => 1000;
    close_3000_library_code_is_accepted: close_body(3000, b"") => 1000;
    close_4999_application_code_is_accepted: close_body(4999, "ünïcode".as_bytes()) => 1000;
    close_with_a_one_byte_body_is_a_protocol_error: [0x03] => 1002;
    close_code_999_is_a_protocol_error: close_body(999, b"") => 1002;
    close_code_1004_is_a_protocol_error: close_body(1004, b"") => 1002;
    close_code_1005_is_a_protocol_error: close_body(1005, b"") => 1002;
    close_code_1006_is_a_protocol_error: close_body(1006, b"") => 1002;
    close_code_1015_is_a_protocol_error: close_body(1015, b"") => 1002;
    close_code_1016_is_a_protocol_error: close_body(1016, b"") => 1002;
    close_code_2999_is_a_protocol_error: close_body(2999, b"") => 1002;
    close_code_5000_is_a_protocol_error: close_body(5000, b"") => 1002;
    close_reason_that_is_not_utf8_is_invalid_data: close_body(1000, &[0xff, 0xfe]) => 1007;
}

/// The status the server answers an upgrade with, given extra header lines.
async fn upgrade_status(port: u16, extra: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(upgrade_request(port, "/stream", extra).as_bytes())
        .await
        .unwrap();
    read_response_head(&mut stream, 5 * SECOND).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_with_another_scheme_is_another_origin() {
    let server = Live::fed(Settings::default());
    let port = server.port;
    let same = format!("Origin: http://127.0.0.1:{port}\r\n");
    let https = format!("Origin: https://127.0.0.1:{port}\r\n");
    assert_eq!(upgrade_status(port, &same).await, Some(101));
    assert_eq!(upgrade_status(port, &https).await, Some(403));
    // Behind a reverse proxy that terminates TLS, the proxy says which scheme the page used.
    let proxied = format!("{https}X-Forwarded-Proto: https\r\n");
    assert_eq!(upgrade_status(port, &proxied).await, Some(101));
    let proxied_plain = format!("{same}X-Forwarded-Proto: https\r\n");
    assert_eq!(upgrade_status(port, &proxied_plain).await, Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_it_does_not_know_or_fmp4_without_h264_is_refused_and_jpeg_goes_on() {
    let server = Live::test_pattern(320, 240, 30, Settings::default());
    for (path, says) in [
        ("/stream?codec=h264&container=webm", "unknown container"),
        ("/stream?container=fmp4", "codec=h264&container=fmp4"),
    ] {
        let mut ws = connect(server.port, path).await;
        next_text_of_type(&mut ws, "hello", 5 * SECOND)
            .await
            .expect("a hello");
        let error = next_text_of_type(&mut ws, "error", 5 * SECOND)
            .await
            .expect("an error message");
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(says)),
            "{path}: {error}"
        );
        assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1003), "{path}");
    }
    // No H.264 source: fragmented MP4 is refused as raw H.264 is.
    let mut ws = connect(server.port, "/stream?codec=h264&container=fmp4").await;
    let error = next_text_of_type(&mut ws, "error", 5 * SECOND)
        .await
        .expect("an error message");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("no H.264")),
        "{error}"
    );
    let mut jpeg = connect(server.port, "/stream").await;
    assert!(count_frames(&mut jpeg, SECOND).await > 10, "JPEG goes on");
}
