// SPDX-License-Identifier: MIT
//! An `nvjpegenc` that is installed but cannot reach PAUSED: `auto` falls back to jpegenc.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use wsjpeg_launcher::encoder::EncoderChoice;
use wsjpeg_launcher::encoder::{self, JpegPath};
use wsjpeg_launcher::source::Source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_software_when_the_hardware_fails() {
    init();
    standins::register_broken();
    assert!(gst::ElementFactory::find("nvjpegenc").is_some());
    assert!(!encoder::hardware_encoder_works(&format()));
    let offer = Source::TestPattern.probe().unwrap();
    assert_eq!(
        encoder::choose(EncoderChoice::Auto, &offer, &format()).unwrap(),
        JpegPath::Software
    );
    assert!(encoder::choose(EncoderChoice::Nvjpeg, &offer, &format()).is_err());

    let running = Running::start(config(Source::TestPattern));
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, Duration::from_secs(5)).await.is_some());
    assert!(
        eventually(Duration::from_secs(5), || running.view().path
            == Some("jpegenc"))
        .await
    );
}
