// SPDX-License-Identifier: MIT
//! Objects a detector found in a frame, as they travel beside the video: checked when they come
//! in (from the owner, or from a detector client over the WebSocket), tied to the frame they
//! were found in, and turned into the `detections` message once for every viewer that asked.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

pub use crate::protocol::DetectedObject;
use crate::rate::RateWindow;
use crate::sync::lock;

/// More objects than this in one message are refused: no detector reports that many per frame,
/// and every viewer would be sent them.
pub const MAX_OBJECTS: usize = 256;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Box coordinates beyond this (in pixels, either sign) are refused as nonsense.
const MAX_COORDINATE: f64 = 100_000.0;

/// Which frame detections belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRef {
    /// The sequence number of the frame (in the `?meta=1` header).
    Sequence(u64),
    /// The frame's capture time, Unix µs (as in the `?meta=1` header); the frame published
    /// closest to it, within a few milliseconds, is meant.
    CaptureTime(u64),
}

/// Why detections were not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectionError {
    /// The frame is not among the recent ones (too old, or never published).
    UnknownFrame,
    /// Detections of a frame older than the ones already shown: latest wins.
    Outdated,
    TooManyObjects,
    /// An object that cannot be drawn: the reason.
    InvalidObject(&'static str),
    /// The client did not present the detector token.
    NotAllowed,
}

impl std::fmt::Display for DetectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetectionError::UnknownFrame => {
                f.write_str("detections for a frame that is not among the recent ones")
            }
            DetectionError::Outdated => {
                f.write_str("detections older than the ones already shown are dropped")
            }
            DetectionError::TooManyObjects => {
                write!(
                    f,
                    "more than {MAX_OBJECTS} objects in one detections message"
                )
            }
            DetectionError::InvalidObject(reason) => write!(f, "invalid object: {reason}"),
            DetectionError::NotAllowed => {
                f.write_str("pushing detections needs the detector token (detector_token)")
            }
        }
    }
}

impl std::error::Error for DetectionError {}

/// Checks objects before anyone is sent them.
pub fn validate(objects: &[DetectedObject]) -> Result<(), DetectionError> {
    if objects.len() > MAX_OBJECTS {
        return Err(DetectionError::TooManyObjects);
    }
    for object in objects {
        let chars = object.label.chars().count();
        if chars == 0 || chars > MAX_LABEL_CHARS {
            return Err(DetectionError::InvalidObject(
                "a label has 1 to 64 characters",
            ));
        }
        if object.label.chars().any(char::is_control) {
            return Err(DetectionError::InvalidObject(
                "a label has no control characters",
            ));
        }
        if object
            .score
            .is_some_and(|s| !(0.0..=1.0).contains(&s) || s.is_nan())
        {
            return Err(DetectionError::InvalidObject("a score is between 0 and 1"));
        }
        let [x, y, w, h] = object.bbox;
        if [x, y, w, h]
            .iter()
            .any(|v| !v.is_finite() || v.abs() > MAX_COORDINATE)
            || w < 0.0
            || h < 0.0
        {
            return Err(DetectionError::InvalidObject(
                "a box is [x, y, width, height] in pixels, width and height not negative",
            ));
        }
    }
    Ok(())
}

/// Detections tied to their frame, with the message viewers are sent, built once.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionSet {
    pub frame: u64,
    pub capture_time_us: u64,
    pub objects: Vec<DetectedObject>,
    /// The `detections` message, JSON.
    pub message: String,
}

#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    frame: u64,
    time: u64,
    width: Option<u32>,
    height: Option<u32>,
    objects: &'a [DetectedObject],
}

impl DetectionSet {
    pub fn new(
        frame: u64,
        capture_time_us: u64,
        size: (Option<u32>, Option<u32>),
        objects: Vec<DetectedObject>,
    ) -> Self {
        let message = serde_json::to_string(&Message {
            kind: "detections",
            frame,
            time: capture_time_us,
            width: size.0,
            height: size.1,
            objects: &objects,
        })
        // Plain numbers and strings always serialize; keep the protocol whole regardless.
        .unwrap_or_else(|_| format!(r#"{{"type":"detections","frame":{frame},"objects":[]}}"#));
        DetectionSet {
            frame,
            capture_time_us,
            objects,
            message,
        }
    }
}

/// The recent frames, to find the one detections belong to.
#[derive(Debug, Default)]
pub struct RecentFrames {
    /// (sequence, capture time), oldest first.
    frames: std::collections::VecDeque<(u64, u64)>,
}

/// How many frames back detections may refer: about 4 s at 30 fps, more than any detector
/// worth showing lags.
const RECENT_FRAMES: usize = 128;
/// A capture time this close to a frame's is that frame's.
const CAPTURE_TIME_TOLERANCE_US: u64 = 5_000;
/// Detections of a frame still on its way (a detector beside the encoder can be faster than
/// it) wait this long for their frame.
const EARLY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Detections that came before their frame.
#[derive(Debug)]
struct Early {
    at: FrameRef,
    objects: Vec<DetectedObject>,
    received: std::time::Instant,
}

impl Early {
    fn is_for(&self, sequence: u64, capture_time_us: u64) -> bool {
        match self.at {
            FrameRef::Sequence(s) => s == sequence,
            FrameRef::CaptureTime(t) => t.abs_diff(capture_time_us) <= CAPTURE_TIME_TOLERANCE_US,
        }
    }
}

impl RecentFrames {
    pub fn push(&mut self, sequence: u64, capture_time_us: u64) {
        if self.frames.len() == RECENT_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back((sequence, capture_time_us));
    }

    pub fn clear(&mut self) {
        self.frames.clear();
    }

    /// Whether `at` names a frame captured after the newest one here, and not in the future:
    /// it has not come out yet. (A sequence number is known only once its frame is out.)
    fn is_ahead(&self, at: FrameRef) -> bool {
        let FrameRef::CaptureTime(time) = at else {
            return false;
        };
        let newest = self.frames.back().map_or(0, |&(_, t)| t);
        time > newest + CAPTURE_TIME_TOLERANCE_US
            && time <= crate::protocol::unix_time_us() + CAPTURE_TIME_TOLERANCE_US
    }

    /// The frame `at` refers to: its sequence number and capture time.
    pub fn find(&self, at: FrameRef) -> Option<(u64, u64)> {
        match at {
            FrameRef::Sequence(sequence) => self
                .frames
                .iter()
                .rev()
                .find(|(s, _)| *s == sequence)
                .copied(),
            FrameRef::CaptureTime(time) => self
                .frames
                .iter()
                .min_by_key(|(_, t)| t.abs_diff(time))
                .filter(|(_, t)| t.abs_diff(time) <= CAPTURE_TIME_TOLERANCE_US)
                .copied(),
        }
    }
}

/// The detections of the stream: the newest set, which viewers that asked for detections follow,
/// the recent frames they may refer to, and their figures.
#[derive(Debug)]
pub struct DetectionBoard {
    newest: watch::Sender<Option<Arc<DetectionSet>>>,
    recent: Mutex<RecentFrames>,
    early: Mutex<Option<Early>>,
    figures: Mutex<Figures>,
}

#[derive(Debug, Default)]
struct Figures {
    /// Detection sets taken (each message, or each frame that carried detections).
    total: u64,
    rate: RateWindow,
    /// How long after its frame's capture the newest set arrived, µs.
    last_delay_us: Option<u64>,
    /// The newest set taken has objects: an empty one after it must be sent, so that the
    /// boxes go away.
    boxes_out: bool,
}

/// What `/status` and `/metrics` say about detections.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DetectionFigures {
    pub total: u64,
    pub per_second: f64,
    pub last_delay_us: Option<u64>,
    pub objects: usize,
}

impl Default for DetectionBoard {
    fn default() -> Self {
        DetectionBoard {
            newest: watch::Sender::new(None),
            recent: Mutex::new(RecentFrames::default()),
            early: Mutex::new(None),
            figures: Mutex::new(Figures::default()),
        }
    }
}

impl DetectionBoard {
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<DetectionSet>>> {
        self.newest.subscribe()
    }

    pub fn newest(&self) -> Option<Arc<DetectionSet>> {
        self.newest.borrow().clone()
    }

    /// A frame went out: detections may refer to it from now on. Returns the detections that
    /// came for it before it did, to go out with it.
    pub fn note_frame(&self, sequence: u64, capture_time_us: u64) -> Option<Vec<DetectedObject>> {
        lock(&self.recent).push(sequence, capture_time_us);
        let mut early = lock(&self.early);
        let waiting = early.as_ref()?;
        if waiting.is_for(sequence, capture_time_us) {
            return early.take().map(|e| e.objects);
        }
        // Their frame was never published (dropped upstream), or it is too late.
        let passed = match waiting.at {
            FrameRef::Sequence(s) => s < sequence,
            FrameRef::CaptureTime(t) => t + CAPTURE_TIME_TOLERANCE_US < capture_time_us,
        };
        if passed || waiting.received.elapsed() > EARLY_WAIT {
            *early = None;
        }
        None
    }

    /// The camera was parked: no detection may refer to the frames before.
    pub fn forget_frames(&self) {
        lock(&self.recent).clear();
        *lock(&self.early) = None;
    }

    /// Detections that came with their frame: the set to hand out with it, `None` when there
    /// is nothing new to say (no boxes before, none now). Invalid objects are left out.
    pub fn with_frame(
        &self,
        sequence: u64,
        capture_time_us: u64,
        size: (Option<u32>, Option<u32>),
        mut objects: Vec<DetectedObject>,
    ) -> Option<Arc<DetectionSet>> {
        objects.retain(|o| validate(std::slice::from_ref(o)).is_ok());
        objects.truncate(MAX_OBJECTS);
        if !self.take(capture_time_us, !objects.is_empty()) {
            return None;
        }
        Some(Arc::new(DetectionSet::new(
            sequence,
            capture_time_us,
            size,
            objects,
        )))
    }

    /// Detections pushed after their frame (by the owner, or a detector client): checked,
    /// tied to their frame and handed to the viewers at once. `Ok(None)`: taken, nothing new
    /// to show (no boxes before, none now).
    pub fn push(
        &self,
        at: FrameRef,
        size: (Option<u32>, Option<u32>),
        objects: Vec<DetectedObject>,
    ) -> Result<Option<Arc<DetectionSet>>, DetectionError> {
        validate(&objects)?;
        let found = {
            let recent = lock(&self.recent);
            match recent.find(at) {
                Some(frame) => Some(frame),
                None if recent.is_ahead(at) => None,
                None => return Err(DetectionError::UnknownFrame),
            }
        };
        let Some((sequence, capture_time_us)) = found else {
            // Ahead of its frame: it goes out with the frame (newest detections win here too).
            *lock(&self.early) = Some(Early {
                at,
                objects,
                received: std::time::Instant::now(),
            });
            return Ok(None);
        };
        if self
            .newest
            .borrow()
            .as_ref()
            .is_some_and(|shown| shown.frame > sequence)
        {
            return Err(DetectionError::Outdated);
        }
        if !self.take(capture_time_us, !objects.is_empty()) {
            return Ok(None);
        }
        let set = Arc::new(DetectionSet::new(sequence, capture_time_us, size, objects));
        self.show(set.clone());
        Ok(Some(set))
    }

    /// Hands `set` to every viewer that follows detections.
    pub fn show(&self, set: Arc<DetectionSet>) {
        self.newest.send_replace(Some(set));
    }

    pub fn figures(&self) -> DetectionFigures {
        let objects = self.newest.borrow().as_ref().map_or(0, |s| s.objects.len());
        let mut figures = lock(&self.figures);
        let total = figures.total;
        DetectionFigures {
            total,
            per_second: figures.rate.rate(total),
            last_delay_us: figures.last_delay_us,
            objects,
        }
    }

    /// Counts a set of detections; whether it is worth sending (it has boxes, or takes away
    /// the ones out there).
    fn take(&self, capture_time_us: u64, has_objects: bool) -> bool {
        let mut figures = lock(&self.figures);
        figures.total += 1;
        figures.last_delay_us =
            Some(crate::protocol::unix_time_us().saturating_sub(capture_time_us));
        let worth_sending = has_objects || figures.boxes_out;
        figures.boxes_out = has_objects;
        worth_sending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(label: &str, bbox: [f64; 4]) -> DetectedObject {
        DetectedObject {
            label: label.into(),
            score: Some(0.5),
            bbox,
            id: None,
            parent: None,
        }
    }

    #[test]
    fn the_message_has_the_documented_shape() {
        let set = DetectionSet::new(
            7,
            1_700_000_000_000_000,
            (Some(640), Some(480)),
            vec![object("person", [1.0, 2.0, 3.0, 4.0])],
        );
        let json: serde_json::Value = serde_json::from_str(&set.message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "detections", "frame": 7, "time": 1_700_000_000_000_000u64,
                "width": 640, "height": 480,
                "objects": [{"label": "person", "score": 0.5, "box": [1.0, 2.0, 3.0, 4.0]}]})
        );
    }

    #[test]
    fn objects_that_cannot_be_drawn_are_refused() {
        assert_eq!(validate(&[object("cat", [0.0, 0.0, 10.0, 10.0])]), Ok(()));
        for (bad, why) in [
            (object("", [0.0; 4]), "empty label"),
            (object(&"x".repeat(65), [0.0; 4]), "long label"),
            (object("a\u{7}b", [0.0; 4]), "control character"),
            (object("cat", [f64::NAN, 0.0, 1.0, 1.0]), "NaN"),
            (object("cat", [0.0, 0.0, -1.0, 1.0]), "negative width"),
            (object("cat", [1e9, 0.0, 1.0, 1.0]), "far away"),
        ] {
            assert!(
                matches!(validate(&[bad]), Err(DetectionError::InvalidObject(_))),
                "{why}"
            );
        }
        let mut scored = object("cat", [0.0; 4]);
        scored.score = Some(1.5);
        assert!(validate(&[scored]).is_err());
        let many = vec![object("cat", [0.0; 4]); MAX_OBJECTS + 1];
        assert_eq!(validate(&many), Err(DetectionError::TooManyObjects));
    }

    #[test]
    fn frames_are_found_by_sequence_or_by_capture_time() {
        let mut recent = RecentFrames::default();
        for i in 1..=200u64 {
            recent.push(i, 1_000_000 + i * 33_333);
        }
        assert_eq!(
            recent.find(FrameRef::Sequence(150)),
            Some((150, 1_000_000 + 150 * 33_333))
        );
        assert_eq!(recent.find(FrameRef::Sequence(10)), None, "too old");
        assert_eq!(
            recent.find(FrameRef::CaptureTime(1_000_000 + 150 * 33_333 + 1_200)),
            Some((150, 1_000_000 + 150 * 33_333))
        );
        assert_eq!(
            recent.find(FrameRef::CaptureTime(1_000_000 + 150 * 33_333 + 16_000)),
            None,
            "between two frames is no frame"
        );
    }

    #[test]
    fn detections_ahead_of_their_frame_go_out_with_it() {
        let board = DetectionBoard::default();
        let now = crate::protocol::unix_time_us();
        board.note_frame(1, now - 66_000);
        let ahead = FrameRef::CaptureTime(now - 33_000);
        // The frame is on its way: taken, nothing shown yet.
        assert_eq!(
            board.push(ahead, (None, None), vec![object("cat", [0.0; 4])]),
            Ok(None)
        );
        assert!(board.newest().is_none());
        // It comes out: its detections come with it.
        let early = board.note_frame(2, now - 33_000 + 1_000);
        assert_eq!(early.map(|o| o.len()), Some(1));
        // A sequence number names only a frame that is out.
        assert_eq!(
            board.push(FrameRef::Sequence(99), (None, None), Vec::new()),
            Err(DetectionError::UnknownFrame)
        );
        // Nor is a capture time far in the future a frame on its way.
        assert_eq!(
            board.push(
                FrameRef::CaptureTime(now + 10_000_000),
                (None, None),
                Vec::new()
            ),
            Err(DetectionError::UnknownFrame)
        );
    }
}
