//! The JSON messages of the WebSocket protocol and the opt-in per-frame metadata header.

use serde::{Deserialize, Serialize};

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

/// What a viewer may tell the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    Pong,
    Pause,
    Resume,
    MaxFps {
        fps: f64,
    },
    /// Clock sync request; `client` is echoed back untouched.
    Time {
        client: serde_json::Number,
    },
}

#[derive(Debug, PartialEq)]
pub enum ParseError {
    NotJson(String),
    Unknown(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotJson(e) => write!(f, "invalid JSON message: {e}"),
            ParseError::Unknown(e) => write!(f, "unsupported message: {e}"),
        }
    }
}

pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| ParseError::Unknown(e.to_string()))
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
        camera: CameraState,
    },
    Ping,
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
            parse_client_message(r#"{"type":"max-fps","fps":"x"}"#),
            Err(ParseError::Unknown(_))
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
}
