//! RTSP clients next to WebSocket H.264 viewers of one `wsjpeg-launcher` (test pattern, its
//! one H.264 encoder): what each kind of client costs the launcher, and how old a picture is
//! when it arrives.
//!
//! The RTSP clients are GStreamer's `rtspsrc` in this process, each followed by a sink that
//! only counts; what is measured is the launcher's process, from `/proc`. A picture's age
//! needs its capture time: the launcher stamps each access unit with it on the RTSP media's
//! running time, so it travels in the RTP timestamps (90 kHz, from an unknown origin). A
//! WebSocket viewer of the same launcher reads the same units' capture times from their
//! headers; the one offset that lines the two series up gives every RTP timestamp its capture
//! time, and arrival minus capture is the age, as for the WebSocket viewer.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use tokio::io::AsyncReadExt;

use crate::load::{self, LoadConfig};
use crate::procfs::Snapshot;
use crate::report::Distribution;
use crate::util::{Target, XorShift, median, unix_us, wait_or_kill};
use crate::ws;

/// `wsjpeg-launcher` on the test pattern, on loopback, with RTSP; stopped when dropped.
pub struct Launcher {
    child: Child,
    pub port: u16,
    pub rtsp_port: u16,
}

impl Launcher {
    /// `extra` goes after the bench's own arguments (size, rate, encoder...).
    pub fn start(binary: &Path, extra: &[String]) -> Result<Launcher> {
        let port = free_port()?;
        let rtsp_port = free_port()?;
        let child = Command::new(binary)
            .args([
                "--test-pattern",
                "--address",
                "127.0.0.1",
                "--max-clients",
                "500",
            ])
            .args([
                "--port",
                &port.to_string(),
                "--rtsp-port",
                &rtsp_port.to_string(),
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut launcher = Launcher {
            child,
            port,
            rtsp_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_status(port, "/healthz").is_none() {
            if let Ok(Some(status)) = launcher.child.try_wait() {
                bail!("the launcher exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("the launcher did not answer /healthz within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(launcher)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rtsp_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam0", self.rtsp_port)
    }

    pub fn stream_url(&self) -> String {
        format!("ws://127.0.0.1:{}/stream", self.port)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // SIGTERM lets it release the camera and close its sockets like a service stop.
        // SAFETY: kill(2) on our own child's PID has no memory-safety concerns.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        wait_or_kill(&mut self.child, Duration::from_secs(10));
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The status code of a plain GET on loopback, or `None` when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// How RTP travels from the server to an `rtspsrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Interleaved in the RTSP connection.
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// What one RTSP client saw.
#[derive(Default)]
struct ClientCounter {
    /// RTP packets with the marker bit: the last packet of a picture.
    pictures: AtomicU64,
    /// (RTP timestamp, arrival in Unix µs) of each picture's last packet, when recorded.
    arrivals: Option<Mutex<Vec<(u32, u64)>>>,
}

/// `clients` × `rtspsrc ! fakesink` in one pipeline of this process.
pub struct RtspClients {
    pipeline: gst::Pipeline,
    counters: Vec<Arc<ClientCounter>>,
}

impl RtspClients {
    /// Starts the clients; the first records its pictures' RTP timestamps and arrival times
    /// when `record_first`. `latency_ms` is `rtspsrc`'s jitter buffer.
    pub fn start(
        url: &str,
        clients: usize,
        transport: Transport,
        latency_ms: u32,
        record_first: bool,
    ) -> Result<RtspClients> {
        let pipeline = gst::Pipeline::new();
        let mut counters = Vec::with_capacity(clients);
        for i in 0..clients {
            let source = gst::ElementFactory::make("rtspsrc")
                .property("location", url)
                .property("latency", latency_ms)
                .property_from_str("protocols", transport.as_str())
                .build()
                .context("rtspsrc (gstreamer1.0-plugins-good)")?;
            let sink = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                .context("fakesink")?;
            pipeline.add_many([&source, &sink])?;
            let counter = Arc::new(ClientCounter {
                pictures: AtomicU64::new(0),
                arrivals: (record_first && i == 0).then(|| Mutex::new(Vec::new())),
            });
            let sink_pad = sink
                .static_pad("sink")
                .ok_or_else(|| anyhow!("fakesink pad"))?;
            let seen = counter.clone();
            sink_pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    match &info.data {
                        Some(gst::PadProbeData::Buffer(buffer)) => count_packet(&seen, buffer),
                        Some(gst::PadProbeData::BufferList(list)) => {
                            list.iter().for_each(|buffer| count_packet(&seen, buffer))
                        }
                        _ => {}
                    }
                    gst::PadProbeReturn::Ok
                },
            );
            // Only the video stream is offered; link its pad when it appears.
            let sink_weak = sink.downgrade();
            source.connect_pad_added(move |_, pad| {
                if let Some(sink) = sink_weak.upgrade()
                    && let Some(sink_pad) = sink.static_pad("sink")
                    && !sink_pad.is_linked()
                {
                    let _ = pad.link(&sink_pad);
                }
            });
            counters.push(counter);
        }
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the RTSP clients")?;
        Ok(RtspClients { pipeline, counters })
    }

    /// Pictures each client has received so far.
    pub fn pictures(&self) -> Vec<u64> {
        self.counters
            .iter()
            .map(|c| c.pictures.load(Ordering::Relaxed))
            .collect()
    }

    /// The first client's (RTP timestamp, arrival) pairs, when it records.
    pub fn arrivals(&self) -> Vec<(u32, u64)> {
        self.counters
            .first()
            .and_then(|c| c.arrivals.as_ref())
            .map(|a| a.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// An error any client posted, if one did.
    pub fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        bus.pop_filtered(&[gst::MessageType::Error])
            .and_then(|message| match message.view() {
                gst::MessageView::Error(e) => Some(format!("{}: {:?}", e.error(), e.debug())),
                _ => None,
            })
    }
}

impl Drop for RtspClients {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn count_packet(counter: &ClientCounter, buffer: &gst::BufferRef) {
    let Ok(map) = buffer.map_readable() else {
        return;
    };
    let Some((marker, timestamp)) = rtp_marker_and_timestamp(&map) else {
        return;
    };
    if marker {
        counter.pictures.fetch_add(1, Ordering::Relaxed);
        if let Some(arrivals) = &counter.arrivals {
            arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((timestamp, unix_us()));
        }
    }
}

/// The marker bit and timestamp of an RTP packet (RFC 3550 §5.1).
fn rtp_marker_and_timestamp(packet: &[u8]) -> Option<(bool, u32)> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let timestamp = u32::from_be_bytes(packet[4..8].try_into().ok()?);
    Some((packet[1] & 0x80 != 0, timestamp))
}

/// A WebSocket H.264 viewer (`codec=h264&meta=1`) recording each unit's capture time and
/// arrival (Unix µs) until `until`.
pub async fn ws_capture_times(url: &str, until: Instant) -> Result<Vec<(u64, u64)>> {
    let target = Target::parse(url)?
        .with_query_param("codec", "h264")
        .with_query_param("meta", "1");
    let mut rng = XorShift::new(unix_us());
    let (mut stream, first) = ws::connect(&target, None, &mut rng, Duration::from_secs(5))
        .await
        .map_err(|e| anyhow!("WebSocket viewer: {e:?}"))?;
    let mut parser = ws::Parser::default();
    let mut units = Vec::new();
    let mut record = |data: &[u8], parser: &mut ws::Parser| {
        let arrival = unix_us();
        parser.feed(data, |event| {
            if let ws::Event::Binary {
                meta: Some(meta), ..
            } = event
            {
                units.push((meta.capture_time_us, arrival));
            }
        })
    };
    record(&first, &mut parser)?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = tokio::time::timeout_at(until.into(), stream.read(&mut buffer)).await;
        match read {
            Err(_) => break,
            Ok(Ok(0)) => bail!("the server closed the WebSocket viewer"),
            Ok(Ok(n)) => record(&buffer[..n], &mut parser)?,
            Ok(Err(e)) => return Err(e).context("WebSocket viewer"),
        }
    }
    Ok(units)
}

/// Ages (µs) of RTSP pictures: the RTP timestamps are lined up with the WebSocket viewer's
/// capture times of the same units (`ws_units`: capture, arrival), by the offset that matches
/// most of them within 2 ms. Fails when fewer than 90 % of the RTSP pictures in the common span
/// find a partner, which would mean the two did not see the same units.
pub fn rtsp_ages(rtsp: &[(u32, u64)], ws_units: &[(u64, u64)]) -> Result<Vec<u32>> {
    const TOLERANCE_US: i64 = 2_000;
    if rtsp.is_empty() || ws_units.is_empty() {
        bail!(
            "no pictures to line up (RTSP {}, WebSocket {})",
            rtsp.len(),
            ws_units.len()
        );
    }
    // RTP timestamps wrap at 2^32; unwrap them onto a µs scale.
    let mut rtp_us = Vec::with_capacity(rtsp.len());
    let mut extended: i64 = i64::from(rtsp[0].0);
    let mut last = rtsp[0].0;
    for &(ts, _) in rtsp {
        extended += i64::from(ts.wrapping_sub(last) as i32);
        last = ts;
        rtp_us.push(extended * 1_000_000 / 90_000);
    }
    let mut captures: Vec<i64> = ws_units.iter().map(|&(c, _)| c as i64).collect();
    captures.sort_unstable();
    captures.dedup();
    let nearest = |t: i64| -> i64 {
        let i = captures.partition_point(|&c| c < t);
        [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| captures.get(j))
            .map(|&c| (c - t).abs())
            .min()
            .unwrap_or(i64::MAX)
    };
    // Candidates: the first RTSP picture against every WebSocket unit within 10 s of it.
    let first_arrival = rtsp[0].1 as i64;
    let mut best = (0usize, 0i64);
    for &capture in &captures {
        if (capture - first_arrival).abs() > 10_000_000 {
            continue;
        }
        let offset = rtp_us[0] - capture;
        let matched = rtp_us
            .iter()
            .filter(|&&t| nearest(t - offset) <= TOLERANCE_US)
            .count();
        if matched > best.0 {
            best = (matched, offset);
        }
    }
    let (matched, offset) = best;
    let (lo, hi) = (captures[0], captures[captures.len() - 1]);
    let in_span = rtp_us
        .iter()
        .filter(|&&t| (lo..=hi).contains(&(t - offset)))
        .count();
    if in_span == 0 || matched * 10 < in_span * 9 {
        bail!(
            "the RTP timestamps do not line up with the WebSocket capture times \
             ({matched} of {in_span} pictures matched)"
        );
    }
    Ok(rtp_us
        .iter()
        .zip(rtsp)
        .filter(|&(&t, _)| nearest(t - offset) <= TOLERANCE_US)
        .map(|(&t, &(_, arrival))| {
            (arrival as i64 - (t - offset)).clamp(0, i64::from(u32::MAX)) as u32
        })
        .collect())
}

/// One measured window: `clients` of one kind on the launcher.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    /// `websocket` (H.264 viewers) or `rtsp-tcp` / `rtsp-udp`.
    pub kind: String,
    pub clients: usize,
    pub round: usize,
    /// The launcher's CPU over the window, % of one core (camera, JPEG, H.264 and serving).
    pub launcher_cpu_percent: f64,
    /// This process's CPU (the clients), % of one core.
    pub clients_cpu_percent: f64,
    /// Pictures per second of the slowest client and the median client.
    pub min_fps: f64,
    pub median_fps: f64,
    /// Clients that failed or got nothing.
    pub failed: usize,
}

/// Timing of one phase: clients open, `settle` for the camera, encoder and first keyframe,
/// then `duration` measured.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub settle: Duration,
    pub duration: Duration,
}

/// `clients` WebSocket H.264 viewers (`codec=h264&meta=1`) on the launcher.
pub fn websocket_phase(
    rt: &tokio::runtime::Runtime,
    launcher: &Launcher,
    clients: usize,
    round: usize,
    window: Window,
) -> Result<Phase> {
    let target = Target::parse(&launcher.stream_url())?
        .with_query_param("codec", "h264")
        .with_query_param("meta", "1");
    let cfg = LoadConfig {
        target,
        mjpeg_path: "/stream.mjpg".into(),
        viewers: clients,
        mjpeg: 0,
        stalled: 0,
        ramp: Duration::from_millis(500),
        settle: window.settle,
        duration: window.duration,
        server_pid: Some(launcher.pid()),
        stalled_recv_buffer: 0,
        stalled_fps: 0.0,
        probes: 0,
        connect_timeout: Duration::from_secs(10),
    };
    let raw = rt.block_on(load::run(cfg))?;
    let seconds = raw.sampled.window_s.max(f64::EPSILON);
    let fps: Vec<f64> = raw
        .viewers
        .iter()
        .map(|v| v.frames as f64 / seconds)
        .collect();
    Ok(Phase {
        kind: "websocket".into(),
        clients,
        round,
        launcher_cpu_percent: raw.sampled.server_cpu_percent.unwrap_or(f64::NAN),
        clients_cpu_percent: raw.sampled.client_cpu_percent.unwrap_or(f64::NAN),
        min_fps: fps.iter().copied().fold(f64::INFINITY, f64::min),
        median_fps: median(&fps).unwrap_or(0.0),
        failed: raw
            .viewers
            .iter()
            .filter(|v| v.failed || v.frames == 0)
            .count(),
    })
}

/// `clients` RTSP clients (`rtspsrc`) on the launcher's `cam0`.
pub fn rtsp_phase(
    launcher: &Launcher,
    clients: usize,
    transport: Transport,
    round: usize,
    window: Window,
) -> Result<Phase> {
    let rtsp = RtspClients::start(&launcher.rtsp_url(), clients, transport, 200, false)?;
    std::thread::sleep(window.settle);
    let own = Some(std::process::id());
    let (before, before_own) = (Snapshot::take(Some(launcher.pid())), Snapshot::take(own));
    let counted = rtsp.pictures();
    std::thread::sleep(window.duration);
    let (after, after_own) = (Snapshot::take(Some(launcher.pid())), Snapshot::take(own));
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let fps: Vec<f64> = rtsp
        .pictures()
        .iter()
        .zip(&counted)
        .map(|(now, then)| (now - then) as f64 / seconds)
        .collect();
    if let Some(error) = rtsp.error() {
        bail!("an RTSP client failed: {error}");
    }
    Ok(Phase {
        kind: format!("rtsp-{}", transport.as_str()),
        clients,
        round,
        launcher_cpu_percent: before.cpu_percent(&after).unwrap_or(f64::NAN),
        clients_cpu_percent: before_own.cpu_percent(&after_own).unwrap_or(f64::NAN),
        min_fps: fps.iter().copied().fold(f64::INFINITY, f64::min),
        median_fps: median(&fps).unwrap_or(0.0),
        failed: fps.iter().filter(|&&f| f == 0.0).count(),
    })
}

/// Capture → received for one RTSP client and one WebSocket H.264 viewer side by side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub transport: Transport,
    pub rtsp: Option<Distribution>,
    pub websocket: Option<Distribution>,
}

pub fn latency(
    rt: &tokio::runtime::Runtime,
    launcher: &Launcher,
    transport: Transport,
    jitter_buffer_ms: u32,
    window: Window,
) -> Result<Latency> {
    let rtsp = RtspClients::start(&launcher.rtsp_url(), 1, transport, jitter_buffer_ms, true)?;
    std::thread::sleep(window.settle);
    let until = Instant::now() + window.duration;
    let ws_units = rt.block_on(ws_capture_times(&launcher.stream_url(), until))?;
    if let Some(error) = rtsp.error() {
        bail!("the RTSP client failed: {error}");
    }
    // Both from the first WebSocket unit on: the viewer starts at a keyframe.
    let since = ws_units.first().map_or(0, |&(_, arrival)| arrival);
    let arrivals: Vec<(u32, u64)> = rtsp
        .arrivals()
        .into_iter()
        .filter(|&(_, arrival)| arrival >= since)
        .collect();
    let ages = rtsp_ages(&arrivals, &ws_units)?;
    let ws_ages = ws_units
        .iter()
        .map(|&(capture, arrival)| arrival.saturating_sub(capture).min(u64::from(u32::MAX)) as u32)
        .collect();
    Ok(Latency {
        transport,
        rtsp: Distribution::from_us(ages),
        websocket: Distribution::from_us(ws_ages),
    })
}

/// The medians over rounds, one row per number of clients: launcher CPU with WebSocket
/// viewers, with RTSP clients, their ratio, and the slowest client's rate.
pub fn table(phases: &[Phase]) -> String {
    let mut counts: Vec<usize> = phases.iter().map(|p| p.clients).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut kinds: Vec<&str> = phases.iter().map(|p| p.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut out = String::from("clients");
    for kind in &kinds {
        out += &format!(" | {kind}: launcher CPU % (median) | slowest fps");
    }
    out += "\n";
    for n in counts {
        out += &format!("{n:>7}");
        for kind in &kinds {
            let of = |f: fn(&Phase) -> f64| -> Vec<f64> {
                phases
                    .iter()
                    .filter(|p| p.clients == n && p.kind == *kind)
                    .map(f)
                    .collect()
            };
            let cpu = median(&of(|p| p.launcher_cpu_percent)).unwrap_or(f64::NAN);
            let slowest = of(|p| p.min_fps).into_iter().fold(f64::INFINITY, f64::min);
            out += &format!(" | {cpu:>8.1} | {slowest:>5.1}");
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_header_fields() {
        let mut packet = [0u8; 12];
        packet[0] = 0x80;
        packet[1] = 0x80 | 96;
        packet[4..8].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!(rtp_marker_and_timestamp(&packet), Some((true, 0xDEAD_BEEF)));
        packet[1] = 96;
        assert_eq!(
            rtp_marker_and_timestamp(&packet),
            Some((false, 0xDEAD_BEEF))
        );
        assert_eq!(rtp_marker_and_timestamp(&packet[..11]), None);
        packet[0] = 0x40;
        assert_eq!(rtp_marker_and_timestamp(&packet), None);
    }

    #[test]
    fn ages_line_up_across_a_timestamp_wrap() {
        // 30 fps captured from t0; RTP from just below the wrap; each picture arrives 40 ms
        // after capture, the WebSocket unit 5 ms after.
        let t0: u64 = 1_800_000_000_000_000;
        let frame_us = 33_333u64;
        let base = u32::MAX - 3 * 3000;
        let rtsp: Vec<(u32, u64)> = (0..60u64)
            .map(|i| {
                let ts = base.wrapping_add((i * 3000) as u32);
                (ts, t0 + i * frame_us + 40_000)
            })
            .collect();
        let ws: Vec<(u64, u64)> = (0..60u64)
            .map(|i| (t0 + i * frame_us, t0 + i * frame_us + 5_000))
            .collect();
        let ages = rtsp_ages(&rtsp, &ws).unwrap();
        assert_eq!(ages.len(), 60);
        assert!(
            ages.iter().all(|&a| (39_000..=41_000).contains(&a)),
            "{ages:?}"
        );
    }

    #[test]
    fn unrelated_series_do_not_line_up() {
        let rtsp: Vec<(u32, u64)> = (0..30u64)
            .map(|i| ((i * 4000) as u32, i * 50_000))
            .collect();
        let ws: Vec<(u64, u64)> = (0..30u64).map(|i| (i * 33_333, i * 33_333)).collect();
        assert!(rtsp_ages(&rtsp, &ws).is_err());
    }
}
