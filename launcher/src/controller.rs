// SPDX-License-Identifier: MIT
//! The one control loop: opens each camera when its first viewer arrives, releases it after the
//! last one leaves (plus the linger), restarts it with backoff when it is lost, and stops
//! everything on shutdown. Signal handlers and element callbacks only send it events.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::camera::{CameraPipeline, StartRequest};
use crate::cli::EncoderChoice;
use crate::encoder::{Format, JpegPath};
use crate::server::{ServerPipeline, ServerSettings};
use crate::source::Source;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long without any deadline the loop sleeps; events wake it earlier.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

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
}

/// What a camera is doing, as tests and logs see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraView {
    pub running: bool,
    pub path: Option<&'static str>,
    /// How many times the camera pipeline was started.
    pub starts: u32,
    pub error: Option<String>,
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
            let server = ServerPipeline::start(&config.server, port, index, sender.clone())
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
            });
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
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        log::info!("Shutting down");
        for camera in self.cameras.drain(..) {
            if let Phase::Running(pipeline) = camera.phase {
                pipeline.stop();
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
        match CameraPipeline::start(request, &self.server.appsrc, events.clone()) {
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
        if let Phase::Running(pipeline) = std::mem::replace(&mut self.phase, Phase::Parked) {
            pipeline.stop();
        }
        self.attempt = self.attempt.saturating_add(1);
        let backoff = Duration::from_secs(1u64 << (self.attempt - 1).min(5)).min(MAX_BACKOFF);
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
