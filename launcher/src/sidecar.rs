// SPDX-License-Identifier: MIT
//! Detections beside a recording: every `detections` message the element takes while a segment
//! is being written goes into `<segment>.detections.jsonl` next to it, one JSON line each, so a
//! clip can be reviewed with its boxes (each line carries its frame's capture time).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;

use crate::camera::RecordTap;
use crate::recorder::detections_name;

/// Keeps the detections `sink` takes beside the segment the recording `tap` feeds, in `dir`.
pub fn keep_beside_recordings(sink: &gst::Element, tap: RecordTap, dir: PathBuf) {
    // An older installed element without detections: nothing to keep.
    if gst::glib::subclass::signal::SignalId::lookup("detections", sink.type_()).is_none() {
        return;
    }
    let warned = AtomicBool::new(false);
    sink.connect("detections", false, move |args| {
        let message = args.get(1).and_then(|v| v.get::<String>().ok())?;
        let segment = tap
            .lock()
            .ok()
            .and_then(|tap| tap.as_ref().map(|(_, figures)| figures.clone()))
            .and_then(|figures| figures.current.lock().ok().and_then(|c| c.clone()))?;
        let path = dir.join(detections_name(&segment)?);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| writeln!(file, "{message}"));
        match written {
            Ok(()) => warned.store(false, Ordering::Relaxed),
            Err(err) if !warned.swap(true, Ordering::Relaxed) => {
                log::warn!("Cannot keep detections in {}: {err}", path.display());
            }
            Err(_) => {}
        }
        None
    });
}
