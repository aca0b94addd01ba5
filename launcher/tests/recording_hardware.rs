// SPDX-License-Identifier: MIT
//! With a working `nvv4l2h264enc` (a stand-in here), H.264 recording takes the hardware path.

mod common;

use common::*;
use wsjpeg_launcher::recorder::{self, H264Choice};

#[test]
fn auto_picks_the_jetson_h264_encoder_when_it_works() {
    common::client::init();
    if gst::ElementFactory::find("x264enc").is_none() {
        panic!("x264enc is needed for the stand-in (package gstreamer1.0-plugins-ugly)");
    }
    standins::register_working();
    standins::register_h264();
    let chosen = recorder::h264_encoder(H264Choice::Auto).unwrap();
    assert!(chosen.contains("nvv4l2h264enc"), "{chosen}");
    assert!(recorder::h264_encoder(H264Choice::Nvv4l2h264enc).is_ok());
}
