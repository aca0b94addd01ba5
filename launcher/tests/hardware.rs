// SPDX-License-Identifier: MIT
//! With a working `nvjpegenc` (a stand-in here), `auto` takes the hardware path.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use wsjpeg_launcher::encoder::EncoderChoice;
use wsjpeg_launcher::encoder::{self, JpegPath};
use wsjpeg_launcher::source::Source;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_picks_the_hardware_encoder_when_it_works() {
    init();
    standins::register_working();
    assert!(encoder::hardware_encoder_works(&format()));
    let offer = Source::TestPattern.probe().unwrap();
    assert_eq!(
        encoder::choose(EncoderChoice::Auto, &offer, &format()).unwrap(),
        JpegPath::Hardware
    );

    let running = Running::start(config(Source::TestPattern));
    let mut ws = connect(running.port, "/stream").await;
    let frame = next_frame(&mut ws, Duration::from_secs(5))
        .await
        .expect("frames through nvvidconv ! nvjpegenc");
    assert!(is_complete_jpeg(&frame));
    assert!(
        eventually(Duration::from_secs(5), || running.view().path
            == Some("nvjpegenc"))
        .await
    );
    let status = http_get(running.port, "/status", &[], usize::MAX)
        .await
        .json();
    assert_eq!(status["encoder"], "nvjpegenc");
    assert_eq!(status["settings"]["width"], 320);
}
