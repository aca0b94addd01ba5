// SPDX-License-Identifier: MIT
//! H.264 beside the JPEG frames, for viewers that ask for it (`/stream?codec=h264`): access
//! units in Annex B as the owner hands them over, each sent as one binary message behind a
//! small header, in order from a keyframe on.
//!
//! Latest frame wins cannot hold for inter frames, which need every frame since their keyframe.
//! So each viewer follows the stream with a cursor: it sends every access unit in order while
//! it keeps up; one that falls more than a few frames behind drops whole frames until the next
//! keyframe (and asks for one), so it is never more than a keyframe interval stale and the
//! server keeps one group of pictures, not a queue per viewer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::protocol::META_MAGIC;
use crate::sync::lock;

/// The header before each access unit: `WSJ1`, u32 header length (32), u64 sequence number,
/// u64 capture time (Unix µs), u8 flags (bit 0: keyframe), 7 bytes reserved (zero); big-endian.
pub const H264_HEADER_LEN: usize = 32;
/// Flag of a keyframe (an IDR access unit with its SPS and PPS) in the header.
pub const KEYFRAME: u8 = 1;

/// A viewer this many access units behind the newest drops to the next keyframe.
pub const MAX_BACKLOG: u64 = 6;
/// Keyframes are asked of the encoder at most this often, whatever joins or falls behind.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// At most this much of a group of pictures is kept (an encoder that sends no keyframe for
/// long would otherwise grow it without bound); viewers that need older units resync.
const MAX_GOP_UNITS: usize = 600;
const MAX_GOP_BYTES: usize = 16 * 1024 * 1024;
/// A group of pictures whose newest unit came this long ago is the past of a source that
/// stopped (an encoder stopped, a pipeline paused): a viewer that starts waits for a fresh
/// keyframe instead of being shown it.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// One access unit as viewers get it.
#[derive(Debug)]
pub struct AccessUnit {
    pub sequence: u64,
    pub keyframe: bool,
    pub data: Bytes,
    /// Built once for every viewer; holds the capture time too.
    pub header: [u8; H264_HEADER_LEN],
}

/// The header of an access unit.
pub fn unit_header(sequence: u64, capture_time_us: u64, keyframe: bool) -> [u8; H264_HEADER_LEN] {
    let mut h = [0u8; H264_HEADER_LEN];
    h[0..4].copy_from_slice(META_MAGIC);
    h[4..8].copy_from_slice(&(H264_HEADER_LEN as u32).to_be_bytes());
    h[8..16].copy_from_slice(&sequence.to_be_bytes());
    h[16..24].copy_from_slice(&capture_time_us.to_be_bytes());
    h[24] = if keyframe { KEYFRAME } else { 0 };
    h
}

/// The NAL units of an Annex B byte stream: each unit's bytes after its start code.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&next| {
            // The zero before a 4-byte start code belongs to it, not to the unit before.
            let end = next - 3;
            if end > 0 && data[end - 1] == 0 {
                end - 1
            } else {
                end
            }
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(start, end)| start < end)
        .map(move |(start, end)| &data[start..end])
}

fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1F)
}

/// Whether an access unit holds an IDR picture (a decoder can start at it).
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|unit| nal_type(unit) == Some(5))
}

/// The codec string browsers want (`avc1.PPCCLL`: profile, constraint flags and level of the
/// sequence parameter set), if the access unit carries an SPS.
pub fn codec_string(access_unit: &[u8]) -> Option<String> {
    let sps = nal_units(access_unit).find(|unit| nal_type(unit) == Some(7))?;
    let (profile, constraints, level) = (sps.get(1)?, sps.get(2)?, sps.get(3)?);
    Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
}

/// What viewers are told about the H.264 stream: its codec string and size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct H264Info {
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The access units since the newest keyframe.
#[derive(Debug, Default)]
struct Gop {
    units: VecDeque<Arc<AccessUnit>>,
    bytes: usize,
    /// When the newest unit came.
    newest_at: Option<Instant>,
}

impl Gop {
    fn push(&mut self, unit: Arc<AccessUnit>, now: Instant) {
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

/// Asks the owner's encoder for a keyframe.
pub type KeyframeRequest = Box<dyn Fn() + Send + Sync>;

/// The H.264 stream of a server.
pub struct H264Track {
    gop: Mutex<Gop>,
    /// The sequence number of the newest access unit; viewers follow it.
    newest: watch::Sender<u64>,
    next_sequence: AtomicU64,
    info: Mutex<H264Info>,
    keyframe_request: Mutex<Option<KeyframeRequest>>,
    last_request: Mutex<Option<Instant>>,
    /// A keyframe was wanted within the interval of the last request: asked for once the
    /// interval is over, unless a keyframe came first.
    request_deferred: AtomicBool,
}

impl std::fmt::Debug for H264Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Track").finish_non_exhaustive()
    }
}

impl Default for H264Track {
    fn default() -> Self {
        H264Track {
            gop: Mutex::new(Gop::default()),
            newest: watch::Sender::new(0),
            next_sequence: AtomicU64::new(1),
            info: Mutex::new(H264Info::default()),
            keyframe_request: Mutex::new(None),
            last_request: Mutex::new(None),
            request_deferred: AtomicBool::new(false),
        }
    }
}

impl H264Track {
    /// Takes an access unit (Annex B, SPS and PPS in band before each IDR). Returns its
    /// sequence number.
    pub fn publish(&self, data: Bytes, capture_time_us: u64) -> u64 {
        let keyframe = is_keyframe(&data);
        if keyframe && let Some(codec) = codec_string(&data) {
            let mut info = lock(&self.info);
            if info.codec.as_deref() != Some(codec.as_str()) {
                info.codec = Some(codec);
            }
        }
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let unit = Arc::new(AccessUnit {
            sequence,
            keyframe,
            header: unit_header(sequence, capture_time_us, keyframe),
            data,
        });
        lock(&self.gop).push(unit, Instant::now());
        self.newest.send_replace(sequence);
        if keyframe {
            self.request_deferred.store(false, Ordering::Relaxed);
        } else if self.request_deferred.load(Ordering::Relaxed) {
            self.request_keyframe();
        }
        sequence
    }

    /// The size of the pictures, from the owner's caps.
    pub fn set_size(&self, width: Option<u32>, height: Option<u32>) {
        let mut info = lock(&self.info);
        info.width = width;
        info.height = height;
    }

    pub fn info(&self) -> H264Info {
        lock(&self.info).clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// How the owner asks its encoder for a keyframe (the force-key-unit event).
    pub fn set_keyframe_request(&self, request: Option<KeyframeRequest>) {
        *lock(&self.keyframe_request) = request;
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
        if let Some(request) = lock(&self.keyframe_request).as_ref() {
            request();
        }
    }

    /// Forgets the stream (the source stopped): the next viewer starts at a new keyframe.
    pub fn clear(&self) {
        lock(&self.gop).clear();
    }

    /// The access units a viewer sends next, after `cursor` (the last it sent, or `None` for a
    /// viewer still to start): every unit after it, in order, while it keeps up; from the
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

/// What a viewer of the H.264 stream does next.
#[derive(Debug)]
pub enum Next {
    /// Send these, in order.
    Units(Vec<Arc<AccessUnit>>),
    /// Drop frames until the next keyframe (ask for one).
    WaitForKeyframe,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1F, 0xDA];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    fn access_unit(keyframe: bool) -> Bytes {
        let mut data = Vec::new();
        if keyframe {
            for unit in [SPS, PPS, &[0x65, 0x88, 0x84][..]] {
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(unit);
            }
        } else {
            data.extend_from_slice(&[0, 0, 1, 0x41, 0x9A, 0x02]);
        }
        Bytes::from(data)
    }

    fn sequences(next: Next) -> Option<Vec<u64>> {
        match next {
            Next::Units(units) => Some(units.iter().map(|u| u.sequence).collect()),
            Next::WaitForKeyframe => None,
        }
    }

    #[test]
    fn annex_b_is_split_at_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let units: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        assert!(is_keyframe(&data));
        assert!(!is_keyframe(&access_unit(false)));
        assert_eq!(nal_units(b"no start code").count(), 0);
    }

    #[test]
    fn the_codec_string_is_read_from_the_sps() {
        assert_eq!(
            codec_string(&access_unit(true)).as_deref(),
            Some("avc1.42C01F")
        );
        assert_eq!(codec_string(&access_unit(false)), None);
        assert_eq!(codec_string(&[0, 0, 1, 0x67, 0x42]), None, "a cut SPS");
    }

    #[test]
    fn the_header_has_the_documented_layout() {
        let header = unit_header(7, 1_700_000_000_000_000, true);
        assert_eq!(&header[0..4], b"WSJ1");
        assert_eq!(u32::from_be_bytes(header[4..8].try_into().unwrap()), 32);
        assert_eq!(u64::from_be_bytes(header[8..16].try_into().unwrap()), 7);
        assert_eq!(
            u64::from_be_bytes(header[16..24].try_into().unwrap()),
            1_700_000_000_000_000
        );
        assert_eq!(header[24], KEYFRAME);
        assert!(header[25..].iter().all(|b| *b == 0));
        let parsed = crate::protocol::parse_meta_header(&header).expect("a header");
        assert!(parsed.keyframe);
        assert_eq!(parsed.len, H264_HEADER_LEN);
        assert!(
            !crate::protocol::parse_meta_header(&unit_header(8, 0, false))
                .unwrap()
                .keyframe
        );
    }

    #[test]
    fn viewers_start_at_the_keyframe_follow_in_order_and_drop_to_the_next_keyframe() {
        let track = H264Track::default();
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
    fn a_viewer_never_starts_on_the_past_of_a_source_that_stopped() {
        let track = H264Track::default();
        let keyframe = track.publish(access_unit(true), 0);
        let later = Instant::now() + STALE_AFTER + Duration::from_millis(1);
        assert_eq!(
            sequences(track.next_units_at(None, Instant::now())),
            Some(vec![keyframe]),
            "a live group of pictures is where a viewer starts"
        );
        assert!(
            sequences(track.next_units_at(None, later)).is_none(),
            "a stale one is forgotten: the viewer waits for a fresh keyframe"
        );
        let fresh = track.publish(access_unit(true), 0);
        assert_eq!(sequences(track.next_units(None)), Some(vec![fresh]));
    }

    #[test]
    fn keyframe_requests_are_rate_limited_and_a_deferred_one_is_not_lost() {
        let track = H264Track::default();
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        track.set_keyframe_request(Some(Box::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        })));
        track.request_keyframe();
        track.request_keyframe();
        track.request_keyframe();
        assert_eq!(asked.load(Ordering::Relaxed), 1, "a storm asks once");
        track.publish(access_unit(false), 0);
        assert_eq!(
            asked.load(Ordering::Relaxed),
            1,
            "not before the interval is over"
        );
        std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(50));
        track.publish(access_unit(false), 0);
        assert_eq!(
            asked.load(Ordering::Relaxed),
            2,
            "the deferred request is made"
        );
        track.publish(access_unit(false), 0);
        assert_eq!(asked.load(Ordering::Relaxed), 2, "once");

        std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(50));
        track.request_keyframe();
        track.request_keyframe();
        track.publish(access_unit(true), 0);
        std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(50));
        track.publish(access_unit(false), 0);
        assert_eq!(
            asked.load(Ordering::Relaxed),
            3,
            "a keyframe answers a deferred request"
        );
    }
}
