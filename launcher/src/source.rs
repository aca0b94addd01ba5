// SPDX-License-Identifier: MIT
//! Where frames come from: a V4L2 camera, the test pattern, or a user's pipeline fragment.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Device(PathBuf),
    TestPattern,
    Fragment(String),
}

/// What a source can produce, learnt without streaming from it.
#[derive(Debug, Clone)]
pub struct Offer {
    pub caps: gst::Caps,
}

impl Offer {
    pub fn offers_raw(&self) -> bool {
        self.caps
            .can_intersect(&gst::Caps::new_empty_simple("video/x-raw"))
    }

    pub fn offers_jpeg(&self) -> bool {
        self.caps
            .can_intersect(&gst::Caps::new_empty_simple("image/jpeg"))
    }

    /// Whether the source can deliver JPEG at exactly this size and rate.
    pub fn offers_jpeg_at(&self, width: u32, height: u32, fps: u32) -> bool {
        self.caps.can_intersect(&jpeg_caps(width, height, fps))
    }
}

pub fn jpeg_caps(width: u32, height: u32, fps: u32) -> gst::Caps {
    gst::Caps::builder("image/jpeg")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(fps as i32, 1))
        .build()
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::Device(path) => path.display().to_string(),
            Source::TestPattern => "test pattern".to_string(),
            Source::Fragment(_) => "pipeline".to_string(),
        }
    }

    /// The gst-launch text of the source part of the camera pipeline.
    pub fn launch_text(&self) -> String {
        match self {
            Source::Device(path) => format!(
                "v4l2src device=\"{}\"",
                path.display().to_string().replace('"', "")
            ),
            Source::TestPattern => {
                "videotestsrc is-live=true pattern=ball motion=sweep background-color=0xff202830"
                    .to_string()
            }
            Source::Fragment(text) => text.clone(),
        }
    }

    /// Checks that the source can be built at all: a typo in a fragment is a start-up error, a
    /// missing device is not (it may be plugged in later).
    pub fn validate(&self) -> Result<()> {
        let Source::Fragment(text) = self else {
            return Ok(());
        };
        if text.trim().is_empty() {
            return Err(anyhow!("--pipeline is empty"));
        }
        fragment_bin(text)
            .map(|_| ())
            .map_err(|e| anyhow!("cannot parse --pipeline \"{text}\": {e}"))
    }

    /// Opens the source just far enough (READY) to ask what it can produce, then closes it.
    /// A device that cannot be opened is said in words a viewer understands (the page shows
    /// them); the log has GStreamer's own.
    pub fn probe(&self) -> Result<Offer> {
        if let Source::Device(path) = self
            && std::fs::metadata(path).is_err()
        {
            return Err(anyhow!(
                "No camera at {} — is it plugged in?",
                path.display()
            ));
        }
        let bin = fragment_bin(&self.launch_text())
            .with_context(|| format!("cannot build source {}", self.name()))?;
        let pad = bin
            .static_pad("src")
            .ok_or_else(|| anyhow!("source {} has no output", self.name()))?;
        // In a pipeline of its own, so the reason of a failure reaches a bus we can read.
        let pipeline = gst::Pipeline::new();
        pipeline.add(&bin)?;
        let result = pipeline.set_state(gst::State::Ready);
        let caps = pad.query_caps(None);
        let reason = crate::gst_util::take_error(&pipeline);
        let _ = pipeline.set_state(gst::State::Null);
        if result.is_err() {
            if let Some(reason) = &reason {
                log::debug!("Opening {}: {reason}", self.name());
            }
            return Err(self.open_failure(reason.as_deref()));
        }
        Ok(Offer { caps })
    }

    fn open_failure(&self, reason: Option<&str>) -> anyhow::Error {
        let name = self.name();
        let Some(reason) = reason else {
            return anyhow!("Cannot open {name}");
        };
        let lower = reason.to_ascii_lowercase();
        if matches!(self, Source::Device(_)) {
            if lower.contains("busy") {
                return anyhow!(
                    "{name} is in use by another program — close it, or use another camera"
                );
            }
            if lower.contains("permission denied") {
                return anyhow!(
                    "No permission to open {name} — add the user to the \"video\" group ({reason})"
                );
            }
            if lower.contains("no such device") || lower.contains("cannot identify device") {
                return anyhow!("No camera at {name} — is it plugged in?");
            }
        }
        anyhow!("Cannot open {name}: {reason}")
    }
}

/// A gst-launch fragment as a bin with ghost pads. An `identity` at its end lets the fragment
/// end in caps (`… ! video/x-raw,framerate=30/1`), which gst-launch syntax takes only between
/// two elements.
pub fn fragment_bin(text: &str) -> Result<gst::Bin, gst::glib::Error> {
    gst::parse::bin_from_description(&format!("{text} ! identity"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(source: &Source, reason: &str) -> String {
        source.open_failure(Some(reason)).to_string()
    }

    #[test]
    fn a_device_that_cannot_open_is_said_in_plain_words() {
        let device = Source::Device("/dev/video0".into());
        assert_eq!(
            said(
                &device,
                "Could not open device '/dev/video0' for reading and writing. Device or resource busy"
            ),
            "/dev/video0 is in use by another program — close it, or use another camera"
        );
        assert!(said(&device, "Permission denied").starts_with(
            "No permission to open /dev/video0 — add the user to the \"video\" group"
        ));
        assert_eq!(
            said(&device, "Cannot identify device '/dev/video0'."),
            "No camera at /dev/video0 — is it plugged in?"
        );
        assert_eq!(
            said(&device, "Something else"),
            "Cannot open /dev/video0: Something else"
        );
        assert_eq!(
            device.open_failure(None).to_string(),
            "Cannot open /dev/video0"
        );
    }

    #[test]
    fn a_missing_device_is_said_before_gstreamer_is_asked() {
        let missing = Source::Device("/dev/video-not-here".into());
        let error = missing.probe().expect_err("no such device");
        assert_eq!(
            error.to_string(),
            "No camera at /dev/video-not-here — is it plugged in?"
        );
    }
}
