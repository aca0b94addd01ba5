// SPDX-License-Identifier: MIT
//! The launcher encodes H.264 only while someone asks for it: an H.264 viewer or an H.264
//! recording, sharing one encoder when both do.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use wsjpeg_launcher::h264::H264Choice;
use wsjpeg_launcher::recorder::{RecordFormat, RecordingConfig};
use wsjpeg_launcher::source::Source;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);

fn encoders(view: &wsjpeg_launcher::controller::CameraView) -> usize {
    view.h264_elements
        .iter()
        .filter(|f| f.as_str() == "x264enc")
        .count()
}

/// Reads access units until a keyframe that carries its SPS, or `None` after `within`.
async fn first_unit(ws: &mut WebSocket, within: Duration) -> Option<(bool, Vec<u8>)> {
    let frame = next_frame(ws, within).await?;
    let header = parse_meta_header(&frame)?;
    Some((header.keyframe, frame[header.len..].to_vec()))
}

fn has_sps(annex_b: &[u8]) -> bool {
    annex_b
        .windows(4)
        .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1F == 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h264_branch_exists_only_while_an_h264_viewer_watches() {
    let mut config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    let running = Running::start(config);

    let mut jpeg = connect(running.port, "/stream").await;
    assert!(next_frame(&mut jpeg, 5 * SECOND).await.is_some());
    assert!(
        always(SECOND, || running.view().h264_elements.is_empty()).await,
        "JPEG viewers only: no H.264 encoder"
    );
    assert!(!running.view().h264);

    let mut h264 = connect(running.port, "/stream?codec=h264").await;
    let (keyframe, annex_b) = first_unit(&mut h264, 5 * SECOND)
        .await
        .expect("an access unit");
    assert!(
        keyframe && has_sps(&annex_b),
        "it starts on a keyframe with its SPS"
    );
    let view = running.view();
    assert!(view.h264, "{view:?}");
    assert_eq!(encoders(&view), 1, "one encoder: {:?}", view.h264_elements);
    assert!(
        view.h264_elements.iter().any(|f| f == "h264parse"),
        "{:?}",
        view.h264_elements
    );
    let share = count_share(&mut jpeg, running.port, 2 * SECOND).await;
    share.assert_most("the JPEG viewer, beside the H.264 one");

    drop(h264);
    assert!(
        eventually(5 * SECOND, || running.view().h264_elements.is_empty()).await,
        "the last H.264 viewer gone: the encoder stops"
    );
    let view = running.view();
    assert!(view.running, "the camera goes on for the JPEG viewer");
    assert_eq!(view.h264_starts, 1);

    let mut again = connect(running.port, "/stream?codec=h264").await;
    let (keyframe, _) = first_unit(&mut again, 5 * SECOND).await.expect("units");
    assert!(keyframe);
    assert!(
        eventually(2 * SECOND, || running.view().h264_starts == 2).await,
        "started again for the next one: {:?}",
        running.view()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_recording_and_h264_viewers_share_one_encoder() {
    let dir = std::env::temp_dir().join(format!("wsjpeg-h264-share-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let mut config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    config.recording = Some(RecordingConfig {
        dir: dir.clone(),
        segment: Duration::from_secs(2),
        max_bytes: None,
        keep: None,
        format: RecordFormat::H264,
        autostart: true,
    });
    let running = Running::start(config);
    assert!(
        eventually(10 * SECOND, || running.view().recording
            && running.view().h264)
        .await,
        "the recording starts the encoder: {:?}",
        running.view()
    );

    let mut viewers = Vec::new();
    for _ in 0..2 {
        let mut ws = connect(running.port, "/stream?codec=h264").await;
        let (keyframe, annex_b) = first_unit(&mut ws, 5 * SECOND).await.expect("units");
        assert!(keyframe && has_sps(&annex_b));
        viewers.push(ws);
    }
    let view = running.view();
    assert_eq!(
        view.h264_starts, 1,
        "the viewers use the recording's encoder"
    );
    assert_eq!(encoders(&view), 1, "{:?}", view.h264_elements);

    drop(viewers);
    assert!(
        always(2 * SECOND, || running.view().h264).await,
        "the recording still needs the encoder"
    );
    let stopped = http_request(running.port, "POST", "/api/record/stop", &[], b"").await;
    assert_eq!(stopped.status, 202);
    assert!(
        eventually(5 * SECOND, || !running.view().h264).await,
        "nobody needs it any more"
    );
    assert_eq!(running.view().h264_starts, 1);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_units_carry_the_capture_time_of_their_camera_frame() {
    let mut config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    let running = Running::start(config);
    let jpeg = connect(running.port, "/stream?meta=1").await;
    let mut h264 = connect(running.port, "/stream?codec=h264").await;
    first_unit(&mut h264, 5 * SECOND).await.expect("units");

    let capture_times = |mut ws: WebSocket| async move {
        let mut times = Vec::new();
        let deadline = std::time::Instant::now() + 2 * SECOND;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            if let Some(header) = next_frame(&mut ws, left)
                .await
                .and_then(|frame| parse_meta_header(&frame))
            {
                times.push(header.capture_time_us);
            }
        }
        times
    };
    let jpeg_times = tokio::spawn(capture_times(jpeg));
    let h264_times = capture_times(h264).await;
    let jpeg_times = jpeg_times.await.expect("JPEG reader");
    // Each sink turns the pipeline clock into wall-clock time when the frame passes it: the
    // two agree to well within a millisecond, frames are 33 ms apart.
    let same = h264_times
        .iter()
        .filter(|t| jpeg_times.iter().any(|j| j.abs_diff(**t) < 1000))
        .count();
    assert!(
        h264_times.len() >= 45 && same * 10 >= h264_times.len() * 9,
        "an access unit says when its camera frame was taken, as the JPEG of that frame \
         does: {same} of {} found among {} JPEG capture times",
        h264_times.len(),
        jpeg_times.len()
    );
}

/// The header of the next access unit: its capture time (Unix µs) and keyframe flag.
async fn next_header(ws: &mut WebSocket, within: Duration) -> Option<(u64, bool)> {
    let frame = next_frame(ws, within).await?;
    let header = parse_meta_header(&frame)?;
    Some((header.capture_time_us, header.keyframe))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_h264_viewer_never_sees_the_past_of_a_stopped_encoder() {
    let mut config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    let running = Running::start(config);
    // A JPEG viewer keeps the camera open while the encoder stops and starts.
    let mut jpeg = connect(running.port, "/stream").await;
    assert!(next_frame(&mut jpeg, 5 * SECOND).await.is_some());

    let mut first = connect(running.port, "/stream?codec=h264").await;
    let mut last_seen = 0;
    for _ in 0..3 {
        let (capture, _) = next_header(&mut first, 10 * SECOND)
            .await
            .expect("units flow");
        last_seen = last_seen.max(capture);
    }
    drop(first);
    assert!(
        eventually(5 * SECOND, || !running.view().h264).await,
        "the encoder stops with its last viewer"
    );
    let gap = 3 * SECOND;
    tokio::time::sleep(gap).await;

    let mut late = connect(running.port, "/stream?codec=h264").await;
    let (capture, keyframe) = next_header(&mut late, 10 * SECOND)
        .await
        .expect("a unit for the late viewer");
    assert!(keyframe, "it starts on a keyframe");
    assert!(
        capture > last_seen + gap.as_micros() as u64 / 2,
        "its first unit was captured {} ms before the first viewer's last one: the past",
        (last_seen.saturating_sub(capture)) / 1000
    );
    drop(jpeg);
}
