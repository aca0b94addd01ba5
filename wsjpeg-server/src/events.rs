// SPDX-License-Identifier: MIT
//! What the server tells the application that owns it: viewers coming and going, recording
//! requests from the page, and its log lines (so that they land in the owner's log, e.g.
//! GStreamer's debug log under the element's name).

use std::fmt;
use std::net::SocketAddr;

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

/// A viewer arrived or left; `n_clients` is the count after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerChange {
    Connected { address: SocketAddr, n_clients: u32 },
    Disconnected { address: SocketAddr, n_clients: u32 },
}

/// `POST /api/record/start` or `/api/record/stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    Start,
    Stop,
}

impl RecordAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordAction::Start => "start",
            RecordAction::Stop => "stop",
        }
    }
}

/// The owner's side of the server. Every method has a default that does nothing.
pub trait Events: Send + Sync + 'static {
    /// Called with the viewer registry locked, so that counts arrive in order: hand the change
    /// on and return at once (the server's threads wait meanwhile).
    fn viewers_changed(&self, _change: ViewerChange) {}

    /// Called on a blocking thread of the server, with nothing of the server locked. Whether
    /// the application accepted the request (202); otherwise the client gets 409.
    fn recording_control(&self, _action: RecordAction) -> bool {
        false
    }

    /// New detections were taken (the `detections` message viewers get, JSON): for an owner
    /// that keeps them, e.g. beside a recording. Called on the streaming thread or a server
    /// thread: hand the text on and return at once.
    fn detections(&self, _message: &str) {}

    /// Whether lines of `level` are wanted; checked before a line is formatted.
    fn log_enabled(&self, _level: Level) -> bool {
        false
    }

    fn log(&self, _level: Level, _message: fmt::Arguments<'_>) {}
}

/// An owner that wants nothing.
#[derive(Debug, Default)]
pub struct NoEvents;

impl Events for NoEvents {}

/// `log!(events, Level, "format", args…)`: formats the line only when the owner wants it.
macro_rules! log {
    ($events:expr, $level:ident, $($arg:tt)+) => {{
        let events: &dyn $crate::events::Events = &*$events;
        if events.log_enabled($crate::events::Level::$level) {
            events.log($crate::events::Level::$level, format_args!($($arg)+));
        }
    }};
}
pub(crate) use log;
