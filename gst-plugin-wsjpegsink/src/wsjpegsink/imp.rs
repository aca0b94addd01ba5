// SPDX-License-Identifier: MIT
/**
 * SECTION:element-wsjpegsink
 *
 * Serves every JPEG it receives to all connected browsers: over a WebSocket at `/stream`
 * (rendered by the built-in viewer page at `/`), as MJPEG at `/stream.mjpg`, and as single
 * pictures at `/snapshot.jpg`. Each viewer gets the newest frame when it is ready for one, so a
 * slow viewer never delays the pipeline or the other viewers.
 *
 * The server is up from NULL→READY to READY→NULL: in READY it keeps its viewers connected while
 * the application stops the camera.
 *
 * ## Recordings
 *
 * The element does not record; it offers the application's recordings to browsers. With
 * `recording-dir` set, `GET /api/recordings` lists the files named like
 * `2026-11-25T03-12-00Z_cam0.mkv` (or `.mp4`) in that folder and `GET /recordings/NAME`
 * downloads one, with HTTP ranges. The application reports its recorder through
 * `recording-state`: viewers get it as `recording` messages, `/status` and `/metrics` show it.
 * `POST /api/record/start` and `POST /api/record/stop` emit the `recording-control` action
 * signal; a handler returning %TRUE accepts the request (202), otherwise the answer is 409.
 *
 * ## Example pipelines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! jpegenc ! wsjpegsink port=3003
 * gst-launch-1.0 v4l2src ! image/jpeg,width=1280,height=720 ! jpegparse ! wsjpegsink
 * ]|
 *
 * Since: 0.1
 */
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use wsjpeg_server::sync::lock;

use wsjpeg_server::{
    AllowedOrigins, CameraState, FrameRef, RecordingStatus, Server, Snapshot, TlsFiles, VideoInfo,
    VideoTrack,
};

use super::events::ElementEvents;
use crate::detections::{objects_of, region_objects};
use crate::timing::{capture_time_us, wall_clock_us};
use crate::tracks;

const DEFAULT_ADDRESS: &str = "0.0.0.0";
const DEFAULT_PORT: u32 = 3003;
const DEFAULT_MAX_CLIENTS: u32 = 64;
const DEFAULT_MAX_CONNECTIONS: u32 = 0;
const DEFAULT_KEEPALIVE: u32 = 30;
const DEFAULT_WRITE_TIMEOUT: u32 = 30;
/// What reading `auth-token` gives while one is set: the token itself never leaves the element
/// (not into pipeline dumps, not into `gst-launch-1.0 -v`).
const MASKED_TOKEN: &str = "*****";
const DEFAULT_SNAPSHOT_TIMEOUT: u32 = 5000;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "wsjpegsink",
        gst::DebugColorFlags::empty(),
        Some("WebSocket JPEG sink"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    address: String,
    port: u32,
    max_clients: u32,
    max_connections: u32,
    document_root: Option<String>,
    keepalive: u32,
    write_timeout: u32,
    allowed_origins: String,
    auth_token: Option<String>,
    detector_token: Option<String>,
    snapshot_timeout: u32,
    camera_error: Option<String>,
    source_info: Option<gst::Structure>,
    tls_certificate: Option<String>,
    tls_key: Option<String>,
    recording_dir: Option<String>,
    recording_state: Option<gst::Structure>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: DEFAULT_ADDRESS.to_string(),
            port: DEFAULT_PORT,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            document_root: None,
            keepalive: DEFAULT_KEEPALIVE,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            allowed_origins: String::new(),
            auth_token: None,
            detector_token: None,
            snapshot_timeout: DEFAULT_SNAPSHOT_TIMEOUT,
            camera_error: None,
            source_info: None,
            tls_certificate: None,
            tls_key: None,
            recording_dir: None,
            recording_state: None,
        }
    }
}

impl Settings {
    fn server_settings(&self) -> wsjpeg_server::Settings {
        wsjpeg_server::Settings {
            max_clients: self.max_clients,
            max_connections: self.max_connections,
            keepalive: Duration::from_secs(self.keepalive as u64),
            write_timeout: Duration::from_secs(self.write_timeout as u64),
            allowed_origins: AllowedOrigins::parse(&self.allowed_origins),
            auth_token: self.auth_token.clone().filter(|t| !t.is_empty()),
            detector_token: self.detector_token.clone().filter(|t| !t.is_empty()),
            document_root: self
                .document_root
                .as_ref()
                .filter(|d| !d.is_empty())
                .map(Into::into),
            snapshot_timeout: Duration::from_millis(self.snapshot_timeout as u64),
            source_info: self
                .source_info
                .as_ref()
                .map(structure_to_json)
                .unwrap_or_default(),
            recording_dir: self.recording_dir.as_ref().map(Into::into),
        }
    }
}

#[derive(Default)]
struct State {
    server: Option<Arc<Server>>,
    /// The H.264 stream a wsh264sink may feed for the server to carry, from construction on.
    h264: Option<Arc<VideoTrack>>,
}

/// Read and written by the streaming thread only.
#[derive(Default)]
struct StreamState {
    /// Frames have carried region-of-interest metas since the start: a frame without any then
    /// says "nothing found" (and boxes shown before go away).
    detector_seen: bool,
}

#[derive(Default)]
pub struct WsJpegSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stream: Mutex<StreamState>,
}

#[glib::object_subclass]
impl ObjectSubclass for WsJpegSink {
    const NAME: &'static str = "GstWsJpegSink";
    type Type = super::WsJpegSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for WsJpegSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("address")
                    .nick("Address")
                    .blurb("Address to listen on (IPv4 or IPv6, e.g. 0.0.0.0, ::, 127.0.0.1). Applies at the next NULL→READY")
                    .default_value(Some(DEFAULT_ADDRESS))
                    .build(),
                glib::ParamSpecUInt::builder("port")
                    .nick("Port")
                    .blurb("TCP port to listen on; 0 picks a free one (read it from bound-port). Applies at the next NULL→READY")
                    .maximum(u16::MAX as u32)
                    .default_value(DEFAULT_PORT)
                    .build(),
                glib::ParamSpecUInt::builder("bound-port")
                    .nick("Bound port")
                    .blurb("The port actually listened on, 0 while the server is not running")
                    .maximum(u16::MAX as u32)
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("n-clients")
                    .nick("Number of clients")
                    .blurb("Viewers now connected (WebSocket, MJPEG and snapshot requests waiting for a frame); notifies on change")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("max-clients")
                    .nick("Maximum clients")
                    .blurb("Further viewers are refused: HTTP 503, or WebSocket close code 1013")
                    .minimum(1)
                    .default_value(DEFAULT_MAX_CLIENTS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-connections")
                    .nick("Maximum connections")
                    .blurb("Open connections of any kind (viewers, page loads, idle keep-alive); at the limit the oldest idle one is closed to make room, and when all are at work a newcomer gets 503. 0 = four times max-clients. Applies to new connections")
                    .default_value(DEFAULT_MAX_CONNECTIONS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("document-root")
                    .nick("Document root")
                    .blurb("Serve the viewer page and its files from this folder instead of the built-in page. Applies at the next NULL→READY")
                    .build(),
                glib::ParamSpecUInt::builder("keepalive")
                    .nick("Keepalive")
                    .blurb("Seconds without traffic after which a viewer is sent a ping; a viewer silent for three times as long is disconnected. 0 disables")
                    .maximum(24 * 3600)
                    .default_value(DEFAULT_KEEPALIVE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("write-timeout")
                    .nick("Write timeout")
                    .blurb("Seconds a client's socket may accept no data at all before it is disconnected and its slot freed; a slow client that still makes progress is kept (it gets the newest frame when ready). 0 = never. Applies to new connections")
                    .maximum(24 * 3600)
                    .default_value(DEFAULT_WRITE_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("allowed-origins")
                    .nick("Allowed origins")
                    .blurb("Comma-separated Origins (e.g. https://app.example) whose pages may open the WebSocket; empty = pages from this server only; * = any")
                    .default_value(Some(""))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("auth-token")
                    .nick("Auth token")
                    .blurb("When set, every request except /healthz must present it: ?token=, Authorization: Bearer, or the wsjpeg_token cookie. Reads back as ***** while set")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("detector-token")
                    .nick("Detector token")
                    .blurb("A client that presents it (?detector_token= or an X-Detector-Token header on /stream) may push detections over its WebSocket. Unset: nobody may. Reads back as ***** while set")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("snapshot-timeout")
                    .nick("Snapshot timeout")
                    .blurb("Milliseconds /snapshot.jpg waits for a frame when none is fresh, before answering 503")
                    .maximum(60_000)
                    .default_value(DEFAULT_SNAPSHOT_TIMEOUT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("tls-certificate")
                    .nick("TLS certificate")
                    .blurb("PEM file with the certificate chain; with tls-key, the port serves https and wss instead of http and ws. Applies at the next NULL→READY")
                    .build(),
                glib::ParamSpecString::builder("tls-key")
                    .nick("TLS key")
                    .blurb("PEM file with the private key of tls-certificate. Applies at the next NULL→READY")
                    .build(),
                glib::ParamSpecString::builder("camera-error")
                    .nick("Camera error")
                    .blurb("Set by the application when its source fails: viewers get an error status with this text and /healthz answers 503. Cleared by setting it empty or by the next frame")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("source-info")
                    .nick("Source information")
                    .blurb("Fields shown under \"source\" in /status (e.g. encoder, jpeg-quality, device), set by the application")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("recording-dir")
                    .nick("Recording folder")
                    .blurb("Folder of the application's recordings: GET /api/recordings lists the files named like 2026-11-25T03-12-00Z_cam0.mkv (or .mp4) in it, GET /recordings/NAME downloads one. Unset: both answer 404")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("recording-state")
                    .nick("Recording state")
                    .blurb("Set by the application that records: a \"recording\" structure with active, control (HTTP start/stop offered), started, file, format, bytes-written, segments-deleted, frames-dropped, detections-dropped, error. Shown to viewers, in /status and /metrics. Unset = no recording")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Frames in, invalid, sent and skipped, bytes sent, viewers, and per-viewer figures")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                /**
                 * GstWsJpegSink::client-connected:
                 * @address: the viewer's address and port
                 * @n_clients: viewers connected now
                 *
                 * Emitted from a thread of the element when a viewer arrives.
                 */
                glib::subclass::Signal::builder("client-connected")
                    .param_types([String::static_type(), u32::static_type()])
                    .build(),
                /**
                 * GstWsJpegSink::client-disconnected:
                 * @address: the viewer's address and port
                 * @n_clients: viewers connected now
                 *
                 * Emitted from a thread of the element when a viewer leaves.
                 */
                glib::subclass::Signal::builder("client-disconnected")
                    .param_types([String::static_type(), u32::static_type()])
                    .build(),
                /**
                 * GstWsJpegSink::push-detections:
                 * @detections: a "detections" structure: the frame it belongs to as `frame`
                 * (guint64, the sequence number viewers see in the ?meta=1 header),
                 * `capture-time` (guint64, Unix µs) or `clock-time` (GstClockTime on the
                 * pipeline clock, as a buffer's running time plus base time), and `objects`, a
                 * list or array of "object" structures with `label` (string), `x`, `y`,
                 * `width`, `height` (pixels of the frame) and optionally `score` (0–1), `id`
                 * and `parent`.
                 *
                 * Detections found after their frame went out, by a detector running at its
                 * own rate: viewers that follow detections get them at once, tied to their
                 * frame. Callable from any thread.
                 *
                 * Returns: %TRUE when taken, %FALSE when refused (the reason is logged): an
                 * unknown or too old frame, or objects that cannot be drawn
                 */
                glib::subclass::Signal::builder("push-detections")
                    .param_types([gst::Structure::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let element = args[0].get::<super::WsJpegSink>().ok()?;
                        let detections = args[1].get::<gst::Structure>().ok()?;
                        Some(element.imp().push_detections(&detections).to_value())
                    })
                    .build(),
                /**
                 * GstWsJpegSink::detections:
                 * @message: the `detections` message viewers get, JSON
                 *
                 * Emitted from a thread of the element for every detection result taken (from
                 * region-of-interest metas, #GstWsJpegSink::push-detections or a detector
                 * client), e.g. to keep them beside a recording.
                 */
                glib::subclass::Signal::builder("detections")
                    .param_types([String::static_type()])
                    .build(),
                /**
                 * GstWsJpegSink::recording-control:
                 * @action: "start" or "stop"
                 *
                 * Emitted for `POST /api/record/start` and `POST /api/record/stop`, from a
                 * thread of the server (never the streaming thread, no element lock held).
                 * Return %TRUE to accept (the client gets 202) and report the outcome through
                 * #GstWsJpegSink:recording-state; %FALSE, or no handler, answers 409. Handlers
                 * should return quickly.
                 *
                 * Returns: whether the request was accepted
                 */
                glib::subclass::Signal::builder("recording-control")
                    .param_types([String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        // Frames are copied in render(); holding the last upstream buffer too would pin a
        // camera or encoder pool buffer for nothing.
        obj.set_enable_last_sample(false);
        obj.set_sync(false);
        let track = tracks::add_jpeg_sink(obj.upcast_ref());
        lock(&self.state).h264 = Some(track);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let settings = {
            let mut settings = lock(&self.settings);
            self.apply_property(&mut settings, value, pspec);
            settings.clone()
        };
        if let Some(server) = self.server() {
            match pspec.name() {
                "address" | "port" | "document-root" => {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "'{}' applies when the element next goes from NULL to READY",
                        pspec.name()
                    );
                }
                "camera-error" => self.apply_camera_error(&server, &settings),
                "recording-state" => {
                    server.set_recording(settings.recording_state.as_ref().map(recording_status))
                }
                _ => {
                    let new = settings.server_settings();
                    server.update(|current| *current = new);
                }
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "address" => settings.address.to_value(),
            "port" => settings.port.to_value(),
            "max-clients" => settings.max_clients.to_value(),
            "max-connections" => settings.max_connections.to_value(),
            "document-root" => settings.document_root.to_value(),
            "keepalive" => settings.keepalive.to_value(),
            "write-timeout" => settings.write_timeout.to_value(),
            "allowed-origins" => settings.allowed_origins.to_value(),
            "auth-token" => settings
                .auth_token
                .as_ref()
                .map(|_| MASKED_TOKEN)
                .to_value(),
            "detector-token" => settings
                .detector_token
                .as_ref()
                .map(|_| MASKED_TOKEN)
                .to_value(),
            "snapshot-timeout" => settings.snapshot_timeout.to_value(),
            "camera-error" => settings.camera_error.to_value(),
            "source-info" => settings.source_info.to_value(),
            "tls-certificate" => settings.tls_certificate.to_value(),
            "tls-key" => settings.tls_key.to_value(),
            "recording-dir" => settings.recording_dir.to_value(),
            "recording-state" => settings.recording_state.to_value(),
            "bound-port" => {
                drop(settings);
                let port = self.server().map(|s| s.local_addr().port() as u32);
                port.unwrap_or(0).to_value()
            }
            "n-clients" => {
                drop(settings);
                self.server().map(|s| s.n_clients()).unwrap_or(0).to_value()
            }
            "stats" => {
                drop(settings);
                self.stats().to_value()
            }
            name => unimplemented!("Property '{name}'"),
        }
    }
}

impl WsJpegSink {
    fn apply_property(
        &self,
        settings: &mut Settings,
        value: &glib::Value,
        pspec: &glib::ParamSpec,
    ) {
        match pspec.name() {
            "address" => {
                settings.address = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
            }
            "port" => settings.port = value.get().expect("type checked upstream"),
            "max-clients" => settings.max_clients = value.get().expect("type checked upstream"),
            "max-connections" => {
                settings.max_connections = value.get().expect("type checked upstream")
            }
            "document-root" => settings.document_root = value.get().expect("type checked upstream"),
            "keepalive" => settings.keepalive = value.get().expect("type checked upstream"),
            "write-timeout" => settings.write_timeout = value.get().expect("type checked upstream"),
            "allowed-origins" => {
                settings.allowed_origins = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
            }
            "auth-token" => {
                settings.auth_token = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|t| !t.is_empty());
            }
            "detector-token" => {
                settings.detector_token = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|t| !t.is_empty());
            }
            "snapshot-timeout" => {
                settings.snapshot_timeout = value.get().expect("type checked upstream")
            }
            "camera-error" => {
                settings.camera_error = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty());
            }
            "source-info" => settings.source_info = value.get().expect("type checked upstream"),
            "tls-certificate" => {
                settings.tls_certificate = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty());
            }
            "tls-key" => {
                settings.tls_key = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty());
            }
            "recording-dir" => {
                settings.recording_dir = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty());
            }
            "recording-state" => {
                settings.recording_state = value.get().expect("type checked upstream")
            }
            name => unimplemented!("Property '{name}'"),
        }
    }
}

impl GstObjectImpl for WsJpegSink {}

impl ElementImpl for WsJpegSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "WebSocket JPEG Sink",
                "Sink/Network",
                "Serves live JPEG frames to browsers over WebSocket and MJPEG, newest frame first",
                "wsjpeg developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("image/jpeg").build();
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static pad template");
            vec![sink]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let result = self.parent_change_state(transition)?;
        if let Some(server) = self.server() {
            match transition {
                gst::StateChange::ReadyToPaused => server.set_camera_state(CameraState::Starting),
                gst::StateChange::PausedToReady => {
                    // Parked: no viewer may be shown the last picture as if it were live.
                    server.forget_frame();
                    server.set_camera_state(CameraState::Idle);
                }
                _ => {}
            }
        }
        Ok(result)
    }
}

impl BaseSinkImpl for WsJpegSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let port = u16::try_from(settings.port).map_err(|_| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("Invalid port {}", settings.port)
            )
        })?;
        let tls = match (&settings.tls_certificate, &settings.tls_key) {
            (None, None) => None,
            (Some(certificate), Some(key)) => Some(TlsFiles {
                certificate: certificate.into(),
                key: key.into(),
            }),
            _ => {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("tls-certificate and tls-key must be set together")
                ));
            }
        };
        let events = ElementEvents::spawn(&self.obj(), *CAT).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ("Cannot start the notification thread: {}", e)
            )
        })?;
        let config = wsjpeg_server::Config {
            address: settings.address.clone(),
            port,
            tls,
            settings: settings.server_settings(),
            h264: lock(&self.state).h264.clone(),
        };
        let server = Server::start(config, events).map_err(|e| match e {
            wsjpeg_server::StartError::Bind(..) => {
                gst::error_msg!(gst::ResourceError::OpenReadWrite, ("{}", e))
            }
            _ => gst::error_msg!(gst::ResourceError::Settings, ("{}", e)),
        })?;
        self.apply_camera_error(&server, &settings);
        server.set_recording(settings.recording_state.as_ref().map(recording_status));
        gst::info!(CAT, imp = self, "Serving on http://{}", server.local_addr());
        lock(&self.state).server = Some(Arc::new(server));
        self.obj().notify("bound-port");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let server = lock(&self.state).server.take();
        if let Some(server) = server {
            // Outside the state lock: viewers leaving emit signals that may read properties.
            server.stop();
            gst::info!(CAT, imp = self, "Server stopped");
        }
        *lock(&self.stream) = StreamState::default();
        self.obj().notify("bound-port");
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let mut info = VideoInfo::default();
        if let Some(s) = caps.structure(0) {
            info.width = s
                .get::<i32>("width")
                .ok()
                .and_then(|w| u32::try_from(w).ok());
            info.height = s
                .get::<i32>("height")
                .ok()
                .and_then(|h| u32::try_from(h).ok());
            info.framerate = s
                .get::<gst::Fraction>("framerate")
                .ok()
                .filter(|f| f.numer() > 0 && f.denom() > 0)
                .map(|f| f.numer() as f64 / f.denom() as f64);
        }
        gst::debug!(CAT, imp = self, "Caps {:?}", caps);
        if let Some(server) = self.server() {
            server.set_video_info(info);
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(server) = self.server() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["Failed to map buffer"]);
            gst::FlowError::Error
        })?;
        let capture_time = capture_time_us(self.obj().upcast_ref(), buffer);
        let objects = region_objects(buffer, (1.0, 1.0));
        let detector_seen = {
            let mut stream = lock(&self.stream);
            stream.detector_seen |= !objects.is_empty();
            stream.detector_seen
        };
        // Copied once for every viewer, so the upstream pool buffer goes back at once. A frame
        // that is not a whole JPEG is dropped, counted and warned about by the server.
        let _ = if detector_seen {
            server.publish_with_detections(&map, capture_time, objects)
        } else {
            server.publish(&map, capture_time)
        };
        Ok(gst::FlowSuccess::Ok)
    }
}

impl WsJpegSink {
    pub(super) fn server(&self) -> Option<Arc<Server>> {
        lock(&self.state).server.clone()
    }

    fn apply_camera_error(&self, server: &Server, settings: &Settings) {
        match &settings.camera_error {
            Some(message) => server.report_camera_error(message),
            None => {
                server.clear_camera_error(if self.obj().current_state() >= gst::State::Paused {
                    CameraState::Starting
                } else {
                    CameraState::Idle
                })
            }
        }
    }

    /// The `push-detections` action signal.
    fn push_detections(&self, detections: &gst::StructureRef) -> bool {
        let Some(server) = self.server() else {
            gst::debug!(CAT, imp = self, "Detections pushed while not serving");
            return false;
        };
        let at = if let Ok(frame) = detections.get::<u64>("frame") {
            Some(FrameRef::Sequence(frame))
        } else if let Ok(time) = detections.get::<u64>("capture-time") {
            Some(FrameRef::CaptureTime(time))
        } else if let Ok(Some(clock_time)) = detections.get::<Option<gst::ClockTime>>("clock-time")
        {
            wall_clock_us(self.obj().upcast_ref(), clock_time).map(FrameRef::CaptureTime)
        } else {
            None
        };
        let Some(at) = at else {
            gst::warning!(
                CAT,
                imp = self,
                "push-detections: name the frame by frame, capture-time or clock-time (a recent one)"
            );
            return false;
        };
        let objects = match objects_of(detections) {
            Ok(objects) => objects,
            Err(reason) => {
                gst::warning!(CAT, imp = self, "push-detections: {}", reason);
                return false;
            }
        };
        match server.push_detections(at, objects) {
            Ok(_) => true,
            Err(err) => {
                gst::debug!(CAT, imp = self, "push-detections refused: {}", err);
                false
            }
        }
    }

    fn stats(&self) -> gst::Structure {
        match self.server() {
            Some(server) => stats_structure(&server.snapshot()),
            None => gst::Structure::builder("wsjpegsink-stats")
                .field("n-clients", 0u32)
                .build(),
        }
    }
}

/// The `stats` property: the server's figures as a GstStructure.
fn stats_structure(s: &Snapshot) -> gst::Structure {
    let clients = gst::Array::new(s.clients.iter().map(|client| {
        gst::Structure::builder("client")
            .field("id", client.id)
            .field("kind", client.kind.as_str())
            .field("address", client.address.to_string())
            .field("frames-sent", client.frames_sent)
            .field("bytes-sent", client.bytes_sent)
            .field("drops", client.frames_skipped)
            .field("fps", client.fps)
            .field("paused", client.paused)
            .field("max-fps", client.max_fps.map_or(0.0, f64::from))
            .build()
            .to_send_value()
    }));
    gst::Structure::builder("wsjpegsink-stats")
        .field("frames-in", s.frames_in)
        .field("frames-invalid", s.frames_invalid)
        .field("frames-sent", s.frames_sent)
        .field("frames-skipped", s.frames_skipped)
        .field("drops", s.frames_invalid + s.frames_skipped)
        .field("bytes-sent", s.bytes_sent)
        .field("clients-refused", s.clients_refused)
        .field("n-clients", s.clients.len() as u32)
        .field("fps-in", s.fps_in)
        .field("clients", clients)
        .build()
}

/// Reads `recording-state`. Lenient about number types, since gst-launch gives plain ints.
fn recording_status(s: &gst::Structure) -> RecordingStatus {
    let text = |name: &str| {
        s.get::<Option<String>>(name)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
    };
    let flag = |name: &str| s.get::<bool>(name).unwrap_or(false);
    let count = |name: &str| -> u64 {
        let Some(value) = s.value(name).ok() else {
            return 0;
        };
        if let Ok(v) = value.get::<u64>() {
            v
        } else if let Ok(v) = value.get::<i64>() {
            u64::try_from(v).unwrap_or(0)
        } else if let Ok(v) = value.get::<u32>() {
            u64::from(v)
        } else if let Ok(v) = value.get::<i32>() {
            u64::try_from(v).unwrap_or(0)
        } else {
            0
        }
    };
    RecordingStatus {
        active: flag("active"),
        control: flag("control"),
        started: text("started"),
        file: text("file"),
        format: text("format"),
        bytes_written: count("bytes-written"),
        segments_deleted: count("segments-deleted"),
        frames_dropped: count("frames-dropped"),
        detections_dropped: count("detections-dropped"),
        error: text("error"),
    }
}

fn structure_to_json(s: &gst::Structure) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    s.iter()
        .map(|(name, value)| {
            let json = if let Ok(v) = value.get::<String>() {
                Value::from(v)
            } else if let Ok(v) = value.get::<i32>() {
                Value::from(v)
            } else if let Ok(v) = value.get::<u32>() {
                Value::from(v)
            } else if let Ok(v) = value.get::<i64>() {
                Value::from(v)
            } else if let Ok(v) = value.get::<u64>() {
                Value::from(v)
            } else if let Ok(v) = value.get::<f64>() {
                Value::from(v)
            } else if let Ok(v) = value.get::<bool>() {
                Value::from(v)
            } else {
                Value::from(value.serialize().map(|s| s.to_string()).unwrap_or_default())
            };
            (name.to_string(), json)
        })
        .collect()
}
