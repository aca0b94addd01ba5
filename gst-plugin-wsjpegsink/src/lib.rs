// SPDX-License-Identifier: MIT
#![allow(unused_doc_comments)]

/**
 * plugin-wsjpeg:
 *
 * Serves live JPEG frames to browsers over WebSocket and MJPEG from an embedded HTTP server.
 *
 * Since: 0.1
 */
use gst::glib;

pub mod detections;
mod timing;
mod tracks;
mod wsh264sink;
mod wsjpegsink;

pub use wsh264sink::WsH264Sink;
pub use wsjpegsink::WsJpegSink;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    wsjpegsink::register(plugin)?;
    wsh264sink::register(plugin)
}

gst::plugin_define!(
    wsjpeg,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
