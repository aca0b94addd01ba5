// SPDX-License-Identifier: MIT
//! One WebSocket viewer's connection: the upgraded socket split into a reading task that turns
//! client frames into inputs and a [`FrameWriter`], handed to the viewer's session.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;

use super::codec::{CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, ClientInput, MessageReader};
use super::viewer::{Ending, Viewer, ViewerOptions};
use super::writer::FrameWriter;
use crate::connections::Busy;
use crate::events::log;
use crate::hub::{ClientGuard, Hub};
use crate::socket::ClientSocket;

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
    let mut writer = FrameWriter::new(writer);
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
