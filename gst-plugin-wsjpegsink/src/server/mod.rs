//! The embedded HTTP + WebSocket server: listener, accept loop and per-connection HTTP.
//!
//! Routing is warp's (see `routes`); connections are driven by hyper directly so that the
//! accept loop, timeouts and the hand-off of upgraded sockets stay under our control.

mod access;
mod connections;
mod files;
mod mjpeg;
pub mod recordings;
mod report;
mod routes;
mod socket;
pub mod tls;
pub mod websocket;

/// What the server parses from clients, reachable by the fuzz target (`tests/fuzz.rs`); not an
/// API.
#[doc(hidden)]
pub mod parsers {
    pub use super::access::{
        constant_time_eq, origin_allowed, presented_tokens, query_param, request_scheme,
        token_accepted,
    };
    pub use super::files::resolve as resolve_document_path;
}

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::task::TaskTracker;

use crate::CAT;
use crate::burst::Burst;
use crate::hub::Hub;
pub use access::AllowedOrigins;
use connections::{BusyBody, ConnectionHandle, Connections};
use socket::ClientSocket;

/// Time a client gets to send its request headers (slow clients are cut off after it).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request line plus headers larger than this get 431 (hyper's minimum is 8 KiB).
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long stopping waits for viewers to receive their close frame.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// Kernel send buffer for every client socket. Small enough that a stalled viewer holds at most
/// a couple of frames in flight (seconds fresher than the autotuned default), large enough for
/// full speed on a LAN. The kernel doubles the value.
const VIEWER_SEND_BUFFER: usize = 256 * 1024;
/// A TLS client must finish its handshake within this; it never holds up anyone else.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `max-connections` 0 means this many per allowed viewer.
const CONNECTIONS_PER_CLIENT: usize = 4;
/// Repeated refusals and accept failures are reported at most this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(5);
/// After a failed accept (typically EMFILE) the loop waits this long, doubling up to a second.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Answer to a plain http:// request on a port that serves https.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 54\r\nConnection: close\r\n\r\nThis port serves HTTPS: use https:// and wss:// URLs.\n";
/// Answer to a connection over `max-connections` when every open one is at work.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\nRetry-After: 2\r\nConnection: close\r\n\r\nToo many connections\n";

/// Settings the server reads per request; the element may change them while it runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_clients: u32,
    /// Open connections of any kind; 0 = four per allowed viewer.
    pub max_connections: u32,
    pub keepalive: Duration,
    /// A client whose socket takes no byte for this long is disconnected; zero = never.
    pub write_timeout: Duration,
    pub allowed_origins: AllowedOrigins,
    pub auth_token: Option<String>,
    pub document_root: Option<PathBuf>,
    pub snapshot_timeout: Duration,
    /// Extra fields for `/status` (encoder, quality, device), set by the application.
    pub source_info: serde_json::Map<String, serde_json::Value>,
    /// Folder whose recordings `/api/recordings` lists and `/recordings/NAME` serves.
    pub recording_dir: Option<PathBuf>,
}

impl ServerConfig {
    pub fn connection_limit(&self) -> usize {
        match self.max_connections {
            0 => (self.max_clients as usize).saturating_mul(CONNECTIONS_PER_CLIENT),
            n => n as usize,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_clients: 64,
            max_connections: 0,
            keepalive: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            allowed_origins: AllowedOrigins::SameHost,
            auth_token: None,
            document_root: None,
            snapshot_timeout: Duration::from_secs(5),
            source_info: serde_json::Map::new(),
            recording_dir: None,
        }
    }
}

/// Everything a request handler needs.
pub struct ServerContext {
    pub hub: Arc<Hub>,
    config: RwLock<ServerConfig>,
    /// Connections (HTTP or upgraded) still being served; waited for on stop.
    tracker: TaskTracker,
    connections: Arc<Connections>,
}

impl ServerContext {
    pub fn new(hub: Arc<Hub>, config: ServerConfig) -> Arc<Self> {
        Arc::new(ServerContext {
            hub,
            config: RwLock::new(config),
            tracker: TaskTracker::new(),
            connections: Connections::new(),
        })
    }

    pub fn config(&self) -> ServerConfig {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn update_config(&self, f: impl FnOnce(&mut ServerConfig)) {
        let mut config = self
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut config);
    }

    /// Spawns a task that `stop()` waits for.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }
}

/// The connection a request came on, put into each request's extensions for the handlers.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS (https, wss).
    pub secure: bool,
    pub connection: ConnectionHandle,
}

#[derive(Debug)]
pub enum StartError {
    /// The address/port pair does not resolve to a socket address.
    BadAddress(String),
    Bind(SocketAddr, std::io::Error),
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
        }
    }
}

/// Resolves `address` (an IP literal or a host name) with `port`.
pub fn resolve(address: &str, port: u16) -> Result<SocketAddr, StartError> {
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

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Lets a restarted server take its port back while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `::` serves IPv4 clients too, whatever the system default.
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A server accepting connections on the runtime.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    ctx: Arc<ServerContext>,
    finished: std::sync::mpsc::Receiver<()>,
}

impl RunningServer {
    /// Binds `addr` and starts serving. Binding happens here, synchronously, so that a taken
    /// port is reported to the caller; nothing here blocks on the runtime, which keeps it safe
    /// to call from inside another tokio runtime.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        addr: SocketAddr,
        ctx: Arc<ServerContext>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, StartError> {
        let std_listener = bind(addr).map_err(|e| StartError::Bind(addr, e))?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| StartError::Bind(addr, e))?;
        let listener = {
            let _enter = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|e| StartError::Bind(addr, e))?
        };
        let (finished_tx, finished) = std::sync::mpsc::channel();
        runtime.spawn(ctx.hub.clone().dispatch());
        runtime.spawn(accept_loop(listener, ctx.clone(), tls, finished_tx));
        gst::info!(CAT, "Listening on {}", local_addr);
        Ok(RunningServer {
            local_addr,
            ctx,
            finished,
        })
    }

    pub fn context(&self) -> &Arc<ServerContext> {
        &self.ctx
    }

    /// Closes the listener, sends every viewer close code 1001 and waits (bounded) until the
    /// port is free again.
    pub fn stop(self) {
        self.ctx.hub.shutdown.cancel();
        if self.finished.recv_timeout(SHUTDOWN_GRACE * 2).is_err() {
            gst::warning!(CAT, "Server did not stop in time");
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Arc<ServerContext>,
    tls: Option<Arc<rustls::ServerConfig>>,
    finished: std::sync::mpsc::Sender<()>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let routes = routes::routes(ctx.clone());
    let shutdown = ctx.hub.shutdown.clone();
    let mut refusals = Burst::new(WARNING_INTERVAL);
    let mut accept_failures = Burst::new(WARNING_INTERVAL);
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF;
                accepted
            }
            Err(err) => {
                // Typically EMFILE: the pending connection stays queued and the listener stays
                // readable, so retrying at once would spin. Close an idle connection to free a
                // descriptor and wait a little.
                let freed = ctx.connections.evict_one();
                if let Some(count) = accept_failures.note() {
                    gst::warning!(
                        CAT,
                        "Cannot accept connections ({} time(s)): {}; {} open, {}",
                        count,
                        err,
                        ctx.connections.len(),
                        if freed {
                            "closing idle ones"
                        } else {
                            "none idle: raise the open-file limit (ulimit -n) or lower max-connections"
                        }
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let config = ctx.config();
        let limit = config.connection_limit();
        let Some(slot) = ctx.connections.admit(limit) else {
            if let Some(count) = refusals.note() {
                gst::warning!(
                    CAT,
                    "Refused {} connection(s), the last from {}: all {} allowed connections are \
                     at work (max-connections, default four per max-clients)",
                    count,
                    addr,
                    limit
                );
            }
            if tls.is_none() {
                // A short answer on a fresh socket fits its buffer; `send` never raises SIGPIPE.
                let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            }
            continue;
        };
        let peer = Peer {
            addr,
            secure: tls.is_some(),
            connection: slot.handle(),
        };
        let _ = stream.set_nodelay(true);
        // Bounds what the kernel queues for a viewer that stops reading (MJPEG here,
        // WebSocket again after the upgrade): about a frame, not seconds of video.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(VIEWER_SEND_BUFFER);
        let stream = ClientSocket::new(stream, config.write_timeout, slot);
        let service = warp::service(routes.clone());
        let shutdown = shutdown.clone();
        match &tls {
            None => ctx.spawn(serve_connection(
                TokioIo::new(stream),
                peer,
                service,
                shutdown,
            )),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let evicted = peer.connection.evicted();
                ctx.spawn(async move {
                    let handshake = async {
                        if speaks_plain_http(&stream).await {
                            answer_plain_http(stream).await;
                            return None;
                        }
                        Some(acceptor.accept(stream).await)
                    };
                    let stream = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = evicted.cancelled() => return,
                        done = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake) => done,
                    };
                    match stream {
                        Ok(Some(Ok(stream))) => {
                            serve_connection(TokioIo::new(stream), peer, service, shutdown).await
                        }
                        Ok(None) => gst::debug!(CAT, "Plain HTTP from {} on the TLS port", addr),
                        Ok(Some(Err(err))) => {
                            gst::debug!(CAT, "TLS handshake with {} failed: {}", addr, err)
                        }
                        Err(_) => gst::debug!(CAT, "TLS handshake with {} timed out", addr),
                    }
                })
            }
        }
    }
    drop(listener);
    ctx.tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, ctx.tracker.wait())
        .await
        .is_err()
    {
        gst::debug!(CAT, "Some connections were still closing at shutdown");
    }
    let _ = finished.send(());
}

/// Whether a client on the TLS port started with a plain HTTP request line (a method name)
/// rather than a TLS record.
async fn speaks_plain_http(stream: &ClientSocket<tokio::net::TcpStream>) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// Tells a browser that typed http:// for an https port what to do instead.
async fn answer_plain_http(mut stream: ClientSocket<tokio::net::TcpStream>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Read the request first: closing with it unread would reset the connection and could
    // destroy the answer before the client sees it.
    let mut request = vec![0u8; MAX_REQUEST_HEAD];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut request)).await;
    let _ = stream.write_all(PLAIN_HTTP_ON_TLS_PORT).await;
    let _ = stream.shutdown().await;
}

async fn serve_connection<I, S>(
    io: I,
    peer: Peer,
    service: S,
    shutdown: tokio_util::sync::CancellationToken,
) where
    S: tower_service::Service<
            http::Request<Incoming>,
            Response = warp::reply::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let addr = peer.addr;
    let evicted = peer.connection.evicted();
    let hyper_service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        // At work from the request head until the last byte of the answer is written.
        let busy = peer.connection.busy();
        req.extensions_mut().insert(peer.clone());
        let mut service = service.clone();
        async move {
            let response = service.call(req).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| BusyBody::new(body, busy)))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .keep_alive(true);
    let conn = builder.serve_connection(io, hyper_service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = evicted.cancelled() => {
            gst::debug!(CAT, "Closed the idle connection from {} to make room", addr);
            return;
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(err) = result {
        gst::debug!(CAT, "Connection from {} ended: {}", addr, err);
    }
}
