// SPDX-License-Identifier: MIT
//! An H.264 viewer's place in the stream: the access units it still has to send, in order
//! from a keyframe, and when it must drop to the next keyframe instead.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWrite;

use super::codec::OPCODE_BINARY;
use super::container::{Container, mp4_mime};
use super::writer::FrameWriter;
use crate::media::{Following, Format, Next, PackagedUnit, TrackInfo, VideoTrack};
use crate::protocol::ServerMessage;
use crate::viewers::ClientGuard;

pub(super) struct H264Follower {
    /// Counts this viewer as one the producer encodes for.
    following: Following,
    /// The last access unit sent; `None` before the first, and after a pause.
    cursor: Option<u64>,
    /// Dropping frames until the next keyframe.
    waiting: bool,
    /// What this viewer was told to configure its decoder with.
    announced: Option<TrackInfo>,
    /// How its units are packaged.
    format: Format,
    /// The fragmented MP4 initialisation segment it was sent last.
    init_sent: Option<Bytes>,
}

impl H264Follower {
    pub(super) fn new(track: &Arc<VideoTrack>, container: Container) -> Self {
        H264Follower {
            format: match container {
                Container::Fmp4 => Format::Fmp4,
                _ => Format::Wsj,
            },
            init_sent: None,
            following: track.follow(),
            cursor: None,
            waiting: false,
            announced: None,
        }
    }

    /// The next access unit, for a viewer that follows H.264; never, for one that does not.
    pub(super) async fn changed(follower: &mut Option<H264Follower>) -> bool {
        match follower {
            Some(follower) => {
                follower.following.changed().await;
                true
            }
            None => std::future::pending().await,
        }
    }

    /// Starts again at a keyframe (after a pause).
    pub(super) fn restart(&mut self) {
        self.cursor = None;
        self.waiting = false;
    }

    /// Sends what is due: every access unit since the last one sent, or, for a viewer that
    /// starts or fell behind, the units from the newest keyframe (asking for one when it is
    /// not here yet, and dropping frames meanwhile).
    pub(super) async fn send_due<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        guard: &ClientGuard,
    ) -> std::io::Result<()> {
        self.following.mark_seen();
        let track = self.following.track().clone();
        match track.next_units(self.cursor) {
            Next::WaitForKeyframe => {
                if !self.waiting {
                    self.waiting = true;
                    track.request_keyframe();
                }
            }
            Next::Units(units) => {
                let Some(first) = units.first() else {
                    return Ok(());
                };
                if let Some(last) = self.cursor {
                    guard.record_skipped(first.sequence.saturating_sub(last + 1));
                }
                self.waiting = false;
                self.announce(&track, writer).await?;
                for unit in units {
                    self.cursor = Some(unit.sequence);
                    if self.format == Format::Fmp4 && !self.send_init(&unit, &track, writer).await?
                    {
                        continue;
                    }
                    let packet = unit.packet(self.format);
                    writer.send(OPCODE_BINARY, packet.parts()).await?;
                    guard.record_sent(packet.len());
                }
            }
        }
        Ok(())
    }

    /// Sends a keyframe's initialisation segment when this viewer has none yet or another
    /// one; says whether the unit's fragment may follow (a player can decode nothing before
    /// an initialisation segment).
    async fn send_init<W: AsyncWrite + Unpin>(
        &mut self,
        unit: &PackagedUnit,
        track: &VideoTrack,
        writer: &mut FrameWriter<W>,
    ) -> std::io::Result<bool> {
        if !unit.keyframe {
            return Ok(self.init_sent.is_some());
        }
        let init = unit.packet(Format::Fmp4Init);
        let Some(segment) = init.parts().first().cloned() else {
            return Ok(self.init_sent.is_some());
        };
        if self.init_sent.as_ref() != Some(&segment) {
            if self.init_sent.is_some() {
                // New parameter sets (another size): the player is told before it gets them.
                self.announced = None;
                self.announce(track, writer).await?;
            }
            writer.send(OPCODE_BINARY, init.parts()).await?;
            self.init_sent = Some(segment);
        }
        Ok(true)
    }

    /// Tells the viewer the codec before the first unit, and again whenever it changes.
    async fn announce<W: AsyncWrite + Unpin>(
        &mut self,
        track: &VideoTrack,
        writer: &mut FrameWriter<W>,
    ) -> std::io::Result<()> {
        let info = track.info();
        if self.announced.as_ref() == Some(&info) {
            return Ok(());
        }
        if let Some(codec) = info.codec.as_deref() {
            let message = ServerMessage::H264 {
                codec,
                width: info.width,
                height: info.height,
                mime: (self.format == Format::Fmp4).then(|| mp4_mime(codec)),
            }
            .to_json();
            writer.send_text(&message).await?;
            self.announced = Some(info);
        }
        Ok(())
    }
}
