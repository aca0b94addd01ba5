// SPDX-License-Identifier: MIT
//! The LL-HLS window: the track's fragmented-MP4 fragments cut into partial segments and
//! segments, the newest few kept.
//!
//! A part is the fragments of a few access units back to back (about [`PART_TARGET_US`]); a
//! segment is its parts back to back, from a keyframe to the next one (so a segment is byte for
//! byte the concatenation of its parts). A part starts at every keyframe, so that a player may
//! start there (`INDEPENDENT=YES`). Parts are numbered across segments: the part a playlist
//! hints at next has its name before anyone knows whether a keyframe will open a new segment.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::media::{Format, PackagedUnit};

/// The longest a part may be (`PART-TARGET`): six frames at 30 fps, five at 25, three at 15,
/// twelve at 60 all come to 200 ms, within 5 % of it.
pub const PART_TARGET_US: u64 = 210_000;
/// `EXT-X-TARGETDURATION`, seconds: no segment is longer than this rounds to.
pub const TARGET_DURATION_S: u64 = 1;
/// A segment this long ends at the next unit even without a keyframe (it would round above
/// the target duration otherwise).
const MAX_SEGMENT_US: u64 = TARGET_DURATION_S * 1_000_000 + 490_000;
/// A keyframe this far into a segment starts the next one (a keyframe sooner, which someone
/// asked for, only starts a part).
const MIN_SEGMENT_US: u64 = 500_000;
/// A segment this long asks the encoder for a keyframe, so that the next one starts with one
/// (a little past the interval an encoder set to a keyframe a second keeps by itself).
pub const KEYFRAME_WANTED_US: u64 = TARGET_DURATION_S * 1_100_000;
/// Segments in the playlist (the specification wants at least six).
pub const PLAYLIST_SEGMENTS: usize = 8;
/// Segments whose parts the playlist lists, counted from the newest complete one.
pub const SEGMENTS_WITH_PARTS: usize = 3;
/// Segments kept beyond the playlist, for players a little behind it.
const RETAINED_SEGMENTS: usize = 4;
/// A gap in decode times this wide (the source stopped, the encoder restarted) starts a new
/// segment marked as a discontinuity.
const GAP_US: u64 = 500_000;

/// A finished part.
#[derive(Debug)]
pub struct Part {
    /// The part's number, counted across segments.
    pub number: u64,
    pub duration_us: u64,
    /// It starts with a keyframe.
    pub independent: bool,
    pub bytes: Bytes,
}

/// A segment: complete once the next one began.
#[derive(Debug)]
pub struct Segment {
    /// The media sequence number.
    pub msn: u64,
    /// The initialisation segment its fragments need.
    pub init: u64,
    /// The stream restarted (or changed its parameter sets) before it.
    pub discontinuity: bool,
    /// The capture time of its first picture, Unix µs (`EXT-X-PROGRAM-DATE-TIME`).
    pub start_us: u64,
    pub parts: Vec<Arc<Part>>,
    /// The whole segment, once complete.
    pub bytes: Option<Bytes>,
}

impl Segment {
    pub fn duration_us(&self) -> u64 {
        self.parts.iter().map(|p| p.duration_us).sum()
    }
}

/// The part being filled.
#[derive(Debug, Default)]
struct OpenPart {
    fragments: Vec<Bytes>,
    duration_us: u64,
    independent: bool,
}

/// Where the window is: what a blocked request waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The media sequence number of the segment being filled (older ones are complete); 0
    /// before the first.
    pub open_msn: u64,
    /// How many parts that segment has finished.
    pub open_parts: usize,
    /// The number of the next part to finish.
    pub next_part: u64,
    /// Whether any segment exists.
    pub started: bool,
    /// Whether a complete segment exists (players without low-latency support need one).
    pub complete: bool,
}

/// The window of one run of the stream.
#[derive(Debug)]
pub struct Window {
    /// Complete segments, oldest first, the ones kept beyond the playlist included.
    segments: VecDeque<Arc<Segment>>,
    /// The segment being filled.
    open: Option<Segment>,
    part: OpenPart,
    /// Initialisation segments by number, the newest last.
    inits: VecDeque<(u64, Bytes)>,
    next_msn: u64,
    next_part: u64,
    next_init: u64,
    /// Discontinuities that left the playlist (`EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    /// The decode time the next unit should have.
    expected_us: Option<u64>,
}

impl Window {
    /// An empty window whose first segment, part and initialisation segment get these
    /// numbers (numbers carry on across runs of one origin, so that they never go back).
    pub fn new(first_msn: u64, first_part: u64, first_init: u64) -> Self {
        Window {
            segments: VecDeque::new(),
            open: None,
            part: OpenPart::default(),
            inits: VecDeque::new(),
            next_msn: first_msn,
            next_part: first_part,
            next_init: first_init,
            discontinuity_sequence: 0,
            expected_us: None,
        }
    }

    /// Numbers the next window continues from: (segment, part, initialisation segment).
    pub fn next_numbers(&self) -> (u64, u64, u64) {
        (self.next_msn, self.next_part, self.next_init)
    }

    /// Takes the next access unit of the track. Returns whether the window changed (a unit
    /// before the first keyframe is dropped); `keyframe_wanted` tells the owner the open
    /// segment has grown past a keyframe interval without one.
    pub fn push(&mut self, unit: &PackagedUnit) -> Pushed {
        let init = if unit.keyframe {
            let packet = unit.packet(Format::Fmp4Init);
            packet.parts().first().cloned()
        } else {
            None
        };
        let new_init = init
            .as_ref()
            .is_some_and(|init| self.inits.back().is_none_or(|(_, current)| current != init));
        if self.open.is_none() && !(unit.keyframe && (new_init || !self.inits.is_empty())) {
            return Pushed::default();
        }
        let gap = self
            .expected_us
            .is_some_and(|expected| unit.capture_time_us.abs_diff(expected) > GAP_US);
        let open_duration = self
            .open
            .as_ref()
            .map_or(0, |s| s.duration_us() + self.part.duration_us);
        let new_segment = self.open.is_none()
            || (unit.keyframe && (new_init || gap || open_duration >= MIN_SEGMENT_US))
            || open_duration + u64::from(unit.duration_us) > MAX_SEGMENT_US;
        let mut changed = false;
        if new_segment || unit.keyframe {
            changed |= self.finish_part();
        }
        if new_segment {
            self.finish_segment();
            if let Some(init) = init.filter(|_| new_init) {
                self.inits.push_back((self.next_init, init));
                self.next_init += 1;
            }
            let init = self.inits.back().map_or(0, |(n, _)| *n);
            let after_another = !self.segments.is_empty();
            self.open = Some(Segment {
                msn: self.next_msn,
                init,
                discontinuity: after_another && (gap || new_init),
                start_us: unit.capture_time_us,
                parts: Vec::new(),
                bytes: None,
            });
            self.next_msn += 1;
            changed = true;
        }
        if self.part.fragments.is_empty() {
            self.part.independent = unit.keyframe;
        }
        self.part
            .fragments
            .extend(unit.packet(Format::Fmp4).parts().iter().cloned());
        self.part.duration_us += u64::from(unit.duration_us);
        self.expected_us = Some(unit.capture_time_us + u64::from(unit.duration_us));
        // Finish the part now if the next unit would not fit, rather than when it comes: a
        // player waiting for the part gets it a frame sooner.
        if self.part.duration_us + u64::from(unit.duration_us) > PART_TARGET_US {
            changed |= self.finish_part();
        }
        let open_duration = self
            .open
            .as_ref()
            .map_or(0, |s| s.duration_us() + self.part.duration_us);
        Pushed {
            changed,
            keyframe_wanted: open_duration >= KEYFRAME_WANTED_US,
        }
    }

    fn finish_part(&mut self) -> bool {
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        if self.part.fragments.is_empty() {
            return false;
        }
        let part = std::mem::take(&mut self.part);
        open.parts.push(Arc::new(Part {
            number: self.next_part,
            duration_us: part.duration_us,
            independent: part.independent,
            bytes: concat(&part.fragments),
        }));
        self.next_part += 1;
        true
    }

    fn finish_segment(&mut self) -> bool {
        let Some(mut segment) = self.open.take() else {
            return false;
        };
        if segment.parts.is_empty() {
            return false;
        }
        let parts: Vec<Bytes> = segment.parts.iter().map(|p| p.bytes.clone()).collect();
        segment.bytes = Some(concat(&parts));
        self.segments.push_back(Arc::new(segment));
        // The segment that just left the playlist takes its discontinuity with it.
        if let Some(left) = self
            .segments
            .len()
            .checked_sub(PLAYLIST_SEGMENTS + 1)
            .and_then(|i| self.segments.get(i))
            && left.discontinuity
        {
            self.discontinuity_sequence += 1;
        }
        while self.segments.len() > PLAYLIST_SEGMENTS + RETAINED_SEGMENTS {
            self.segments.pop_front();
        }
        let oldest_init = self.segments.front().map_or(u64::MAX, |s| s.init);
        while self.inits.len() > 1 && self.inits.front().is_some_and(|(n, _)| *n < oldest_init) {
            self.inits.pop_front();
        }
        true
    }

    /// Where the window is.
    pub fn progress(&self) -> Progress {
        Progress {
            open_msn: self.open.as_ref().map_or(self.next_msn, |s| s.msn),
            open_parts: self.open.as_ref().map_or(0, |s| s.parts.len()),
            next_part: self.next_part,
            started: self.open.is_some() || !self.segments.is_empty(),
            complete: !self.segments.is_empty(),
        }
    }

    /// The segments a playlist lists, oldest first, and the one being filled.
    pub fn listed(&self) -> (Vec<Arc<Segment>>, Option<&Segment>) {
        let skip = self.segments.len().saturating_sub(PLAYLIST_SEGMENTS);
        (
            self.segments.iter().skip(skip).cloned().collect(),
            self.open.as_ref(),
        )
    }

    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// A complete segment still kept.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|s| s.msn == msn)
            .and_then(|s| s.bytes.clone())
    }

    /// A finished part still kept.
    pub fn part(&self, number: u64) -> Option<Bytes> {
        let open = self.open.as_ref().map(|s| s.parts.iter()).into_iter();
        self.segments
            .iter()
            .rev()
            .flat_map(|s| s.parts.iter())
            .chain(open.flatten())
            .find(|p| p.number == number)
            .map(|p| p.bytes.clone())
    }

    pub fn init(&self, number: u64) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, b)| b.clone())
    }
}

/// What [`Window::push`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub changed: bool,
    pub keyframe_wanted: bool,
}

fn concat(pieces: &[Bytes]) -> Bytes {
    if let [one] = pieces {
        return one.clone();
    }
    let mut out = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
    for piece in pieces {
        out.extend_from_slice(piece);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::super::test_units::{FRAME_US, START_US, units};
    use super::*;

    fn window_of(units: &[Arc<PackagedUnit>]) -> Window {
        let mut window = Window::new(0, 0, 0);
        for unit in units {
            window.push(unit);
        }
        window
    }

    #[test]
    fn parts_and_segments_are_cut_at_keyframes_and_within_their_targets() {
        // Three seconds of 30 fps with a keyframe every 10 frames, the first unit an inter
        // frame (dropped: nothing can start there).
        let all = units(91, None);
        let window = window_of(&all[9..]);
        let (complete, open) = window.listed();
        assert!(complete.len() >= 3, "{} segments", complete.len());
        let mut next_part = 0;
        for segment in complete
            .iter()
            .map(|s| &**s)
            .chain(open.filter(|s| !s.parts.is_empty()))
        {
            assert!(
                segment.parts[0].independent,
                "a segment starts at a keyframe"
            );
            assert!(segment.duration_us() <= MAX_SEGMENT_US);
            for part in &segment.parts {
                assert_eq!(part.number, next_part, "parts are numbered across segments");
                next_part += 1;
                assert!(
                    part.duration_us <= PART_TARGET_US,
                    "{} µs",
                    part.duration_us
                );
                assert_eq!(window.part(part.number).as_ref(), Some(&part.bytes));
            }
            if let Some(bytes) = &segment.bytes {
                let joined: Vec<u8> = segment
                    .parts
                    .iter()
                    .flat_map(|p| p.bytes.to_vec())
                    .collect();
                assert_eq!(
                    &bytes[..],
                    &joined[..],
                    "a segment is its parts back to back"
                );
                assert_eq!(window.segment(segment.msn).as_ref(), Some(bytes));
            }
        }
        // A keyframe every 333 ms: one starts a part, the next (past 500 ms) a segment.
        assert_eq!(complete[0].start_us, all[10].capture_time_us);
        assert_eq!(complete[0].duration_us(), 20 * FRAME_US);
        assert!(complete.iter().all(|s| !s.discontinuity && s.init == 0));
        let progress = window.progress();
        assert_eq!(progress.next_part, next_part);
        assert!(progress.started && progress.complete);
        assert!(window.init(0).is_some_and(|init| &init[4..8] == b"ftyp"));
        assert_eq!(window.part(next_part + 5), None);
    }

    #[test]
    fn nothing_starts_before_a_keyframe() {
        let all = units(12, None);
        let mut window = Window::new(7, 70, 3);
        assert_eq!(
            window.push(&all[1]),
            Pushed::default(),
            "an inter frame first"
        );
        assert!(!window.progress().started);
        assert!(
            window.push(&all[10]).changed,
            "the keyframe starts segment 7"
        );
        let progress = window.progress();
        assert_eq!(
            (progress.open_msn, progress.started, progress.complete),
            (7, true, false)
        );
        assert!(
            window.init(3).is_some(),
            "the initialisation segment numbered on"
        );
    }

    #[test]
    fn a_gap_in_the_stream_starts_a_segment_after_a_discontinuity_which_the_sequence_counts_when_it_leaves()
     {
        let all = units(400, Some((40, 5_000_000)));
        let window = window_of(&all[..41]);
        let (complete, _) = window.listed();
        assert!(complete.iter().all(|s| !s.discontinuity));
        let window = window_of(&all[..60]);
        let (complete, open) = window.listed();
        let after = complete
            .iter()
            .map(|s| &**s)
            .chain(open)
            .find(|s| s.start_us > START_US + 5_000_000)
            .expect("a segment after the gap");
        assert!(after.discontinuity);
        assert_eq!(window.discontinuity_sequence(), 0);
        let window = window_of(&all);
        let (complete, _) = window.listed();
        assert_eq!(complete.len(), PLAYLIST_SEGMENTS);
        assert!(
            complete.iter().all(|s| !s.discontinuity),
            "it left the playlist"
        );
        assert_eq!(window.discontinuity_sequence(), 1, "and is counted");
        assert!(
            window
                .segment(complete[0].msn - RETAINED_SEGMENTS as u64)
                .is_some(),
            "kept a while"
        );
        assert!(
            window
                .segment(complete[0].msn - RETAINED_SEGMENTS as u64 - 1)
                .is_none()
        );
    }
}
