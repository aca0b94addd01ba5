// SPDX-License-Identifier: MIT
//! The sending half of a viewer connection: each frame goes out as one vectored write of a
//! small header plus the shared JPEG bytes, with no per-viewer copy in user space.

use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::codec::{OPCODE_CLOSE, OPCODE_TEXT, frame_header};

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// The sending half of a viewer connection.
pub(super) struct FrameWriter<W> {
    writer: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(super) fn new(writer: W) -> Self {
        FrameWriter { writer }
    }

    /// Writes one frame whose payload is the concatenation of `parts`, without copying them.
    pub(super) async fn send<P: AsRef<[u8]>>(
        &mut self,
        opcode: u8,
        parts: &[P],
    ) -> std::io::Result<()> {
        let len = parts.iter().map(|p| p.as_ref().len()).sum();
        let (header, header_len) = frame_header(opcode, len);
        let mut slices = [IoSlice::new(&[]); 4];
        slices[0] = IoSlice::new(&header[..header_len]);
        let mut n = 1;
        for part in parts
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| !p.is_empty())
            .take(3)
        {
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

    pub(super) async fn send_close(&mut self, code: u16, reason: &str) {
        let code = code.to_be_bytes();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.send(OPCODE_CLOSE, &[&code[..], reason.as_bytes()])
                .await?;
            self.writer.flush().await?;
            self.writer.shutdown().await
        })
        .await;
    }
}
