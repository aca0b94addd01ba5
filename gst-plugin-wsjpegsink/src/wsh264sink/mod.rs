// SPDX-License-Identifier: MIT

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;

glib::wrapper! {
    pub struct WsH264Sink(ObjectSubclass<imp::WsH264Sink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

impl WsH264Sink {
    /// The H.264 viewers now, as the server counted them.
    pub(crate) fn set_viewers(&self, n: u32) {
        self.imp().set_viewers(n);
    }

    /// Asks upstream for a keyframe (with SPS and PPS).
    pub(crate) fn request_keyframe(&self) {
        self.imp().request_keyframe();
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // The debug category exists from registration on, so GST_DEBUG lists it.
    std::sync::LazyLock::force(&imp::CAT);
    gst::Element::register(
        Some(plugin),
        "wsh264sink",
        gst::Rank::NONE,
        WsH264Sink::static_type(),
    )
}
