// SPDX-License-Identifier: MIT
//! The video track: access units in, in order from a keyframe, to every follower.
//!
//! Latest frame wins cannot hold for inter frames, which need every frame since their keyframe.
//! So each follower keeps a cursor: it gets every access unit in order while it keeps up; one
//! that falls more than a few units behind drops whole units until the next keyframe (and asks
//! for one), so it is never more than a keyframe interval stale and the track keeps one group
//! of pictures, not a queue per follower.
//!
//! The track's producer (the element that encodes) is told how many follow it, so that it may
//! encode only while someone watches, and is asked for keyframes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::annexb::{codec_string, is_keyframe};
use super::packager::PackagedUnit;
use super::unit::AccessUnit;
use crate::sync::lock;

/// A follower this many access units behind the newest drops to the next keyframe.
pub const MAX_BACKLOG: u64 = 6;
/// Keyframes are asked of the producer at most this often, whatever joins or falls behind.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// At most this much of a group of pictures is kept (an encoder that sends no keyframe for
/// long would otherwise grow it without bound); followers that need older units resync.
const MAX_GOP_UNITS: usize = 600;
const MAX_GOP_BYTES: usize = 16 * 1024 * 1024;
/// A group of pictures whose newest unit came this long ago is the past of a source that
/// stopped (an encoder stopped, a pipeline paused): a follower that starts waits for a fresh
/// keyframe instead of being shown it.
const STALE_AFTER: Duration = Duration::from_secs(2);
/// A unit's duration when nothing tells it: a frame at 30 fps.
const DEFAULT_DURATION_US: u32 = 33_333;

/// What followers are told about the stream: its codec string and size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackInfo {
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The element that feeds a track. Called on the server's threads: return at once.
pub trait Producer: Send + Sync {
    /// Asks the encoder for a keyframe with its parameter sets.
    fn request_keyframe(&self);
    /// `n` followers now (also called once when the producer is attached).
    fn followers_changed(&self, n: u32);
}

/// Another producer already feeds the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerTaken;

/// The access units since the newest keyframe.
#[derive(Debug, Default)]
struct Gop {
    units: VecDeque<Arc<PackagedUnit>>,
    bytes: usize,
    /// When the newest unit came.
    newest_at: Option<Instant>,
}

impl Gop {
    fn push(&mut self, unit: Arc<PackagedUnit>, now: Instant) {
        if unit.keyframe {
            self.clear();
        }
        self.newest_at = Some(now);
        self.bytes += unit.data.len();
        self.units.push_back(unit);
        while self.units.len() > MAX_GOP_UNITS || self.bytes > MAX_GOP_BYTES {
            match self.units.pop_front() {
                Some(old) => self.bytes -= old.data.len(),
                None => break,
            }
        }
    }

    fn clear(&mut self) {
        self.units.clear();
        self.bytes = 0;
        self.newest_at = None;
    }
}

/// One H.264 stream, shared by its producer and every server that carries it.
pub struct VideoTrack {
    gop: Mutex<Gop>,
    /// The sequence number of the newest access unit; followers wait on it.
    newest: watch::Sender<u64>,
    next_sequence: AtomicU64,
    /// The capture time of the newest unit.
    last_capture_us: AtomicU64,
    info: Mutex<TrackInfo>,
    /// Taken before `producer` when both are.
    followers: Mutex<u32>,
    producer: Mutex<Option<Arc<dyn Producer>>>,
    last_request: Mutex<Option<Instant>>,
    /// A keyframe was wanted within the interval of the last request: asked for once the
    /// interval is over, unless a keyframe came first.
    request_deferred: AtomicBool,
}

impl std::fmt::Debug for VideoTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoTrack")
            .field("followers", &self.followers())
            .finish_non_exhaustive()
    }
}

impl Default for VideoTrack {
    fn default() -> Self {
        VideoTrack {
            gop: Mutex::new(Gop::default()),
            newest: watch::Sender::new(0),
            next_sequence: AtomicU64::new(1),
            last_capture_us: AtomicU64::new(0),
            info: Mutex::new(TrackInfo::default()),
            followers: Mutex::new(0),
            producer: Mutex::new(None),
            last_request: Mutex::new(None),
            request_deferred: AtomicBool::new(false),
        }
    }
}

impl VideoTrack {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Attaches the producer: from now on viewers are offered the track, and the producer
    /// hears how many follow it. A track has one producer; `Err` if another is attached.
    pub fn attach(&self, producer: Arc<dyn Producer>) -> Result<(), ProducerTaken> {
        let followers = lock(&self.followers);
        {
            let mut current = lock(&self.producer);
            if current.is_some() {
                return Err(ProducerTaken);
            }
            *current = Some(producer.clone());
        }
        producer.followers_changed(*followers);
        Ok(())
    }

    /// The producer left, and the stream with it: the next follower starts at a new keyframe.
    /// Nothing happens if `producer` is not the one attached.
    pub fn detach(&self, producer: &Arc<dyn Producer>) {
        let _followers = lock(&self.followers);
        let mut current = lock(&self.producer);
        let same = current
            .as_ref()
            .is_some_and(|c| std::ptr::addr_eq(Arc::as_ptr(c), Arc::as_ptr(producer)));
        if same {
            *current = None;
            lock(&self.gop).clear();
        }
    }

    /// Whether a producer feeds the track (it may encode only while someone follows).
    pub fn has_producer(&self) -> bool {
        lock(&self.producer).is_some()
    }

    /// Takes an access unit. Returns its sequence number.
    pub fn publish(&self, data: Bytes, capture_time_us: u64) -> u64 {
        self.publish_timed(data, capture_time_us, None)
    }

    /// Takes an access unit that lasts `duration_us` (when the producer knows). Returns its
    /// sequence number.
    pub fn publish_timed(
        &self,
        data: Bytes,
        capture_time_us: u64,
        duration_us: Option<u32>,
    ) -> u64 {
        let keyframe = is_keyframe(&data);
        if keyframe && let Some(codec) = codec_string(&data) {
            let mut info = lock(&self.info);
            if info.codec.as_deref() != Some(codec.as_str()) {
                info.codec = Some(codec);
            }
        }
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let previous = self
            .last_capture_us
            .swap(capture_time_us, Ordering::Relaxed);
        let duration_us = duration_us
            .or_else(|| {
                let gap = capture_time_us.checked_sub(previous)?;
                u32::try_from(gap)
                    .ok()
                    .filter(|&gap| gap > 0 && gap < 1_000_000)
            })
            .unwrap_or(DEFAULT_DURATION_US);
        let unit = Arc::new(PackagedUnit::new(AccessUnit {
            sequence,
            keyframe,
            capture_time_us,
            duration_us,
            data,
        }));
        lock(&self.gop).push(unit, Instant::now());
        self.newest.send_replace(sequence);
        if keyframe {
            self.request_deferred.store(false, Ordering::Relaxed);
        } else if self.request_deferred.load(Ordering::Relaxed) {
            self.request_keyframe();
        }
        sequence
    }

    /// The size of the pictures, from the producer's caps.
    pub fn set_size(&self, width: Option<u32>, height: Option<u32>) {
        let mut info = lock(&self.info);
        info.width = width;
        info.height = height;
    }

    pub fn info(&self) -> TrackInfo {
        lock(&self.info).clone()
    }

    /// Counts a follower until the returned guard is dropped; the producer is told.
    pub fn follow(self: &Arc<Self>) -> Following {
        self.add_followers(1);
        Following {
            track: self.clone(),
            newest: self.newest.subscribe(),
        }
    }

    pub fn followers(&self) -> u32 {
        *lock(&self.followers)
    }

    fn add_followers(&self, delta: i32) {
        let mut followers = lock(&self.followers);
        *followers = followers.saturating_add_signed(delta);
        if let Some(producer) = lock(&self.producer).clone() {
            producer.followers_changed(*followers);
        }
    }

    /// Asks for a keyframe, at most every [`KEYFRAME_REQUEST_INTERVAL`]; one wanted sooner
    /// is asked for when that time is over (if no keyframe came meanwhile).
    pub fn request_keyframe(&self) {
        {
            let mut last = lock(&self.last_request);
            if last.is_some_and(|at| at.elapsed() < KEYFRAME_REQUEST_INTERVAL) {
                self.request_deferred.store(true, Ordering::Relaxed);
                return;
            }
            *last = Some(Instant::now());
            self.request_deferred.store(false, Ordering::Relaxed);
        }
        let producer = lock(&self.producer).clone();
        if let Some(producer) = producer {
            producer.request_keyframe();
        }
    }

    /// Forgets the stream (the source stopped): the next follower starts at a new keyframe.
    pub fn clear(&self) {
        lock(&self.gop).clear();
    }

    /// The access units a follower sends next, after `cursor` (the last it sent, or `None`
    /// for one still to start): every unit after it, in order, while it keeps up; from the
    /// newest keyframe on for one that starts or fell behind; nothing (and a keyframe
    /// requested) when that keyframe is not here yet.
    pub fn next_units(&self, cursor: Option<u64>) -> Next {
        self.next_units_at(cursor, Instant::now())
    }

    fn next_units_at(&self, cursor: Option<u64>, now: Instant) -> Next {
        let mut gop = lock(&self.gop);
        // The source stopped long ago: what is kept is its past, not the live picture.
        if gop
            .newest_at
            .is_some_and(|at| now.saturating_duration_since(at) > STALE_AFTER)
        {
            gop.clear();
        }
        let Some(newest) = gop.units.back().map(|u| u.sequence) else {
            return Next::WaitForKeyframe;
        };
        let first = gop.units.front().map(|u| u.sequence).unwrap_or(newest);
        match cursor {
            Some(last) if last >= newest => Next::Units(Vec::new()),
            Some(last) if last + 1 >= first && newest - last <= MAX_BACKLOG => Next::Units(
                gop.units
                    .iter()
                    .filter(|u| u.sequence > last)
                    .cloned()
                    .collect(),
            ),
            // Behind or starting: from the newest keyframe, if it is the one in store and
            // recent enough to be worth a burst.
            _ => match gop.units.front() {
                Some(keyframe)
                    if keyframe.keyframe
                        && cursor.is_none_or(|last| keyframe.sequence > last)
                        && newest - keyframe.sequence < MAX_BACKLOG =>
                {
                    Next::Units(gop.units.iter().cloned().collect())
                }
                _ => Next::WaitForKeyframe,
            },
        }
    }
}

/// What a follower does next.
#[derive(Debug)]
pub enum Next {
    /// Send these, in order.
    Units(Vec<Arc<PackagedUnit>>),
    /// Drop units until the next keyframe (ask for one).
    WaitForKeyframe,
}

/// A follower of a track: counted while it lives, woken by each new unit.
#[derive(Debug)]
pub struct Following {
    track: Arc<VideoTrack>,
    newest: watch::Receiver<u64>,
}

impl Following {
    pub fn track(&self) -> &Arc<VideoTrack> {
        &self.track
    }

    /// Waits for a unit newer than the last one seen.
    pub async fn changed(&mut self) {
        // The track outlives its followers (they hold it), so its sender never goes.
        let _ = self.newest.changed().await;
    }

    /// The newest unit is seen.
    pub fn mark_seen(&mut self) {
        self.newest.borrow_and_update();
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.track.add_followers(-1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::super::Format;
    use super::super::annexb::tests::access_unit;
    use super::*;

    fn sequences(next: Next) -> Option<Vec<u64>> {
        match next {
            Next::Units(units) => Some(units.iter().map(|u| u.sequence).collect()),
            Next::WaitForKeyframe => None,
        }
    }

    #[derive(Default)]
    struct Encoder {
        asked: AtomicUsize,
        followers: Mutex<Vec<u32>>,
    }

    impl Producer for Encoder {
        fn request_keyframe(&self) {
            self.asked.fetch_add(1, Ordering::Relaxed);
        }

        fn followers_changed(&self, n: u32) {
            lock(&self.followers).push(n);
        }
    }

    #[test]
    fn followers_start_at_the_keyframe_follow_in_order_and_drop_to_the_next_keyframe() {
        let track = VideoTrack::default();
        assert!(sequences(track.next_units(None)).is_none(), "nothing yet");
        track.publish(access_unit(false), 0);
        assert!(
            sequences(track.next_units(None)).is_none(),
            "no start without a keyframe"
        );
        let keyframe = track.publish(access_unit(true), 0);
        let after = track.publish(access_unit(false), 0);
        assert_eq!(
            sequences(track.next_units(None)),
            Some(vec![keyframe, after])
        );
        assert_eq!(
            sequences(track.next_units(Some(keyframe))),
            Some(vec![after])
        );
        assert_eq!(sequences(track.next_units(Some(after))), Some(vec![]));

        for _ in 0..=MAX_BACKLOG {
            track.publish(access_unit(false), 0);
        }
        assert!(
            sequences(track.next_units(Some(after))).is_none(),
            "too far behind: wait for the next keyframe"
        );
        assert!(
            sequences(track.next_units(None)).is_none(),
            "the keyframe in store is too old to start at"
        );
        let next_keyframe = track.publish(access_unit(true), 0);
        assert_eq!(
            sequences(track.next_units(Some(after))),
            Some(vec![next_keyframe])
        );
        assert_eq!(
            lock(&track.gop).units.len(),
            1,
            "one group of pictures kept"
        );
        track.clear();
        assert!(sequences(track.next_units(Some(next_keyframe))).is_none());
    }

    #[test]
    fn a_follower_never_starts_on_the_past_of_a_source_that_stopped() {
        let track = VideoTrack::default();
        let keyframe = track.publish(access_unit(true), 0);
        let later = Instant::now() + STALE_AFTER + Duration::from_millis(1);
        assert_eq!(
            sequences(track.next_units_at(None, Instant::now())),
            Some(vec![keyframe]),
            "a live group of pictures is where a follower starts"
        );
        assert!(
            sequences(track.next_units_at(None, later)).is_none(),
            "a stale one is forgotten: the follower waits for a fresh keyframe"
        );
        let fresh = track.publish(access_unit(true), 0);
        assert_eq!(sequences(track.next_units(None)), Some(vec![fresh]));
    }

    #[test]
    fn a_packet_is_built_once_and_shared() {
        let track = VideoTrack::default();
        track.publish(access_unit(true), 42);
        let Next::Units(units) = track.next_units(None) else {
            panic!("a keyframe to start at");
        };
        let first = units[0].packet(Format::Wsj);
        let again = units[0].packet(Format::Wsj);
        assert!(std::ptr::eq(first, again), "one packet per unit and format");
        assert_eq!(
            first.len(),
            super::super::WSJ_HEADER_LEN + units[0].data.len()
        );
        assert_eq!(
            first.parts()[1],
            units[0].data,
            "the unit itself, not a copy"
        );
    }

    #[test]
    fn the_producer_hears_of_followers_and_leaving_forgets_the_stream() {
        let track = VideoTrack::new();
        let first = track.follow();
        let encoder = Arc::new(Encoder::default());
        let producer: Arc<dyn Producer> = encoder.clone();
        track.attach(producer.clone()).expect("the first producer");
        assert!(track.has_producer());
        let other: Arc<dyn Producer> = Arc::new(Encoder::default());
        assert_eq!(
            track.attach(other.clone()),
            Err(ProducerTaken),
            "one at a time"
        );
        track.detach(&other);
        assert!(track.has_producer(), "only the attached one detaches");
        let second = track.follow();
        drop(first);
        drop(second);
        assert_eq!(*lock(&encoder.followers), vec![1, 2, 1, 0]);
        track.publish(access_unit(true), 0);
        track.detach(&producer);
        assert!(!track.has_producer());
        assert!(
            sequences(track.next_units(None)).is_none(),
            "the stream left with its producer"
        );
        let _third = track.follow();
        assert_eq!(
            lock(&encoder.followers).len(),
            4,
            "a producer gone hears nothing"
        );
    }

    #[test]
    fn keyframe_requests_are_rate_limited_and_a_deferred_one_is_not_lost() {
        let track = VideoTrack::default();
        let encoder = Arc::new(Encoder::default());
        track.attach(encoder.clone()).expect("a producer");
        let asked = || encoder.asked.load(Ordering::Relaxed);
        track.request_keyframe();
        track.request_keyframe();
        track.request_keyframe();
        assert_eq!(asked(), 1, "a storm asks once");
        track.publish(access_unit(false), 0);
        assert_eq!(asked(), 1, "not before the interval is over");
        std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(50));
        track.publish(access_unit(false), 0);
        assert_eq!(asked(), 2, "the deferred request is made");
        track.publish(access_unit(false), 0);
        assert_eq!(asked(), 2, "once");

        std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(50));
        track.request_keyframe();
        track.request_keyframe();
        track.publish(access_unit(true), 0);
        std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(50));
        track.publish(access_unit(false), 0);
        assert_eq!(asked(), 3, "a keyframe answers a deferred request");
    }
}
