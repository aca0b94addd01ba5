//! The JSON messages of the WebSocket protocol and the opt-in per-frame metadata header.

use serde::{Deserialize, Serialize};

/// One object in a frame: what it is, how sure the detector is, and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedObject {
    pub label: String,
    /// Confidence between 0 and 1, when the detector gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// `[x, y, width, height]` in pixels of the frame, from its top left corner.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// The detector's or tracker's id of this object, stable across frames when it tracks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The id of the object this one was found inside (a face in a person), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
}

/// Client messages larger than this close the connection with 1009.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub const META_MAGIC: &[u8; 4] = b"WSJ1";
pub const META_HEADER_LEN: usize = 24;

/// The 24-byte big-endian header that precedes each JPEG for `?meta=1` clients.
pub fn meta_header(sequence: u64, capture_time_us: u64) -> [u8; META_HEADER_LEN] {
    let mut h = [0u8; META_HEADER_LEN];
    h[0..4].copy_from_slice(META_MAGIC);
    h[4..8].copy_from_slice(&(META_HEADER_LEN as u32).to_be_bytes());
    h[8..16].copy_from_slice(&sequence.to_be_bytes());
    h[16..24].copy_from_slice(&capture_time_us.to_be_bytes());
    h
}

/// What a `?meta=1` header (or the header of an H.264 access unit) says about the frame that
/// follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaHeader {
    pub sequence: u64,
    pub capture_time_us: u64,
    /// Bytes of the header: the frame starts after them (a later, longer header may add fields
    /// that older readers skip).
    pub len: usize,
    /// The access unit is a keyframe (H.264; a JPEG is always whole).
    pub keyframe: bool,
}

/// Reads the header at the front of a `?meta=1` binary message; `None` when `data` does not
/// start with one.
pub fn parse_meta_header(data: &[u8]) -> Option<MetaHeader> {
    let field = |range: std::ops::Range<usize>| data.get(range);
    if field(0..4)? != META_MAGIC {
        return None;
    }
    let len = u32::from_be_bytes(field(4..8)?.try_into().ok()?) as usize;
    if len < META_HEADER_LEN || len > data.len() {
        return None;
    }
    Some(MetaHeader {
        sequence: u64::from_be_bytes(field(8..16)?.try_into().ok()?),
        capture_time_us: u64::from_be_bytes(field(16..24)?.try_into().ok()?),
        len,
        keyframe: len == META_HEADER_LEN || data.get(24).is_some_and(|flags| flags & 1 != 0),
    })
}

/// A viewer's `max-fps` other than 0 (no cap) is clamped into this range: at most one frame
/// per 10 s, at least as fast as any camera.
pub const MIN_MAX_FPS: f64 = 0.1;
pub const MAX_MAX_FPS: f64 = 1000.0;

/// What a viewer may tell the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    Pong,
    Pause,
    Resume,
    /// `fps` is 0 (no cap) or within [`MIN_MAX_FPS`, `MAX_MAX_FPS`] once parsed.
    MaxFps {
        fps: f64,
    },
    /// Clock sync request; `client` is echoed back untouched.
    Time {
        client: serde_json::Number,
    },
    /// A detector's findings for one frame, named by its sequence number (`frame`, from the
    /// `?meta=1` header) or its capture time (`time`, Unix µs).
    Detections {
        #[serde(default)]
        frame: Option<u64>,
        #[serde(default)]
        time: Option<u64>,
        objects: Vec<DetectedObject>,
    },
}

#[derive(Debug, PartialEq)]
pub enum ParseError {
    NotJson(String),
    Unknown(String),
    /// A known message with a value it cannot have.
    Invalid(&'static str),
    /// A known message whose fields do not fit it: its type and what is wrong.
    BadFields(String, String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotJson(e) => write!(f, "invalid JSON message: {e}"),
            ParseError::Unknown(e) => write!(f, "unsupported message: {e}"),
            ParseError::Invalid(e) => write!(f, "invalid message: {e}"),
            ParseError::BadFields(kind, e) => write!(f, "invalid {kind} message: {e}"),
        }
    }
}

pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    // serde would also take `["pause"]` for `{"type":"pause"}`: the protocol has objects only.
    if !value.is_object() {
        return Err(ParseError::Unknown("a message is a JSON object".into()));
    }
    const KNOWN: [&str; 6] = ["pong", "pause", "resume", "max-fps", "time", "detections"];
    let kind = value["type"]
        .as_str()
        .filter(|k| KNOWN.contains(k))
        .map(str::to_string);
    let message = serde_json::from_value(value).map_err(|e| match kind {
        Some(kind) => ParseError::BadFields(kind, e.to_string()),
        None => ParseError::Unknown(e.to_string()),
    })?;
    match message {
        // NaN is no JSON number, but a message may be built in code too.
        ClientMessage::MaxFps { fps } if fps.is_nan() || fps < 0.0 => Err(ParseError::Invalid(
            "max-fps wants fps 0 (no cap) or a positive number of frames per second",
        )),
        ClientMessage::MaxFps { fps } => Ok(ClientMessage::MaxFps {
            fps: if fps > 0.0 {
                fps.clamp(MIN_MAX_FPS, MAX_MAX_FPS)
            } else {
                0.0
            },
        }),
        ClientMessage::Detections {
            frame: None,
            time: None,
            ..
        }
        | ClientMessage::Detections {
            frame: Some(_),
            time: Some(_),
            ..
        } => Err(ParseError::Invalid(
            "detections name their frame by `frame` (sequence number) or `time` (capture time, \
             Unix µs), one of the two",
        )),
        message => Ok(message),
    }
}

/// Camera state as viewers see it in `status` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    #[default]
    Idle,
    Starting,
    Streaming,
    Error,
}

impl CameraState {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Idle => "idle",
            CameraState::Starting => "starting",
            CameraState::Streaming => "streaming",
            CameraState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraStatus {
    pub state: CameraState,
    pub message: Option<String>,
}

/// The H.264 stream as `hello` announces it.
#[derive(Debug, Serialize)]
pub struct H264Announce<'a> {
    pub codec: Option<&'a str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// For a viewer of fragmented MP4: the MIME type with its codecs string, as
    /// `MediaSource.isTypeSupported` wants it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
}

/// What the server tells a viewer in text messages.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage<'a> {
    Hello {
        server: &'a str,
        version: &'a str,
        width: Option<u32>,
        height: Option<u32>,
        framerate: Option<f64>,
        meta: bool,
        /// This viewer gets `detections` messages (`?detections=1`).
        detections: bool,
        /// This client may push detections (it presented the detector token).
        detector: bool,
        /// What the binary messages of this stream hold: `jpeg` or `h264`.
        codec: &'a str,
        /// How H.264 is packaged, when not behind wsjpeg's header: `fmp4`.
        #[serde(skip_serializing_if = "Option::is_none")]
        container: Option<&'a str>,
        /// The H.264 stream, when the server offers one (`/stream?codec=h264`); its codec
        /// string is `null` until the encoder has run.
        #[serde(skip_serializing_if = "Option::is_none")]
        h264: Option<H264Announce<'a>>,
        camera: CameraState,
        /// What went wrong, while `camera` is `error`.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
    },
    Ping,
    /// To an H.264 viewer, before its first access unit and when the stream changes: what to
    /// configure a decoder with.
    H264 {
        codec: &'a str,
        width: Option<u32>,
        height: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mime: Option<String>,
    },
    Status {
        camera: CameraState,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
    },
    Time {
        client: &'a serde_json::Number,
        server: u64,
    },
    Error {
        message: &'a str,
    },
    /// The recording state (`recording-state`), sent after `hello` and on every change.
    Recording {
        active: bool,
        control: bool,
        started: Option<&'a str>,
        file: Option<&'a str>,
        format: Option<&'a str>,
        error: Option<&'a str>,
    },
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to a valid message anyway.
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"type":"ping"}"#))
    }
}

pub fn status_message(status: &CameraStatus) -> String {
    ServerMessage::Status {
        camera: status.state,
        message: status.message.as_deref(),
    }
    .to_json()
}

/// What the application reports about its recording through `recording-state`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RecordingStatus {
    /// A recording is running now.
    pub active: bool,
    /// Viewers may start and stop recordings over HTTP (`POST /api/record/start|stop`).
    pub control: bool,
    /// UTC ISO-8601 start of the current recording.
    pub started: Option<String>,
    /// Name of the segment being written.
    pub file: Option<String>,
    /// `mjpeg` or `h264`.
    pub format: Option<String>,
    pub bytes_written: u64,
    pub segments_deleted: u64,
    pub frames_dropped: u64,
    /// Detections not kept beside a segment: a segment's detections never outgrow its video.
    pub detections_dropped: u64,
    /// Why the recording stopped or cannot start.
    pub error: Option<String>,
}

/// The `recording` message for `status`; `None` (recording not available) is reported as
/// inactive and not controllable, so that a viewer hides its indicator and button.
pub fn recording_message(status: Option<&RecordingStatus>) -> String {
    let none = RecordingStatus::default();
    let s = status.unwrap_or(&none);
    ServerMessage::Recording {
        active: s.active,
        control: s.control,
        started: s.started.as_deref(),
        file: s.file.as_deref(),
        format: s.format.as_deref(),
        error: s.error.as_deref(),
    }
    .to_json()
}

/// Microseconds since the Unix epoch, the clock every timestamp in the protocol uses.
pub fn unix_time_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_messages() {
        assert_eq!(
            parse_client_message(r#"{"type":"pong"}"#),
            Ok(ClientMessage::Pong)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"pause"}"#),
            Ok(ClientMessage::Pause)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"max-fps","fps":5}"#),
            Ok(ClientMessage::MaxFps { fps: 5.0 })
        );
        assert!(matches!(
            parse_client_message(r#"{"type":"time","client":123.5}"#),
            Ok(ClientMessage::Time { .. })
        ));
        assert!(matches!(
            parse_client_message("{"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"reboot"}"#),
            Err(ParseError::Unknown(_))
        ));
        assert!(matches!(
            parse_client_message(r#"["pause"]"#),
            Err(ParseError::Unknown(_))
        ));
        assert!(matches!(
            parse_client_message(r#"["max-fps",5]"#),
            Err(ParseError::Unknown(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"max-fps","fps":"x"}"#),
            Err(ParseError::BadFields(kind, _)) if kind == "max-fps"
        ));
    }

    #[test]
    fn max_fps_is_checked_and_clamped() {
        let fps = |text: &str| match parse_client_message(text) {
            Ok(ClientMessage::MaxFps { fps }) => Some(fps),
            _ => None,
        };
        assert_eq!(fps(r#"{"type":"max-fps","fps":0}"#), Some(0.0));
        assert_eq!(fps(r#"{"type":"max-fps","fps":1e-300}"#), Some(MIN_MAX_FPS));
        assert_eq!(fps(r#"{"type":"max-fps","fps":5e-324}"#), Some(MIN_MAX_FPS));
        assert_eq!(fps(r#"{"type":"max-fps","fps":1e300}"#), Some(MAX_MAX_FPS));
        assert_eq!(fps(r#"{"type":"max-fps","fps":-0.0}"#), Some(0.0));
        assert!(matches!(
            parse_client_message(r#"{"type":"max-fps","fps":-1}"#),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"max-fps","fps":"NaN"}"#),
            Err(ParseError::BadFields(..))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"max-fps","fps":1e400}"#),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn time_reply_echoes_client_value() {
        let n: serde_json::Number = serde_json::from_str("1700000000123456").unwrap();
        let s = ServerMessage::Time {
            client: &n,
            server: 42,
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"type":"time","client":1700000000123456,"server":42}"#
        );
    }

    #[test]
    fn recording_message_has_every_field() {
        let status = RecordingStatus {
            active: true,
            control: true,
            started: Some("2026-11-26T10:00:00Z".into()),
            format: Some("mjpeg".into()),
            bytes_written: 5,
            ..RecordingStatus::default()
        };
        let v: serde_json::Value = serde_json::from_str(&recording_message(Some(&status))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"recording","active":true,"control":true,
                "started":"2026-11-26T10:00:00Z","file":null,"format":"mjpeg","error":null})
        );
        let v: serde_json::Value = serde_json::from_str(&recording_message(None)).unwrap();
        assert_eq!(v["active"], false);
        assert_eq!(v["control"], false);
        assert!(v["started"].is_null());
    }

    #[test]
    fn meta_header_layout() {
        let h = meta_header(7, 0x0102030405060708);
        assert_eq!(&h[0..4], b"WSJ1");
        assert_eq!(u32::from_be_bytes(h[4..8].try_into().unwrap()), 24);
        assert_eq!(u64::from_be_bytes(h[8..16].try_into().unwrap()), 7);
        assert_eq!(
            u64::from_be_bytes(h[16..24].try_into().unwrap()),
            0x0102030405060708
        );
    }

    #[test]
    fn meta_headers_read_back_what_was_written() {
        let mut message = meta_header(7, 1_700_000_000_000_000).to_vec();
        message.extend_from_slice(b"jpeg");
        let header = parse_meta_header(&message).unwrap();
        assert_eq!(
            header,
            MetaHeader {
                sequence: 7,
                capture_time_us: 1_700_000_000_000_000,
                len: 24,
                keyframe: true,
            }
        );
        assert_eq!(&message[header.len..], b"jpeg");
        assert_eq!(
            parse_meta_header(b"\xff\xd8 a bare jpeg that is long enough"),
            None
        );
        assert_eq!(parse_meta_header(&message[..20]), None);
    }
}
