// SPDX-License-Identifier: MIT

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct WsH264Sink(ObjectSubclass<imp::WsH264Sink>) @extends gst_base::BaseSink, gst::Element, gst::Object;
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
