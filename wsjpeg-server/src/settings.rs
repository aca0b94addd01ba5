// SPDX-License-Identifier: MIT
//! What the owner may change while the server runs: limits, timeouts, access, files.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::access::AllowedOrigins;

/// `max_connections` 0 means this many per allowed viewer.
const CONNECTIONS_PER_CLIENT: usize = 4;

/// Settings the server reads per request; the element may change them while it runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_clients: u32,
    /// Open connections of any kind; 0 = four per allowed viewer.
    pub max_connections: u32,
    pub keepalive: Duration,
    /// A client whose socket takes no byte for this long is disconnected; zero = never.
    pub write_timeout: Duration,
    pub allowed_origins: AllowedOrigins,
    pub auth_token: Option<String>,
    /// A client that presents this may push detections over its WebSocket; `None`: nobody may.
    pub detector_token: Option<String>,
    pub document_root: Option<PathBuf>,
    pub snapshot_timeout: Duration,
    /// Extra fields for `/status` (encoder, quality, device), set by the application.
    pub source_info: serde_json::Map<String, serde_json::Value>,
    /// Folder whose recordings `/api/recordings` lists and `/recordings/NAME` serves.
    pub recording_dir: Option<PathBuf>,
}

impl Settings {
    pub fn connection_limit(&self) -> usize {
        match self.max_connections {
            0 => (self.max_clients as usize).saturating_mul(CONNECTIONS_PER_CLIENT),
            n => n as usize,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_clients: 64,
            max_connections: 0,
            keepalive: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            allowed_origins: AllowedOrigins::SameHost,
            auth_token: None,
            detector_token: None,
            document_root: None,
            snapshot_timeout: Duration::from_secs(5),
            source_info: serde_json::Map::new(),
            recording_dir: None,
        }
    }
}
