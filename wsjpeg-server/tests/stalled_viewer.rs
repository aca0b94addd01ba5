// SPDX-License-Identifier: MIT
//! A viewer that stops reading must cost the others nothing and the server no memory.
//! Alone in its test binary so that the process's memory is the server's.

mod common;

use std::time::Duration;

use common::*;
use wsjpeg_server::Settings;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);
const FPS: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_reads_changes_nothing_for_the_others() {
    // Big frames make any per-viewer queue show up in the process's memory at once.
    let jpeg = big_frame(700_000);
    assert!(jpeg.len() > 200_000, "frame is {} bytes", jpeg.len());
    let server = Live::fed(Settings::default());
    let request = upgrade_request(server.port, "/stream", "");
    let stalled = [
        stalled_client(server.port, &request).await,
        stalled_client(server.port, &request).await,
    ];
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(connect(server.port, "/stream?meta=1").await);
    }
    assert!(
        eventually(5 * SECOND, || server.n_clients()
            == 3 + stalled.len() as u32)
        .await
    );

    let feeder = server.feed(jpeg, FPS);
    tokio::time::sleep(SECOND).await;
    let rss_start = rss_bytes();
    let tasks = viewers.into_iter().map(|mut ws| {
        let live = server.server.clone();
        let frames_in = move || live.snapshot().frames_in;
        tokio::spawn(async move {
            // Frames queued in the socket while the test was setting up are not the point.
            let warm_up = std::time::Instant::now() + SECOND;
            while std::time::Instant::now() < warm_up {
                next_frame(&mut ws, SECOND).await;
            }
            // What the viewer got, next to what the server took in over the same window (not
            // the viewer's own first and last sequence numbers, which a viewer that missed
            // frames at either end would make look complete).
            let taken_in_before = frames_in();
            let mut received = 0u64;
            let deadline = std::time::Instant::now() + 5 * SECOND;
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                let Some(frame) = next_frame(&mut ws, left).await else {
                    break;
                };
                parse_meta_header(&frame).expect("a meta header");
                received += 1;
            }
            (received, frames_in() - taken_in_before)
        })
    });
    let results = futures_util::future::join_all(tasks).await;
    let rss_end = rss_bytes();
    drop(feeder);

    let frames_in = server.frames_in();
    assert!(
        frames_in >= 250,
        "a few hundred frames went through, {frames_in}"
    );
    for result in results {
        let (received, taken_in) = result.unwrap();
        assert!(
            received as f64 >= 0.75 * taken_in as f64,
            "a reading viewer got {received} of the {taken_in} frames the server took in"
        );
    }
    // ~300 frames of ~250 KB went past two viewers that read none of them: queued, that would
    // be 150 MB. Latest-frame-wins keeps it to a frame or two each.
    let growth = rss_end.saturating_sub(rss_start);
    assert!(growth < 20 * 1024 * 1024, "memory grew by {growth} bytes");
    // The reading viewers have left; the stalled ones are still there, not kicked (the write
    // timeout is 30 s).
    assert!(eventually(5 * SECOND, || server.n_clients() == 2).await);
    let listed = status_blocking(server.port)["clients"].clone();
    for stream in &stalled {
        let address = stream.local_addr().unwrap().to_string();
        assert!(
            listed
                .as_array()
                .is_some_and(|clients| clients.iter().any(|c| c["address"] == address)),
            "the stalled viewer {address} is still served: {listed}"
        );
    }
}
