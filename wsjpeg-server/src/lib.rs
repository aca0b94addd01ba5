// SPDX-License-Identifier: MIT
//! The server of wsjpeg, with no GStreamer in it: live JPEG frames to every viewer over
//! WebSocket (`/stream`) and MJPEG (`/stream.mjpg`), single pictures (`/snapshot.jpg`), the
//! viewer page, `/status`, `/metrics`, `/healthz` and the recordings of the application.
//!
//! The owner (the `wsjpegsink` element, the benchmarks) starts a [`Server`], hands it each
//! frame with [`Server::publish`] and tells it about the camera and the recording; the server
//! tells the owner about viewers, recording requests and its log lines through [`Events`].
//! Each viewer gets the newest frame whenever it is ready for one: a slow viewer never holds up
//! the others or the owner.

mod access;
mod burst;
mod connections;
mod context;
pub mod detections;
mod events;
mod files;
mod hls;
mod hls_http;
mod hub;
mod listener;
mod mjpeg;
mod page;
mod rate;
mod recordings;
mod reply;
mod report;
mod routes;
mod server;
mod settings;
mod signin;
mod snapshot;
mod socket;
#[cfg(test)]
mod test_support;
mod tls;
mod viewers;

pub mod jpeg;
pub mod media;
pub mod protocol;
pub mod segment;
pub mod sync;
pub mod websocket;

pub use detections::{DetectedObject, DetectionError, FrameRef};
pub use events::{Events, Level, NoEvents, RecordAction, ViewerChange};
pub use media::{Producer, VideoTrack};
pub use protocol::{CameraState, CameraStatus, RecordingStatus};
pub use server::{Config, Server, StartError, TlsFiles};
pub use settings::{AllowedOrigins, Settings};
pub use snapshot::{ClientKind, ClientSnapshot, Snapshot, VideoInfo};
pub use viewers::ClientGuard;
