// SPDX-License-Identifier: MIT
//! One WebSocket viewer's connection: the upgraded socket split into a reading task that turns
//! client frames into inputs, and a writer that sends each frame as one vectored write of a
//! small header plus the shared JPEG bytes (no per-viewer copy in user space).

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::codec::{
    CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, ClientInput, MessageReader, OPCODE_CLOSE, OPCODE_TEXT,
    frame_header,
};
use super::viewer::{Ending, Viewer};
use crate::connections::Busy;
use crate::events::log;
use crate::hub::{ClientGuard, Hub};
use crate::socket::ClientSocket;

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// After refusing a client's message, how long its remaining bytes are read and discarded.
/// Closing a socket with unread data sends a TCP reset, which can destroy our close frame
/// before the client reads it.
const DISCARD_AFTER_VIOLATION: Duration = Duration::from_secs(2);

/// The reading half of a viewer connection: parses frames from `buf` and then `reader` and
/// reports them, until the connection ends, the client closes or breaks the protocol.
async fn read_client<R: AsyncRead + Unpin>(
    mut reader: R,
    mut messages: MessageReader,
    inputs: mpsc::Sender<ClientInput>,
) {
    loop {
        while let Some(input) = messages.next_input() {
            let last = input.ends_the_session();
            let violation = matches!(input, ClientInput::Violation(..));
            if inputs.send(input).await.is_err() {
                return;
            }
            if violation {
                discard_input(&mut reader).await;
            }
            if last {
                return;
            }
        }
        // Client messages are a few dozen bytes: grow on demand, not 4 KiB per viewer up front.
        match reader.read_buf(messages.buffer(512)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn discard_input<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut buf = BytesMut::new();
    let _ = tokio::time::timeout(DISCARD_AFTER_VIOLATION, async {
        loop {
            buf.clear();
            buf.reserve(16 * 1024);
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// The sending half of a viewer connection.
pub(super) struct FrameWriter<W> {
    writer: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes one frame whose payload is the concatenation of `parts`, without copying them.
    pub(super) async fn send(&mut self, opcode: u8, parts: &[&[u8]]) -> std::io::Result<()> {
        let len = parts.iter().map(|p| p.len()).sum();
        let (header, header_len) = frame_header(opcode, len);
        let mut slices = [IoSlice::new(&[]); 4];
        slices[0] = IoSlice::new(&header[..header_len]);
        let mut n = 1;
        for part in parts.iter().filter(|p| !p.is_empty()).take(3) {
            slices[n] = IoSlice::new(part);
            n += 1;
        }
        let mut remaining = &mut slices[..n];
        while !remaining.is_empty() {
            let written = self.writer.write_vectored(remaining).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut remaining, written);
        }
        Ok(())
    }

    pub(super) async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send(OPCODE_TEXT, &[text.as_bytes()]).await
    }

    async fn send_close(&mut self, code: u16, reason: &str) {
        let code = code.to_be_bytes();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.send(OPCODE_CLOSE, &[&code, reason.as_bytes()]).await?;
            self.writer.flush().await?;
            self.writer.shutdown().await
        })
        .await;
    }
}

/// Per-connection choices made from the request.
#[derive(Debug, Clone, Copy)]
pub struct ViewerOptions {
    pub meta: bool,
    pub keepalive: Duration,
}

/// Serves one upgraded connection until the viewer leaves or the server stops. `busy` keeps
/// the connection from being closed to make room for others meanwhile.
pub async fn serve_upgraded(
    upgrade: hyper::upgrade::OnUpgrade,
    guard: Option<ClientGuard>,
    options: ViewerOptions,
    hub: Arc<Hub>,
    busy: Busy,
) {
    let upgraded = tokio::select! {
        _ = hub.shutdown.cancelled() => return,
        upgraded = tokio::time::timeout(Duration::from_secs(10), upgrade) => match upgraded {
            Ok(Ok(upgraded)) => upgraded,
            _ => return,
        },
    };
    match upgraded.downcast::<hyper_util::rt::TokioIo<ClientSocket<tokio::net::TcpStream>>>() {
        Ok(parts) => {
            let (reader, writer) = parts.io.into_inner().into_split();
            let messages = MessageReader::new(&parts.read_buf);
            run_viewer(reader, writer, messages, guard, options, hub).await
        }
        // TLS: reads and writes go through rustls to the same kind of socket underneath.
        Err(upgraded) => {
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let (reader, writer) = tokio::io::split(io);
            run_viewer(
                reader,
                writer,
                MessageReader::default(),
                guard,
                options,
                hub,
            )
            .await
        }
    }
    drop(busy);
}

/// Aborts the task when dropped, so that the reader ends with its viewer even if the viewer's
/// task unwinds.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_viewer<R, W>(
    reader: R,
    writer: W,
    messages: MessageReader,
    guard: Option<ClientGuard>,
    options: ViewerOptions,
    hub: Arc<Hub>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let mut writer = FrameWriter { writer };
    let Some(guard) = guard else {
        writer
            .send_close(CLOSE_TRY_AGAIN_LATER, "too many viewers")
            .await;
        return;
    };
    let (input_tx, mut inputs) = mpsc::channel(8);
    let mut reader_task = AbortOnDrop(tokio::spawn(read_client(reader, messages, input_tx)));
    let address = guard.stats.address;
    let mut viewer = Viewer::new(guard, options);
    match viewer.run(&mut writer, &mut inputs).await {
        Ok(Ending::Close(code, reason)) => {
            writer.send_close(code, reason).await;
            if code != CLOSE_GOING_AWAY {
                // The reader is discarding what the client still sends; let it see the EOF.
                let _ = tokio::time::timeout(DISCARD_AFTER_VIOLATION, &mut reader_task.0).await;
            }
        }
        Ok(Ending::Gone) => {}
        Err(err) => log!(
            hub.events,
            Debug,
            "Viewer {} write failed: {}",
            address,
            err
        ),
    }
}
