// SPDX-License-Identifier: MIT
//! The element's side of the server: viewers coming and going become the `client-connected`
//! and `client-disconnected` signals, `notify::n-clients` and the `wsjpegsink-clients` bus
//! message; new detections become the `detections` signal; recording requests become the
//! `recording-control` signal; the server's log lines go to GStreamer's debug log under the
//! element's name.
//!
//! Viewer changes and detections are emitted from a thread of their own, so a slow handler
//! delays neither the streaming thread nor the server.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;

use gst::glib;
use gst::prelude::*;
use wsjpeg_server::{Events, Level, RecordAction, ViewerChange};

pub const CLIENTS_MESSAGE: &str = "wsjpegsink-clients";

/// Viewer changes waiting for the notification thread, at most. Beyond that (a signal handler
/// that blocks, a flood of connections) changes are dropped rather than queued without bound,
/// and `notify::n-clients` is emitted after the next one: `n-clients` read then is the live
/// count, whatever was dropped.
const QUEUE_LIMIT: usize = 1024;

/// What the notification thread emits.
enum Notice {
    Viewers(ViewerChange),
    /// The `detections` message, JSON.
    Detections(String),
}

pub struct ElementEvents {
    element: glib::WeakRef<super::WsJpegSink>,
    /// The element's debug category, for the server's log lines.
    cat: gst::DebugCategory,
    changes: SyncSender<Notice>,
    dropped: Arc<AtomicU64>,
}

impl ElementEvents {
    /// Starts the notification thread; it ends when the server lets go of these events.
    pub fn spawn(
        element: &super::WsJpegSink,
        cat: gst::DebugCategory,
    ) -> Result<Arc<ElementEvents>, std::io::Error> {
        let (changes, rx) = std::sync::mpsc::sync_channel::<Notice>(QUEUE_LIMIT);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        let weak = element.downgrade();
        std::thread::Builder::new()
            .name("wsjpeg-notify".into())
            .spawn(move || {
                while let Ok(notice) = rx.recv() {
                    let Some(element) = weak.upgrade() else { break };
                    match notice {
                        Notice::Viewers(change) => emit(&element, cat, change),
                        Notice::Detections(message) => {
                            element.emit_by_name::<()>("detections", &[&message])
                        }
                    }
                    let lost = lost.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        gst::warning!(
                            cat,
                            obj = &element,
                            "{} viewer change(s) or detection(s) not signalled: the handlers of \
                             client-connected, client-disconnected or detections are too slow",
                            lost
                        );
                        element.notify("n-clients");
                    }
                }
            })?;
        Ok(Arc::new(ElementEvents {
            element: element.downgrade(),
            cat,
            changes,
            dropped,
        }))
    }
}

impl ElementEvents {
    fn notify(&self, notice: Notice) {
        if self.changes.try_send(notice).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn gst_level(level: Level) -> gst::DebugLevel {
    match level {
        Level::Error => gst::DebugLevel::Error,
        Level::Warning => gst::DebugLevel::Warning,
        Level::Info => gst::DebugLevel::Info,
        Level::Debug => gst::DebugLevel::Debug,
    }
}

impl Events for ElementEvents {
    fn viewers_changed(&self, change: ViewerChange) {
        self.notify(Notice::Viewers(change));
    }

    fn detections(&self, message: &str) {
        self.notify(Notice::Detections(message.to_string()));
    }

    fn recording_control(&self, action: RecordAction) -> bool {
        // On a blocking thread of the server with no lock of ours held, so the handler may set
        // recording-state right away.
        self.element.upgrade().is_some_and(|element| {
            element.emit_by_name::<bool>("recording-control", &[&action.as_str()])
        })
    }

    fn log_enabled(&self, level: Level) -> bool {
        self.cat.above_threshold(gst_level(level))
    }

    fn log(&self, level: Level, message: fmt::Arguments<'_>) {
        match self.element.upgrade() {
            Some(element) => {
                gst::log_with_level!(self.cat, gst_level(level), obj = &element, "{}", message)
            }
            None => gst::log_with_level!(self.cat, gst_level(level), "{}", message),
        }
    }
}

fn emit(element: &super::WsJpegSink, cat: gst::DebugCategory, change: ViewerChange) {
    let (signal, address, n_clients) = match change {
        ViewerChange::Connected { address, n_clients } => ("client-connected", address, n_clients),
        ViewerChange::Disconnected { address, n_clients } => {
            ("client-disconnected", address, n_clients)
        }
    };
    let address = address.to_string();
    gst::debug!(
        cat,
        obj = element,
        "{signal}: {address}, {n_clients} viewer(s)"
    );
    element.emit_by_name::<()>(signal, &[&address, &n_clients]);
    element.notify("n-clients");
    let structure = gst::Structure::builder(CLIENTS_MESSAGE)
        .field("n-clients", n_clients)
        .field("event", signal)
        .field("address", &address)
        .build();
    let _ = element.post_message(
        gst::message::Element::builder(structure)
            .src(element)
            .build(),
    );
}
