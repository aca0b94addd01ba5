// SPDX-License-Identifier: MIT
//! The JPEG path: the camera's own MJPEG, the Jetson hardware encoder, or the software one.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::gst_util::reaches_paused;
use crate::source::{Offer, Source};

/// Caps between nvvidconv and nvjpegenc: frames stay in NVMM (GPU) memory.
pub const NVMM_CAPS: &str = "video/x-raw(memory:NVMM),format=I420";
const HARDWARE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncoderChoice {
    /// Best available: camera MJPEG, then nvjpegenc, then jpegenc.
    Auto,
    /// The camera's own JPEG frames, no encoding at all; fails if the camera offers none.
    Passthrough,
    /// Jetson hardware encoder (nvvidconv ! nvjpegenc); fails if it is not available.
    Nvjpeg,
    /// Software encoder (jpegenc); works everywhere, costs CPU.
    Jpeg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegPath {
    /// The camera's JPEG at the asked size and rate.
    Passthrough,
    /// The source only offers JPEG, not at the asked size or rate: taken as it comes.
    PassthroughAnySize,
    Hardware,
    Software,
}

impl JpegPath {
    pub fn encoder_name(self) -> &'static str {
        match self {
            JpegPath::Passthrough | JpegPath::PassthroughAnySize => "passthrough",
            JpegPath::Hardware => "nvjpegenc",
            JpegPath::Software => "jpegenc",
        }
    }

    pub fn log_line(self) -> &'static str {
        match self {
            JpegPath::Passthrough => "Using the camera's own MJPEG (no encoding)",
            JpegPath::PassthroughAnySize => {
                "Using the source's own JPEG as it comes (it offers no other size or rate)"
            }
            JpegPath::Hardware => "Using hardware JPEG encoder (nvjpegenc)",
            JpegPath::Software => "Using software JPEG encoder (jpegenc)",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub quality: u32,
}

/// Whether the Jetson encoder is installed and actually works: a one-frame pipeline through it
/// must reach PAUSED. Uses a test source, so the camera is not touched.
pub fn hardware_encoder_works(format: &Format) -> bool {
    if gst::ElementFactory::find("nvjpegenc").is_none()
        || gst::ElementFactory::find("nvvidconv").is_none()
    {
        return false;
    }
    let text = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width={w},height={h} ! nvvidconv ! {NVMM_CAPS},width={w},height={h} \
         ! nvjpegenc ! fakesink",
        w = format.width,
        h = format.height
    );
    reaches_paused(&text, HARDWARE_PROBE_TIMEOUT)
}

/// Picks the JPEG path for `choice`, given what the source offers.
pub fn choose(choice: EncoderChoice, offer: &Offer, format: &Format) -> Result<JpegPath> {
    let exact = offer.offers_jpeg_at(format.width, format.height, format.fps);
    match choice {
        EncoderChoice::Auto => {
            if exact {
                Ok(JpegPath::Passthrough)
            } else if offer.offers_jpeg() && !offer.offers_raw() {
                Ok(JpegPath::PassthroughAnySize)
            } else if hardware_encoder_works(format) {
                Ok(JpegPath::Hardware)
            } else {
                Ok(JpegPath::Software)
            }
        }
        EncoderChoice::Passthrough if exact => Ok(JpegPath::Passthrough),
        EncoderChoice::Passthrough => bail!(
            "--encoder passthrough: the source offers no JPEG at {}x{} {} fps (it offers: {})",
            format.width,
            format.height,
            format.fps,
            describe(&offer.caps)
        ),
        EncoderChoice::Nvjpeg if hardware_encoder_works(format) => Ok(JpegPath::Hardware),
        EncoderChoice::Nvjpeg => bail!(
            "--encoder nvjpeg: the Jetson JPEG encoder (nvvidconv, nvjpegenc) is not installed or \
             does not work here; use --encoder auto or jpeg"
        ),
        EncoderChoice::Jpeg if gst::ElementFactory::find("jpegenc").is_some() => {
            Ok(JpegPath::Software)
        }
        EncoderChoice::Jpeg => Err(anyhow!(
            "--encoder jpeg: jpegenc is missing (install gstreamer1.0-plugins-good)"
        )),
    }
}

fn describe(caps: &gst::Caps) -> String {
    let names: Vec<String> = caps.iter().map(|s| s.name().to_string()).collect();
    let mut names = names;
    names.dedup();
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

/// The gst-launch text of the camera pipeline, ending in an appsink named `frames`; with
/// `detect`, a branch before the JPEG path (after it for the camera's own JPEG) ends in an
/// appsink named `detect`, behind a leaky queue of one frame, so that the detector never holds
/// up the stream.
pub fn camera_pipeline_text(
    source: &Source,
    offer: &Offer,
    path: JpegPath,
    format: &Format,
    detect: bool,
) -> String {
    let Format {
        width,
        height,
        fps,
        quality,
    } = *format;
    let source = source.launch_text();
    let range = crate::colour_range::to_full_range_text();
    let middle = match path {
        JpegPath::Passthrough => {
            format!("image/jpeg,width={width},height={height},framerate={fps}/1 ! jpegparse")
        }
        JpegPath::PassthroughAnySize => "image/jpeg ! jpegparse".to_string(),
        // Both encoders write the samples as they get them: limited-range video is made
        // full range first. The picture keeps its shape: a source of another shape gets
        // black bars (square pixels asked of videoscale, which adds borders to keep it).
        // A source that gives NVMM memory only (a CSI camera) goes to nvvidconv as it is:
        // videobalance works on system memory.
        JpegPath::Hardware => format!(
            "{}nvvidconv ! {NVMM_CAPS},width={width},height={height},pixel-aspect-ratio=1/1 \
             ! nvjpegenc quality={quality}",
            if offer.offers_raw() {
                format!("{range} ! ")
            } else {
                String::new()
            }
        ),
        JpegPath::Software => format!(
            "videoconvert ! videoscale ! videorate drop-only=true \
             ! video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1,framerate=[1/1,{fps}/1] \
             ! {range} ! jpegenc quality={quality}"
        ),
    };
    let frames = "appsink name=frames sync=false max-buffers=2 drop=true";
    if !detect {
        return format!("{source} ! {middle} ! {frames}");
    }
    let branch = "split. ! queue leaky=downstream max-size-buffers=1 max-size-bytes=0 \
                  max-size-time=0 ! appsink name=detect sync=false async=false max-buffers=1 \
                  drop=true";
    match path {
        JpegPath::Passthrough | JpegPath::PassthroughAnySize => {
            format!("{source} ! {middle} ! tee name=split ! {frames} {branch}")
        }
        JpegPath::Hardware | JpegPath::Software => {
            format!("{source} ! tee name=split ! {middle} ! {frames} {branch}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> Format {
        Format {
            width: 640,
            height: 360,
            fps: 30,
            quality: 80,
        }
    }

    fn offer(caps: &str) -> Offer {
        gst::init().expect("GStreamer initialises");
        Offer {
            caps: caps.parse().expect("caps"),
        }
    }

    #[test]
    fn raw_video_is_made_full_range_before_either_jpeg_encoder() {
        let raw = offer("video/x-raw,format=YUY2");
        for path in [JpegPath::Software, JpegPath::Hardware] {
            let text = camera_pipeline_text(&Source::TestPattern, &raw, path, &format(), false);
            assert!(text.contains("videobalance name=fullrange"), "{text}");
        }
    }

    #[test]
    fn an_nvmm_source_goes_to_nvvidconv_as_it_is() {
        let nvmm = offer("video/x-raw(memory:NVMM),format=NV12");
        let text = camera_pipeline_text(
            &Source::TestPattern,
            &nvmm,
            JpegPath::Hardware,
            &format(),
            false,
        );
        assert!(!text.contains("videobalance"), "{text}");
        assert!(text.contains("nvvidconv"), "{text}");
    }
}
