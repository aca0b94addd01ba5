// SPDX-License-Identifier: MIT
//! The range of the samples on each path. A JPEG (JFIF) holds full-range video (Y 0–255);
//! cameras and most raw sources give limited range (Y 16–235), and browsers decode H.264 as
//! limited range whatever its header says. Written into a JPEG as it is, limited-range video
//! shows white as 235 and black as 16; a JPEG fed to an H.264 encoder as it is clips shadows
//! and highlights in the browser.
//!
//! `videoconvert` would be the natural place, but it leaves the samples alone when only the
//! range differs (the matrix is the same), at least up to GStreamer 1.22; a real conversion
//! through another matrix costs ten times more. So each path scales the samples itself with
//! `videobalance`, which works through lookup tables: about 0.4 ms a 720p frame here.

use gst::prelude::*;

/// Limited to full range: Y' = (Y - 16) · 255/219, C' = (C - 128) · 255/224 + 128.
const EXPAND: Scale = Scale {
    contrast: 255.0 / 219.0,
    brightness: -16.0 / 255.0,
    saturation: 255.0 / 224.0,
};
/// Full to limited range: Y' = 16 + Y · 219/255, C' = (C - 128) · 224/255 + 128.
const COMPRESS: Scale = Scale {
    contrast: 219.0 / 255.0,
    brightness: 16.0 * 219.0 / 255.0 / 255.0,
    saturation: 224.0 / 255.0,
};

/// Samples as they are (videobalance passes the buffers through).
const UNCHANGED: Scale = Scale {
    contrast: 1.0,
    brightness: 0.0,
    saturation: 1.0,
};

/// `videobalance` settings; its luma table is `16 + (Y - 16) · contrast + brightness · 255`.
struct Scale {
    contrast: f64,
    brightness: f64,
    saturation: f64,
}

impl Scale {
    fn launch_text(&self, name: &str) -> String {
        format!(
            "videobalance name={name} contrast={:.6} brightness={:.6} saturation={:.6}",
            self.contrast, self.brightness, self.saturation
        )
    }

    fn apply(&self, balance: &gst::Element) {
        balance.set_property("contrast", self.contrast);
        balance.set_property("brightness", self.brightness);
        balance.set_property("saturation", self.saturation);
    }
}

/// The element of a camera pipeline that makes its raw video full range for the JPEG encoder.
const TO_FULL_RANGE: &str = "fullrange";

/// gst-launch text of the stage before a JPEG encoder: expands limited-range video, and is
/// set to pass full-range video unchanged once the caps say which it is
/// ([`follow_source_range`]).
pub fn to_full_range_text() -> String {
    EXPAND.launch_text(TO_FULL_RANGE)
}

/// gst-launch text between `jpegdec` and an H.264 encoder: full-range JPEG pictures become
/// limited range, and the caps say so (BT.601, as JPEG's matrix is), so that the encoder
/// declares what browsers assume.
pub fn jpeg_to_limited_text() -> String {
    format!(
        "{} ! capssetter join=true replace=false caps=\"video/x-raw,colorimetry=(string)bt601\"",
        COMPRESS.launch_text("limitedrange")
    )
}

/// Makes the `fullrange` stage of `pipeline` (if it has one) expand only what is limited
/// range: a source whose caps say full range passes unchanged. Raw video without a stated
/// range is limited, as GStreamer assumes for YUV (and `videotestsrc` produces).
pub fn follow_source_range(pipeline: &gst::Pipeline) {
    let Some(balance) = pipeline.by_name(TO_FULL_RANGE) else {
        return;
    };
    let Some(pad) = balance.static_pad("sink") else {
        return;
    };
    let weak = balance.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &info.data
            && let gst::EventView::Caps(caps) = event.view()
            && let Some(balance) = weak.upgrade()
        {
            let full = gst_video::VideoInfo::from_caps(caps.caps()).is_ok_and(|info| {
                info.colorimetry().range() == gst_video::VideoColorRange::Range0_255
            });
            if full { &UNCHANGED } else { &EXPAND }.apply(&balance);
        }
        gst::PadProbeReturn::Ok
    });
}
