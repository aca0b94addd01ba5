// SPDX-License-Identifier: MIT
//! The one control loop: opens each camera when its first viewer arrives, releases it after the
//! last one leaves (plus the linger), restarts it with backoff when it is lost, and stops
//! everything on shutdown. Signal handlers and element callbacks only send it events.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::camera::{CameraPipeline, RecordTap, StartRequest};
use crate::cli::EncoderChoice;
use crate::encoder::{Format, JpegPath};
use crate::recorder::{RecordingConfig, RecordingPipeline, Writing};
use crate::server::{ServerPipeline, ServerSettings};
use crate::source::Source;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long without any deadline the loop sleeps; events wake it earlier.
const IDLE_WAIT: Duration = Duration::from_secs(3600);
const RECORDING_REPORT_INTERVAL: Duration = Duration::from_secs(2);

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

#[derive(Debug, Clone)]
pub struct Config {
    pub sources: Vec<Source>,
    pub encoder: EncoderChoice,
    pub format: Format,
    pub port: u16,
    pub linger: Duration,
    pub always_on: bool,
    pub stall_timeout: Duration,
    pub server: ServerSettings,
    pub recording: Option<RecordingConfig>,
}

/// What a camera is doing, as tests and logs see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraView {
    pub running: bool,
    pub path: Option<&'static str>,
    /// How many times the camera pipeline was started.
    pub starts: u32,
    pub error: Option<String>,
    pub recording: bool,
    pub recording_error: Option<String>,
}

pub type Observer = Arc<Mutex<Vec<CameraView>>>;

enum Phase {
    Parked,
    Running(CameraPipeline),
    Retrying { at: Instant },
}

struct Camera {
    index: usize,
    source: Source,
    server: ServerPipeline,
    phase: Phase,
    viewers: u32,
    /// When the last viewer left, while the camera lingers.
    left_at: Option<Instant>,
    attempt: u32,
    generation: u64,
    last_path: Option<JpegPath>,
    starts: u32,
    error: Option<String>,
    record: Recording,
}

/// One camera's recording: wanted or not, the pipeline while the camera runs, and its figures.
#[derive(Default)]
struct Recording {
    wanted: bool,
    pipeline: Option<RecordingPipeline>,
    tap: RecordTap,
    generation: u64,
    started: Option<std::time::SystemTime>,
    /// Figures of the recordings that ended, added to the running one's.
    deleted_before: u64,
    bytes_before: u64,
    error: Option<String>,
    last_state: Option<gst::Structure>,
    /// Shared by every camera's recording.
    writing: Arc<Writing>,
}

pub struct Launcher {
    config: Config,
    cameras: Vec<Camera>,
    events: Receiver<Event>,
    sender: Sender<Event>,
    observer: Observer,
}

impl Launcher {
    /// Starts every camera's server (parked). Fails when a port cannot be bound.
    pub fn new(config: Config) -> Result<Launcher> {
        let (sender, events) = channel();
        let writing = Arc::new(Writing::default());
        let mut cameras = Vec::new();
        for (index, source) in config.sources.iter().enumerate() {
            let port = if config.port == 0 {
                0
            } else {
                config
                    .port
                    .checked_add(index as u16)
                    .context("port out of range for this many cameras")?
            };
            let server = ServerPipeline::start(
                &config.server,
                port,
                index,
                config.recording.as_ref().map(|r| r.dir.as_path()),
                sender.clone(),
            )
            .with_context(|| format!("camera {} ({})", index, source.name()))?;
            cameras.push(Camera {
                index,
                source: source.clone(),
                server,
                phase: Phase::Parked,
                viewers: 0,
                left_at: None,
                attempt: 0,
                generation: 0,
                last_path: None,
                starts: 0,
                error: None,
                record: Recording {
                    wanted: config.recording.as_ref().is_some_and(|r| r.autostart),
                    writing: writing.clone(),
                    ..Recording::default()
                },
            });
        }
        // Viewers and /status know from the first request whether recording is offered.
        for camera in &mut cameras {
            camera.report_recording(&config);
        }
        let observer = Arc::new(Mutex::new(vec![CameraView::default(); cameras.len()]));
        Ok(Launcher {
            config,
            cameras,
            events,
            sender,
            observer,
        })
    }

    pub fn ports(&self) -> Vec<u16> {
        self.cameras.iter().map(|c| c.server.port).collect()
    }

    pub fn sources(&self) -> Vec<String> {
        self.cameras.iter().map(|c| c.source.name()).collect()
    }

    /// Sends events to the loop; `Event::Shutdown` ends it.
    pub fn sender(&self) -> Sender<Event> {
        self.sender.clone()
    }

    pub fn observer(&self) -> Observer {
        self.observer.clone()
    }

    /// Runs until `Event::Shutdown`; then closes every viewer (1001) and releases the cameras.
    pub fn run(mut self) {
        for camera in &mut self.cameras {
            camera.viewers = camera.server.n_clients();
        }
        loop {
            let now = Instant::now();
            for camera in &mut self.cameras {
                camera.step(now, &self.config, &self.sender);
                camera.report_recording(&self.config);
            }
            self.publish_views();
            let wait = self
                .cameras
                .iter()
                .filter_map(|c| c.deadline(&self.config))
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(IDLE_WAIT);
            match self.events.recv_timeout(wait) {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Event::Viewers { camera, n }) => {
                    if let Some(camera) = self.cameras.get_mut(camera) {
                        camera.set_viewers(n);
                    }
                }
                Ok(Event::CameraLost {
                    camera,
                    generation,
                    reason,
                }) => {
                    if let Some(camera) = self.cameras.get_mut(camera)
                        && camera.generation == generation
                        && matches!(camera.phase, Phase::Running(_))
                    {
                        camera.fail(&reason);
                    }
                }
                Ok(Event::RecordControl { camera, start }) => {
                    if let Some(camera) = self.cameras.get_mut(camera) {
                        camera.control_recording(start);
                    }
                }
                Ok(Event::RecordingFailed {
                    camera,
                    generation,
                    reason,
                }) => {
                    if let Some(camera) = self.cameras.get_mut(camera)
                        && camera.record.generation == generation
                    {
                        camera.recording_failed(&reason);
                    }
                }
                Ok(Event::SegmentClosed { .. } | Event::SegmentOpened { .. })
                | Err(RecvTimeoutError::Timeout) => {}
            }
        }
        log::info!("Shutting down");
        for mut camera in self.cameras.drain(..) {
            camera.stop_recording();
            if let Phase::Running(pipeline) = camera.phase {
                pipeline.stop();
                log::info!(
                    "Camera {} ({}): released",
                    camera.index,
                    camera.source.name()
                );
            }
            camera.server.stop();
        }
    }

    fn publish_views(&self) {
        let Ok(mut views) = self.observer.lock() else {
            return;
        };
        for (view, camera) in views.iter_mut().zip(&self.cameras) {
            let running = matches!(camera.phase, Phase::Running(_));
            view.running = running;
            view.path = camera.last_path.map(JpegPath::encoder_name);
            view.starts = camera.starts;
            view.error = camera.error.clone();
            view.recording = camera.record.pipeline.is_some();
            view.recording_error = camera.record.error.clone();
        }
    }
}

impl Camera {
    fn set_viewers(&mut self, n: u32) {
        if n == 0 && self.viewers > 0 {
            self.left_at = Some(Instant::now());
        } else if n > 0 {
            self.left_at = None;
        }
        self.viewers = n;
    }

    fn wanted(&self, now: Instant, config: &Config) -> bool {
        config.always_on
            || self.record.wanted
            || self.viewers > 0
            || self.left_at.is_some_and(|left| now < left + config.linger)
    }

    /// The next moment `step` has something to do without an event.
    fn deadline(&self, config: &Config) -> Option<Instant> {
        let linger_end = self
            .left_at
            .filter(|_| self.viewers == 0 && !config.always_on)
            .map(|left| left + config.linger);
        let phase = match &self.phase {
            Phase::Parked => None,
            Phase::Running(pipeline) => {
                Some(Instant::now() + config.stall_timeout.saturating_sub(pipeline.silence()))
            }
            Phase::Retrying { at } => Some(*at),
        };
        // Recording figures are refreshed every couple of seconds.
        let phase = match (&self.record.pipeline, phase) {
            (Some(_), Some(p)) => Some(p.min(Instant::now() + RECORDING_REPORT_INTERVAL)),
            (Some(_), None) => Some(Instant::now() + RECORDING_REPORT_INTERVAL),
            (None, p) => p,
        };
        match (linger_end, phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step(&mut self, now: Instant, config: &Config, events: &Sender<Event>) {
        let wanted = self.wanted(now, config);
        match &self.phase {
            Phase::Parked if wanted => self.start(config, events),
            Phase::Running(_) | Phase::Retrying { .. } if !wanted => self.park(),
            Phase::Running(pipeline) => {
                if pipeline.silence() >= config.stall_timeout {
                    let reason = format!(
                        "no frames from {} for {} s",
                        self.source.name(),
                        config.stall_timeout.as_secs_f32()
                    );
                    self.fail(&reason);
                } else if pipeline.frame_count() > 0 {
                    self.attempt = 0;
                }
            }
            Phase::Retrying { at } if now >= *at => self.start(config, events),
            _ => {}
        }
        // A recording runs whenever it is wanted and the camera runs (started over HTTP, or
        // the camera just came back).
        if self.record.wanted
            && self.record.pipeline.is_none()
            && matches!(self.phase, Phase::Running(_))
            && let Some(recording) = &config.recording
        {
            self.start_recording(recording, events);
        }
    }

    fn start(&mut self, config: &Config, events: &Sender<Event>) {
        if let Err(err) = self.server.activate() {
            self.fail(&err.to_string());
            return;
        }
        self.generation += 1;
        log::info!(
            "Camera {} ({}): starting for {} viewer(s)",
            self.index,
            self.source.name(),
            self.viewers
        );
        let request = StartRequest {
            source: &self.source,
            choice: config.encoder,
            format: config.format,
            camera: self.index,
            generation: self.generation,
        };
        match CameraPipeline::start(
            request,
            &self.server.appsrc,
            self.record.tap.clone(),
            events.clone(),
        ) {
            Ok(pipeline) => {
                if self.last_path != Some(pipeline.path) {
                    log::info!("{}", pipeline.path.log_line());
                }
                self.last_path = Some(pipeline.path);
                self.server.set_source_info(source_info(
                    &self.source,
                    pipeline.path,
                    &config.format,
                ));
                self.phase = Phase::Running(pipeline);
                self.starts += 1;
                self.error = None;
            }
            Err(err) => self.fail(&format!("{err:#}")),
        }
    }

    /// Camera lost or failed to start: tell the viewers, release it, try again later.
    fn fail(&mut self, reason: &str) {
        // The segment being written is finished so it plays; a new one starts with the camera.
        self.stop_recording();
        if let Phase::Running(pipeline) = std::mem::replace(&mut self.phase, Phase::Parked) {
            pipeline.stop();
        }
        self.attempt = self.attempt.saturating_add(1);
        let backoff = retry_delay(self.attempt);
        log::warn!(
            "Camera {} ({}) unavailable: {}; retrying in {} s",
            self.index,
            self.source.name(),
            reason,
            backoff.as_secs()
        );
        self.server.set_camera_error(Some(reason));
        self.error = Some(reason.to_string());
        self.phase = Phase::Retrying {
            at: Instant::now() + backoff,
        };
    }

    /// Nobody watches: release the camera (the device file closes), keep the viewers' server.
    fn park(&mut self) {
        self.stop_recording();
        if let Phase::Running(pipeline) = std::mem::replace(&mut self.phase, Phase::Parked) {
            pipeline.stop();
            log::info!(
                "Camera {} ({}): released, no viewers",
                self.index,
                self.source.name()
            );
        }
        self.attempt = 0;
        self.error = None;
        self.server.set_camera_error(None);
        self.server.park();
    }
}

impl Camera {
    fn control_recording(&mut self, start: bool) {
        log::info!(
            "Camera {}: recording {} requested",
            self.index,
            if start { "start" } else { "stop" }
        );
        self.record.wanted = start;
        if start {
            self.record.error = None;
        } else {
            self.stop_recording();
            self.record.started = None;
        }
        // Starting happens in `step`: the camera may have to start first.
    }

    fn start_recording(&mut self, config: &RecordingConfig, events: &Sender<Event>) {
        if self.record.pipeline.is_some() {
            return;
        }
        self.record.generation += 1;
        match RecordingPipeline::start(
            config,
            self.index,
            self.record.generation,
            self.record.writing.clone(),
            events.clone(),
        ) {
            Ok(pipeline) => {
                if let Ok(mut tap) = self.record.tap.lock() {
                    *tap = Some((pipeline.appsrc.clone(), pipeline.figures.clone()));
                }
                self.record
                    .started
                    .get_or_insert_with(std::time::SystemTime::now);
                self.record.error = None;
                log::info!(
                    "Camera {}: recording {} into {}",
                    self.index,
                    config.format.name(),
                    config.dir.display()
                );
                self.record.pipeline = Some(pipeline);
            }
            Err(err) => self.recording_failed(&format!("{err:#}")),
        }
    }

    /// Finishes the current segment so it plays.
    fn stop_recording(&mut self) {
        if let Ok(mut tap) = self.record.tap.lock() {
            *tap = None;
        }
        if let Some(pipeline) = self.record.pipeline.take() {
            self.record.bytes_before += pipeline.bytes_written();
            self.record.deleted_before += pipeline.figures.deleted.load(Ordering::Relaxed);
            pipeline.finalize();
        }
    }

    /// Disk full, folder gone, write error: that recording stops, streaming goes on.
    fn recording_failed(&mut self, reason: &str) {
        log::error!("Camera {}: recording stopped: {reason}", self.index);
        if let Ok(mut tap) = self.record.tap.lock() {
            *tap = None;
        }
        if let Some(pipeline) = self.record.pipeline.take() {
            self.record.bytes_before += pipeline.bytes_written();
            self.record.deleted_before += pipeline.figures.deleted.load(Ordering::Relaxed);
            drop(pipeline);
        }
        self.record.wanted = false;
        self.record.started = None;
        self.record.error = Some(reason.to_string());
    }

    /// Tells the element (and so the viewers, /status and /metrics) how the recording goes.
    fn report_recording(&mut self, config: &Config) {
        let Some(recording) = &config.recording else {
            return;
        };
        let pipeline = self.record.pipeline.as_ref();
        let mut state = gst::Structure::builder("recording")
            .field("active", pipeline.is_some())
            .field("control", true)
            .field("format", recording.format.name())
            .field(
                "bytes-written",
                self.record.bytes_before + pipeline.map(|p| p.bytes_written()).unwrap_or(0),
            )
            .field(
                "segments-deleted",
                self.record.deleted_before
                    + pipeline
                        .map(|p| p.figures.deleted.load(Ordering::Relaxed))
                        .unwrap_or(0),
            )
            .field(
                "frames-dropped",
                pipeline
                    .map(|p| p.figures.dropped.load(Ordering::Relaxed))
                    .unwrap_or(0),
            )
            .build();
        if let Some(started) = self.record.started.filter(|_| pipeline.is_some()) {
            state.set(
                "started",
                humantime::format_rfc3339_seconds(started).to_string(),
            );
        }
        if let Some(file) = pipeline.and_then(|p| p.current_file()) {
            state.set("file", file);
        }
        if let Some(error) = &self.record.error {
            state.set("error", error.as_str());
        }
        if self.record.last_state.as_ref() != Some(&state) {
            self.server.set_recording_state(&state);
            self.record.last_state = Some(state);
        }
    }
}

/// How long to wait before the `attempt`-th retry of a lost camera (counting from 1): 1, 2,
/// 4, 8, 16 s, then every 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(5);
    Duration::from_secs(1 << doublings).min(MAX_BACKOFF)
}

fn source_info(source: &Source, path: JpegPath, format: &Format) -> gst::Structure {
    let mut info = gst::Structure::builder("source")
        .field("encoder", path.encoder_name())
        .field("device", source.name())
        .build();
    if matches!(path, JpegPath::Hardware | JpegPath::Software) {
        info.set("jpeg-quality", format.quality);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_1_2_4_8_16_then_30_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(30));
    }
}
