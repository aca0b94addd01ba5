// SPDX-License-Identifier: MIT
//! One camera's recording as the control loop sees it: whether it is wanted, the pipeline while
//! the camera runs, the tap the frame callback feeds it through, and the figures reported to the
//! element in `recording-state`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::SystemTime;

use crate::camera::RecordTap;
use crate::events::Event;
use crate::recorder::{RecordFormat, RecordingConfig, RecordingPipeline, Writing};

#[derive(Default)]
pub struct RecordingSlot {
    wanted: bool,
    pipeline: Option<RecordingPipeline>,
    tap: RecordTap,
    /// Tells a failure of this recording from one of an earlier, already replaced one.
    generation: u64,
    started: Option<SystemTime>,
    /// Figures of the recordings that ended, added to the running one's.
    deleted_before: u64,
    bytes_before: u64,
    error: Option<String>,
    last_state: Option<gst::Structure>,
    /// Shared by every camera's recording.
    writing: Arc<Writing>,
}

impl RecordingSlot {
    pub fn new(wanted: bool, writing: Arc<Writing>) -> Self {
        RecordingSlot {
            wanted,
            writing,
            ..RecordingSlot::default()
        }
    }

    pub fn wanted(&self) -> bool {
        self.wanted
    }

    pub fn is_active(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Wanted but not running: the control loop starts it once the camera runs.
    pub fn wants_start(&self) -> bool {
        self.wanted && self.pipeline.is_none()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// What the camera pipeline's frame callback feeds.
    pub fn tap(&self) -> RecordTap {
        self.tap.clone()
    }

    /// The input of an H.264 recording while it runs: the camera's encoder feeds it.
    pub fn h264_input(&self) -> Option<gst_app::AppSrc> {
        self.pipeline
            .as_ref()
            .filter(|p| p.format == RecordFormat::H264)
            .map(|p| p.appsrc.clone())
    }

    /// `POST /api/record/start` or `/stop`.
    pub fn control(&mut self, camera: usize, start: bool) {
        log::info!(
            "Camera {camera}: recording {} requested",
            if start { "start" } else { "stop" }
        );
        self.wanted = start;
        if start {
            self.error = None;
        } else {
            self.stop();
            self.started = None;
        }
    }

    pub fn start(&mut self, config: &RecordingConfig, camera: usize, events: &Sender<Event>) {
        if self.pipeline.is_some() {
            return;
        }
        self.generation += 1;
        match RecordingPipeline::start(
            config,
            camera,
            self.generation,
            self.writing.clone(),
            events.clone(),
        ) {
            Ok(pipeline) => {
                // JPEG frames from the camera; H.264 comes from the camera's encoder instead.
                if config.format == RecordFormat::Mjpeg {
                    self.set_tap(Some(&pipeline));
                }
                self.started.get_or_insert_with(SystemTime::now);
                self.error = None;
                log::info!(
                    "Camera {camera}: recording {} into {}",
                    config.format.name(),
                    config.dir.display()
                );
                self.pipeline = Some(pipeline);
            }
            Err(err) => self.failed(camera, &format!("{err:#}")),
        }
    }

    /// Finishes the current segment so it plays.
    pub fn stop(&mut self) {
        if let Some(pipeline) = self.detach() {
            pipeline.finalize();
        }
    }

    /// Disk full, folder gone, write error: that recording stops, streaming goes on.
    pub fn failed(&mut self, camera: usize, reason: &str) {
        log::error!("Camera {camera}: recording stopped: {reason}");
        drop(self.detach());
        self.wanted = false;
        self.started = None;
        self.error = Some(reason.to_string());
    }

    /// The `recording-state` structure for the element, when it differs from the last one
    /// returned.
    pub fn changed_state(&mut self, config: &RecordingConfig) -> Option<gst::Structure> {
        let pipeline = self.pipeline.as_ref();
        let figure = |read: fn(&RecordingPipeline) -> u64| pipeline.map(read).unwrap_or(0);
        let mut state = gst::Structure::builder("recording")
            .field("active", pipeline.is_some())
            .field("control", true)
            .field("format", config.format.name())
            .field(
                "bytes-written",
                self.bytes_before + figure(RecordingPipeline::bytes_written),
            )
            .field(
                "segments-deleted",
                self.deleted_before + figure(|p| p.figures.deleted.load(Ordering::Relaxed)),
            )
            .field(
                "frames-dropped",
                figure(|p| p.figures.dropped.load(Ordering::Relaxed)),
            )
            .field(
                "detections-dropped",
                figure(|p| p.figures.detections_dropped.load(Ordering::Relaxed)),
            )
            .build();
        if let Some(started) = self.started.filter(|_| pipeline.is_some()) {
            state.set(
                "started",
                humantime::format_rfc3339_seconds(started).to_string(),
            );
        }
        if let Some(file) = pipeline.and_then(RecordingPipeline::current_file) {
            state.set("file", file);
        }
        if let Some(error) = &self.error {
            state.set("error", error.as_str());
        }
        if self.last_state.as_ref() == Some(&state) {
            return None;
        }
        self.last_state = Some(state.clone());
        Some(state)
    }

    /// Stops feeding the pipeline and takes it out, keeping its figures.
    fn detach(&mut self) -> Option<RecordingPipeline> {
        self.set_tap(None);
        let pipeline = self.pipeline.take()?;
        self.bytes_before += pipeline.bytes_written();
        self.deleted_before += pipeline.figures.deleted.load(Ordering::Relaxed);
        Some(pipeline)
    }

    fn set_tap(&self, pipeline: Option<&RecordingPipeline>) {
        if let Ok(mut tap) = self.tap.lock() {
            *tap = pipeline.map(|p| (p.appsrc.clone(), p.figures.clone()));
        }
    }
}
