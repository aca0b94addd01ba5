//! The load generator: many viewers over a ramp, a measurement window, per-viewer figures.
//!
//! Timeline: viewers are opened evenly over `ramp`; after `settle` the window of `duration`
//! starts; only frames completed inside the window count for fps, latency and skips. The
//! server process (when its pid is known) is sampled at the window's ends for CPU time and
//! every 200 ms for memory. Every viewer stops at the window's end, so a run is bounded.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::procfs::{self, Snapshot};
use crate::util::{Target, XorShift, unix_us};
use crate::{mjpeg, ws};

/// Read buffer per worker thread: large reads mean few syscalls per 250 KB frame.
const SCRATCH_SIZE: usize = 256 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; SCRATCH_SIZE]);
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The WebSocket URL (with `meta=1` when latency is wanted).
    pub target: Target,
    /// Path of the MJPEG stream on the same server.
    pub mjpeg_path: String,
    pub viewers: usize,
    pub mjpeg: usize,
    pub stalled: usize,
    pub ramp: Duration,
    pub settle: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    /// SO_RCVBUF of stalled viewers (the kernel doubles it).
    pub stalled_recv_buffer: u32,
    /// Frames per second a stalled viewer reads.
    pub stalled_fps: f64,
    /// Viewers that join the live stream one at a time during the window to time their
    /// first frame.
    pub probes: usize,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    WebSocket,
    Mjpeg,
    Stalled,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::WebSocket => "websocket",
            Kind::Mjpeg => "mjpeg",
            Kind::Stalled => "stalled",
        }
    }
}

/// What one viewer saw.
#[derive(Debug, Clone)]
pub struct ViewerResult {
    pub kind: Kind,
    pub connected: bool,
    /// Why it could not connect, or why it ended before the window did.
    pub error: Option<String>,
    /// Refused or never connected (as opposed to dropped later).
    pub failed: bool,
    pub frames: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub latencies_us: Vec<u32>,
    /// From the start of the TCP connect to the end of the first frame.
    pub first_frame_us: Option<u32>,
    /// Frames carried a capture time, so latency is known.
    pub timed: bool,
    /// Frames carried a sequence number, so skips are known.
    pub sequenced: bool,
    /// `detections` messages received in the window.
    pub detections: u64,
}

impl ViewerResult {
    fn new(kind: Kind) -> Self {
        ViewerResult {
            kind,
            connected: false,
            error: None,
            failed: false,
            frames: 0,
            bytes: 0,
            skipped: 0,
            latencies_us: Vec::new(),
            detections: 0,
            first_frame_us: None,
            timed: false,
            sequenced: false,
        }
    }

    fn failed(kind: Kind, error: String) -> Self {
        ViewerResult {
            error: Some(error),
            failed: true,
            ..ViewerResult::new(kind)
        }
    }
}

/// Figures of the server and the machine over the window.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_seconds: Option<f64>,
    pub server_rss_start: Option<u64>,
    pub server_rss_max: Option<u64>,
    pub server_rss_end: Option<u64>,
    pub client_cpu_percent: Option<f64>,
    pub machine_percent: Option<f64>,
    /// Interrupt + softirq share of the machine (loopback TCP work charged to no process).
    pub irq_percent: Option<f64>,
    pub window_s: f64,
}

/// Everything a run produced, before aggregation.
#[derive(Debug, Clone)]
pub struct RawResults {
    pub viewers: Vec<ViewerResult>,
    pub probes_first_frame_us: Vec<u32>,
    pub probe_errors: Vec<String>,
    pub sampled: Sampled,
    pub loadavg_before: Option<f64>,
    /// Whole-machine busy share (% of one core) in the second before the first viewer.
    pub machine_busy_before: Option<f64>,
}

struct Plan {
    cfg: LoadConfig,
    window_start: Instant,
    window_end: Instant,
    window_start_us: u64,
    window_end_us: u64,
}

impl Plan {
    fn in_window(&self, now_us: u64) -> bool {
        now_us >= self.window_start_us && now_us < self.window_end_us
    }
}

/// Runs the load against the server; needs a tokio runtime.
pub async fn run(cfg: LoadConfig) -> Result<RawResults> {
    crate::util::raise_fd_limit();
    let loadavg_before = procfs::loadavg();
    let before = Snapshot::take(None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let machine_busy_before = before
        .machine_percent(&Snapshot::take(None), procfs::cores())
        .map(|m| m.0);
    let t0 = Instant::now();
    let t0_us = unix_us();
    let window_start = t0 + cfg.ramp + cfg.settle;
    let window_end = window_start + cfg.duration;
    let offset_us = |t: Instant| t0_us + t.duration_since(t0).as_micros() as u64;
    let plan = Arc::new(Plan {
        window_start_us: offset_us(window_start),
        window_end_us: offset_us(window_end),
        window_start,
        window_end,
        cfg: cfg.clone(),
    });

    // Stalled viewers first, so they are in place long before the window; then WebSocket and
    // MJPEG viewers interleaved over the rest of the ramp.
    let mut kinds = vec![Kind::Stalled; cfg.stalled];
    let total_active = cfg.viewers + cfg.mjpeg;
    for i in 0..total_active {
        // Spread the MJPEG viewers evenly among the WebSocket ones.
        let mjpeg_before = (i * cfg.mjpeg) / total_active.max(1);
        let mjpeg_after = ((i + 1) * cfg.mjpeg) / total_active.max(1);
        kinds.push(if mjpeg_after > mjpeg_before {
            Kind::Mjpeg
        } else {
            Kind::WebSocket
        });
    }
    let n = kinds.len();
    let mut handles = Vec::with_capacity(n);
    for (i, kind) in kinds.into_iter().enumerate() {
        let start_at = t0 + cfg.ramp.mul_f64(i as f64 / n.max(1) as f64);
        let plan = plan.clone();
        let seed = (i as u64 + 1) ^ t0_us;
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at).await;
            match kind {
                Kind::Mjpeg => mjpeg_viewer(&plan).await,
                _ => ws_viewer(&plan, kind, seed).await,
            }
        }));
    }
    let probes = tokio::spawn(run_probes(plan.clone()));
    let sampler = tokio::spawn(sample(plan.clone()));

    let mut viewers = Vec::with_capacity(n);
    for h in handles {
        match h.await {
            Ok(r) => viewers.push(r),
            Err(e) => viewers.push(ViewerResult::failed(
                Kind::WebSocket,
                format!("viewer task failed: {e}"),
            )),
        }
    }
    let (probes_first_frame_us, probe_errors) = probes
        .await
        .unwrap_or_else(|e| (Vec::new(), vec![format!("probe task failed: {e}")]));
    let sampled = sampler.await.unwrap_or_default();
    Ok(RawResults {
        viewers,
        probes_first_frame_us,
        probe_errors,
        sampled,
        loadavg_before,
        machine_busy_before,
    })
}

async fn sample(plan: Arc<Plan>) -> Sampled {
    let pid = plan.cfg.server_pid;
    tokio::time::sleep_until(plan.window_start).await;
    let own = std::process::id();
    let s0 = Snapshot::take(pid);
    let c0 = Snapshot::take(Some(own));
    let mut rss_max = s0.rss;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(plan.window_end) => break,
            _ = tick.tick() => {
                if let Some(rss) = pid.and_then(|p| procfs::rss_bytes(p).ok()) {
                    rss_max = Some(rss_max.map_or(rss, |m| m.max(rss)));
                }
            }
        }
    }
    let s1 = Snapshot::take(pid);
    let c1 = Snapshot::take(Some(own));
    if let Some(rss) = s1.rss {
        rss_max = Some(rss_max.map_or(rss, |m| m.max(rss)));
    }
    let machine = s0.machine_percent(&s1, procfs::cores());
    Sampled {
        server_cpu_percent: s0.cpu_percent(&s1),
        server_cpu_seconds: s0.cpu_seconds(&s1),
        server_rss_start: s0.rss,
        server_rss_max: rss_max,
        server_rss_end: s1.rss,
        client_cpu_percent: c0.cpu_percent(&c1),
        machine_percent: machine.map(|m| m.0),
        irq_percent: machine.map(|m| m.1),
        window_s: s1.at.duration_since(s0.at).as_secs_f64(),
    }
}

/// Viewers joining the live stream one at a time, spread over the window.
async fn run_probes(plan: Arc<Plan>) -> (Vec<u32>, Vec<String>) {
    let mut times = Vec::new();
    let mut errors = Vec::new();
    let count = plan.cfg.probes;
    let mut rng = XorShift::new(unix_us());
    for i in 0..count {
        let at = plan.window_start
            + plan
                .cfg
                .duration
                .mul_f64((i as f64 + 0.5) / count.max(1) as f64);
        tokio::time::sleep_until(at).await;
        match probe(&plan, &mut rng).await {
            Ok(us) => times.push(us),
            Err(e) => errors.push(e),
        }
    }
    (times, errors)
}

async fn probe(plan: &Plan, rng: &mut XorShift) -> Result<u32, String> {
    let start = Instant::now();
    let (stream, leftover) = ws::connect(&plan.cfg.target, None, rng, plan.cfg.connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut parser = ws::Parser::default();
    let mut got: Option<u32> = None;
    let mut closed: Option<Option<u16>> = None;
    fn feed(
        parser: &mut ws::Parser,
        data: &[u8],
        start: Instant,
        got: &mut Option<u32>,
        closed: &mut Option<Option<u16>>,
    ) -> Result<(), String> {
        parser
            .feed(data, |event| match event {
                ws::Event::Binary { .. } if got.is_none() => {
                    *got = Some(start.elapsed().as_micros() as u32)
                }
                ws::Event::Close(code) => *closed = Some(code),
                _ => {}
            })
            .map_err(|e| e.to_string())
    }
    feed(&mut parser, &leftover, start, &mut got, &mut closed)?;
    let deadline = start + Duration::from_secs(3);
    let mut buf = vec![0u8; 64 * 1024];
    while got.is_none() {
        if let Some(code) = closed {
            return Err(format!("closed by server ({code:?}) before a frame"));
        }
        let ready = tokio::time::timeout_at(deadline, stream.readable()).await;
        match ready {
            Err(_) => return Err("no frame within 3 s".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(())) => {}
        }
        match stream.try_read(&mut buf) {
            Ok(0) => return Err("connection closed before a frame".into()),
            Ok(n) => feed(&mut parser, &buf[..n], start, &mut got, &mut closed)?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    close_politely(stream, rng).await;
    got.ok_or_else(|| "no frame".to_string())
}

async fn close_politely(mut stream: TcpStream, rng: &mut XorShift) {
    let mask = (rng.next_u64() as u32).to_le_bytes();
    let frame = ws::client_frame(ws::OPCODE_CLOSE, &1000u16.to_be_bytes(), mask);
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.write_all(&frame)).await;
}

/// Per-viewer bookkeeping shared by both protocols.
struct Tracker<'a> {
    plan: &'a Plan,
    result: ViewerResult,
    connect_started: Instant,
    last_seq: Option<u64>,
    /// A frame was completed in the current read (stalled viewers then pause).
    completed: bool,
}

impl Tracker<'_> {
    fn text(&mut self, text: &[u8]) {
        // The server writes `type` first.
        if text.starts_with(br#"{"type":"detections""#) && self.plan.in_window(unix_us()) {
            self.result.detections += 1;
        }
    }

    fn frame(&mut self, len: u64, sequence: Option<u64>, capture_us: Option<u64>) {
        self.completed = true;
        if self.result.first_frame_us.is_none() {
            self.result.first_frame_us = Some(self.connect_started.elapsed().as_micros() as u32);
        }
        let now_us = unix_us();
        let in_window = self.plan.in_window(now_us);
        if let Some(cap) = capture_us {
            self.result.timed = true;
            if in_window {
                let lat = now_us.saturating_sub(cap).min(u32::MAX as u64) as u32;
                self.result.latencies_us.push(lat);
            }
        }
        if let Some(seq) = sequence {
            self.result.sequenced = true;
            if in_window
                && let Some(last) = self.last_seq
                && seq > last + 1
            {
                self.result.skipped += seq - last - 1;
            }
            self.last_seq = Some(seq);
        }
        if in_window {
            self.result.frames += 1;
            self.result.bytes += len;
        }
    }
}

enum Protocol {
    Ws {
        parser: ws::Parser,
        /// Pongs and other replies waiting to be written.
        out: Vec<u8>,
        mask: XorShift,
        close: Option<Option<u16>>,
    },
    Mjpeg(mjpeg::Reader),
}

impl Protocol {
    fn feed(&mut self, data: &[u8], t: &mut Tracker<'_>) -> Result<(), String> {
        match self {
            Protocol::Ws {
                parser,
                out,
                mask,
                close,
            } => parser
                .feed(data, |event| match event {
                    ws::Event::Binary { len, meta } => match meta {
                        Some(m) => t.frame(len, Some(m.sequence), Some(m.capture_time_us)),
                        None => t.frame(len, None, None),
                    },
                    ws::Event::Ping(payload) => {
                        let m = (mask.next_u64() as u32).to_le_bytes();
                        out.extend_from_slice(&ws::client_frame(ws::OPCODE_PONG, payload, m));
                    }
                    ws::Event::Close(code) => *close = Some(code),
                    ws::Event::Text(text) => t.text(text),
                    ws::Event::Pong => {}
                })
                .map_err(|e| format!("protocol error: {e:#}")),
            Protocol::Mjpeg(reader) => reader
                .feed(data, |part| t.frame(part.len, None, part.capture_us))
                .map_err(|e| format!("MJPEG error: {e:#}")),
        }
    }
}

enum ReadOutcome {
    More,
    Eof,
    Failed(String),
}

/// Reads everything available (or one small read for a stalled viewer) and parses it.
fn read_available(
    stream: &TcpStream,
    proto: &mut Protocol,
    t: &mut Tracker<'_>,
    one_small_read: bool,
) -> ReadOutcome {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let limit = if one_small_read { 32 * 1024 } else { buf.len() };
        loop {
            match stream.try_read(&mut buf[..limit]) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => {
                    if let Err(e) = proto.feed(&buf[..n], t) {
                        return ReadOutcome::Failed(e);
                    }
                    if one_small_read {
                        return ReadOutcome::More;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return ReadOutcome::More,
                Err(e) => return ReadOutcome::Failed(e.to_string()),
            }
        }
    })
}

async fn ws_viewer(plan: &Plan, kind: Kind, seed: u64) -> ViewerResult {
    let mut rng = XorShift::new(seed);
    let recv_buffer = (kind == Kind::Stalled).then_some(plan.cfg.stalled_recv_buffer);
    let connect_started = Instant::now();
    let (stream, leftover) = match ws::connect(
        &plan.cfg.target,
        recv_buffer,
        &mut rng,
        plan.cfg.connect_timeout,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return ViewerResult::failed(kind, e.to_string()),
    };
    let proto = Protocol::Ws {
        parser: ws::Parser::default(),
        out: Vec::new(),
        mask: rng.clone(),
        close: None,
    };
    drive(
        plan,
        kind,
        stream,
        leftover,
        proto,
        connect_started,
        &mut rng,
    )
    .await
}

async fn mjpeg_viewer(plan: &Plan) -> ViewerResult {
    let kind = Kind::Mjpeg;
    let target = plan.cfg.target.with_path(&plan.cfg.mjpeg_path);
    let connect_started = Instant::now();
    let opened = tokio::time::timeout(plan.cfg.connect_timeout, async {
        let mut stream = ws::tcp_connect(&target, None)
            .await
            .map_err(|e| format!("connect: {e:#}"))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wsjpeg-bench\r\nAccept: */*\r\n\r\n",
            target.path, target.host
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (status, head, rest) = ws::read_response_head(&mut stream)
            .await
            .map_err(|e| format!("response: {e:#}"))?;
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        let chunked = ws::header_value(&head, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        Ok((stream, rest, chunked))
    })
    .await;
    let (stream, leftover, chunked) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ViewerResult::failed(kind, e),
        Err(_) => return ViewerResult::failed(kind, "timeout".into()),
    };
    let proto = Protocol::Mjpeg(mjpeg::Reader::new(chunked));
    let mut rng = XorShift::new(1);
    drive(
        plan,
        kind,
        stream,
        leftover,
        proto,
        connect_started,
        &mut rng,
    )
    .await
}

/// Reads from a connected viewer until the window ends.
async fn drive(
    plan: &Plan,
    kind: Kind,
    mut stream: TcpStream,
    leftover: Vec<u8>,
    mut proto: Protocol,
    connect_started: Instant,
    rng: &mut XorShift,
) -> ViewerResult {
    let mut t = Tracker {
        plan,
        result: ViewerResult::new(kind),
        connect_started,
        last_seq: None,
        completed: false,
    };
    t.result.connected = true;
    let stalled = kind == Kind::Stalled;
    let frame_interval = Duration::from_secs_f64(1.0 / plan.cfg.stalled_fps.max(0.01));
    let mut next_read = Instant::now();
    let end = tokio::time::sleep_until(plan.window_end);
    tokio::pin!(end);
    if let Err(e) = proto.feed(&leftover, &mut t) {
        t.result.error = Some(e);
        return t.result;
    }
    loop {
        if let Protocol::Ws { close, .. } = &proto
            && let Some(code) = *close
        {
            let refused = code == Some(1013) && t.result.first_frame_us.is_none();
            t.result.failed = refused;
            t.result.error = Some(match code {
                Some(c) if refused => format!("refused (close {c})"),
                Some(c) => format!("closed by server ({c})"),
                None => "closed by server".into(),
            });
            return t.result;
        }
        if stalled && t.completed {
            // Reading 5 frames a second: wait before reading on.
            t.completed = false;
            next_read = (next_read + frame_interval).max(Instant::now());
            tokio::select! {
                _ = &mut end => break,
                _ = tokio::time::sleep_until(next_read) => {}
            }
        }
        tokio::select! {
            biased;
            _ = &mut end => break,
            ready = stream.readable() => {
                if let Err(e) = ready {
                    t.result.error = Some(e.to_string());
                    return t.result;
                }
            }
        }
        match read_available(&stream, &mut proto, &mut t, stalled) {
            ReadOutcome::More => {}
            ReadOutcome::Eof => {
                t.result.error = Some("connection closed by server".into());
                return t.result;
            }
            ReadOutcome::Failed(e) => {
                t.result.error = Some(e);
                return t.result;
            }
        }
        if let Protocol::Ws { out, .. } = &mut proto
            && !out.is_empty()
        {
            if let Err(e) = stream.write_all(out).await {
                t.result.error = Some(format!("writing pong: {e}"));
                return t.result;
            }
            out.clear();
        }
    }
    if matches!(proto, Protocol::Ws { .. }) {
        close_politely(stream, rng).await;
    }
    t.result
}
