// SPDX-License-Identifier: MIT
//! The running server, as its owner sees it: start it, hand it frames and states, read its
//! figures, stop it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::burst::Burst;
use crate::context::ServerContext;
use crate::detections::{DetectedObject, DetectionError, FrameRef};
use crate::events::{Events, log};
use crate::hub::{Hub, VideoInfo};
use crate::jpeg::{self, JpegError};
use crate::listener::{SHUTDOWN_GRACE, accept_loop, bind};
use crate::media::VideoTrack;
use crate::protocol::{CameraState, CameraStatus, RecordingStatus};
use crate::settings::Settings;
use crate::snapshot::Snapshot;
use crate::sync::lock;
use crate::tls;
use crate::viewers::{ClientGuard, ClientKind};

/// One runtime for every server in the process. Two workers: at many viewers the fan-out
/// needs both cores of a small device.
static RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wsjpeg-server")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});

/// The PEM files of a TLS server: the port then serves https and wss.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Where and how to listen, and the settings to start with.
#[derive(Debug, Clone)]
pub struct Config {
    /// An IP literal (`0.0.0.0`, `::`, `127.0.0.1`) or a host name.
    pub address: String,
    /// 0 picks a free port ([`Server::local_addr`] tells which).
    pub port: u16,
    pub tls: Option<TlsFiles>,
    pub settings: Settings,
    /// The H.264 stream to offer beside the JPEG frames (`/stream?codec=h264`), shared with
    /// its producer; `None`: a track of the server's own ([`Server::h264`]).
    pub h264: Option<Arc<VideoTrack>>,
}

#[derive(Debug)]
pub enum StartError {
    /// The address/port pair does not resolve to a socket address.
    BadAddress(String),
    Bind(SocketAddr, std::io::Error),
    /// The certificate or key cannot be read or do not fit together.
    Tls(String),
    /// The process cannot run the server's threads.
    Runtime(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::BadAddress(a) => write!(f, "Invalid listen address '{a}'"),
            StartError::Bind(addr, e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "Cannot listen on {addr}: port {} is already in use",
                    addr.port()
                )
            }
            StartError::Bind(addr, e) => write!(f, "Cannot listen on {addr}: {e}"),
            StartError::Tls(e) => f.write_str(e),
            StartError::Runtime(e) => write!(f, "Cannot start the server's threads: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Resolves `address` (an IP literal or a host name) with `port`.
fn resolve(address: &str, port: u16) -> Result<SocketAddr, StartError> {
    let host = address.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(StartError::BadAddress(address.to_string()));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| StartError::BadAddress(address.to_string()))
}

/// A server accepting connections on the runtime; stopped by [`Server::stop`] or on drop.
pub struct Server {
    local_addr: SocketAddr,
    ctx: Arc<ServerContext>,
    /// Taken by the first stop.
    finished: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    invalid_frames: Mutex<Burst>,
}

/// Broken frames are warned about at most this often; the rest of a burst is only counted.
const INVALID_WARNING_INTERVAL: Duration = Duration::from_secs(5);

impl Server {
    /// Binds and starts serving. Binding happens here, synchronously, so that a taken port is
    /// reported to the caller; nothing here blocks on the runtime, which keeps it safe to call
    /// from inside another tokio runtime.
    pub fn start(config: Config, events: Arc<dyn Events>) -> Result<Server, StartError> {
        let addr = resolve(&config.address, config.port)?;
        let tls = config
            .tls
            .as_ref()
            .map(|files| tls::load(&files.certificate, &files.key))
            .transpose()
            .map_err(StartError::Tls)?;
        let runtime = RUNTIME
            .as_ref()
            .map_err(|e| StartError::Runtime(e.clone()))?
            .handle();
        let std_listener = bind(addr).map_err(|e| StartError::Bind(addr, e))?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| StartError::Bind(addr, e))?;
        let listener = {
            let _enter = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|e| StartError::Bind(addr, e))?
        };
        let h264 = config.h264.unwrap_or_default();
        let hub = Hub::new(events, h264);
        let ctx = ServerContext::new(hub, config.settings);
        let (finished_tx, finished) = std::sync::mpsc::channel();
        runtime.spawn(ctx.hub.clone().dispatch());
        runtime.spawn(accept_loop(listener, ctx.clone(), tls, finished_tx));
        log!(ctx.hub.events, Info, "Listening on {}", local_addr);
        Ok(Server {
            local_addr,
            ctx,
            finished: Mutex::new(Some(finished)),
            invalid_frames: Mutex::new(Burst::new(INVALID_WARNING_INTERVAL)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hands a JPEG to every viewer, with its capture time (Unix µs). It must be a whole JPEG;
    /// the server keeps a copy, so `jpeg` may be reused at once. O(1) in the number of viewers
    /// and never blocks on them. A frame also says the camera streams (ending an error).
    /// Returns the frame's sequence number.
    pub fn publish(&self, jpeg: &[u8], capture_time_us: u64) -> Result<u64, JpegError> {
        self.publish_frame(jpeg, capture_time_us, None)
    }

    /// [`Server::publish`] for a frame a detector has looked at: `objects` are what it found
    /// (none at all is news too: boxes shown before go away). Viewers that follow detections
    /// get them just before the frame.
    pub fn publish_with_detections(
        &self,
        jpeg: &[u8],
        capture_time_us: u64,
        objects: Vec<DetectedObject>,
    ) -> Result<u64, JpegError> {
        self.publish_frame(jpeg, capture_time_us, Some(objects))
    }

    /// Detections found after their frame went out (a detector at its own rate, in another
    /// thread or process): checked, tied to the frame `at` refers to, and sent to the viewers
    /// that follow detections at once. Returns the frame's sequence number, or `None` when
    /// there was nothing new to show (no boxes before, none now).
    pub fn push_detections(
        &self,
        at: FrameRef,
        objects: Vec<DetectedObject>,
    ) -> Result<Option<u64>, DetectionError> {
        self.ctx.hub.push_detections(at, objects)
    }

    fn publish_frame(
        &self,
        jpeg: &[u8],
        capture_time_us: u64,
        objects: Option<Vec<DetectedObject>>,
    ) -> Result<u64, JpegError> {
        let hub = &self.ctx.hub;
        let len = jpeg::validate(jpeg).inspect_err(|err| self.refused(*err))?;
        if hub.video_info().width.is_none()
            && let Some((width, height)) = jpeg::dimensions(jpeg)
        {
            hub.learn_dimensions(width, height);
        }
        Ok(hub.publish(
            Bytes::copy_from_slice(&jpeg[..len]),
            capture_time_us,
            objects,
        ))
    }

    fn refused(&self, err: JpegError) {
        self.ctx.hub.record_invalid_frame();
        let due = lock(&self.invalid_frames).note();
        match due {
            Some(count) => log!(
                self.ctx.hub.events,
                Warning,
                "Dropped {} invalid frame(s): {}",
                count,
                err
            ),
            None => log!(self.ctx.hub.events, Debug, "Dropped invalid frame: {}", err),
        }
    }

    /// The H.264 stream the server offers while a producer feeds it: the producer publishes
    /// its access units there, and hears there how many viewers follow it.
    pub fn h264(&self) -> &Arc<VideoTrack> {
        &self.ctx.hub.h264
    }

    /// Forgets the last frame, so that nobody is shown a stale picture as live (the camera
    /// was parked).
    pub fn forget_frame(&self) {
        self.ctx.hub.clear_frame();
    }

    /// Size and rate as far as the owner knows them; a size missing here is read from the
    /// first JPEG.
    pub fn set_video_info(&self, info: VideoInfo) {
        self.ctx.hub.set_video_info(info);
    }

    /// The camera failed: viewers are told why and `/healthz` answers 503, until a frame
    /// arrives or [`Server::clear_camera_error`].
    pub fn report_camera_error(&self, message: &str) {
        self.ctx.hub.report_camera_error(message.to_string());
    }

    /// Ends an error, moving to `state`; nothing happens while there is no error.
    pub fn clear_camera_error(&self, state: CameraState) {
        self.ctx.hub.clear_camera_error(state);
    }

    /// Idle, starting: moves to `state` unless the camera is in error.
    pub fn set_camera_state(&self, state: CameraState) {
        self.ctx.hub.set_camera_state(state);
    }

    pub fn camera_status(&self) -> CameraStatus {
        self.ctx.hub.camera_status()
    }

    /// What the application says about its recording; `None`: no recording at all.
    pub fn set_recording(&self, status: Option<RecordingStatus>) {
        self.ctx.hub.set_recording_status(status);
    }

    pub fn settings(&self) -> Settings {
        self.ctx.config()
    }

    /// Changes settings while serving; they apply to the next request (limits, timeouts of
    /// new connections).
    pub fn update(&self, change: impl FnOnce(&mut Settings)) {
        self.ctx.update_config(change);
    }

    pub fn n_clients(&self) -> u32 {
        self.ctx.hub.viewers.n_clients()
    }

    /// Counts a viewer the application serves itself (an RTSP client of its own server):
    /// it wakes the camera as any viewer does, shows in `/status` and `/metrics` under its
    /// kind, and counts against `max-clients` (`None`: refused, the limit is reached). It
    /// stays counted until the guard is dropped.
    pub fn register_viewer(&self, kind: ClientKind, address: SocketAddr) -> Option<ClientGuard> {
        let max_clients = self.ctx.config().max_clients;
        self.ctx.hub.viewers.register(kind, address, max_clients)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.ctx)
    }

    /// Closes the listener, sends every viewer close code 1001 and waits (bounded) until the
    /// port is free again. Later calls do nothing.
    pub fn stop(&self) {
        let finished = lock(&self.finished).take();
        let Some(finished) = finished else {
            return;
        };
        self.ctx.hub.stop();
        if finished.recv_timeout(SHUTDOWN_GRACE * 2).is_err() {
            log!(self.ctx.hub.events, Warning, "Server did not stop in time");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
