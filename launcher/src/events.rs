// SPDX-License-Identifier: MIT
//! What the control loop hears: from the element's callbacks, the pipelines' buses, the
//! recording's segment callbacks and the signal handler.

/// One thing that happened; the control loop decides what it means.
#[derive(Debug)]
pub enum Event {
    Viewers {
        camera: usize,
        n: u32,
    },
    CameraLost {
        camera: usize,
        generation: u64,
        reason: String,
    },
    /// `POST /api/record/start` or `/stop`.
    RecordControl {
        camera: usize,
        start: bool,
    },
    RecordingFailed {
        camera: usize,
        generation: u64,
        reason: String,
    },
    /// Viewers of a camera's H.264 stream now.
    H264Viewers {
        camera: usize,
        n: u32,
    },
    /// A viewer of the H.264 stream asks for a keyframe (rate-limited by the server).
    KeyframeWanted {
        camera: usize,
    },
    /// The H.264 encoder of a camera failed; JPEG streaming goes on.
    H264Failed {
        camera: usize,
        generation: u64,
        reason: String,
    },
    /// The detector of a camera failed; the camera goes on without it.
    DetectorFailed {
        camera: usize,
        generation: u64,
        reason: String,
    },
    /// Only wakes the loop, which then reports the bytes written.
    SegmentClosed {
        camera: usize,
    },
    /// Only wakes the loop, which then reports the new file.
    SegmentOpened {
        camera: usize,
    },
    Shutdown,
}
