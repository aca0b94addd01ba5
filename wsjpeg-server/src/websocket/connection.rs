// SPDX-License-Identifier: MIT
//! One WebSocket viewer's connection: the upgraded socket split into a [`ClientReader`] that
//! turns client frames into inputs and a [`FrameWriter`], both handed to the viewer's session.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::codec::{CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, MessageReader};
use super::reader::ClientReader;
use super::viewer::{Ending, Viewer, ViewerOptions};
use super::writer::FrameWriter;
use crate::connections::Busy;
use crate::events::log;
use crate::hub::Hub;
use crate::socket::ClientSocket;
use crate::viewers::ClientGuard;

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
    let mut reader = ClientReader::new(reader, messages);
    let address = guard.stats.address;
    let mut viewer = Viewer::new(hub.clone(), guard, options);
    match viewer.run(&mut writer, &mut reader).await {
        Ok(Ending::Close(code, reason)) => {
            writer.send_close(code, reason).await;
            if code != CLOSE_GOING_AWAY {
                // Closing with unread data sends a TCP reset, which can destroy the close
                // frame before the client reads it.
                reader.discard().await;
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
