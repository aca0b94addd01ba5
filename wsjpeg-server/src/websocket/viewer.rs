// SPDX-License-Identifier: MIT
//! What a viewer session does: hello, frames as they come (the newest, under the viewer's fps
//! cap, not while paused), status and recording changes, clock answers, keepalive.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_UNSUPPORTED, ClientInput, OPCODE_BINARY, OPCODE_PING,
    OPCODE_PONG,
};
use super::container::{Container, mp4_mime};
use super::h264_viewer::H264Follower;
use super::reader::ClientReader;
use super::writer::FrameWriter;
use crate::detections::{DetectionError, DetectionSet, FrameRef};
use crate::events::log;
use crate::hub::{Feed, Frame, Hub};
use crate::protocol::{self, ClientMessage, ServerMessage};
use crate::protocol::{CameraStatus, H264Announce};
use crate::viewers::ClientGuard;

/// Detections this many frames older than the picture a newcomer is shown are not sent to it.
const DETECTIONS_KEPT_FRAMES: u64 = 30;
/// How long a viewer task sleeps when nothing is due.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// What a viewer's binary messages hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// One whole JPEG each (with `?meta=1`, behind the meta header).
    Jpeg,
    /// One H.264 access unit each, in order from a keyframe, packaged as `container` says.
    H264,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }
}

/// Per-connection choices made from the request.
#[derive(Debug, Clone, Copy)]
pub struct ViewerOptions {
    pub codec: Codec,
    pub container: Container,
    pub meta: bool,
    /// Send `detections` messages (`?detections=1`).
    pub detections: bool,
    /// May push detections (presented the detector token).
    pub detector: bool,
    pub keepalive: Duration,
}

impl ViewerOptions {
    /// Why this viewer's request cannot be served as asked, before anything is sent.
    fn refusal(&self) -> Option<&'static str> {
        match (self.container, self.codec) {
            (Container::Unknown, _) => {
                Some("unknown container: connect with container=fmp4, or without container")
            }
            (Container::Fmp4, Codec::Jpeg) => {
                Some("container=fmp4 carries H.264: connect with codec=h264&container=fmp4")
            }
            _ => None,
        }
    }
}

type DetectionsRx = watch::Receiver<Option<Arc<DetectionSet>>>;

/// The next change of the detections, for a viewer that follows them; never, for one that
/// does not.
async fn detections_changed(rx: &mut Option<DetectionsRx>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// How a viewer's session ended.
pub(super) enum Ending {
    /// Say goodbye with this close code and reason.
    Close(u16, &'static str),
    /// The viewer is gone: nobody to say goodbye to.
    Gone,
}

const STOPPING: Ending = Ending::Close(CLOSE_GOING_AWAY, "server stopping");

pub(super) struct Viewer {
    hub: Arc<Hub>,
    guard: ClientGuard,
    options: ViewerOptions,
    /// Sequence number of the last frame this viewer saw (sent or deliberately passed over).
    last_seen: u64,
    last_sent_seq: u64,
    paused: bool,
    min_interval: Option<Duration>,
    next_allowed: Instant,
    /// A frame arrived before the fps cap allowed it; send the newest when it does.
    held_back: bool,
    last_sent: Instant,
    last_heard: Instant,
    last_probe: Instant,
    /// The `notices` of the feed this viewer has been told about.
    notices: u64,
    /// Just resumed from a pause.
    resumed: bool,
    last_status: CameraStatus,
    last_recording: Option<String>,
}

impl Viewer {
    pub(super) fn new(hub: Arc<Hub>, guard: ClientGuard, options: ViewerOptions) -> Self {
        let now = Instant::now();
        Viewer {
            hub,
            guard,
            options,
            last_seen: 0,
            last_sent_seq: 0,
            paused: false,
            min_interval: None,
            next_allowed: now,
            held_back: false,
            last_sent: now,
            last_heard: now,
            last_probe: now,
            notices: 0,
            resumed: false,
            last_status: CameraStatus::default(),
            last_recording: None,
        }
    }

    fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    pub(super) async fn run<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        reader: &mut ClientReader<R>,
    ) -> std::io::Result<Ending> {
        let hub = self.hub();
        // One channel carries frames, news of the camera and the recording, and the stop: per
        // frame a viewer registers one waker, which at hundreds of viewers shows in the profile.
        let mut feed = hub.subscribe();
        let video = hub.video_info();
        let first = feed.borrow_and_update().clone();
        if first.stopping {
            return Ok(STOPPING);
        }
        self.notices = first.notices;
        let status = hub.camera_status();
        let h264_info = hub.h264.has_producer().then(|| hub.h264.info());
        let hello = ServerMessage::Hello {
            server: "wsjpeg",
            version: env!("CARGO_PKG_VERSION"),
            width: video.width,
            height: video.height,
            framerate: video.framerate,
            meta: self.options.meta,
            detections: self.options.detections,
            detector: self.options.detector,
            codec: self.options.codec.name(),
            container: self.options.container.name(),
            h264: h264_info.as_ref().map(|info| H264Announce {
                codec: info.codec.as_deref(),
                width: info.width,
                height: info.height,
                mime: (self.options.container == Container::Fmp4)
                    .then(|| info.codec.as_deref().map(mp4_mime))
                    .flatten(),
            }),
            camera: status.state,
            message: status.message.as_deref(),
        }
        .to_json();
        // The hello says the camera state; `status` messages follow only when it changes.
        writer.send_text(&hello).await?;
        if let Some(refusal) = self.options.refusal() {
            let message = ServerMessage::Error { message: refusal };
            writer.send_text(&message.to_json()).await?;
            return Ok(Ending::Close(CLOSE_UNSUPPORTED, "unknown container"));
        }
        if self.options.codec == Codec::H264 && h264_info.is_none() {
            let message = ServerMessage::Error {
                message: "this server offers no H.264 stream: connect without codec=h264",
            };
            writer.send_text(&message.to_json()).await?;
            return Ok(Ending::Close(CLOSE_UNSUPPORTED, "no H.264 here"));
        }
        self.last_status = status;
        // Only the fields of the message count: byte counters alone do not make viewers busy.
        self.last_recording = hub
            .recording_status()
            .map(|r| protocol::recording_message(Some(&r)));
        if let Some(message) = &self.last_recording {
            writer.send_text(message).await?;
        }
        let mut detections = self.options.detections.then(|| hub.detections.subscribe());
        if let Some(rx) = &mut detections {
            let current = rx.borrow_and_update().clone();
            // Boxes of a frame that is no longer fresh would be drawn over the wrong picture.
            let fresh = first.frame.as_ref().filter(|f| f.is_fresh());
            if let (Some(set), Some(frame)) = (current, fresh)
                && frame.sequence.saturating_sub(set.frame) < DETECTIONS_KEPT_FRAMES
            {
                self.send_text(writer, &set.message).await?;
            }
        }
        // What the client sends while the first picture waits for its link is read meanwhile,
        // as for every later one.
        let mut early = VecDeque::new();
        let detector = self.options.detector;
        let mut h264 = (self.options.codec == Codec::H264)
            .then(|| H264Follower::new(&hub.h264, self.options.container));
        match &mut h264 {
            Some(follower) => {
                let sending = follower.send_due(writer, &self.guard);
                listening_while(sending, reader, &mut early, &hub, detector).await?;
            }
            None => {
                if let Some(frame) = first.frame.filter(|f| f.is_fresh()) {
                    self.last_seen = frame.sequence;
                    let sending = self.send_frame(writer, &frame);
                    listening_while(sending, reader, &mut early, &hub, detector).await?;
                }
            }
        }

        // Built once per session, not once per frame, and only ever moved earlier here; a
        // timer that fires early finds nothing due and is set again below, so keepalive
        // deadlines that slide with every frame cost nothing.
        let timer = tokio::time::sleep_until(self.next_wake());
        tokio::pin!(timer);
        loop {
            while let Some(input) = early.pop_front() {
                self.last_heard = Instant::now();
                if let Some(ending) = self.handle_input(writer, &feed, input).await? {
                    return Ok(ending);
                }
            }
            let wake_at = self.next_wake();
            if wake_at < timer.deadline() {
                timer.as_mut().reset(wake_at);
            }
            tokio::select! {
                biased;
                input = reader.next_input() => {
                    let Some(input) = input else { return Ok(Ending::Gone) };
                    self.last_heard = Instant::now();
                    if let Some(ending) = self.handle_input(writer, &feed, input).await? {
                        return Ok(ending);
                    }
                    // Back from a pause: an H.264 viewer starts again at a keyframe.
                    if let Some(follower) = h264.as_mut().filter(|_| self.resumed) {
                        self.resumed = false;
                        follower.restart();
                        follower.send_due(writer, &self.guard).await?;
                    }
                }
                alive = detections_changed(&mut detections) => {
                    if !alive {
                        return Ok(STOPPING);
                    }
                    self.send_detections(writer, &mut detections).await?;
                }
                alive = H264Follower::changed(&mut h264) => {
                    if !alive {
                        return Ok(STOPPING);
                    }
                    if let Some(follower) = h264.as_mut().filter(|_| !self.paused) {
                        let sending = follower.send_due(writer, &self.guard);
                        listening_while(sending, reader, &mut early, &hub, detector).await?;
                        self.last_sent = Instant::now();
                    }
                }
                changed = feed.changed() => {
                    let now = feed.borrow_and_update().clone();
                    if changed.is_err() || now.stopping {
                        return Ok(STOPPING);
                    }
                    if now.notices != self.notices {
                        self.notices = now.notices;
                        self.tell_news(writer, &hub).await?;
                    }
                    // Detections that came with this frame go out before it.
                    if detections.as_ref().is_some_and(|rx| rx.has_changed().unwrap_or(false)) {
                        self.send_detections(writer, &mut detections).await?;
                    }
                    if let Some(frame) = now.frame.filter(|_| !self.paused && h264.is_none()) {
                        let sending = self.offer(writer, &frame);
                        listening_while(sending, reader, &mut early, &hub, detector).await?;
                    }
                }
                _ = &mut timer => {
                    if let Some(ending) = self.on_timer(writer, &feed).await? {
                        return Ok(ending);
                    }
                    timer.as_mut().reset(self.next_wake());
                }
            }
        }
    }

    /// The newest detections, unless the viewer paused (it gets the newest when it resumes).
    async fn send_detections<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        detections: &mut Option<DetectionsRx>,
    ) -> std::io::Result<()> {
        let Some(rx) = detections else {
            return Ok(());
        };
        let set = rx.borrow_and_update().clone();
        match set {
            Some(set) if !self.paused => self.send_text(writer, &set.message).await,
            _ => Ok(()),
        }
    }

    /// The camera status or the recording changed: say what is new to this viewer.
    async fn tell_news<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        hub: &Hub,
    ) -> std::io::Result<()> {
        let status = hub.camera_status();
        if status != self.last_status {
            self.send_text(writer, &protocol::status_message(&status))
                .await?;
            self.last_status = status;
        }
        let message = hub
            .recording_status()
            .map(|r| protocol::recording_message(Some(&r)));
        // Unset after being set: say "no recording" once, so indicators go away.
        let message = match (message, &self.last_recording) {
            (None, Some(_)) => Some(protocol::recording_message(None)),
            (message, _) => message,
        };
        if let Some(message) = message.filter(|m| Some(m) != self.last_recording.as_ref()) {
            self.send_text(writer, &message).await?;
            self.last_recording = Some(message);
        }
        Ok(())
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now.checked_add(IDLE_WAKE).unwrap_or(now);
        if self.held_back {
            wake = wake.min(self.next_allowed);
        }
        let ka = self.options.keepalive;
        if !ka.is_zero() {
            let due = [
                self.last_sent.checked_add(ka),
                self.last_heard.max(self.last_probe).checked_add(ka),
                ka.checked_mul(3)
                    .and_then(|silence| self.last_heard.checked_add(silence)),
            ];
            wake = due.into_iter().flatten().fold(wake, Instant::min);
        }
        wake
    }

    async fn on_timer<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        feed: &watch::Receiver<Feed>,
    ) -> std::io::Result<Option<Ending>> {
        let now = Instant::now();
        if self.held_back && now >= self.next_allowed {
            self.held_back = false;
            let frame = feed.borrow().frame.clone();
            if let Some(frame) = frame.filter(|f| f.sequence > self.last_sent_seq) {
                self.send_frame(writer, &frame).await?;
            }
        }
        let ka = self.options.keepalive;
        if ka.is_zero() {
            return Ok(None);
        }
        let reached = |since: Instant, after: Option<Duration>| {
            after
                .and_then(|after| since.checked_add(after))
                .is_some_and(|t| now >= t)
        };
        if reached(self.last_heard, ka.checked_mul(3)) {
            log!(
                self.hub.events,
                Debug,
                "Viewer {} stopped answering",
                self.guard.stats.address
            );
            return Ok(Some(Ending::Close(CLOSE_GOING_AWAY, "no answer to pings")));
        }
        if reached(self.last_sent, Some(ka)) {
            self.send_text(writer, &ServerMessage::Ping.to_json())
                .await?;
        }
        if reached(self.last_heard.max(self.last_probe), Some(ka)) {
            // A protocol ping: every WebSocket client answers it, even ones that ignore JSON.
            self.last_probe = now;
            writer.send::<&[u8]>(OPCODE_PING, &[]).await?;
        }
        Ok(None)
    }

    async fn handle_input<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        feed: &watch::Receiver<Feed>,
        input: ClientInput,
    ) -> std::io::Result<Option<Ending>> {
        match input {
            ClientInput::Alive | ClientInput::Message(ClientMessage::Pong) => {}
            ClientInput::Ping(payload) => writer.send(OPCODE_PONG, &[&payload[..]]).await?,
            ClientInput::Close(code) => {
                let reply = if code == CLOSE_GOING_AWAY {
                    code
                } else {
                    CLOSE_NORMAL
                };
                return Ok(Some(Ending::Close(reply, "")));
            }
            ClientInput::Violation(code, reason) => {
                log!(
                    self.hub.events,
                    Debug,
                    "Closing viewer {}: {}",
                    self.guard.stats.address,
                    reason
                );
                return Ok(Some(Ending::Close(code, reason)));
            }
            ClientInput::Unsupported(message) => {
                self.send_text(
                    writer,
                    &ServerMessage::Error { message: &message }.to_json(),
                )
                .await?;
            }
            ClientInput::Message(ClientMessage::Pause) => {
                self.paused = true;
                self.guard
                    .stats
                    .paused
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            ClientInput::Message(ClientMessage::Resume) => {
                self.resumed = self.paused;
                self.paused = false;
                self.guard
                    .stats
                    .paused
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                // An H.264 viewer goes on at the next keyframe (in `run`), never with a JPEG.
                let frame = feed.borrow().frame.clone();
                if let Some(frame) = frame.filter(|f| {
                    self.options.codec == Codec::Jpeg
                        && f.is_fresh()
                        && f.sequence > self.last_sent_seq
                }) {
                    self.last_seen = frame.sequence;
                    self.send_frame(writer, &frame).await?;
                }
            }
            ClientInput::Message(ClientMessage::MaxFps { .. })
                if self.options.codec == Codec::H264 =>
            {
                // Inter frames need every frame since their keyframe: a cap would leave only
                // keyframes. Refused in words, so that a client does not think it applies.
                let message = "max-fps applies to JPEG viewers only: an H.264 viewer gets every \
                               frame (connect without codec=h264 to cap the rate)";
                self.send_text(writer, &ServerMessage::Error { message }.to_json())
                    .await?;
            }
            ClientInput::Message(ClientMessage::MaxFps { fps }) => {
                // The protocol has checked the value; a zero or unusable one means no cap.
                self.min_interval = Duration::try_from_secs_f64(1.0 / fps)
                    .ok()
                    .filter(|interval| fps > 0.0 && !interval.is_zero());
                self.guard
                    .stats
                    .max_fps_bits
                    .store((fps as f32).to_bits(), std::sync::atomic::Ordering::Relaxed);
            }
            ClientInput::Message(ClientMessage::Detections { .. }) => {
                let refused = take_detections(&self.hub, self.options.detector, input);
                if let Some(ClientInput::Unsupported(message)) = refused {
                    self.send_text(
                        writer,
                        &ServerMessage::Error { message: &message }.to_json(),
                    )
                    .await?;
                }
            }
            ClientInput::Message(ClientMessage::Time { client }) => {
                let reply = ServerMessage::Time {
                    client: &client,
                    server: protocol::unix_time_us(),
                }
                .to_json();
                self.send_text(writer, &reply).await?;
            }
        }
        Ok(None)
    }

    /// A new frame is out: send it now, or hold it back under the viewer's fps cap.
    async fn offer<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        frame: &Arc<Frame>,
    ) -> std::io::Result<()> {
        if frame.sequence <= self.last_seen {
            return Ok(());
        }
        if self.last_seen > 0 {
            self.guard
                .record_skipped(frame.sequence - self.last_seen - 1);
        }
        self.last_seen = frame.sequence;
        if self.min_interval.is_some() && Instant::now() < self.next_allowed {
            self.held_back = true;
            return Ok(());
        }
        self.send_frame(writer, frame).await
    }

    async fn send_frame<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        frame: &Frame,
    ) -> std::io::Result<()> {
        let parts: [&[u8]; 2] = if self.options.meta {
            [&frame.meta, &frame.jpeg]
        } else {
            [&[], &frame.jpeg]
        };
        writer.send(OPCODE_BINARY, &parts).await?;
        let now = Instant::now();
        self.last_sent = now;
        self.last_sent_seq = frame.sequence;
        self.held_back = false;
        if let Some(interval) = self.min_interval {
            self.next_allowed = now.checked_add(interval).unwrap_or(now);
        }
        self.guard.record_sent(parts[0].len() + parts[1].len());
        Ok(())
    }

    async fn send_text<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        text: &str,
    ) -> std::io::Result<()> {
        writer.send_text(text).await?;
        self.last_sent = Instant::now();
        Ok(())
    }
}

/// Client input read while a frame is being written is kept for after it, up to this many.
const MAX_EARLY_INPUT: usize = 16;

/// Writes with `sending` while reading what the client sends meanwhile: a client that reads
/// slowly holds up its frames (the socket keeps little unsent), not what it tells the server.
/// Detections go to the hub at once; anything else waits in `early` until the write is done.
async fn listening_while<R: AsyncRead + Unpin>(
    sending: impl Future<Output = std::io::Result<()>>,
    reader: &mut ClientReader<R>,
    early: &mut VecDeque<ClientInput>,
    hub: &Hub,
    detector: bool,
) -> std::io::Result<()> {
    tokio::pin!(sending);
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            done = &mut sending => return done,
            input = reader.next_input(), if reading && early.len() < MAX_EARLY_INPUT => {
                let Some(input) = input else {
                    reading = false;
                    continue;
                };
                reading = !input.ends_the_session();
                if let Some(rest) = take_detections(hub, detector, input) {
                    early.push_back(rest);
                }
            }
        }
    }
}

/// Hands a detections message to the hub. Returns what is left to do: nothing, the refusal to
/// answer (as an error message), or the input itself when it is something else.
fn take_detections(hub: &Hub, detector: bool, input: ClientInput) -> Option<ClientInput> {
    let ClientInput::Message(ClientMessage::Detections {
        frame,
        time,
        objects,
    }) = input
    else {
        return Some(input);
    };
    let at = match (frame, time) {
        (Some(sequence), _) => FrameRef::Sequence(sequence),
        (None, Some(time)) => FrameRef::CaptureTime(time),
        (None, None) => return None,
    };
    let refused = if detector {
        hub.push_detections(at, objects).err()
    } else {
        Some(DetectionError::NotAllowed)
    };
    refused.map(|err| ClientInput::Unsupported(err.to_string()))
}
