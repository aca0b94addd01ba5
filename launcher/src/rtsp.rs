// SPDX-License-Identifier: MIT
//! The RTSP server: `rtsp://<address>:<port>/cam<n>` for each camera, for NVRs, Home Assistant
//! and media servers, with GStreamer's RTSP server library.
//!
//! It adds no encoder: each mount's media is `appsrc ! h264parse ! rtph264pay`, shared by all
//! of its clients, and fed with the access units of the camera's H.264 track, the very units
//! `wsh264sink` serves. Following the track counts as one more user of the encoder (the
//! encoder starts with it), and each RTSP connection that asks for a camera is registered as
//! a viewer with that camera's server, so the first one opens the camera, the last one leaving
//! releases it after the linger, and `/status` and `/metrics` count them as kind `rtsp`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;
use gst_rtsp_server::gio;
use gst_rtsp_server::glib;
use gst_rtsp_server::gst_rtsp::RTSPStatusCode;
use gst_rtsp_server::prelude::*;
use wsjpeg_server::media::{Next, VideoTrack};
use wsjpeg_server::{CameraState, ClientGuard, ClientKind, Server};

/// The user name RTSP clients give with `--auth-token` as their password.
pub const USER: &str = "wsjpeg";
/// How long a session lives without a keep-alive from its client (RTSP's own default).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Threads that handle clients' requests. The library's default, one for all, lets a request
/// that waits (a DESCRIBE while its camera opens, up to 20 s when it cannot) hold up every other
/// client's; a new client gets a thread of its own while there are fewer than this, and shares
/// one after.
const CLIENT_THREADS: i32 = 16;
/// How often sessions that timed out are looked for.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(1);
/// The media's pipeline: one payloading for every client of a mount. The units carry SPS and
/// PPS before every keyframe already (the encoder's `h264parse config-interval=-1`), so the
/// payloader adds none: with `config-interval=-1` it put them before each slice of a
/// keyframe, and x264's zero-latency keyframes have several, which ffmpeg then took for two
/// pictures with one timestamp.
const MEDIA_LAUNCH: &str = "( appsrc name=src is-live=true format=time do-timestamp=false \
     caps=video/x-h264,stream-format=byte-stream,alignment=au \
     ! h264parse ! video/x-h264,alignment=au ! rtph264pay config-interval=0 name=pay0 pt=96 )";
/// Access units waiting in the media's appsrc beyond this are dropped (a stalled pipeline).
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct RtspConfig {
    /// 0: any free port.
    pub port: u16,
    pub session_timeout: Duration,
}

/// One camera as the RTSP server sees it: its mount number and the server it registers its
/// clients with and follows the track of.
pub struct Mount {
    pub camera: usize,
    pub server: Arc<Server>,
}

/// The running RTSP server, on a GLib main loop of its own; stopped on drop.
pub struct RtspServer {
    port: u16,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    server: gst_rtsp_server::RTSPServer,
}

impl RtspServer {
    /// Binds `address:port` and serves `/cam<n>` for every mount. A port that is taken is an
    /// error here, at start.
    pub fn start(
        config: &RtspConfig,
        address: &str,
        auth_token: Option<&str>,
        mounts: Vec<Mount>,
    ) -> Result<RtspServer> {
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(address);
        server.set_service(&config.port.to_string());
        let points = server
            .mount_points()
            .ok_or_else(|| anyhow!("the RTSP server has no mount points"))?;
        let auth = auth_token.map(authentication);
        let clients = Clients::default();
        for mount in &mounts {
            let factory = media_factory(mount, auth.is_some(), clients.clone());
            points.add_factory(&format!("/cam{}", mount.camera), factory);
        }
        if let Some(auth) = &auth {
            server.set_auth(Some(auth));
        }
        if let Some(pool) = server.thread_pool() {
            pool.set_max_threads(CLIENT_THREADS);
        }
        let session_timeout = config.session_timeout.as_secs().clamp(1, 3600) as u32;
        let servers: Arc<Vec<Arc<Server>>> =
            Arc::new(mounts.iter().map(|m| m.server.clone()).collect());
        let idle_clients = clients.clone();
        server.connect_client_connected(move |_, client| {
            register_client(client, &servers, &clients, session_timeout);
        });
        let context = glib::MainContext::new();
        let source = server
            .create_source(None::<&gio::Cancellable>)
            .map_err(|e| anyhow!("{}", e.message()))
            .with_context(|| format!("cannot listen for RTSP on {address}:{}", config.port))?;
        source.attach(Some(&context));
        let port = u16::try_from(server.bound_port()).unwrap_or(config.port);
        if let Some(pool) = server.session_pool() {
            let weak = server.downgrade();
            let session_timeout = Duration::from_secs(u64::from(session_timeout));
            let cleanup = glib::timeout_source_new(
                CLEANUP_INTERVAL,
                Some("rtsp-session-cleanup"),
                glib::Priority::DEFAULT,
                move || {
                    if let Some(server) = weak.upgrade() {
                        end_timed_out_sessions(&server, &pool, &idle_clients, session_timeout);
                    }
                    glib::ControlFlow::Continue
                },
            );
            cleanup.attach(Some(&context));
        }
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let running = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp".into())
            .spawn(move || {
                let _ = context.with_thread_default(|| running.run());
            })
            .context("cannot start the RTSP server's thread")?;
        Ok(RtspServer {
            port,
            main_loop,
            thread: Some(thread),
            server,
        })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        // Every client goes (its sessions, its viewer registration, the track followers).
        let clients = self
            .server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        drop(clients);
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes the sessions whose client went silent for longer than their timeout (the library
/// leaves when to the application), and closes the connections that had only those: a client
/// that vanished without TEARDOWN but left its connection open is no viewer any more. A
/// connection that never got a session within the timeout (a DESCRIBE and nothing more, or
/// bytes that are no request) is closed too: the library would keep it, and its camera, for
/// good.
fn end_timed_out_sessions(
    server: &gst_rtsp_server::RTSPServer,
    pool: &gst_rtsp_server::RTSPSessionPool,
    clients: &Clients,
    timeout: Duration,
) {
    use gst_rtsp_server::RTSPFilterResult;
    let now = glib::monotonic_time();
    let expired = pool.filter(Some(&mut |_, session| {
        if session.is_expired_usec(now) {
            RTSPFilterResult::Ref
        } else {
            RTSPFilterResult::Keep
        }
    }));
    for client in server.client_filter(None) {
        let sessions = client.session_filter(None);
        if sessions.is_empty() {
            let idle = clients
                .get(&client)
                .is_some_and(|viewer| viewer.connected.elapsed() > timeout);
            if idle {
                log::info!("RTSP: a connection without a session for {timeout:?}; closing it");
                client.close();
            }
        } else if sessions.iter().all(|s| expired.contains(s)) {
            log::info!("RTSP: a client's session timed out; closing its connection");
            client.close();
        }
    }
    if !expired.is_empty() {
        pool.cleanup();
    }
}

/// Basic and Digest authentication: user [`USER`], the token as password. Only an
/// authenticated client may see or play a mount.
fn authentication(token: &str) -> gst_rtsp_server::RTSPAuth {
    let auth = gst_rtsp_server::RTSPAuth::new();
    let user = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, USER)
        .build();
    auth.add_basic(&gst_rtsp_server::RTSPAuth::make_basic(USER, token), &user);
    auth.add_digest(USER, token, &user);
    // The method is a set of flags in C; the binding's enum holds one at a time.
    use gst_rtsp_server::gst_rtsp::ffi::{GST_RTSP_AUTH_BASIC, GST_RTSP_AUTH_DIGEST};
    // SAFETY: a plain setter on a valid object, with flags the C API defines.
    unsafe {
        gst_rtsp_server::ffi::gst_rtsp_auth_set_supported_methods(
            glib::translate::ToGlibPtr::to_glib_none(&auth).0,
            GST_RTSP_AUTH_BASIC | GST_RTSP_AUTH_DIGEST,
        );
    }
    auth
}

/// The factory of one camera's mount: shared media, fed from the camera's H.264 track while
/// it is prepared.
fn media_factory(
    mount: &Mount,
    authenticated: bool,
    clients: Clients,
) -> gst_rtsp_server::RTSPMediaFactory {
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(MEDIA_LAUNCH);
    factory.set_shared(true);
    if authenticated {
        factory.add_role_from_structure(
            &gst::Structure::builder(USER)
                .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    let track = mount.server.h264().clone();
    let camera = mount.camera;
    factory.connect_media_configure(move |_, media| {
        // The client that asked for the media is authenticated by now; as a viewer it wakes
        // the camera, whose units the media waits for to be prepared.
        if let Some(viewer) = clients.current() {
            viewer.register(camera);
        }
        let Some(appsrc) = media
            .element()
            .downcast::<gst::Bin>()
            .ok()
            .and_then(|bin| bin.by_name_recurse_up("src"))
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        else {
            log::error!("Camera {camera}: the RTSP media has no input");
            return;
        };
        appsrc.set_max_bytes(MAX_QUEUED_BYTES);
        let feeder = Mutex::new(Some(Feeder::start(track.clone(), &appsrc, camera)));
        media.connect_unprepared(move |_| {
            feeder.lock().unwrap_or_else(PoisonError::into_inner).take();
        });
    });
    factory
}

/// The connections, by client, for the media factories to find the one whose request they
/// serve.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<usize, Arc<ClientViewer>>>>);

impl Clients {
    fn key(client: &gst_rtsp_server::RTSPClient) -> usize {
        client.as_ptr() as usize
    }

    /// The connection whose request is being handled on this thread.
    fn current(&self) -> Option<Arc<ClientViewer>> {
        let key = gst_rtsp_server::RTSPContext::with_current_context(|context| {
            context.client().map(Self::key)
        })
        .flatten()?;
        self.by_key(key)
    }

    fn get(&self, client: &gst_rtsp_server::RTSPClient) -> Option<Arc<ClientViewer>> {
        self.by_key(Self::key(client))
    }

    fn by_key(&self, key: usize) -> Option<Arc<ClientViewer>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
    }
}

/// A new RTSP connection. It counts as a viewer of a camera once the library let one of its
/// requests for that camera's mount through (authenticated, when there is a token): from the
/// media's construction for the first client (the media waits for the camera), else from its
/// DESCRIBE or SETUP, until it closes. Refused with 503 while the camera's server is full.
/// Its sessions time out after `session_timeout` seconds without a keep-alive.
fn register_client(
    client: &gst_rtsp_server::RTSPClient,
    servers: &Arc<Vec<Arc<Server>>>,
    clients: &Clients,
    session_timeout: u32,
) {
    let address = peer_address(client).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let viewer = Arc::new(ClientViewer {
        address,
        connected: std::time::Instant::now(),
        servers: servers.clone(),
        guards: Mutex::new(Vec::new()),
    });
    let key = Clients::key(client);
    clients
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, viewer.clone());
    let checking = viewer.clone();
    client.connect_pre_describe_request(move |_, context| checking.room_for(context));
    let checking = viewer.clone();
    client.connect_pre_setup_request(move |_, context| checking.room_for(context));
    let describing = viewer.clone();
    client.connect_describe_request(move |_, context| describing.register_for(context));
    let setting_up = viewer.clone();
    client.connect_setup_request(move |_, context| setting_up.register_for(context));
    let leaving = viewer.clone();
    let registry = clients.clone();
    client.connect_closed(move |_| {
        registry
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        leaving.leave();
    });
    client.connect_new_session(move |_, session| {
        session.set_timeout(session_timeout);
    });
    // A client that joins a running media starts at the next keyframe: ask for one now.
    client.connect_play_request(move |_, context| {
        if let Some(server) = camera_of_request(context).and_then(|n| viewer.servers.get(n)) {
            server.h264().request_keyframe();
        }
    });
}

/// One RTSP connection as a viewer of the cameras it asked for.
struct ClientViewer {
    address: SocketAddr,
    connected: std::time::Instant,
    servers: Arc<Vec<Arc<Server>>>,
    /// The cameras this connection is counted for, with their registrations.
    guards: Mutex<Vec<(usize, ClientGuard)>>,
}

impl ClientViewer {
    /// 503 for a connection that is not counted yet while the camera's server is full, and
    /// while the camera is in error.
    fn room_for(&self, context: &gst_rtsp_server::RTSPContext) -> RTSPStatusCode {
        let Some(camera) = camera_of_request(context) else {
            return RTSPStatusCode::Ok;
        };
        let Some(server) = self.servers.get(camera) else {
            return RTSPStatusCode::Ok;
        };
        // A camera that failed to open is said at once, rather than after the library's
        // 20 s wait for a media that gets no units; the request still counts as a viewer's,
        // so the camera is tried again while the client keeps asking.
        if server.camera_status().state == CameraState::Error {
            self.register(camera);
            return RTSPStatusCode::ServiceUnavailable;
        }
        let counted = self
            .guards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(n, _)| *n == camera);
        if !counted && server.n_clients() >= server.settings().max_clients {
            log::warn!(
                "RTSP client {} refused for camera {camera}: max-clients reached",
                self.address
            );
            return RTSPStatusCode::ServiceUnavailable;
        }
        RTSPStatusCode::Ok
    }

    fn register_for(&self, context: &gst_rtsp_server::RTSPContext) {
        if let Some(camera) = camera_of_request(context) {
            self.register(camera);
        }
    }

    fn register(&self, camera: usize) {
        let Some(server) = self.servers.get(camera) else {
            return;
        };
        let mut guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
        if guards.iter().any(|(n, _)| *n == camera) {
            return;
        }
        match server.register_viewer(ClientKind::Rtsp, self.address) {
            Some(guard) => {
                log::info!("RTSP client {} watches camera {camera}", self.address);
                guards.push((camera, guard));
            }
            None => log::warn!(
                "RTSP client {} not counted for camera {camera}: max-clients reached",
                self.address
            ),
        }
    }

    fn leave(&self) {
        let mut guards = self.guards.lock().unwrap_or_else(PoisonError::into_inner);
        if !guards.is_empty() {
            log::info!("RTSP client {} left", self.address);
        }
        guards.clear();
    }
}

/// The camera a request is for, from its URL (`rtsp://host:port/cam<n>[/stream=0]`).
fn camera_of_request(context: &gst_rtsp_server::RTSPContext) -> Option<usize> {
    let uri = context.uri()?.request_uri();
    uri.splitn(4, '/').nth(3).and_then(camera_of)
}

/// The camera number of a mount path, `/cam<n>` (with a control suffix or not).
fn camera_of(path: &str) -> Option<usize> {
    let rest = path.trim_start_matches('/').strip_prefix("cam")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The client's address, from its connection's socket.
fn peer_address(client: &gst_rtsp_server::RTSPClient) -> Option<SocketAddr> {
    use glib::translate::{FromGlibPtrNone, ToGlibPtr};
    // SAFETY: the connection belongs to the client, which outlives this call; the socket is
    // taken with a reference of its own (from_glib_none) before the connection could go.
    let socket = unsafe {
        let connection =
            gst_rtsp_server::ffi::gst_rtsp_client_get_connection(client.to_glib_none().0);
        if connection.is_null() {
            return None;
        }
        let socket =
            gst_rtsp_server::gst_rtsp::ffi::gst_rtsp_connection_get_read_socket(connection);
        if socket.is_null() {
            return None;
        }
        gio::Socket::from_glib_none(socket)
    };
    let address = socket.remote_address().ok()?;
    let inet = address.downcast::<gio::InetSocketAddress>().ok()?;
    Some(inet.into())
}

/// Follows one camera's H.264 track into a media's appsrc, on a thread of its own, until
/// dropped (the media is unprepared) or the appsrc is gone.
struct Feeder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    fn start(track: Arc<VideoTrack>, appsrc: &gst_app::AppSrc, camera: usize) -> Feeder {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let appsrc = appsrc.downgrade();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let thread = std::thread::Builder::new()
            .name(format!("rtsp-feed{camera}"))
            .spawn(move || match runtime {
                Ok(runtime) => runtime.block_on(feed(track, appsrc, stopped)),
                Err(err) => log::error!("Camera {camera}: no RTSP feed: {err}"),
            })
            .inspect_err(|err| log::error!("Camera {camera}: no RTSP feed: {err}"))
            .ok();
        Feeder {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Pushes every access unit in order from a keyframe on (and from the next keyframe again
/// after falling behind), stamped with its capture time on the media's running time.
async fn feed(
    track: Arc<VideoTrack>,
    appsrc: glib::WeakRef<gst_app::AppSrc>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let mut following = track.follow();
    let mut cursor = None;
    let mut waiting = false;
    let mut last_pts = None;
    loop {
        following.mark_seen();
        let Some(appsrc) = appsrc.upgrade() else {
            return;
        };
        // Until the media runs there is no running time to stamp units with; they wait in
        // the track (the cursor stays).
        let clock = appsrc.clock().zip(appsrc.base_time());
        let running = clock.is_some();
        if let Some((clock, base_time)) = clock {
            match track.next_units(cursor) {
                Next::WaitForKeyframe => {
                    if !waiting {
                        waiting = true;
                        track.request_keyframe();
                    }
                }
                Next::Units(units) => {
                    waiting = false;
                    for unit in units {
                        cursor = Some(unit.sequence);
                        let pts =
                            running_time(&clock, base_time, unit.capture_time_us).map(|pts| {
                                match last_pts {
                                    Some(last) if pts <= last => {
                                        last + gst::ClockTime::from_useconds(1)
                                    }
                                    _ => pts,
                                }
                            });
                        last_pts = pts.or(last_pts);
                        let mut buffer = gst::Buffer::from_slice(unit.data.clone());
                        if let Some(buffer) = buffer.get_mut() {
                            buffer.set_pts(pts);
                            buffer.set_duration(gst::ClockTime::from_useconds(u64::from(
                                unit.duration_us,
                            )));
                            if !unit.keyframe {
                                buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
                            }
                        }
                        if appsrc.current_level_bytes() <= MAX_QUEUED_BYTES {
                            let _ = appsrc.push_buffer(buffer);
                        }
                    }
                }
            }
        }
        drop(appsrc);
        tokio::select! {
            _ = following.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)), if !running => {}
            _ = &mut stopped => return,
        }
    }
}

/// A capture time (Unix µs) on a pipeline's running time: as long ago as it was captured.
fn running_time(
    clock: &gst::Clock,
    base_time: gst::ClockTime,
    capture_time_us: u64,
) -> Option<gst::ClockTime> {
    let now = clock.time().checked_sub(base_time)?;
    let age = wsjpeg_server::protocol::unix_time_us().saturating_sub(capture_time_us);
    Some(now.saturating_sub(gst::ClockTime::from_useconds(age)))
}

#[cfg(test)]
mod tests {
    use super::camera_of;

    #[test]
    fn mount_paths_name_their_camera() {
        assert_eq!(camera_of("/cam0"), Some(0));
        assert_eq!(camera_of("cam1/stream=0"), Some(1));
        assert_eq!(camera_of("/cam12/stream=0"), Some(12));
        assert_eq!(camera_of("/camera"), None);
        assert_eq!(camera_of("/other"), None);
    }
}
