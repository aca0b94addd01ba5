// SPDX-License-Identifier: MIT
//! LL-HLS on demand: players hold no connection, so the first playlist request opens the camera
//! and starts the H.264 encoder (shared with WebSocket H.264 viewers), and both stop once
//! requests end; a camera that cannot open is said in the answer.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use wsjpeg_launcher::h264::H264Choice;
use wsjpeg_launcher::source::Source;

const SECOND: Duration = Duration::from_secs(1);
/// The origin's idle time after the last request, the launcher's linger, and a margin.
const RELEASED_WITHIN: Duration = Duration::from_secs(6 + 1 + 5);

fn encoders(view: &wsjpeg_launcher::controller::CameraView) -> usize {
    view.h264_elements
        .iter()
        .filter(|f| f.as_str() == "x264enc")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_request_opens_the_camera_and_the_encoder_until_players_stop() {
    let mut config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    let running = Running::start(config);
    assert!(
        always(SECOND, || !running.view().running).await,
        "idle before anyone asks"
    );

    let playlist = http_get(running.port, "/hls/index.m3u8", &[], usize::MAX).await;
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    assert!(playlist.text().contains("#EXTINF:"), "{}", playlist.text());
    let view = running.view();
    assert!(view.running && view.h264, "{view:?}");
    assert_eq!(encoders(&view), 1);

    // A WebSocket H.264 viewer shares the encoder the players started.
    let mut h264 = connect(running.port, "/stream?codec=h264").await;
    assert!(next_frame(&mut h264, 5 * SECOND).await.is_some());
    let view = running.view();
    assert_eq!((encoders(&view), view.h264_starts), (1, 1), "{view:?}");
    drop(h264);

    // Players keep coming for a while: the run, the camera and the encoder go on.
    for _ in 0..8 {
        tokio::time::sleep(SECOND).await;
        let again = http_get(running.port, "/hls/index.m3u8", &[], usize::MAX).await;
        assert_eq!(again.status, 200);
    }
    let view = running.view();
    assert!(
        view.running && view.h264 && view.h264_starts == 1,
        "{view:?}"
    );

    assert!(
        eventually(RELEASED_WITHIN, || {
            let view = running.view();
            !view.running && view.h264_elements.is_empty()
        })
        .await,
        "players stopped: camera and encoder stop: {:?}",
        running.view()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_cannot_open_is_said_in_the_answer() {
    let mut config = config(Source::Device("/dev/video-missing".into()));
    config.h264.choice = H264Choice::X264enc;
    let running = Running::start(config);
    let started = std::time::Instant::now();
    let playlist = http_get(running.port, "/hls/index.m3u8", &[], usize::MAX).await;
    assert_eq!(playlist.status, 503, "{}", playlist.text());
    assert!(
        playlist.text().contains("Camera error") && playlist.text().contains("video-missing"),
        "{}",
        playlist.text()
    );
    assert_eq!(playlist.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < 10 * SECOND,
        "said without waiting out the timeout"
    );
    assert_eq!(health(running.port).await, 503, "the server goes on");
}
