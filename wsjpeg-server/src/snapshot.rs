// SPDX-License-Identifier: MIT
//! One reading of every figure the server keeps, taken at once; `/status`, `/metrics` and the
//! owner (the element's `stats` property) all render from it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::context::ServerContext;
pub use crate::detections::DetectionFigures;
pub use crate::hls::HlsFigures;
pub use crate::hub::VideoInfo;
use crate::protocol::{CameraStatus, RecordingStatus};
pub use crate::viewers::ClientKind;

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub uptime: Duration,
    pub frames_in: u64,
    /// Frames refused because they were not whole JPEGs.
    pub frames_invalid: u64,
    /// Frames delivered, summed over viewers.
    pub frames_sent: u64,
    /// Frames viewers skipped because they were still busy with an older one.
    pub frames_skipped: u64,
    pub bytes_sent: u64,
    /// Viewers refused at `max_clients`.
    pub clients_refused: u64,
    pub fps_in: f64,
    pub last_frame_age: Option<Duration>,
    pub max_clients: u32,
    pub connections_open: usize,
    pub connections_max: usize,
    pub camera: CameraStatus,
    pub video: VideoInfo,
    pub recording: Option<RecordingStatus>,
    pub detections: DetectionFigures,
    pub hls: HlsFigures,
    pub clients: Vec<ClientSnapshot>,
}

#[derive(Debug, Clone)]
pub struct ClientSnapshot {
    pub id: u64,
    pub kind: ClientKind,
    pub address: SocketAddr,
    pub connected_for: Duration,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_skipped: u64,
    pub fps: f64,
    pub paused: bool,
    /// The viewer's own rate cap, if it set one.
    pub max_fps: Option<f32>,
}

impl Snapshot {
    pub(crate) fn take(ctx: &ServerContext) -> Snapshot {
        let hub = &ctx.hub;
        let settings = ctx.config();
        let c = &hub.counters;
        let delivered = hub.viewers.delivered();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let clients = hub
            .viewers
            .clients()
            .iter()
            .map(|client| {
                let max_fps = client.max_fps();
                ClientSnapshot {
                    id: client.id,
                    kind: client.kind,
                    address: client.address,
                    connected_for: client.connected.elapsed(),
                    frames_sent: load(&client.frames_sent),
                    bytes_sent: load(&client.bytes_sent),
                    frames_skipped: load(&client.frames_skipped),
                    fps: client.fps(),
                    paused: client.paused.load(Ordering::Relaxed),
                    max_fps: (max_fps > 0.0).then_some(max_fps),
                }
            })
            .collect();
        Snapshot {
            uptime: hub.started.elapsed(),
            frames_in: load(&c.frames_in),
            frames_invalid: load(&c.frames_invalid),
            frames_sent: delivered.frames_sent,
            frames_skipped: delivered.frames_skipped,
            bytes_sent: delivered.bytes_sent,
            clients_refused: hub.viewers.refused(),
            fps_in: hub.fps_in(),
            last_frame_age: hub.latest_frame().map(|f| f.published.elapsed()),
            max_clients: settings.max_clients,
            connections_open: ctx.connections.len(),
            connections_max: settings.connection_limit(),
            camera: hub.camera_status(),
            video: hub.video_info(),
            recording: hub.recording_status(),
            detections: hub.detections.figures(),
            hls: hub.hls.figures(),
            clients,
        }
    }
}
