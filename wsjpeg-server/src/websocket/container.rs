// SPDX-License-Identifier: MIT
//! How an H.264 viewer's units are packaged on its WebSocket, and the MIME type it is told.

/// How an H.264 viewer's units are packaged (`?container=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// wsjpeg's 32-byte header and the unit in Annex B (no `container`).
    Wsj,
    /// Fragmented MP4 for Media Source Extensions (`container=fmp4`): an initialisation
    /// segment, then a `moof` + `mdat` per unit.
    Fmp4,
    /// A value the server does not know: refused with a message saying which it knows.
    Unknown,
}

impl Container {
    pub fn from_query(value: Option<&str>) -> Container {
        match value {
            None | Some("") => Container::Wsj,
            Some("fmp4") => Container::Fmp4,
            Some(_) => Container::Unknown,
        }
    }

    pub(super) fn name(self) -> Option<&'static str> {
        (self == Container::Fmp4).then_some("fmp4")
    }
}

/// The MIME type of fragmented MP4 with this H.264 codec string.
pub(super) fn mp4_mime(codec: &str) -> String {
    format!("video/mp4; codecs=\"{codec}\"")
}
