// SPDX-License-Identifier: MIT
//! Runs a launcher in-process on free ports, with the element's test helpers for clients.
#![allow(dead_code)]

#[path = "../../../gst-plugin-wsjpegsink/tests/common/mod.rs"]
pub mod client;
pub mod standins;

use std::future::Future;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsjpeg_launcher::controller::{CameraView, Observer};
use wsjpeg_launcher::encoder::EncoderChoice;
use wsjpeg_launcher::encoder::Format;
use wsjpeg_launcher::h264::{H264Choice, H264Settings};
use wsjpeg_launcher::rtsp::RtspConfig;
use wsjpeg_launcher::server::ServerSettings;
use wsjpeg_launcher::source::Source;
use wsjpeg_launcher::{Config, Event, Launcher};

pub fn format() -> Format {
    Format {
        width: 320,
        height: 240,
        fps: 30,
        quality: 80,
    }
}

pub fn config(source: Source) -> Config {
    Config {
        sources: vec![source],
        encoder: EncoderChoice::Auto,
        format: format(),
        port: 0,
        linger: Duration::from_millis(800),
        always_on: false,
        stall_timeout: Duration::from_secs(3),
        server: ServerSettings {
            address: "127.0.0.1".to_string(),
            max_clients: 64,
            max_connections: 0,
            keepalive: 30,
            write_timeout: 30,
            allowed_origins: String::new(),
            auth_token: None,
            detector_token: None,
            document_root: None,
            tls_certificate: None,
            tls_key: None,
        },
        recording: None,
        detection: None,
        h264: H264Settings {
            choice: H264Choice::Auto,
            bitrate_kbps: 2000,
            keyframe_interval: Duration::from_secs(1),
            fps: 30,
        },
        rtsp: None,
    }
}

/// An RTSP server on a free port (`port: 0`), with sessions that time out quickly.
pub fn rtsp_config() -> RtspConfig {
    RtspConfig {
        port: 0,
        session_timeout: Duration::from_secs(2),
    }
}

/// A launcher running its control loop on a thread; shut down on drop.
pub struct Running {
    /// The first camera's port.
    pub port: u16,
    /// Every camera's port, in the order of `Config::sources`.
    pub ports: Vec<u16>,
    /// The RTSP server's port, when `Config::rtsp` asks for one.
    pub rtsp_port: Option<u16>,
    pub observer: Observer,
    events: Sender<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn start(config: Config) -> Running {
        client::init();
        let launcher = Launcher::new(config).expect("launcher starts");
        let ports = launcher.ports();
        let rtsp_port = launcher.rtsp_port();
        let observer = launcher.observer();
        let events = launcher.sender();
        let thread = std::thread::spawn(move || launcher.run());
        Running {
            port: ports[0],
            ports,
            rtsp_port,
            observer,
            events,
            thread: Some(thread),
        }
    }

    pub fn view(&self) -> CameraView {
        self.view_of(0)
    }

    pub fn view_of(&self, camera: usize) -> CameraView {
        self.observer.lock().unwrap()[camera].clone()
    }

    pub fn shutdown(&mut self) {
        let _ = self.events.send(Event::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Polls `probe` every 20 ms until it gives a value or `within` passes.
pub async fn wait_for<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `condition` holds at every check (every 20 ms) for `during`: for what must not
/// happen, such as a restart.
pub async fn always(during: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + during;
    while Instant::now() < deadline {
        if !condition() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// The instant `condition` first held, checked every 5 ms, or `None` after `within`.
pub async fn when(within: Duration, mut condition: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `/healthz`'s status code.
pub async fn health(port: u16) -> u16 {
    client::http_get(port, "/healthz", &[], usize::MAX)
        .await
        .status
}
