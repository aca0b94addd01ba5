// SPDX-License-Identifier: MIT
//! With a working `nvv4l2h264enc` (a stand-in here), H.264 (for viewers and recordings)
//! takes the hardware path.

mod common;

use common::*;
use wsjpeg_launcher::h264::{self, H264Choice};
use wsjpeg_launcher::source::Source;

/// Once per process: the tests of this file run in parallel, and registering the same element
/// names from two threads at once races in GStreamer.
fn register_standins() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        standins::register_working();
        standins::register_h264();
    });
}

#[test]
fn auto_picks_the_jetson_h264_encoder_when_it_works() {
    common::client::init();
    if gst::ElementFactory::find("x264enc").is_none() {
        panic!("x264enc is needed for the stand-in (package gstreamer1.0-plugins-ugly)");
    }
    register_standins();
    let mut settings = config(Source::TestPattern).h264;
    let chosen = h264::encoder_text(&settings).unwrap();
    assert!(chosen.contains("nvv4l2h264enc"), "{chosen}");
    settings.choice = H264Choice::Nvv4l2h264enc;
    assert!(h264::encoder_text(&settings).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_viewers_get_the_jetson_encoder_and_ask_it_for_keyframes_with_force_idr() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use common::client::*;

    common::client::init();
    register_standins();
    let mut config = config(Source::TestPattern);
    config.h264.keyframe_interval = Duration::from_secs(5);
    let running = Running::start(config);
    let mut first = connect(running.port, "/stream?codec=h264").await;
    assert!(
        next_frame(&mut first, Duration::from_secs(10))
            .await
            .is_some()
    );
    let view = running.view();
    assert!(
        view.h264_elements.iter().any(|f| f == "nvv4l2h264enc"),
        "{:?}",
        view.h264_elements
    );
    // A second viewer joins between keyframes: the encoder is asked for one.
    let before = standins::FORCED_IDRS.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _second = connect(running.port, "/stream?codec=h264").await;
    assert!(
        eventually(Duration::from_secs(5), || standins::FORCED_IDRS
            .load(Ordering::Relaxed)
            > before)
        .await,
        "force-IDR was emitted"
    );
}
