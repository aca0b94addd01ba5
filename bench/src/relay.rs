//! Reference B: the cheapest correct fan-out this machine allows.
//!
//! A minimal relay with no features: one tokio runtime with two workers, a `watch` channel
//! holding the newest frame (latest frame wins per viewer), and per frame a single vectored
//! write of the WebSocket header, the optional 24-byte `?meta=1` header and the shared payload.
//! No HTTP routing beyond `/stream`, no text messages, no keepalive. It exists so that a run
//! can put the element next to this floor on the same machine, at the same moment.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::serve::Feeder;
use wsjpeg_server::protocol;
use wsjpeg_server::websocket::codec;

use crate::util::unix_us;
use crate::ws::{find, header_value};

/// Same kernel send buffer as wsjpegsink's viewer sockets, for a like-for-like comparison.
const SEND_BUFFER: libc::c_int = 256 * 1024;

#[derive(Debug)]
pub struct RelayFrame {
    pub sequence: u64,
    pub capture_us: u64,
    pub published: Instant,
    pub jpeg: Bytes,
}

type Slot = Option<Arc<RelayFrame>>;

pub struct Relay {
    pub port: u16,
    _runtime: tokio::runtime::Runtime,
    _feeder: Option<Feeder>,
}

impl Relay {
    /// Listens on `addr` and, unless `idle`, publishes `frames` at `fps`, each copied into
    /// fresh memory when `fresh_copy` is set.
    pub fn start(
        addr: SocketAddr,
        frames: Vec<Bytes>,
        fps: f64,
        idle: bool,
        fresh_copy: bool,
    ) -> Result<Relay> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("relay")
            .enable_all()
            .build()
            .context("building the relay runtime")?;
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = watch::channel::<Slot>(None);
        runtime.spawn(accept_loop(listener, rx));
        let feeder = (!idle).then(|| {
            let mut sequence = 0u64;
            Feeder::start(frames, fps, move |jpeg| {
                sequence += 1;
                // Each frame in memory of its own, as when it arrives from a camera or a
                // socket: reusing one buffer would keep it cache- and TLB-hot and flatter
                // the relay.
                let jpeg = if fresh_copy {
                    Bytes::copy_from_slice(&jpeg)
                } else {
                    jpeg
                };
                tx.send_replace(Some(Arc::new(RelayFrame {
                    sequence,
                    capture_us: unix_us(),
                    published: Instant::now(),
                    jpeg,
                })));
                true
            })
        });
        Ok(Relay {
            port,
            _runtime: runtime,
            _feeder: feeder,
        })
    }
}

async fn accept_loop(listener: TcpListener, frames: watch::Receiver<Slot>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, frames.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn serve(mut stream: TcpStream, mut frames: watch::Receiver<Slot>) {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&chunk[..n]),
            _ => return,
        }
        if let Some(end) = find(&head, b"\r\n\r\n") {
            break end;
        }
        if head.len() > 8192 {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
                )
                .await;
            return;
        }
    };
    let text = String::from_utf8_lossy(&head[..head_end]).into_owned();
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let key = header_value(&text, "sec-websocket-key").map(str::to_string);
    let Some(key) = key.filter(|_| path == "/stream") else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let meta = query.split('&').any(|kv| kv == "meta=1");
    let response = codec::switching_protocols(&codec::accept_key(&key).unwrap_or_default());
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    set_send_buffer(&stream);
    let (mut reader, mut writer) = stream.into_split();
    // Discard whatever the viewer sends; the end of its connection ends the session.
    let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
    let reader_task = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let _ = gone_tx.send(());
    });
    let first = frames.borrow_and_update().clone();
    let mut last_sent = 0;
    if let Some(frame) = first.filter(|f| f.published.elapsed() < Duration::from_secs(1)) {
        if send(&mut writer, &frame, meta).await.is_err() {
            reader_task.abort();
            return;
        }
        last_sent = frame.sequence;
    }
    loop {
        tokio::select! {
            _ = &mut gone => break,
            changed = frames.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        let frame = frames.borrow_and_update().clone();
        let Some(frame) = frame.filter(|f| f.sequence > last_sent) else {
            continue;
        };
        if send(&mut writer, &frame, meta).await.is_err() {
            break;
        }
        last_sent = frame.sequence;
    }
    reader_task.abort();
}

fn set_send_buffer(stream: &TcpStream) {
    let size = SEND_BUFFER;
    // SAFETY: setsockopt reads `size` for its length; the fd is owned by `stream`.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

async fn send(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    frame: &RelayFrame,
    meta: bool,
) -> std::io::Result<()> {
    let meta_bytes = protocol::meta_header(frame.sequence, frame.capture_us);
    let meta_len = if meta { meta_bytes.len() } else { 0 };
    let (header, header_len) =
        codec::frame_header(codec::OPCODE_BINARY, meta_len + frame.jpeg.len());
    let mut slices = [
        IoSlice::new(&header[..header_len]),
        IoSlice::new(&meta_bytes[..meta_len]),
        IoSlice::new(&frame.jpeg),
    ];
    let mut remaining = &mut slices[..];
    while !remaining.is_empty() {
        let n = writer.write_vectored(remaining).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut remaining, n);
    }
    Ok(())
}
