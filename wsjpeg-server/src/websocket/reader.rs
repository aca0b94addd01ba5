// SPDX-License-Identifier: MIT
//! The reading side of a viewer's connection.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::codec::{ClientInput, MessageReader};

/// After refusing a client's message, how long its remaining bytes are read and discarded.
/// Closing a socket with unread data sends a TCP reset, which can destroy our close frame
/// before the client reads it.
const DISCARD_AFTER_VIOLATION: Duration = Duration::from_secs(2);

/// The reading side of a viewer connection: the client's frames, checked and reassembled
/// into inputs. Read by the viewer's own task while it waits for the next frame, so that a
/// viewer costs one task and nothing per frame for its input.
pub(super) struct ClientReader<R> {
    reader: R,
    messages: MessageReader,
    ended: bool,
}

impl<R: AsyncRead + Unpin> ClientReader<R> {
    pub(super) fn new(reader: R, messages: MessageReader) -> Self {
        ClientReader {
            reader,
            messages,
            ended: false,
        }
    }

    /// The next input; `None` once the connection has ended (or after the client closed or
    /// broke the protocol, nothing more). Cancel-safe: bytes read are kept until asked for.
    pub(super) async fn next_input(&mut self) -> Option<ClientInput> {
        loop {
            if let Some(input) = self.messages.next_input() {
                return Some(input);
            }
            if self.ended {
                return None;
            }
            // Client messages are a few dozen bytes: grow on demand, not 4 KiB per viewer.
            match self.reader.read_buf(self.messages.buffer(512)).await {
                Ok(0) | Err(_) => self.ended = true,
                Ok(_) => {}
            }
        }
    }

    /// Reads and drops what the client still sends, until it hangs up or
    /// [`DISCARD_AFTER_VIOLATION`] passes.
    pub(super) async fn discard(&mut self) {
        let mut buf = BytesMut::new();
        let _ = tokio::time::timeout(DISCARD_AFTER_VIOLATION, async {
            while !self.ended {
                buf.clear();
                buf.reserve(16 * 1024);
                match self.reader.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => self.ended = true,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}
