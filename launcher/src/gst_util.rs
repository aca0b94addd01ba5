// SPDX-License-Identifier: MIT
//! Small GStreamer helpers the pipeline modules share.

use std::time::Duration;

use gst::prelude::*;

/// The text of the first error message on a pipeline's bus.
pub fn take_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let message = bus.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(err) => Some(err.error().to_string()),
        _ => None,
    }
}

/// Whether the pipeline of this gst-launch text builds and reaches PAUSED within `timeout`:
/// how an encoder is tried (with a test source, never the camera) before it is chosen.
pub fn reaches_paused(text: &str, timeout: Duration) -> bool {
    let Ok(pipeline) = gst::parse::launch(text) else {
        return false;
    };
    let timeout = gst::ClockTime::from_nseconds(timeout.as_nanos().min(u64::MAX as u128) as u64);
    let reached = pipeline.set_state(gst::State::Paused).is_ok()
        && matches!(pipeline.state(timeout), (Ok(_), gst::State::Paused, _));
    let _ = pipeline.set_state(gst::State::Null);
    reached
}

/// The same frame (memory shared, not copied) stamped with `capture` on `target`'s running time.
pub fn retimed(
    buffer: &gst::Buffer,
    capture: Option<gst::ClockTime>,
    target: &gst_app::AppSrc,
    caps: Option<&gst::Caps>,
) -> gst::Buffer {
    if let Some(caps) = caps
        && target.caps().as_ref() != Some(caps)
    {
        target.set_caps(Some(caps));
    }
    let mut buffer = buffer.clone();
    let running = capture
        .zip(target.base_time())
        .and_then(|(capture, base)| capture.checked_sub(base));
    let writable = buffer.make_mut();
    writable.set_dts(gst::ClockTime::NONE);
    writable.set_pts(running);
    buffer
}
