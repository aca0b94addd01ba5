// SPDX-License-Identifier: MIT
//! When a buffer was captured, on the wall clock: the time every viewer's latency figure is
//! measured from.

use gst::prelude::*;
use gst_base::prelude::*;
use wsjpeg_server::protocol::unix_time_us;

/// The buffer's capture time, Unix µs: its running time mapped through the pipeline clock, or
/// now when it has no timestamp.
pub fn capture_time_us(sink: &gst_base::BaseSink, buffer: &gst::BufferRef) -> u64 {
    let (Some(pts), Some(base_time)) = (buffer.pts(), sink.base_time()) else {
        return unix_time_us();
    };
    let segment = sink.segment();
    let Some(running_time) = segment
        .downcast_ref::<gst::ClockTime>()
        .and_then(|s| s.to_running_time(pts))
    else {
        return unix_time_us();
    };
    wall_clock_us(sink.upcast_ref(), base_time + running_time).unwrap_or_else(unix_time_us)
}

/// A time of the pipeline clock on the wall clock (Unix µs); `None` without a clock or for a
/// time more than 10 s ago (a timestamping problem upstream, not latency).
pub fn wall_clock_us(element: &gst::Element, clock_time: gst::ClockTime) -> Option<u64> {
    let clock = element.clock()?;
    let now = unix_time_us();
    let age = clock.time().checked_sub(clock_time)?;
    (age < gst::ClockTime::from_seconds(10)).then(|| now.saturating_sub(age.useconds()))
}
