// SPDX-License-Identifier: MIT
//! The listener: binding, the accept loop, and HTTP on each connection.
//!
//! Routing is warp's (see `routes`); connections are driven by hyper directly so that the
//! accept loop, timeouts and the hand-off of upgraded sockets stay under our control.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::burst::Burst;
use crate::connections::BusyBody;
use crate::context::{Peer, ServerContext};
use crate::events::{Events, log};
use crate::routes;
use crate::socket::ClientSocket;

/// Time a client gets to send its request headers (slow clients are cut off after it).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request line plus headers larger than this get 431 (hyper's minimum is 8 KiB).
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long stopping waits for viewers to receive their close frame.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// Kernel send buffer for every client socket. Small enough that a stalled viewer holds at most
/// a couple of frames in flight (seconds fresher than the autotuned default), large enough for
/// full speed on a LAN. The kernel doubles the value.
const VIEWER_SEND_BUFFER: usize = 256 * 1024;
/// Bytes a client's socket may hold that the link has not taken yet (`TCP_NOTSENT_LOWAT`):
/// 16 KiB is 13 ms at 10 Mbit/s, 1.3 ms at 100 Mbit/s, and never holds up loopback.
const UNSENT_LOW_WATERMARK: u32 = 16 * 1024;
/// A TLS client must finish its handshake within this; it never holds up anyone else.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Repeated refusals and accept failures are reported at most this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(5);
/// After a failed accept (typically EMFILE) the loop waits this long, doubling up to a second.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Answer to a plain http:// request on a port that serves https.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 54\r\nConnection: close\r\n\r\nThis port serves HTTPS: use https:// and wss:// URLs.\n";
/// Answer to a connection over `max-connections` when every open one is at work.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\nRetry-After: 2\r\nConnection: close\r\n\r\nToo many connections\n";

pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
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

pub(crate) async fn accept_loop(
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
                    log!(
                        ctx.hub.events,
                        Warning,
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
                log!(
                    ctx.hub.events,
                    Warning,
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
        let socket = socket2::SockRef::from(&stream);
        let _ = socket.set_send_buffer_size(VIEWER_SEND_BUFFER);
        // The kernel holds about this much not yet sent: a writer waits for the link to take
        // the frame before it picks the next one, so on a slow link the newest frame is chosen
        // here, not queued behind seconds of older ones in the socket.
        let _ = socket.set_tcp_notsent_lowat(UNSENT_LOW_WATERMARK);
        let stream = ClientSocket::new(stream, config.write_timeout, slot);
        let service = warp::service(routes.clone());
        let shutdown = shutdown.clone();
        let events = ctx.hub.events.clone();
        match &tls {
            None => ctx.spawn(serve_connection(
                TokioIo::new(stream),
                peer,
                service,
                shutdown,
                events,
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
                            let io = TokioIo::new(stream);
                            serve_connection(io, peer, service, shutdown, events).await
                        }
                        Ok(None) => log!(events, Debug, "Plain HTTP from {} on the TLS port", addr),
                        Ok(Some(Err(err))) => {
                            log!(events, Debug, "TLS handshake with {} failed: {}", addr, err)
                        }
                        Err(_) => log!(events, Debug, "TLS handshake with {} timed out", addr),
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
        log!(
            ctx.hub.events,
            Debug,
            "Some connections were still closing at shutdown"
        );
    }
    let _ = finished.send(());
}

/// Whether a client on the TLS port started with a plain HTTP request line (a method name)
/// rather than a TLS record.
async fn speaks_plain_http(stream: &ClientSocket<tokio::net::TcpStream>) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// Sends a browser that typed http:// for an https port over to https://, the same host and
/// path; a request without a usable Host is told what to do in words.
async fn answer_plain_http(mut stream: ClientSocket<tokio::net::TcpStream>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Read the request first: closing with it unread would reset the connection and could
    // destroy the answer before the client sees it.
    let mut request = vec![0u8; MAX_REQUEST_HEAD];
    let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut request)).await;
    let head = match read {
        Ok(Ok(n)) => &request[..n],
        _ => &[],
    };
    match https_redirect(head) {
        Some(answer) => {
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        None => {
            let _ = stream.write_all(PLAIN_HTTP_ON_TLS_PORT).await;
        }
    }
    let _ = stream.shutdown().await;
}

/// The redirect to https for a plain HTTP request head, when its Host and target are sound.
fn https_redirect(head: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (_method, target) = (request_line.next()?, request_line.next()?);
    let sound_target = target.starts_with('/')
        && !target.starts_with("//")
        && target.bytes().all(|b| b.is_ascii_graphic());
    let host = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    })?;
    let sound_host = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !sound_target || !sound_host {
        return None;
    }
    Some(format!(
        "HTTP/1.1 301 Moved Permanently\r\nLocation: https://{host}{target}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    ))
}

async fn serve_connection<I, S>(
    io: I,
    peer: Peer,
    service: S,
    shutdown: tokio_util::sync::CancellationToken,
    events: Arc<dyn Events>,
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
            log!(events, Debug, "Closed the idle connection from {} to make room", addr);
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
        log!(events, Debug, "Connection from {} ended: {}", addr, err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_on_the_tls_port_is_sent_to_https() {
        let answer = https_redirect(b"GET /?codec=h264 HTTP/1.1\r\nHost: cam.local:3003\r\n\r\n")
            .expect("a redirect");
        assert!(answer.starts_with("HTTP/1.1 301 "), "{answer}");
        assert!(
            answer.contains("\r\nLocation: https://cam.local:3003/?codec=h264\r\n"),
            "{answer}"
        );
        let v6 = https_redirect(b"GET / HTTP/1.1\r\nhost: [fe80::1]:3003\r\n\r\n").expect("v6");
        assert!(v6.contains("Location: https://[fe80::1]:3003/\r\n"), "{v6}");
    }

    #[test]
    fn a_request_that_cannot_be_sent_on_is_not() {
        assert_eq!(https_redirect(b"GET / HTTP/1.1\r\n\r\n"), None, "no Host");
        assert_eq!(
            https_redirect(b"GET / HTTP/1.1\r\nHost: evil.com/\r\n\r\n"),
            None
        );
        assert_eq!(
            https_redirect(b"GET //evil.com/ HTTP/1.1\r\nHost: cam\r\n\r\n"),
            None
        );
        assert_eq!(
            https_redirect(b"GET http://x/ HTTP/1.1\r\nHost: cam\r\n\r\n"),
            None
        );
        assert_eq!(https_redirect(b"\xff\xfe"), None);
        assert_eq!(https_redirect(b""), None);
    }
}
