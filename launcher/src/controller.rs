// SPDX-License-Identifier: MIT
//! The one control loop: opens each camera when its first viewer arrives, releases it after the
//! last one leaves (plus the linger), restarts it with backoff when it is lost, and stops
//! everything on shutdown. Signal handlers and element callbacks only send it events.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::camera::{CameraPipeline, Detection, StartRequest};
use crate::detector::DetectionConfig;
use crate::encoder::{EncoderChoice, Format, JpegPath};
use crate::events::Event;
use crate::h264::H264Settings;
use crate::h264_slot::H264Slot;
use crate::recorder::{RecordingConfig, Writing};
use crate::recording_slot::RecordingSlot;
use crate::rtsp::{Mount, RtspConfig, RtspServer};
use crate::server::{ServerPipeline, ServerSettings};
use crate::sidecar;
use crate::source::Source;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long without any deadline the loop sleeps; events wake it earlier.
const IDLE_WAIT: Duration = Duration::from_secs(3600);
const RECORDING_REPORT_INTERVAL: Duration = Duration::from_secs(2);

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
    pub detection: Option<DetectionConfig>,
    pub h264: H264Settings,
    /// The RTSP server; `None`: no RTSP.
    pub rtsp: Option<RtspConfig>,
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
    /// The H.264 encoder runs.
    pub h264: bool,
    pub h264_error: Option<String>,
    /// The factories of the running H.264 encoder pipeline's elements.
    pub h264_elements: Vec<String>,
    /// How many times an H.264 encoder was started.
    pub h264_starts: u64,
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
    /// Why the detector stopped, until the camera's next start.
    detector_error: Option<String>,
    record: RecordingSlot,
    h264: H264Slot,
    /// The RTSP port that serves this camera as `/cam<index>`, told in `/status`.
    rtsp_port: Option<u16>,
}

pub struct Launcher {
    config: Config,
    cameras: Vec<Camera>,
    events: Receiver<Event>,
    sender: Sender<Event>,
    observer: Observer,
    rtsp: Option<RtspServer>,
}

impl Launcher {
    /// Starts every camera's server (parked). Fails when a port cannot be bound.
    pub fn new(config: Config) -> Result<Launcher> {
        let (sender, events) = channel();
        let writing = Arc::new(Writing::default());
        let mut cameras = Vec::new();
        // Viewers are offered H.264 only when an encoder can be had.
        let offer_h264 = match crate::h264::encoder_text(&config.h264) {
            Ok(_) => true,
            Err(err) => {
                log::warn!("No H.264 for viewers: {err:#}");
                false
            }
        };
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
                offer_h264,
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
                detector_error: None,
                h264: H264Slot::default(),
                rtsp_port: None,
                record: RecordingSlot::new(
                    config.recording.as_ref().is_some_and(|r| r.autostart),
                    writing.clone(),
                ),
            });
        }
        // Viewers and /status know from the first request whether recording is offered.
        for camera in &mut cameras {
            camera.report_recording(&config);
            if let Some(recording) = &config.recording {
                sidecar::keep_beside_recordings(
                    &camera.server.sink,
                    camera.record.tap(),
                    recording.dir.clone(),
                );
            }
        }
        let rtsp = match &config.rtsp {
            Some(rtsp) if offer_h264 => start_rtsp(rtsp, &config.server, &cameras)?,
            Some(_) => {
                log::warn!("No RTSP: it needs an H.264 encoder");
                None
            }
            None => None,
        };
        if let Some(rtsp) = &rtsp {
            for camera in &mut cameras {
                camera.rtsp_port = Some(rtsp.port());
                camera.server.set_source_info(camera.idle_source_info());
            }
        }
        let observer = Arc::new(Mutex::new(vec![CameraView::default(); cameras.len()]));
        Ok(Launcher {
            config,
            cameras,
            events,
            sender,
            observer,
            rtsp,
        })
    }

    pub fn ports(&self) -> Vec<u16> {
        self.cameras.iter().map(|c| c.server.port).collect()
    }

    /// The RTSP server's port, while it serves.
    pub fn rtsp_port(&self) -> Option<u16> {
        self.rtsp.as_ref().map(RtspServer::port)
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
                        && camera.record.generation() == generation
                    {
                        camera.recording_failed(&reason);
                    }
                }
                Ok(Event::H264Viewers { camera, n }) => {
                    if let Some(camera) = self.cameras.get_mut(camera) {
                        camera.h264.set_viewers(n);
                    }
                }
                Ok(Event::KeyframeWanted { camera }) => {
                    if let Some(camera) = self.cameras.get(camera) {
                        camera.h264.request_keyframe();
                    }
                }
                Ok(Event::H264Failed {
                    camera,
                    generation,
                    reason,
                }) => {
                    if let Some(camera) = self.cameras.get_mut(camera)
                        && camera.h264.generation() == generation
                        && camera.h264.error().is_none()
                    {
                        camera.h264.failed(camera.index, &reason);
                    }
                }
                Ok(Event::DetectorFailed {
                    camera,
                    generation,
                    reason,
                }) => {
                    // The first error says why; what follows is its echo down the pipeline.
                    if let Some(camera) = self.cameras.get_mut(camera)
                        && camera.generation == generation
                        && camera.detector_error.is_none()
                    {
                        camera.detector_failed(&reason, &self.config);
                    }
                }
                Ok(Event::SegmentClosed { .. } | Event::SegmentOpened { .. })
                | Err(RecvTimeoutError::Timeout) => {}
            }
        }
        log::info!("Shutting down");
        // RTSP clients go first: they are viewers of the servers stopped below.
        self.rtsp.take();
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
            view.recording = camera.record.is_active();
            view.recording_error = camera.record.error().map(str::to_string);
            view.h264 = camera.h264.is_running();
            view.h264_error = camera.h264.error().map(str::to_string);
            view.h264_elements = camera.h264.element_factories();
            view.h264_starts = camera.h264.generation();
        }
    }
}

/// The RTSP server for every camera whose server it can reach. A port that is taken is an
/// error; a `wsjpegsink` from another build of the plugin (loaded from the plugin path) only
/// means no RTSP.
fn start_rtsp(
    config: &RtspConfig,
    settings: &ServerSettings,
    cameras: &[Camera],
) -> Result<Option<RtspServer>> {
    use gst::prelude::*;
    let mut mounts = Vec::new();
    for camera in cameras {
        let server = camera
            .server
            .sink
            .downcast_ref::<gstwsjpeg::WsJpegSink>()
            .and_then(gstwsjpeg::WsJpegSink::server);
        match server {
            Some(server) => mounts.push(Mount {
                camera: camera.index,
                server,
            }),
            None => {
                log::warn!(
                    "No RTSP: camera {}'s wsjpegsink is not this program's own",
                    camera.index
                );
                return Ok(None);
            }
        }
    }
    RtspServer::start(
        config,
        &settings.address,
        settings.auth_token.as_deref(),
        mounts,
    )
    .map(Some)
}

impl Camera {
    /// The RTSP port and mount of this camera, when RTSP serves it.
    fn rtsp(&self) -> Option<(u16, usize)> {
        self.rtsp_port.map(|port| (port, self.index))
    }

    /// What `/status` says of the source before the camera first runs.
    fn idle_source_info(&self) -> gst::Structure {
        let mut info = gst::Structure::builder("source")
            .field("device", self.source.name())
            .build();
        add_rtsp(&mut info, self.rtsp());
        info
    }

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
            || self.record.wanted()
            || self.viewers > 0
            || self.left_at.is_some_and(|left| now < left + config.linger)
    }

    /// The next moment `step` has something to do without an event.
    fn deadline(&self, config: &Config) -> Option<Instant> {
        // Only a running camera lingers: once parked, a linger that is over is no deadline
        // (waiting for it would wait zero seconds, forever).
        let linger_end = self
            .left_at
            .filter(|_| self.viewers == 0 && !config.always_on)
            .filter(|_| !matches!(self.phase, Phase::Parked))
            .map(|left| left + config.linger);
        let phase = match &self.phase {
            Phase::Parked => None,
            Phase::Running(pipeline) => {
                Some(Instant::now() + config.stall_timeout.saturating_sub(pipeline.silence()))
            }
            Phase::Retrying { at } => Some(*at),
        };
        // Recording figures are refreshed every couple of seconds.
        let phase = match (self.record.is_active(), phase) {
            (true, Some(p)) => Some(p.min(Instant::now() + RECORDING_REPORT_INTERVAL)),
            (true, None) => Some(Instant::now() + RECORDING_REPORT_INTERVAL),
            (false, p) => p,
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
        if self.record.wants_start()
            && matches!(self.phase, Phase::Running(_))
            && let Some(recording) = &config.recording
        {
            self.start_recording(recording, events);
        }
        let running = matches!(self.phase, Phase::Running(_));
        self.h264.update(
            running,
            self.record.h264_input(),
            self.server.h264.as_ref(),
            &config.h264,
            self.index,
            events,
        );
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
            detection: config.detection.as_ref().map(|config| Detection {
                config,
                sink: self.server.sink.clone(),
            }),
        };
        self.h264.camera_started();
        match CameraPipeline::start(
            request,
            &self.server.appsrc,
            (self.record.tap(), self.h264.tap()),
            events.clone(),
        ) {
            Ok(pipeline) => {
                if self.last_path != Some(pipeline.path) {
                    log::info!("{}", pipeline.path.log_line());
                }
                self.last_path = Some(pipeline.path);
                self.detector_error = None;
                self.server.set_source_info(source_info(
                    &self.source,
                    Some(pipeline.path),
                    config,
                    None,
                    self.rtsp(),
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
        self.h264.stop();
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
        self.h264.stop();
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
        self.left_at = None;
        self.server.set_camera_error(None);
        self.server.park();
    }
}

impl Camera {
    /// The detector failed: streaming goes on without it; `/status` says why.
    fn detector_failed(&mut self, reason: &str, config: &Config) {
        log::error!(
            "Camera {}: the detector stopped, streaming goes on without it: {reason}",
            self.index
        );
        if let Phase::Running(pipeline) = &self.phase {
            pipeline.stop_detector();
            self.server.set_source_info(source_info(
                &self.source,
                Some(pipeline.path),
                config,
                Some(reason),
                self.rtsp(),
            ));
        }
        self.detector_error = Some(reason.to_string());
    }

    fn control_recording(&mut self, start: bool) {
        self.record.control(self.index, start);
        // Starting happens in `step`: the camera may have to start first.
    }

    fn start_recording(&mut self, config: &RecordingConfig, events: &Sender<Event>) {
        self.record.start(config, self.index, events);
    }

    fn stop_recording(&mut self) {
        self.record.stop();
    }

    fn recording_failed(&mut self, reason: &str) {
        self.record.failed(self.index, reason);
    }

    /// Tells the element (and so the viewers, /status and /metrics) how the recording goes.
    fn report_recording(&mut self, config: &Config) {
        if let Some(recording) = &config.recording
            && let Some(state) = self.record.changed_state(recording)
        {
            self.server.set_recording_state(&state);
        }
    }
}

/// How long to wait before the `attempt`-th retry of a lost camera (counting from 1): 1, 2,
/// 4, 8, 16 s, then every 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(5);
    Duration::from_secs(1 << doublings).min(MAX_BACKOFF)
}

/// What `/status` says under `source`: the encoder, the device, the detector and how it fares.
fn source_info(
    source: &Source,
    path: Option<JpegPath>,
    config: &Config,
    detector_error: Option<&str>,
    rtsp: Option<(u16, usize)>,
) -> gst::Structure {
    let mut info = gst::Structure::builder("source")
        .field("device", source.name())
        .build();
    if let Some(path) = path {
        info.set("encoder", path.encoder_name());
        if matches!(path, JpegPath::Hardware | JpegPath::Software) {
            info.set("jpeg-quality", config.format.quality);
        }
    }
    add_rtsp(&mut info, rtsp);
    if let Some(detection) = &config.detection {
        info.set("detector", detection.fragment.as_str());
        info.set("detect-fps", detection.fps);
        if let Some(error) = detector_error {
            info.set("detector-error", error);
        }
    }
    info
}

/// The RTSP port and path that serve the camera (`rtsp-port`, `rtsp-path`), for the page's list
/// of addresses: the host is the one the page was opened with.
fn add_rtsp(info: &mut gst::Structure, rtsp: Option<(u16, usize)>) {
    if let Some((port, camera)) = rtsp {
        info.set("rtsp-port", u32::from(port));
        info.set("rtsp-path", format!("/cam{camera}"));
    }
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
