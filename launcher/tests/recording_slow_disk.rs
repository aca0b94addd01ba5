// SPDX-License-Identifier: MIT
//! A disk slower than the camera (a stand-in `filesink`, for the whole process): recorded frames
//! are dropped at the recording's queue and counted, live ones are not.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use wsjpeg_launcher::encoder::Format;
use wsjpeg_launcher::recorder::{RecordFormat, RecordingConfig};
use wsjpeg_launcher::source::Source;

const SECOND: Duration = Duration::from_secs(1);

async fn frames_dropped(port: u16) -> u64 {
    let status = http_get(port, "/status", &[], usize::MAX).await.json();
    status["recording"]["frames_dropped"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_drops_recorded_frames_and_streaming_keeps_its_rate() {
    init();
    standins::register_slow_filesink();
    let dir = unique_temp_dir("slow-disk");
    // Noise hardly compresses: about 14 MB/s of JPEG for a disk that takes 1 MB/s.
    let mut config = config(Source::Fragment(
        "videotestsrc is-live=true pattern=snow".into(),
    ));
    config.format = Format {
        width: 640,
        height: 480,
        fps: 30,
        quality: 100,
    };
    config.recording = Some(RecordingConfig {
        dir: dir.clone(),
        segment: Duration::from_secs(60),
        max_bytes: None,
        keep: None,
        format: RecordFormat::Mjpeg,
        autostart: true,
    });
    let running = Running::start(config);
    let first_drops = wait_for(30 * SECOND, || async {
        let dropped = frames_dropped(running.port).await;
        (dropped > 0).then_some(dropped)
    })
    .await
    .expect("frames are dropped at the recording queue and counted");
    let mut viewer = connect(running.port, "/stream?meta=1").await;
    assert!(next_frame(&mut viewer, 5 * SECOND).await.is_some());
    let frames_in = || {
        status_blocking(running.port)["frames"]["in"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = frames_in();
    let delivery = measure_delivery(&mut viewer, 3 * SECOND).await;
    let taken_in = frames_in() - before;
    let status = http_get(running.port, "/status", &[], usize::MAX)
        .await
        .json();
    let recording = &status["recording"];
    assert!(
        recording["frames_dropped"].as_u64() > Some(first_drops),
        "still dropping: {first_drops}, then {recording}"
    );
    assert_eq!(
        recording["active"], true,
        "a slow disk is no failure: {recording}"
    );
    assert!(recording["error"].is_null(), "{recording}");
    // The camera still runs at its rate (the recording's queue is the only one that drops),
    // and the viewer gets what the camera gives.
    assert!(
        taken_in as f64 >= 0.5 * 30.0 * delivery.seconds,
        "the camera was held back by the disk: {taken_in} frames in {:.1} s",
        delivery.seconds
    );
    Share {
        received: delivery.received as usize,
        taken_in,
    }
    .assert_most("the viewer, while the disk is slow");
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
