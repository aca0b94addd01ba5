// SPDX-License-Identifier: MIT

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod events;
mod imp;

glib::wrapper! {
    pub struct WsJpegSink(ObjectSubclass<imp::WsJpegSink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

impl WsJpegSink {
    /// A `wsh264sink` of the pipeline serves H.264 on this element's port (`None`: no longer).
    pub(crate) fn offer_h264(&self, h264: Option<crate::WsH264Sink>) {
        self.imp().offer_h264(h264);
    }

    pub(crate) fn set_h264_size(&self, width: Option<u32>, height: Option<u32>) {
        if let Some(server) = self.imp().server() {
            server.set_h264_size(width, height);
        }
    }

    pub(crate) fn publish_h264(&self, access_unit: &[u8], capture_time_us: u64) {
        if let Some(server) = self.imp().server() {
            server.publish_h264(access_unit, capture_time_us);
        }
    }
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
