// SPDX-License-Identifier: MIT

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod events;
mod imp;

glib::wrapper! {
    pub struct WsJpegSink(ObjectSubclass<imp::WsJpegSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // The debug category exists from registration on, so GST_DEBUG lists it.
    std::sync::LazyLock::force(&imp::CAT);
    gst::Element::register(
        Some(plugin),
        "wsjpegsink",
        gst::Rank::NONE,
        WsJpegSink::static_type(),
    )
}

impl WsJpegSink {
    /// The element's server while it runs (from READY on), for an application that serves the
    /// same camera by other means (the launcher's RTSP server): it follows the server's H.264
    /// track and registers its clients there, so they wake the camera and show in `/status`.
    pub fn server(&self) -> Option<std::sync::Arc<wsjpeg_server::Server>> {
        self.imp().server()
    }
}
