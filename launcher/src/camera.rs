// SPDX-License-Identifier: MIT
//! The camera half: `source ! <JPEG path> ! appsink`, built fresh for every start and thrown
//! away on stop or loss, so a re-plugged device or a changed encoder needs nothing special.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use gst::prelude::*;

use crate::detector::{DetectionConfig, DetectorFeed, DetectorPipeline};
use crate::encoder::{self, EncoderChoice, Format, JpegPath};
use crate::events::Event;
use crate::gst_util::retimed;
use crate::recorder::{self, RecordingFigures};
use crate::source::Source;

/// Where the camera's frames also go while a recording runs; set and cleared by the control
/// loop, read by the frame callback.
pub type RecordTap = Arc<Mutex<Option<(gst_app::AppSrc, Arc<RecordingFigures>)>>>;

/// The input of the H.264 encoder while it runs; set and cleared by the control loop.
pub type H264Tap = Arc<Mutex<Option<gst_app::AppSrc>>>;

pub struct CameraPipeline {
    pipeline: gst::Pipeline,
    pub path: JpegPath,
    started: Instant,
    frames: Arc<FrameClock>,
    detector: Arc<Mutex<DetectorSlot>>,
}

/// The detector of this camera start: started with the first frame of the detection branch
/// (which gives its caps), stopped for good when it fails.
#[derive(Default)]
struct DetectorSlot {
    pipeline: Option<DetectorPipeline>,
    feed: Option<Arc<DetectorFeed>>,
    failed: bool,
}

/// What the detection branch needs: how to detect, and where detections go.
pub struct Detection<'a> {
    pub config: &'a DetectionConfig,
    pub sink: gst::Element,
}

/// When the last frame came, shared with the appsink callback.
struct FrameClock {
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last frame; 0 = none yet.
    last_ns: AtomicU64,
    count: AtomicU64,
}

impl FrameClock {
    fn tick(&self) {
        let ns = self.epoch.elapsed().as_nanos().max(1) as u64;
        self.last_ns.store(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn last(&self) -> Option<Instant> {
        match self.last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }
}

pub struct StartRequest<'a> {
    pub source: &'a Source,
    pub choice: EncoderChoice,
    pub format: Format,
    pub camera: usize,
    pub generation: u64,
    pub detection: Option<Detection<'a>>,
}

impl CameraPipeline {
    pub fn start(
        request: StartRequest<'_>,
        target: &gst_app::AppSrc,
        taps: (RecordTap, H264Tap),
        events: Sender<Event>,
    ) -> Result<CameraPipeline> {
        let (tap, h264) = taps;
        let offer = request.source.probe()?;
        let path = encoder::choose(request.choice, &offer, &request.format)?;
        let text = encoder::camera_pipeline_text(
            request.source,
            &offer,
            path,
            &request.format,
            request.detection.is_some(),
        );
        log::debug!("Camera pipeline: {text}");
        let pipeline = gst::parse::launch(&text)
            .map_err(|e| anyhow!("cannot build the camera pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the camera pipeline is not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        crate::colour_range::follow_source_range(&pipeline);
        let appsink = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| anyhow!("the camera pipeline has no frame output"))?;
        let frames = Arc::new(FrameClock {
            epoch: Instant::now(),
            last_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        });
        forward_frames(&appsink, target.clone(), (tap, h264), frames.clone());
        let detector = Arc::new(Mutex::new(DetectorSlot::default()));
        if let Some(detection) = request.detection {
            let detect = pipeline
                .by_name("detect")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or_else(|| anyhow!("the camera pipeline has no detection branch"))?;
            let stream_size = match path {
                JpegPath::Hardware | JpegPath::Software => {
                    Some((request.format.width, request.format.height))
                }
                JpegPath::Passthrough | JpegPath::PassthroughAnySize => None,
            };
            let start = DetectorStart {
                config: detection.config.clone(),
                sink: detection.sink,
                stream_size,
                camera: request.camera,
                generation: request.generation,
                events: events.clone(),
            };
            feed_detector(&detect, start, detector.clone());
        }
        watch_bus(&pipeline, request.camera, request.generation, events);
        if pipeline.set_state(gst::State::Playing).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(anyhow!("cannot start {}", request.source.name()));
        }
        Ok(CameraPipeline {
            pipeline,
            path,
            started: Instant::now(),
            frames,
            detector,
        })
    }

    /// The detector failed: it stops, the camera goes on without it until its next start.
    pub fn stop_detector(&self) {
        let pipeline = self.detector.lock().ok().and_then(|mut slot| {
            slot.failed = true;
            slot.feed = None;
            slot.pipeline.take()
        });
        drop(pipeline);
    }

    /// Time since the last frame, or since the start when none came yet.
    pub fn silence(&self) -> Duration {
        self.frames.last().unwrap_or(self.started).elapsed()
    }

    pub fn frame_count(&self) -> u64 {
        self.frames.count.load(Ordering::Relaxed)
    }

    /// NULL: the device file is closed when this returns.
    pub fn stop(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for CameraPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        // The detector runs only while the camera does.
        self.stop_detector();
    }
}

/// Hands every JPEG to the server pipeline (and the recording, if one runs), re-timed onto each
/// pipeline's running time (all run on the system clock) so capture times carry across.
fn forward_frames(
    appsink: &gst_app::AppSink,
    target: gst_app::AppSrc,
    taps: (RecordTap, H264Tap),
    frames: Arc<FrameClock>,
) {
    let (tap, h264) = taps;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let caps = sample.caps_owned();
                // A source without timestamps (some --pipeline fragments) is stamped on arrival.
                let capture = buffer
                    .pts()
                    .zip(appsink.base_time())
                    .map(|(pts, base)| pts + base)
                    .or_else(|| appsink.clock().map(|clock| clock.time()));
                frames.tick();
                let recording = tap.lock().ok().and_then(|t| t.clone());
                if let Some((appsrc, figures)) = recording {
                    let copy = retimed(&buffer, capture, &appsrc, caps.as_ref());
                    // Muxers need timestamps: frames from before the recording started, or
                    // without a capture time, are left out.
                    if copy.pts().is_some() {
                        recorder::offer_frame(&appsrc, &figures, copy);
                    }
                }
                let encoder = h264.lock().ok().and_then(|t| t.clone());
                if let Some(input) = encoder {
                    let copy = retimed(&buffer, capture, &input, caps.as_ref());
                    if copy.pts().is_some() {
                        crate::h264::offer_frame(&input, copy);
                    }
                }
                // The server's flow state is not the camera's business: a parked server
                // (flushing appsrc) just drops the frame.
                let _ = target.push_buffer(retimed(&buffer, capture, &target, caps.as_ref()));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Everything needed to start the detector once the branch's caps are known.
struct DetectorStart {
    config: DetectionConfig,
    sink: gst::Element,
    /// The JPEG frames' size when the JPEG path sets it; else the caps of the branch say it.
    stream_size: Option<(u32, u32)>,
    camera: usize,
    generation: u64,
    events: Sender<Event>,
}

/// Hands the detection branch's frames to the detector, starting it with the first one.
fn feed_detector(detect: &gst_app::AppSink, start: DetectorStart, slot: Arc<Mutex<DetectorSlot>>) {
    detect.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Ok(mut detector) = slot.lock() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if detector.failed {
                    return Ok(gst::FlowSuccess::Ok);
                }
                if detector.feed.is_none() {
                    match start_detector(&start, sample.caps()) {
                        Ok(pipeline) => {
                            detector.feed = Some(pipeline.feed(start.config.fps));
                            detector.pipeline = Some(pipeline);
                        }
                        Err(err) => {
                            detector.failed = true;
                            let _ = start.events.send(Event::DetectorFailed {
                                camera: start.camera,
                                generation: start.generation,
                                reason: format!("{err:#}"),
                            });
                            return Ok(gst::FlowSuccess::Ok);
                        }
                    }
                }
                let capture = sample
                    .buffer()
                    .and_then(|b| b.pts())
                    .zip(appsink.base_time())
                    .map(|(pts, base)| pts + base);
                if let (Some(feed), Some(buffer)) = (&detector.feed, sample.buffer_owned()) {
                    feed.offer(&buffer, capture);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

fn start_detector(start: &DetectorStart, caps: Option<&gst::CapsRef>) -> Result<DetectorPipeline> {
    let caps = caps
        .map(|c| c.to_owned())
        .ok_or_else(|| anyhow!("the detection branch has no caps"))?;
    let size_of_caps = caps.structure(0).and_then(|s| {
        Some((
            u32::try_from(s.get::<i32>("width").ok()?).ok()?,
            u32::try_from(s.get::<i32>("height").ok()?).ok()?,
        ))
    });
    let stream_size = start
        .stream_size
        .or(size_of_caps)
        .ok_or_else(|| anyhow!("the detection branch does not say the frame size"))?;
    DetectorPipeline::start(
        &start.config,
        &caps,
        stream_size,
        start.sink.clone(),
        start.camera,
        start.generation,
        start.events.clone(),
    )
}

/// Errors and end-of-stream become camera-loss events for the control loop. Runs on the
/// posting thread, so it only sends; the control loop does the state changes.
fn watch_bus(pipeline: &gst::Pipeline, camera: usize, generation: u64, events: Sender<Event>) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| {
        let reason = match message.view() {
            gst::MessageView::Error(err) => Some(describe_error(err)),
            gst::MessageView::Eos(_) => Some("the camera stream ended".to_string()),
            gst::MessageView::Warning(w) => {
                log::warn!("Camera {camera}: {}", w.error());
                None
            }
            _ => None,
        };
        if let Some(reason) = reason {
            let _ = events.send(Event::CameraLost {
                camera,
                generation,
                reason,
            });
        }
        gst::BusSyncReply::Drop
    });
}

fn describe_error(err: &gst::message::Error) -> String {
    let text = err.error().to_string();
    let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    if source.is_empty() {
        text
    } else {
        format!("{text} ({source})")
    }
}
