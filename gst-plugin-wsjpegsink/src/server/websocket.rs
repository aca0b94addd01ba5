//! WebSocket viewers (RFC 6455), written directly on the upgraded socket.
//!
//! Frames to the viewer are written as one vectored write of a small header plus the shared
//! JPEG bytes, so broadcasting copies nothing per viewer in user space. Frames from the viewer
//! are small JSON control messages, parsed here with strict size limits.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connections::Busy;
use super::socket::ClientSocket;
use crate::CAT;
use crate::hub::{ClientGuard, Frame, Hub};
use crate::protocol::{self, ClientMessage, MAX_CLIENT_MESSAGE, ServerMessage};

pub const OPCODE_CONTINUATION: u8 = 0x0;
pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_BINARY: u8 = 0x2;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// What a close frame without a body means (RFC 6455 §7.1.5); never sent.
pub const CLOSE_NO_STATUS: u16 = 1005;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// After refusing a client's message, how long its remaining bytes are read and discarded.
/// Closing a socket with unread data sends a TCP reset, which can destroy our close frame
/// before the client reads it.
const DISCARD_AFTER_VIOLATION: Duration = Duration::from_secs(2);

/// Encodes the header of an unmasked server frame with FIN set.
pub fn frame_header(opcode: u8, payload_len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if payload_len < 126 {
        h[1] = payload_len as u8;
        (h, 2)
    } else if payload_len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        (h, 10)
    }
}

/// One frame read from a client, already unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParsedFrame {
    /// More bytes are needed.
    Incomplete,
    Frame(ClientFrame, usize),
    /// The client broke the protocol: close with this code.
    Violation(u16, &'static str),
}

/// Parses one client frame from the front of `buf`. Frames announcing more than `max_payload`
/// bytes are refused before their payload is read.
pub fn parse_client_frame(buf: &[u8], max_payload: usize) -> ParsedFrame {
    if buf.len() < 2 {
        return ParsedFrame::Incomplete;
    }
    let fin = buf[0] & 0x80 != 0;
    if buf[0] & 0x70 != 0 {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "reserved bits set");
    }
    let opcode = buf[0] & 0x0F;
    let is_control = opcode & 0x8 != 0;
    if !matches!(
        opcode,
        OPCODE_CONTINUATION
            | OPCODE_TEXT
            | OPCODE_BINARY
            | OPCODE_CLOSE
            | OPCODE_PING
            | OPCODE_PONG
    ) {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "unknown opcode");
    }
    if buf[1] & 0x80 == 0 {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "client frames must be masked");
    }
    let (len, mut pos) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return ParsedFrame::Incomplete;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return ParsedFrame::Incomplete;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (n as u64, 2),
    };
    if is_control && (len > 125 || !fin) {
        return ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, "invalid control frame");
    }
    if len > max_payload as u64 {
        return ParsedFrame::Violation(CLOSE_TOO_BIG, "message too big");
    }
    let len = len as usize;
    if buf.len() < pos + 4 + len {
        return ParsedFrame::Incomplete;
    }
    let mask = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
    pos += 4;
    let payload = buf[pos..pos + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i & 3])
        .collect();
    ParsedFrame::Frame(
        ClientFrame {
            fin,
            opcode,
            payload,
        },
        pos + len,
    )
}

/// What the reading half reports to the viewer's writer.
#[derive(Debug)]
pub enum ClientInput {
    Message(ClientMessage),
    /// A text message the server does not understand; answered with an `error` message.
    Unsupported(String),
    Ping(Vec<u8>),
    /// Any other sign of life (a pong frame).
    Alive,
    Close(u16),
    Violation(u16, &'static str),
}

/// Reassembles fragmented messages and turns frames into inputs.
#[derive(Default)]
pub struct MessageAssembler {
    opcode: Option<u8>,
    data: Vec<u8>,
}

impl MessageAssembler {
    pub fn push(&mut self, frame: ClientFrame) -> Option<ClientInput> {
        match frame.opcode {
            OPCODE_PING => return Some(ClientInput::Ping(frame.payload)),
            OPCODE_PONG => return Some(ClientInput::Alive),
            OPCODE_CLOSE => return Some(close_input(&frame.payload)),
            OPCODE_CONTINUATION => {
                if self.opcode.is_none() {
                    return Some(ClientInput::Violation(
                        CLOSE_PROTOCOL_ERROR,
                        "unexpected continuation",
                    ));
                }
            }
            _ => {
                if self.opcode.is_some() {
                    return Some(ClientInput::Violation(
                        CLOSE_PROTOCOL_ERROR,
                        "expected continuation",
                    ));
                }
                self.opcode = Some(frame.opcode);
            }
        }
        if self.data.len() + frame.payload.len() > MAX_CLIENT_MESSAGE {
            return Some(ClientInput::Violation(CLOSE_TOO_BIG, "message too big"));
        }
        self.data.extend_from_slice(&frame.payload);
        if !frame.fin {
            return None;
        }
        let opcode = self.opcode.take();
        let data = std::mem::take(&mut self.data);
        match opcode {
            Some(OPCODE_TEXT) => match String::from_utf8(data) {
                Ok(text) => Some(match protocol::parse_client_message(&text) {
                    Ok(message) => ClientInput::Message(message),
                    Err(err) => ClientInput::Unsupported(err.to_string()),
                }),
                Err(_) => Some(ClientInput::Violation(
                    CLOSE_INVALID_DATA,
                    "text is not UTF-8",
                )),
            },
            _ => Some(ClientInput::Unsupported(
                "binary messages are not accepted".to_string(),
            )),
        }
    }
}

/// A close frame's body: nothing, or a code a peer may send and a UTF-8 reason.
fn close_input(payload: &[u8]) -> ClientInput {
    match payload {
        [] => ClientInput::Close(CLOSE_NO_STATUS),
        [_] => ClientInput::Violation(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body"),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !close_code_may_be_sent(code) {
                ClientInput::Violation(CLOSE_PROTOCOL_ERROR, "invalid close code")
            } else if std::str::from_utf8(reason).is_err() {
                ClientInput::Violation(CLOSE_INVALID_DATA, "close reason is not UTF-8")
            } else {
                ClientInput::Close(code)
            }
        }
    }
}

/// The codes RFC 6455 §7.4 lets an endpoint put in a close frame: the defined ones that are
/// not reserved for local use (1005, 1006, 1015), the IANA-registered 1012–1014, and the
/// ranges for libraries and applications.
pub fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The reading half of a viewer connection: parses frames from `buf` and then `reader` and
/// reports them, until the connection ends, the client closes or breaks the protocol.
pub async fn read_client<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buf: BytesMut,
    inputs: mpsc::Sender<ClientInput>,
) {
    let mut assembler = MessageAssembler::default();
    loop {
        loop {
            match parse_client_frame(&buf, MAX_CLIENT_MESSAGE) {
                ParsedFrame::Incomplete => break,
                ParsedFrame::Violation(code, reason) => {
                    let _ = inputs.send(ClientInput::Violation(code, reason)).await;
                    discard_input(&mut reader, buf).await;
                    return;
                }
                ParsedFrame::Frame(frame, consumed) => {
                    buf.advance(consumed);
                    if let Some(input) = assembler.push(frame) {
                        let last =
                            matches!(input, ClientInput::Close(_) | ClientInput::Violation(..));
                        if inputs.send(input).await.is_err() || last {
                            return;
                        }
                    }
                }
            }
        }
        // Client messages are a few dozen bytes: grow on demand, not 4 KiB per viewer up front.
        buf.reserve(512);
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn discard_input<R: AsyncRead + Unpin>(reader: &mut R, mut buf: BytesMut) {
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
struct FrameWriter<W> {
    writer: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes one frame whose payload is the concatenation of `parts`, without copying them.
    async fn send(&mut self, opcode: u8, parts: &[&[u8]]) -> std::io::Result<()> {
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

    async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
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
            let read_buf = BytesMut::from(&parts.read_buf[..]);
            run_viewer(reader, writer, read_buf, guard, options, hub).await
        }
        // TLS: reads and writes go through rustls to the same kind of socket underneath.
        Err(upgraded) => {
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let (reader, writer) = tokio::io::split(io);
            run_viewer(reader, writer, BytesMut::new(), guard, options, hub).await
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
    read_buf: BytesMut,
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
    let mut reader_task = AbortOnDrop(tokio::spawn(read_client(reader, read_buf, input_tx)));
    let mut viewer = Viewer::new(guard, options);
    let code = match viewer.run(&mut writer, &mut inputs).await {
        Ok(code) => code,
        Err(err) => {
            gst::debug!(
                CAT,
                "Viewer {} write failed: {}",
                viewer.guard.stats.address,
                err
            );
            None
        }
    };
    if let Some((code, reason)) = code {
        writer.send_close(code, reason).await;
        if code != CLOSE_GOING_AWAY {
            // The reader is discarding what the client still sends; let it see the EOF.
            let _ = tokio::time::timeout(DISCARD_AFTER_VIOLATION, &mut reader_task.0).await;
        }
    }
    drop(hub);
}

/// How long a viewer task sleeps when nothing is due.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// What ends a viewer's session and how to say goodbye.
type CloseReason = Option<(u16, &'static str)>;

struct Viewer {
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
}

impl Viewer {
    fn new(guard: ClientGuard, options: ViewerOptions) -> Self {
        let now = Instant::now();
        Viewer {
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
        }
    }

    fn hub(&self) -> Arc<Hub> {
        self.guard.hub().clone()
    }

    async fn run<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        inputs: &mut mpsc::Receiver<ClientInput>,
    ) -> std::io::Result<CloseReason> {
        let hub = self.hub();
        let mut frames = hub.subscribe_frames();
        let mut camera = hub.subscribe_camera();
        let mut recording = hub.subscribe_recording();
        let video = hub.video_info();
        let status = camera.borrow_and_update().clone();
        let hello = ServerMessage::Hello {
            server: "wsjpeg",
            version: env!("CARGO_PKG_VERSION"),
            width: video.width,
            height: video.height,
            framerate: video.framerate,
            meta: self.options.meta,
            camera: status.state,
            message: status.message.as_deref(),
        }
        .to_json();
        // The hello says the camera state; `status` messages follow only when it changes.
        writer.send_text(&hello).await?;
        // Only the fields of the message count: byte counters alone do not make viewers busy.
        let mut last_recording = recording
            .borrow_and_update()
            .as_ref()
            .map(|r| protocol::recording_message(Some(r)));
        if let Some(message) = &last_recording {
            writer.send_text(message).await?;
        }
        let first = frames.borrow_and_update().clone();
        if let Some(frame) = first.filter(|f| f.is_fresh()) {
            self.last_seen = frame.sequence;
            self.send_frame(writer, &frame).await?;
        }

        // Built once per session, not once per frame: at hundreds of viewers the per-frame
        // registration of a fresh timer and cancellation waiter shows in the profile.
        let stopping = hub.shutdown.cancelled();
        tokio::pin!(stopping);
        let timer = tokio::time::sleep_until(self.next_wake());
        tokio::pin!(timer);
        loop {
            // Only ever moved earlier here; a timer that fires early finds nothing due and is
            // set again below, so keepalive deadlines that slide with every frame cost nothing.
            let wake_at = self.next_wake();
            if wake_at < timer.deadline() {
                timer.as_mut().reset(wake_at);
            }
            tokio::select! {
                biased;
                _ = &mut stopping => return Ok(Some((CLOSE_GOING_AWAY, "server stopping"))),
                input = inputs.recv() => {
                    let Some(input) = input else { return Ok(None) };
                    self.last_heard = Instant::now();
                    if let Some(close) = self.handle_input(writer, &frames, input).await? {
                        return Ok(close);
                    }
                }
                changed = camera.changed() => {
                    if changed.is_err() {
                        return Ok(Some((CLOSE_GOING_AWAY, "server stopping")));
                    }
                    let status = camera.borrow_and_update().clone();
                    self.send_text(writer, &protocol::status_message(&status)).await?;
                }
                changed = recording.changed() => {
                    if changed.is_err() {
                        return Ok(Some((CLOSE_GOING_AWAY, "server stopping")));
                    }
                    let message = recording.borrow_and_update().as_ref().map(|r| protocol::recording_message(Some(r)));
                    // Unset after being set: say "no recording" once, so indicators go away.
                    let message = match (message, &last_recording) {
                        (None, Some(_)) => Some(protocol::recording_message(None)),
                        (message, _) => message,
                    };
                    if let Some(message) = message.filter(|m| Some(m) != last_recording.as_ref()) {
                        self.send_text(writer, &message).await?;
                        last_recording = Some(message);
                    }
                }
                changed = frames.changed(), if !self.paused => {
                    if changed.is_err() {
                        return Ok(Some((CLOSE_GOING_AWAY, "server stopping")));
                    }
                    let frame = frames.borrow_and_update().clone();
                    if let Some(frame) = frame {
                        self.offer(writer, &frame).await?;
                    }
                }
                _ = &mut timer => {
                    if let Some(close) = self.on_timer(writer, &frames).await? {
                        return Ok(close);
                    }
                    timer.as_mut().reset(self.next_wake());
                }
            }
        }
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
        frames: &tokio::sync::watch::Receiver<crate::hub::FrameSlot>,
    ) -> std::io::Result<Option<CloseReason>> {
        let now = Instant::now();
        if self.held_back && now >= self.next_allowed {
            self.held_back = false;
            let frame = frames.borrow().clone();
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
            gst::debug!(CAT, "Viewer {} stopped answering", self.guard.stats.address);
            return Ok(Some(Some((CLOSE_GOING_AWAY, "no answer to pings"))));
        }
        if reached(self.last_sent, Some(ka)) {
            self.send_text(writer, &ServerMessage::Ping.to_json())
                .await?;
        }
        if reached(self.last_heard.max(self.last_probe), Some(ka)) {
            // A protocol ping: every WebSocket client answers it, even ones that ignore JSON.
            self.last_probe = now;
            writer.send(OPCODE_PING, &[]).await?;
        }
        Ok(None)
    }

    async fn handle_input<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut FrameWriter<W>,
        frames: &tokio::sync::watch::Receiver<crate::hub::FrameSlot>,
        input: ClientInput,
    ) -> std::io::Result<Option<CloseReason>> {
        match input {
            ClientInput::Alive | ClientInput::Message(ClientMessage::Pong) => {}
            ClientInput::Ping(payload) => writer.send(OPCODE_PONG, &[&payload]).await?,
            ClientInput::Close(code) => {
                let reply = if code == CLOSE_GOING_AWAY {
                    code
                } else {
                    CLOSE_NORMAL
                };
                return Ok(Some(Some((reply, ""))));
            }
            ClientInput::Violation(code, reason) => {
                gst::debug!(
                    CAT,
                    "Closing viewer {}: {}",
                    self.guard.stats.address,
                    reason
                );
                return Ok(Some(Some((code, reason))));
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
                self.paused = false;
                self.guard
                    .stats
                    .paused
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                let frame = frames.borrow().clone();
                if let Some(frame) =
                    frame.filter(|f| f.is_fresh() && f.sequence > self.last_sent_seq)
                {
                    self.last_seen = frame.sequence;
                    self.send_frame(writer, &frame).await?;
                }
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
        let meta;
        let parts: [&[u8]; 2] = if self.options.meta {
            meta = protocol::meta_header(frame.sequence, frame.capture_time_us);
            [&meta, &frame.jpeg]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut v = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            v.push(0x80 | payload.len() as u8);
        } else {
            v.push(0x80 | 126);
            v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        v
    }

    #[test]
    fn header_sizes() {
        assert_eq!(frame_header(OPCODE_BINARY, 5).1, 2);
        assert_eq!(frame_header(OPCODE_BINARY, 300).1, 4);
        let (h, n) = frame_header(OPCODE_BINARY, 250_000);
        assert_eq!(n, 10);
        assert_eq!(h[0], 0x82);
        assert_eq!(u64::from_be_bytes(h[2..10].try_into().unwrap()), 250_000);
    }

    #[test]
    fn parses_masked_text_and_waits_for_more() {
        let f = masked(OPCODE_TEXT, true, b"{\"type\":\"pause\"}");
        assert_eq!(parse_client_frame(&f[..3], 1000), ParsedFrame::Incomplete);
        match parse_client_frame(&f, 1000) {
            ParsedFrame::Frame(frame, used) => {
                assert_eq!(used, f.len());
                assert_eq!(frame.payload, b"{\"type\":\"pause\"}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_bad_frames() {
        let mut unmasked = masked(OPCODE_TEXT, true, b"hi");
        unmasked[1] &= 0x7F;
        assert!(matches!(
            parse_client_frame(&unmasked, 100),
            ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, _)
        ));
        let big = [0x81u8, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0];
        assert!(matches!(
            parse_client_frame(&big, MAX_CLIENT_MESSAGE),
            ParsedFrame::Violation(CLOSE_TOO_BIG, _)
        ));
        let long_ping = masked(OPCODE_PING, true, &[0u8; 200]);
        assert!(matches!(
            parse_client_frame(&long_ping, 1000),
            ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, _)
        ));
        let reserved = [0xC1u8, 0x80, 0, 0, 0, 0];
        assert!(matches!(
            parse_client_frame(&reserved, 100),
            ParsedFrame::Violation(CLOSE_PROTOCOL_ERROR, _)
        ));
    }

    #[test]
    fn assembles_fragments_and_limits_size() {
        let mut a = MessageAssembler::default();
        let part = |opcode, fin, p: &[u8]| ClientFrame {
            fin,
            opcode,
            payload: p.to_vec(),
        };
        assert!(a.push(part(OPCODE_TEXT, false, b"{\"type\":")).is_none());
        assert!(matches!(
            a.push(part(OPCODE_PING, true, b"")),
            Some(ClientInput::Ping(_))
        ));
        assert!(matches!(
            a.push(part(OPCODE_CONTINUATION, true, b"\"resume\"}")),
            Some(ClientInput::Message(ClientMessage::Resume))
        ));
        let chunk = vec![b' '; 40_000];
        assert!(a.push(part(OPCODE_TEXT, false, &chunk)).is_none());
        assert!(matches!(
            a.push(part(OPCODE_CONTINUATION, true, &chunk)),
            Some(ClientInput::Violation(CLOSE_TOO_BIG, _))
        ));
        let mut b = MessageAssembler::default();
        assert!(matches!(
            b.push(part(OPCODE_TEXT, true, &[0xFF, 0xFE])),
            Some(ClientInput::Violation(CLOSE_INVALID_DATA, _))
        ));
        assert!(matches!(
            b.push(part(OPCODE_TEXT, true, b"not json")),
            Some(ClientInput::Unsupported(_))
        ));
    }
}
