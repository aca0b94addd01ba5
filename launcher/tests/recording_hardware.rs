// SPDX-License-Identifier: MIT
//! With a working `nvv4l2h264enc` (a stand-in here), H.264 (for viewers and recordings)
//! takes the hardware path.

mod common;

use common::*;
use wsjpeg_launcher::h264::{self, H264Choice};
use wsjpeg_launcher::source::Source;

#[test]
fn auto_picks_the_jetson_h264_encoder_when_it_works() {
    common::client::init();
    if gst::ElementFactory::find("x264enc").is_none() {
        panic!("x264enc is needed for the stand-in (package gstreamer1.0-plugins-ugly)");
    }
    standins::register_working();
    standins::register_h264();
    let mut settings = config(Source::TestPattern).h264;
    let chosen = h264::encoder_text(&settings).unwrap();
    assert!(chosen.contains("nvv4l2h264enc"), "{chosen}");
    settings.choice = H264Choice::Nvv4l2h264enc;
    assert!(h264::encoder_text(&settings).is_ok());
}
