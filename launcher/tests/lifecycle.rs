// SPDX-License-Identifier: MIT
//! The camera runs only while someone watches, survives loss, and picks its JPEG path.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use wsjpeg_launcher::encoder::EncoderChoice;
use wsjpeg_launcher::encoder::{self, JpegPath};
use wsjpeg_launcher::source::Source;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_runs_only_while_someone_watches() {
    let mut config = config(Source::TestPattern);
    config.linger = Duration::from_millis(100);
    let running = Running::start(config);
    assert!(
        always(Duration::from_millis(300), || !running.view().running).await,
        "no viewer: the camera is not opened"
    );

    let mut ws = connect(running.port, "/stream").await;
    assert!(
        next_frame(&mut ws, 5 * SECOND).await.is_some(),
        "frames arrive"
    );
    assert!(running.view().running);
    assert_eq!(
        running.view().path,
        Some("jpegenc"),
        "no camera MJPEG, no Jetson: software"
    );
    drop(ws);
    assert!(
        eventually(5 * SECOND, || !running.view().running).await,
        "after the linger the camera is released"
    );
    assert_eq!(running.view().starts, 1);

    // A second cycle works the same way.
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    assert!(eventually(5 * SECOND, || running.view().starts == 2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_within_the_linger_keeps_the_camera_running() {
    // Far longer than the test: the reload is within the linger however slow the machine.
    let mut config = config(Source::TestPattern);
    config.linger = Duration::from_secs(600);
    let running = Running::start(config);
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    assert_eq!(running.view().starts, 1);

    drop(ws);
    assert!(
        viewers_become(running.port, 0).await,
        "the server saw the viewer leave"
    );
    assert!(running.view().running, "lingering");
    let mut reloaded = connect(running.port, "/stream").await;
    assert!(next_frame(&mut reloaded, 5 * SECOND).await.is_some());
    assert!(
        always(SECOND, || running.view().running
            && running.view().starts == 1)
        .await,
        "the reload did not restart the camera: {:?}",
        running.view()
    );
}

/// Waits until the server counts `n` viewers.
async fn viewers_become(port: u16, n: u64) -> bool {
    wait_for(5 * SECOND, || async {
        let status = http_get(port, "/status", &[], usize::MAX).await.json();
        (status["connected_clients"] == n).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_viewer_keeps_the_camera_running() {
    let mut config = config(Source::TestPattern);
    config.linger = Duration::from_millis(100);
    let running = Running::start(config);
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    // Pause is not leaving: the viewer stays connected and keeps the camera wanted.
    send_json(&mut ws, serde_json::json!({"type": "pause"})).await;
    assert!(
        always(SECOND, || running.view().running
            && running.view().starts == 1)
        .await,
        "ten lingers later the camera still runs, never restarted: {:?}",
        running.view()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_camera_before_the_control_loop_returns() {
    let dir = unique_temp_dir("camera-file");
    let camera = dir.join("camera.raw");
    // Sparse: endless black frames that take no disk space.
    std::fs::File::create(&camera)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let source = Source::Fragment(format!(
        "filesrc location={} blocksize=115200 \
         ! rawvideoparse width=320 height=240 format=i420 framerate=30/1 ! clocksync",
        camera.display()
    ));
    let mut running = Running::start(config(source));
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    assert!(holds_open(&camera), "the running camera has its file open");
    running.shutdown();
    assert!(!holds_open(&camera), "released before the loop returned");
    assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1001));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether this process has `path` open.
fn holds_open(path: &std::path::Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .any(|target| target == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_request_wakes_the_camera() {
    let running = Running::start(config(Source::TestPattern));
    let response = http_get(running.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(response.status, 200);
    assert!(is_complete_jpeg(&response.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_loss_keeps_the_viewer_and_streaming_resumes() {
    // A camera that fails after 45 frames, every time it is started.
    let source = Source::Fragment(
        "videotestsrc is-live=true ! video/x-raw,framerate=30/1 ! identity error-after=45".into(),
    );
    let running = Running::start(config(source));
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    let error = wait_camera_state(&mut ws, "error", 10 * SECOND)
        .await
        .expect("the viewer is told the camera failed");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "with the reason: {error}"
    );
    assert!(eventually(5 * SECOND, || running.view().error.is_some()).await);
    // Still connected; the launcher restarts the camera and frames come back.
    let frame = next_frame(&mut ws, 10 * SECOND).await;
    assert!(frame.is_some(), "frames resume after the retry");
    assert!(eventually(5 * SECOND, || running.view().starts >= 2).await);
    let status = http_get(running.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(status["connected_clients"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_device_is_retried_not_fatal() {
    let running = Running::start(config(Source::Device("/dev/video-does-not-exist".into())));
    let mut ws = connect(running.port, "/stream").await;
    let error = wait_camera_state(&mut ws, "error", 5 * SECOND)
        .await
        .expect("an error status");
    assert_eq!(
        error["message"], "No camera at /dev/video-does-not-exist — is it plugged in?",
        "the message names the device in plain words: {error}"
    );
    let health = http_get(running.port, "/healthz", &[], usize::MAX).await;
    assert_eq!(health.status, 503);
    send_json(&mut ws, serde_json::json!({"type": "time", "client": 1})).await;
    assert!(
        next_text_of_type(&mut ws, "time", 5 * SECOND)
            .await
            .is_some(),
        "the viewer is still served"
    );
}

#[test]
fn camera_mjpeg_is_passed_through_without_an_encoder() {
    init();
    // Stands in for a UVC camera that offers MJPEG at the asked size and rate.
    let camera = "videotestsrc is-live=true ! jpegenc";
    let source = Source::Fragment(camera.into());
    let offer = source.probe().expect("the stand-in camera opens");
    let format = format();
    let path = encoder::choose(EncoderChoice::Auto, &offer, &format).unwrap();
    assert_eq!(path, JpegPath::Passthrough);
    let text = encoder::camera_pipeline_text(&source, &offer, path, &format, false);
    let after_camera = text.strip_prefix(camera).unwrap();
    assert!(after_camera.contains("jpegparse"), "{text}");
    for encoder in ["jpegenc", "nvjpegenc", "videoconvert", "jpegdec"] {
        assert!(
            !after_camera.contains(encoder),
            "no {encoder} after the camera: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_streams_the_cameras_own_jpeg() {
    let source = Source::Fragment("videotestsrc is-live=true ! jpegenc".into());
    let running = Running::start(config(source));
    let mut ws = connect(running.port, "/stream").await;
    let frame = next_frame(&mut ws, 5 * SECOND).await.expect("a frame");
    assert!(is_complete_jpeg(&frame));
    assert!(eventually(5 * SECOND, || running.view().path == Some("passthrough")).await);
    let status = http_get(running.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(status["encoder"], "passthrough");
    assert_eq!(status["settings"]["width"], 320);
}

#[test]
fn forced_passthrough_fails_clearly_for_a_raw_only_source() {
    init();
    let offer = Source::TestPattern.probe().unwrap();
    let err = encoder::choose(EncoderChoice::Passthrough, &offer, &format()).unwrap_err();
    assert!(
        err.to_string().contains("offers no JPEG at 320x240"),
        "{err}"
    );
}

#[test]
fn forced_nvjpeg_fails_clearly_without_a_jetson() {
    init();
    let offer = Source::TestPattern.probe().unwrap();
    let err = encoder::choose(EncoderChoice::Nvjpeg, &offer, &format()).unwrap_err();
    assert!(err.to_string().contains("nvjpegenc"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_on_runs_without_viewers() {
    let mut config = config(Source::TestPattern);
    config.always_on = true;
    let running = Running::start(config);
    assert!(eventually(5 * SECOND, || running.view().running).await);
    // And it stays running: never released with nobody watching, well past the linger (0.8 s),
    // nor restarted.
    assert!(
        always(3 * SECOND, || {
            let view = running.view();
            view.running && view.starts == 1
        })
        .await,
        "always on: {:?}",
        running.view()
    );
}
