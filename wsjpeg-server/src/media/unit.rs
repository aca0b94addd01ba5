// SPDX-License-Identifier: MIT
//! An access unit as the track takes it.

use bytes::Bytes;

/// One access unit: Annex B, SPS and PPS in band before each IDR.
#[derive(Debug)]
pub struct AccessUnit {
    /// Increases by one for every unit the track takes.
    pub sequence: u64,
    pub keyframe: bool,
    /// Unix epoch µs at which the picture was captured.
    pub capture_time_us: u64,
    /// How long the picture is shown, µs: the buffer's duration, else the time since the unit
    /// before, else a frame at 30 fps.
    pub duration_us: u32,
    pub data: Bytes,
}
