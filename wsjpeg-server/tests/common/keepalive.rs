// SPDX-License-Identifier: MIT
//! An HTTP/1.1 client that keeps its connection: one request at a time on one TCP connection,
//! as a browser's player does, so that hundreds of clients making thousands of requests use
//! hundreds of sockets (a connection per request would run out of ephemeral ports, its
//! sockets waiting in TIME_WAIT). Bodies with a `Content-Length`, chunked bodies, and bodies
//! that end with the connection are read; a connection the server closed between two requests
//! is opened again.
//!
//! Nothing here panics on what a server sends: a server under load answering oddly is a
//! finding to report. Shared by the server's tests and the benchmark (`bench/`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest response head taken.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// A response.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, when it was kept (see [`KeepAlive::get`]).
    pub body: Vec<u8>,
    /// The body's length, kept or not.
    pub body_len: usize,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One client's connection to `addr`, opened when first needed.
pub struct KeepAlive {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    /// Bytes read past the end of the last response (a server may pipeline nothing, but a
    /// read may still return more than one response's bytes).
    buffer: Vec<u8>,
    /// Connections opened so far.
    pub connects: u64,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            addr,
            host: addr.to_string(),
            stream: None,
            buffer: Vec::new(),
            connects: 0,
        }
    }

    /// `GET path`, answered within `within`. The body is kept when `keep_body`, otherwise only
    /// counted. A connection the server closed while idle is opened again once; any other
    /// failure is returned (and the connection dropped, to be opened again next time).
    pub async fn get(
        &mut self,
        path: &str,
        keep_body: bool,
        within: Duration,
    ) -> io::Result<Reply> {
        match tokio::time::timeout(within, self.exchange(path, keep_body)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.close();
                Err(e)
            }
            Err(_) => {
                self.close();
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer to GET {path} within {within:?}"),
                ))
            }
        }
    }

    fn close(&mut self) {
        self.stream = None;
        self.buffer.clear();
    }

    async fn exchange(&mut self, path: &str, keep_body: bool) -> io::Result<Reply> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        let reused = self.stream.is_some();
        match self.send_and_read(&request, keep_body).await {
            // A kept connection the server had closed meanwhile (its keep-alive timeout or
            // request limit): nothing of an answer came, so asking again on a new one is safe.
            Err(e) if reused && e.kind() == io::ErrorKind::ConnectionAborted => {
                self.close();
                self.send_and_read(&request, keep_body).await
            }
            other => other,
        }
    }

    async fn send_and_read(&mut self, request: &str, keep_body: bool) -> io::Result<Reply> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buffer.clear();
            self.connects += 1;
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("no connection"))?;
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            return Err(aborted_before_answer(e));
        }
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(invalid("a response head longer than 64 KiB"));
            }
            match read_more(stream, &mut self.buffer).await {
                Ok(0) if self.buffer.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the connection closed before an answer",
                    ));
                }
                Ok(0) => return Err(unexpected_eof("in a response head")),
                Ok(_) => {}
                Err(e) if self.buffer.is_empty() => return Err(aborted_before_answer(e)),
                Err(e) => return Err(e),
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(&format!("a status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut reply = Reply {
            status,
            headers,
            ..Reply::default()
        };
        let close = reply
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || status_line.starts_with("HTTP/1.0");
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = reply
            .header("content-length")
            .map(|v| v.parse::<usize>())
            .transpose()
            .map_err(|_| invalid("a Content-Length that is no number"))?;
        let no_body = status == 204 || status == 304 || (100..200).contains(&status);
        let mut body = Body {
            keep: keep_body,
            data: Vec::new(),
            len: 0,
        };
        match (no_body, chunked, length) {
            (true, _, _) => {}
            (false, true, _) => read_chunked(stream, &mut self.buffer, &mut body).await?,
            (false, false, Some(length)) => {
                read_exact_body(stream, &mut self.buffer, &mut body, length).await?
            }
            (false, false, None) => {
                // Neither: the body ends with the connection.
                loop {
                    body.take(&self.buffer);
                    self.buffer.clear();
                    if read_more(stream, &mut self.buffer).await? == 0 {
                        break;
                    }
                }
                self.close();
            }
        }
        if close {
            self.close();
        }
        reply.body = body.data;
        reply.body_len = body.len;
        Ok(reply)
    }
}

/// A body being read: counted, and kept if asked.
struct Body {
    keep: bool,
    data: Vec<u8>,
    len: usize,
}

impl Body {
    fn take(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        if self.keep {
            self.data.extend_from_slice(bytes);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<usize> {
    let start = buffer.len();
    buffer.resize(start + READ_CHUNK, 0);
    let n = stream.read(&mut buffer[start..]).await;
    buffer.truncate(start + *n.as_ref().unwrap_or(&0));
    n
}

async fn read_exact_body(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    body: &mut Body,
    length: usize,
) -> io::Result<()> {
    if body.keep {
        body.data.reserve(length);
    }
    let mut missing = length;
    loop {
        let here = missing.min(buffer.len());
        body.take(&buffer[..here]);
        buffer.drain(..here);
        missing -= here;
        if missing == 0 {
            return Ok(());
        }
        if read_more(stream, buffer).await? == 0 {
            return Err(unexpected_eof("in a body"));
        }
    }
}

async fn read_chunked(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    body: &mut Body,
) -> io::Result<()> {
    loop {
        let line_end = loop {
            if let Some(end) = find(buffer, b"\r\n") {
                break end;
            }
            if buffer.len() > MAX_HEAD {
                return Err(invalid("a chunk size line longer than 64 KiB"));
            }
            if read_more(stream, buffer).await? == 0 {
                return Err(unexpected_eof("in a chunk size"));
            }
        };
        let line = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(&format!("a chunk size {size_text:?}")))?;
        buffer.drain(..line_end + 2);
        if size == 0 {
            // Trailers, if any, up to the empty line.
            loop {
                if let Some(end) = find(buffer, b"\r\n") {
                    buffer.drain(..end + 2);
                    if end == 0 {
                        return Ok(());
                    }
                    continue;
                }
                if read_more(stream, buffer).await? == 0 {
                    return Err(unexpected_eof("in the trailers"));
                }
            }
        }
        read_exact_body(stream, buffer, body, size).await?;
        while buffer.len() < 2 {
            if read_more(stream, buffer).await? == 0 {
                return Err(unexpected_eof("after a chunk"));
            }
        }
        if &buffer[..2] != b"\r\n" {
            return Err(invalid("a chunk not followed by CRLF"));
        }
        buffer.drain(..2);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {what}"))
}

fn unexpected_eof(where_: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the connection closed {where_}"),
    )
}

/// A write or read that failed before any byte of the answer: the server may have closed the
/// kept connection just before the request went out.
fn aborted_before_answer(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => {
            io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string())
        }
        _ => e,
    }
}
