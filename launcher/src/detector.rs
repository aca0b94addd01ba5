// SPDX-License-Identifier: MIT
//! Object detection beside the live view (`--detect`): a pipeline of its own,
//! `appsrc ! [jpegdec] ! videoconvert ! videoscale ! <detector size> ! DETECTOR ! fakesink`,
//! fed from a branch of the camera pipeline at `--detect-fps` at most. A probe at its end reads
//! the region-of-interest metas the detector attached, scales their boxes back to the stream's
//! size and pushes them to `wsjpegsink` with the frame's capture time, so viewers draw them over
//! the very frame they were found in.
//!
//! The frames are never held up: the camera's branch is a leaky queue of one frame, and a frame
//! arriving while the detector is still busy with the previous one is dropped. A detector that
//! fails stops only this pipeline; streaming goes on.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use gst::prelude::*;

use gstwsjpeg::detections::{FrameTime, detections_structure, region_objects};

use crate::events::Event;
use crate::gst_util::{retimed, take_error};

#[derive(Debug, Clone)]
pub struct DetectionConfig {
    /// gst-launch fragment taking raw video and attaching region-of-interest metas.
    pub fragment: String,
    /// Frames per second handed to the detector, at most.
    pub fps: f64,
    /// Width of the frames the detector sees; the height keeps the stream's aspect.
    pub width: u32,
}

impl DetectionConfig {
    /// Checks that the fragment builds: a typo or a missing element is a start-up error.
    pub fn validate(&self) -> Result<()> {
        if self.fragment.trim().is_empty() {
            return Err(anyhow!("--detect is empty"));
        }
        crate::source::fragment_bin(&self.fragment)
            .map(|_| ())
            .map_err(|e| anyhow!("cannot build --detect \"{}\": {e}", self.fragment))
    }

    /// The detector's frame size for a stream of `width` × `height` (even numbers, as most
    /// raw formats want).
    fn input_size(&self, width: u32, height: u32) -> (u32, u32) {
        let w = self.width.max(16) & !1;
        let h = (u64::from(w) * u64::from(height.max(1)) / u64::from(width.max(1))).max(16) as u32;
        (w, h & !1)
    }
}

/// The running detector of one camera start.
pub struct DetectorPipeline {
    pipeline: gst::Pipeline,
    input: gst_app::AppSrc,
}

/// What the camera pipeline's detection branch hands over: frames at the detector's rate.
pub struct DetectorFeed {
    input: gst_app::AppSrc,
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl DetectorPipeline {
    /// Builds and starts the detector for a stream of `stream_size` (the JPEG frames' size),
    /// fed with frames of `input_caps` (raw video, or JPEG for a camera's own MJPEG).
    pub fn start(
        config: &DetectionConfig,
        input_caps: &gst::Caps,
        stream_size: (u32, u32),
        sink: gst::Element,
        camera: usize,
        generation: u64,
        events: Sender<Event>,
    ) -> Result<DetectorPipeline> {
        let (width, height) = config.input_size(stream_size.0, stream_size.1);
        let decode = if input_caps
            .structure(0)
            .is_some_and(|s| s.name() == "image/jpeg")
        {
            "jpegdec ! "
        } else {
            ""
        };
        let text = format!(
            "appsrc name=in is-live=true format=time block=false ! {decode}\
             videoconvert ! videoscale ! video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1 \
             ! {} ! fakesink name=out sync=false async=false",
            config.fragment
        );
        log::debug!("Detector pipeline: {text}");
        let pipeline = gst::parse::launch(&text)
            .map_err(|e| anyhow!("cannot build the detector: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the detector is not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let input = pipeline
            .by_name("in")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| anyhow!("the detector pipeline has no input"))?;
        input.set_caps(Some(input_caps));
        let out = pipeline
            .by_name("out")
            .and_then(|e| e.static_pad("sink"))
            .ok_or_else(|| anyhow!("the detector pipeline has no output"))?;
        let scale = (
            f64::from(stream_size.0) / f64::from(width),
            f64::from(stream_size.1) / f64::from(height),
        );
        report_detections(&out, &pipeline, scale, sink);
        watch_bus(&pipeline, camera, generation, events);
        let detector = DetectorPipeline { pipeline, input };
        if detector.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = take_error(&detector.pipeline);
            return Err(anyhow!(
                "the detector cannot start: {}",
                reason.unwrap_or_else(|| "its pipeline fails".into())
            ));
        }
        Ok(detector)
    }

    /// Where the camera's detection branch puts frames.
    pub fn feed(&self, fps: f64) -> Arc<DetectorFeed> {
        Arc::new(DetectorFeed {
            input: self.input.clone(),
            interval: Duration::from_secs_f64(1.0 / fps.clamp(0.1, 240.0)),
            last: Mutex::new(None),
        })
    }
}

impl Drop for DetectorPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl DetectorFeed {
    /// Hands `buffer` (captured at clock time `capture`) to the detector, unless one went in
    /// less than a frame interval of the detector ago, or the detector is still busy.
    pub fn offer(&self, buffer: &gst::Buffer, capture: Option<gst::ClockTime>) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now < at + self.interval) || self.input.current_level_bytes() > 0 {
            return;
        }
        let frame = retimed(buffer, capture, &self.input, None);
        if frame.pts().is_some() && self.input.push_buffer(frame).is_ok() {
            *last = Some(now);
        }
    }
}

/// Reads what the detector attached to each frame and pushes it to the sink, boxes scaled to
/// the stream's pixels, with the frame's capture time on the clock every pipeline shares.
fn report_detections(
    out: &gst::Pad,
    pipeline: &gst::Pipeline,
    scale: (f64, f64),
    sink: gst::Element,
) {
    let pipeline = pipeline.downgrade();
    out.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let clock_time = buffer
            .pts()
            .zip(pipeline.upgrade().and_then(|p| p.base_time()))
            .map(|(pts, base)| pts + base);
        if let Some(clock_time) = clock_time {
            let objects = region_objects(buffer, scale);
            let detections = detections_structure(FrameTime::ClockTime(clock_time), &objects);
            let _ = sink.emit_by_name::<bool>("push-detections", &[&detections]);
        }
        gst::PadProbeReturn::Ok
    });
}

/// An error in the detector becomes an event for the control loop, which stops the detector
/// and leaves the camera running.
fn watch_bus(pipeline: &gst::Pipeline, camera: usize, generation: u64, events: Sender<Event>) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| {
        if let gst::MessageView::Error(err) = message.view() {
            let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
            let _ = events.send(Event::DetectorFailed {
                camera,
                generation,
                reason: format!("{} ({source})", err.error()),
            });
        }
        gst::BusSyncReply::Drop
    });
}
