// SPDX-License-Identifier: MIT
//! Runs a launcher in-process on free ports, with the element's test helpers for clients.
#![allow(dead_code)]

#[path = "../../../gst-plugin-wsjpegsink/tests/common/mod.rs"]
pub mod client;
pub mod standins;

use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use wsjpeg_launcher::cli::EncoderChoice;
use wsjpeg_launcher::controller::{CameraView, Observer};
use wsjpeg_launcher::encoder::Format;
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
            document_root: None,
            tls_certificate: None,
            tls_key: None,
        },
        recording: None,
    }
}

/// A launcher running its control loop on a thread; shut down on drop.
pub struct Running {
    pub port: u16,
    pub observer: Observer,
    events: Sender<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn start(config: Config) -> Running {
        client::init();
        let launcher = Launcher::new(config).expect("launcher starts");
        let port = launcher.ports()[0];
        let observer = launcher.observer();
        let events = launcher.sender();
        let thread = std::thread::spawn(move || launcher.run());
        Running {
            port,
            observer,
            events,
            thread: Some(thread),
        }
    }

    pub fn view(&self) -> CameraView {
        self.observer.lock().unwrap()[0].clone()
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
