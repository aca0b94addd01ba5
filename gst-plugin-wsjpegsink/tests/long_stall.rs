// SPDX-License-Identifier: MIT
//! Viewers whose TCP window is full for a long time (a phone that went to sleep, a tab frozen
//! by the browser, a congested link) while big frames flow: the server holds about one frame
//! for each, the others get every frame, and a stalled viewer that wakes up is shown the
//! present, not a minute-old backlog.
//!
//! The server is given a `write-timeout` longer than the stall, so that the stalled viewers are
//! kept all along; with the default (30 s) they would be disconnected and their slots freed,
//! which `robustness.rs` tests.
//!
//! `WSJPEG_LONG_STALL_SECONDS` sets how long the stall lasts (default 60).
//! In this process and inside gst-launch-1.0, one at a time: alone in its test binary, so that
//! the process's memory is the server's.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);
const FPS: u32 = 30;
/// Memory the stalled viewers may cost all together, with two of them holding a ~250 KB
/// frame each plus allocator noise. Queued frames would be 7.5 MB per second per viewer.
const MAX_GROWTH: u64 = 20 * 1024 * 1024;

fn stall_duration() -> Duration {
    let seconds = std::env::var("WSJPEG_LONG_STALL_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(60.0);
    Duration::from_secs_f64(seconds)
}

/// The server's per-viewer figures (`/status`) for the viewer connected from `address`.
fn client_stats(server: &Host, address: std::net::SocketAddr) -> Option<serde_json::Value> {
    let status = server.status();
    status["clients"]
        .as_array()?
        .iter()
        .find(|c| c["address"] == address.to_string())
        .cloned()
}

on_both_hosts!(viewers_stalled_for_a_minute_cost_a_frame_each);

async fn viewers_stalled_for_a_minute_cost_a_frame_each(kind: HostKind) {
    let _alone = serial().await;
    let stall = stall_duration();
    // Noise at quality 20: about 250 KB, like a busy 720p camera frame.
    let jpeg = encode_jpeg(1280, 720, "snow", 20);
    assert!(jpeg.len() > 200_000, "frame is {} bytes", jpeg.len());
    let frame_len = jpeg.len() as u64;
    let write_timeout = stall.as_secs() + 30;
    let server = Host::repeating(kind, &jpeg, FPS, &format!("write-timeout={write_timeout}"));
    let port = server.port();

    let mut ws_stalled = stalled_client(port, &upgrade_request(port, "/stream?meta=1", "")).await;
    let mjpeg_stalled = stalled_client(
        port,
        &format!("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    )
    .await;
    let mut reader = connect(port, "/stream?meta=1").await;
    assert!(eventually(5 * SECOND, || server.n_clients() == 3).await);

    // Long enough for the stalled sockets' buffers to fill and the allocator to settle.
    measure_delivery(&mut reader, 3 * SECOND).await;
    let rss_start = server.rss_bytes();
    let frames_in_start = server.frames_in();

    // The reader reads throughout while the test samples memory once a second.
    let reading = tokio::spawn(async move { (measure_delivery(&mut reader, stall).await, reader) });
    let started = Instant::now();
    let mut rss_max = rss_start;
    while started.elapsed() < stall {
        tokio::time::sleep(SECOND.min(stall.saturating_sub(started.elapsed()))).await;
        rss_max = rss_max.max(server.rss_bytes());
    }
    let (delivery, mut reader) = reading.await.expect("the reader did not panic");
    let frames_in = server.frames_in() - frames_in_start;
    let ws_figures = client_stats(&server, ws_stalled.local_addr().unwrap());
    let mjpeg_figures = client_stats(&server, mjpeg_stalled.local_addr().unwrap());
    eprintln!(
        "{kind:?}: {stall:?} stall, {frames_in} frames of {frame_len} bytes in; reader {delivery:?} \
         ({:.1} fps); RSS {} -> max {} MB; stalled WebSocket {ws_figures:?}; stalled MJPEG \
         {mjpeg_figures:?}",
        delivery.fps(),
        rss_start / 1_000_000,
        rss_max / 1_000_000
    );

    // render() never waits for a viewer: a fan-out that blocked on the stalled sockets would
    // hold the source back to nothing.
    assert!(
        frames_in as f64 >= 0.5 * FPS as f64 * stall.as_secs_f64(),
        "the source was held back: {frames_in} frames"
    );
    assert!(
        delivery.ratio() >= 0.9,
        "the reading viewer got {} of {} frames",
        delivery.received,
        delivery.published
    );
    assert!(
        delivery.received as f64 >= 0.9 * frames_in as f64,
        "the reading viewer got {} of the {frames_in} frames in",
        delivery.received
    );
    let growth = rss_max.saturating_sub(rss_start);
    assert!(
        growth < MAX_GROWTH,
        "memory grew by {growth} bytes over the stall"
    );
    // Both stalled viewers are still connected: stalled is not gone while the write timeout
    // has not passed.
    assert_eq!(server.n_clients(), 3);
    // What went out before the windows closed sits in kernel socket buffers, not in the
    // process: every viewer socket gets a 256 KB send buffer (the kernel doubles it), so a
    // stalled viewer holds about a frame there, not seconds of video.
    for (what, figures, in_flight) in [
        ("WebSocket", ws_figures, 512 * 1024 + 2 * frame_len),
        ("MJPEG", mjpeg_figures, 512 * 1024 + 3 * frame_len),
    ] {
        let figures = figures.unwrap_or_else(|| panic!("the stalled {what} viewer is listed"));
        let sent = figures["bytes_sent"].as_u64().expect("bytes_sent");
        assert!(
            sent <= in_flight,
            "the stalled {what} viewer was sent {sent} bytes with its window full"
        );
    }

    // The stalled WebSocket viewer wakes up: after what was in flight it gets the newest
    // frame, not a backlog.
    let latest_before = server.frames_in();
    let mut stale_bytes = 0u64;
    let caught_up = tokio::time::timeout(10 * SECOND, async {
        // Skip the handshake answer.
        read_response_head(&mut ws_stalled, 5 * SECOND).await;
        loop {
            let frame = read_server_frame(&mut ws_stalled, 5 * SECOND)
                .await
                .expect("the woken viewer is served");
            if frame.opcode == 0x2 {
                let sequence = parse_meta_header(&frame.payload)
                    .expect("a meta header")
                    .sequence;
                if sequence >= latest_before {
                    return sequence;
                }
                stale_bytes += frame.payload.len() as u64;
            }
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "the woken viewer reaches the live frames"
    );
    eprintln!("woken viewer: {stale_bytes} bytes of older frames were in flight");
    assert!(
        stale_bytes <= 8 * frame_len,
        "the woken viewer first got {stale_bytes} bytes of old frames"
    );
    let _ = reader.close(None).await;
    drop(mjpeg_stalled);
    drop(ws_stalled);
    server.finish();
}
