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
