// SPDX-License-Identifier: MIT

use gst::glib;
use gst::prelude::*;

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
