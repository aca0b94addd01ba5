// SPDX-License-Identifier: MIT
//! Detections beside a recording: every `detections` message the element takes while a segment
//! is being written goes into `<segment>.detections.jsonl` next to it, one JSON line each, so a
//! clip can be reviewed with its boxes (each line carries its frame's capture time).
//!
//! A detector may push far faster than the camera films, and far more bytes than the video
//! takes: a segment's detections may hold at most as many bytes as its video so far (plus
//! [`SLACK`], so that the first frames of a segment keep theirs). What does not fit is counted
//! (`detections-dropped` in the recording state, `/status` and `/metrics`), so a detector can
//! never fill the disk faster than the video does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use gst::prelude::*;

use crate::camera::RecordTap;
use crate::recorder::detections_name;

/// Bytes of detections a segment may hold beyond the bytes of its video.
pub const SLACK: u64 = 64 * 1024;

/// What the detections file of the segment being written holds.
#[derive(Default)]
struct Kept {
    segment: String,
    bytes: u64,
}

/// Keeps the detections `sink` takes beside the segment the recording `tap` feeds, in `dir`.
pub fn keep_beside_recordings(sink: &gst::Element, tap: RecordTap, dir: PathBuf) {
    // An older installed element without detections: nothing to keep.
    if gst::glib::subclass::signal::SignalId::lookup("detections", sink.type_()).is_none() {
        return;
    }
    let warned = AtomicBool::new(false);
    let kept = Mutex::new(Kept::default());
    sink.connect("detections", false, move |args| {
        let message = args.get(1).and_then(|v| v.get::<String>().ok())?;
        let figures = tap
            .lock()
            .ok()
            .and_then(|tap| tap.as_ref().map(|(_, figures)| figures.clone()))?;
        let segment = figures.current.lock().ok().and_then(|c| c.clone())?;
        let path = dir.join(detections_name(&segment)?);
        let line = message.len() as u64 + 1;
        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.segment != segment {
            *kept = Kept {
                bytes: file_size(&path),
                segment,
            };
        }
        if kept.bytes + line > file_size(&dir.join(&kept.segment)) + SLACK {
            figures.detections_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| writeln!(file, "{message}"));
        match written {
            Ok(()) => {
                kept.bytes += line;
                warned.store(false, Ordering::Relaxed);
            }
            Err(err) if !warned.swap(true, Ordering::Relaxed) => {
                log::warn!("Cannot keep detections in {}: {err}", path.display());
            }
            Err(_) => {}
        }
        None
    });
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
