// SPDX-License-Identifier: MIT
//! Low-Latency HLS from the H.264 track's fragmented MP4: the window of partial segments and
//! segments, their names, the playlist, blocking reloads, and the origin that runs while
//! players ask. HTTP is `hls_http`'s job.

mod directive;
mod names;
mod origin;
pub mod playlist;
mod window;

pub use directive::{ADVANCE_PART_LIMIT, Directive};
pub use names::Object;
pub use origin::{HlsFigures, Origin, Session, StartRefused};
pub use window::{PART_TARGET_US, TARGET_DURATION_S};

#[cfg(test)]
mod test_units {
    use std::sync::Arc;

    use crate::media::{self, Next, PackagedUnit, VideoTrack};

    /// x264's 320x240 ball, 30 frames with a keyframe every 10.
    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/ball-320x240-30.h264");
    pub const FRAME_US: u64 = 33_333;
    pub const START_US: u64 = 1_765_000_000_000_000;

    /// `count` units of the fixture, over and over, one a frame from `START_US` on, each
    /// taken from a track as a server's follower takes it. `gap_after` (a unit index and µs)
    /// moves the capture times of every later unit on by that much.
    pub fn units(count: usize, gap_after: Option<(usize, u64)>) -> Vec<Arc<PackagedUnit>> {
        let stream = media::access_units(FIXTURE);
        let track = VideoTrack::new();
        let mut out = Vec::new();
        let mut gap = 0;
        for (i, data) in stream.iter().cycle().take(count).enumerate() {
            if let Some((after, by)) = gap_after
                && i == after
            {
                gap = by;
            }
            let at = START_US + i as u64 * FRAME_US + gap;
            let sequence = track.publish_timed(data.clone(), at, Some(FRAME_US as u32));
            if let Next::Units(units) = track.next_units(sequence.checked_sub(1))
                && let Some(unit) = units.into_iter().find(|u| u.sequence == sequence)
            {
                out.push(unit);
            }
        }
        out
    }
}
