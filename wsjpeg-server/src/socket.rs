// SPDX-License-Identifier: MIT
//! The socket of one client connection, as every layer above it (hyper, rustls, the WebSocket
//! writer) sees it.
//!
//! - Every write is a `sendmsg` with `MSG_NOSIGNAL`. Plain `writev`, which tokio and hyper use
//!   for vectored writes, raises SIGPIPE on a socket the peer has closed, and a C host such as
//!   `gst-launch-1.0` dies of it. The host's signal dispositions are never touched.
//! - A write that makes no progress for `write-timeout` fails with `TimedOut`, so a client that
//!   reads nothing gives its slot back instead of parking a task for ever.
//! - It holds the connection's place in the connection table until the socket is dropped.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, Sleep};

use crate::connections::ConnectionSlot;

/// Whatever gives access to the connected TCP socket for writing.
pub trait TcpSocket {
    fn tcp(&self) -> &TcpStream;
}

impl TcpSocket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl TcpSocket for OwnedWriteHalf {
    fn tcp(&self) -> &TcpStream {
        self.as_ref()
    }
}

/// A client's socket (or its write half after a WebSocket upgrade).
pub struct ClientSocket<T> {
    io: T,
    deadline: WriteDeadline,
    _slot: ConnectionSlot,
}

impl ClientSocket<TcpStream> {
    /// `write_timeout` of zero never times out.
    pub fn new(io: TcpStream, write_timeout: Duration, slot: ConnectionSlot) -> Self {
        ClientSocket {
            io,
            deadline: WriteDeadline::new(write_timeout),
            _slot: slot,
        }
    }

    /// Reads without taking the bytes off the socket.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.peek(buf).await
    }

    /// The read half and a write half that keeps the deadline and the connection's slot.
    pub fn into_split(self) -> (OwnedReadHalf, ClientSocket<OwnedWriteHalf>) {
        let (read, write) = self.io.into_split();
        (
            read,
            ClientSocket {
                io: write,
                deadline: self.deadline,
                _slot: self._slot,
            },
        )
    }
}

impl<T: TcpSocket> ClientSocket<T> {
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let tcp = self.io.tcp();
        loop {
            match tcp.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return self.deadline.poll_expired(cx).map(Err),
            }
            let sent = tcp.try_io(Interest::WRITABLE, || {
                socket2::SockRef::from(tcp).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            });
            match sent {
                Ok(n) => {
                    self.deadline.progress();
                    return Poll::Ready(Ok(n));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncRead for ClientSocket<TcpStream> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: TcpSocket + AsyncWrite + Unpin> AsyncWrite for ClientSocket<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Fails a write that has waited `limit` for the socket to take a single byte. The timer is
/// created and armed only when a write has to wait, so a viewer that keeps up costs nothing.
struct WriteDeadline {
    limit: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl WriteDeadline {
    fn new(limit: Duration) -> Self {
        WriteDeadline {
            limit: (!limit.is_zero()).then_some(limit),
            timer: None,
            armed: false,
        }
    }

    fn progress(&mut self) {
        self.armed = false;
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        if !self.armed {
            // A deadline past what the clock can hold is no deadline.
            let Some(deadline) = Instant::now().checked_add(limit) else {
                return Poll::Pending;
            };
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        let Some(timer) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took no data for {} s", limit.as_secs_f64()),
        ))
    }
}
