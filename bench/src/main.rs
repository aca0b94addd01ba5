//! `wsjpeg-bench`: serve, load and measure wsjpeg, or any server that speaks its protocol (README,
//! "HTTP and WebSocket interface").

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};

use wsjpeg_bench::hls_edge;
use wsjpeg_bench::load::{self, LoadConfig};
use wsjpeg_bench::procfs;
use wsjpeg_bench::relay::Relay;
use wsjpeg_bench::report::{KeyFigures, Report, Thresholds, medians_table};
use wsjpeg_bench::serve::{self, ElementOptions, ElementServer, FrameSpec};
use wsjpeg_bench::util::Target;

/// Load tool and benchmarks for wsjpeg.
///
/// Everything runs on this machine over loopback and stops by itself. Typical uses:
///
///   wsjpeg-bench run --viewers 300                      # in-process wsjpegsink, 3 runs, medians
///   wsjpeg-bench run --viewers 300 --server both        # the same next to the minimal relay
///   wsjpeg-bench serve --port 3003                      # a server to point other tools at
///   wsjpeg-bench load --url ws://127.0.0.1:3003/stream --viewers 100 --server-pid PID
///   wsjpeg-bench idle --pid PID                         # CPU and memory of an idle server
///   wsjpeg-bench hls-edge --players 1,100,1000          # LL-HLS players through nginx
#[derive(Parser, Debug)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a server fed with real JPEG frames at a fixed rate until stopped.
    ///
    /// Prints `PORT=<port>` and `PID=<pid>` on stdout once it listens.
    Serve(ServeArgs),
    /// Open viewers against a running server and measure what they receive.
    Load(LoadCmd),
    /// Start a server in a child process, load it, report; optionally several times.
    Run(RunArgs),
    /// Measure the CPU and memory of an idle server (no viewer).
    Idle(IdleArgs),
    /// Low-Latency HLS players through nginx running the committed edge configuration in front
    /// of the origin (a server fed pre-encoded H.264 in a child process); what the origin, the
    /// edge and the players did, one run per number of players.
    HlsEdge(HlsEdgeArgs),
    /// RTSP clients next to WebSocket H.264 viewers of one `wsjpeg-launcher` (test pattern,
    /// its H.264 encoder): the launcher's CPU with 1, 10, 50 of each, alternating, and the
    /// capture → received latency of one of each side by side.
    Rtsp(RtspArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerKind {
    /// wsjpegsink in a GStreamer pipeline (`appsrc ! wsjpegsink`).
    Wsjpeg,
    /// The minimal relay (reference B): the floor this machine allows.
    Relay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Codec {
    Jpeg,
    H264,
    /// H.264 as fragmented MP4 (`codec=h264&container=fmp4`).
    Fmp4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunServer {
    Wsjpeg,
    Relay,
    /// Both, alternating, with the ratio wsjpeg / relay.
    Both,
}

#[derive(Args, Debug, Clone)]
struct SourceArgs {
    /// Frames per second fed to the server.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Frame width.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Frame height.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// jpegenc quality (85 gives ≈ 250 KB frames at 720p with the circular pattern).
    #[arg(long, default_value_t = 85)]
    quality: u32,
    /// videotestsrc pattern of the frames.
    #[arg(long, default_value = "circular")]
    pattern: String,
    /// Number of distinct frames encoded and cycled through.
    #[arg(long, default_value_t = 1)]
    distinct: u32,
    /// Pad every frame to exactly this many bytes (JPEG comment segments), e.g. 65536 for the
    /// size of a typical webcam frame; the encoded picture must be smaller.
    #[arg(long)]
    frame_size: Option<usize>,
    /// wsjpeg only: also serve H.264 (x264, ultrafast, zero latency) of the same pictures at
    /// this bitrate in kbit/s, for viewers that ask with `--codec h264`; 0 = none.
    #[arg(long, default_value_t = 0)]
    h264_bitrate: u32,
    /// Frames between H.264 keyframes.
    #[arg(long, default_value_t = 30)]
    keyframe_frames: u32,
}

impl SourceArgs {
    fn spec(&self) -> FrameSpec {
        FrameSpec {
            width: self.width,
            height: self.height,
            quality: self.quality,
            pattern: self.pattern.clone(),
            distinct: self.distinct,
            size: self.frame_size,
        }
    }

    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--fps".into(),
            self.fps.to_string(),
            "--width".into(),
            self.width.to_string(),
            "--height".into(),
            self.height.to_string(),
            "--quality".into(),
            self.quality.to_string(),
            "--pattern".into(),
            self.pattern.clone(),
            "--distinct".into(),
            self.distinct.to_string(),
        ];
        if let Some(size) = self.frame_size {
            args.extend(["--frame-size".into(), size.to_string()]);
        }
        if self.h264_bitrate > 0 {
            args.extend([
                "--h264-bitrate".into(),
                self.h264_bitrate.to_string(),
                "--keyframe-frames".into(),
                self.keyframe_frames.to_string(),
            ]);
        }
        args
    }

    /// The H.264 access units to serve: three seconds' worth, a whole number of groups of
    /// pictures so that cycling through them stays decodable.
    fn h264_units(&self) -> Result<Vec<Bytes>> {
        if self.h264_bitrate == 0 {
            return Ok(Vec::new());
        }
        let gop = self.keyframe_frames.max(1);
        let count = (3.0 * self.fps / f64::from(gop)).ceil().max(1.0) as u32 * gop;
        serve::encode_h264(&self.spec(), self.fps, self.h264_bitrate, gop, count)
    }
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Which server to run.
    #[arg(long, value_enum, default_value = "wsjpeg")]
    server: ServerKind,
    /// Listen address (keep it on loopback for benchmarks).
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// Listen port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// wsjpegsink max-clients (its default of 64 is too low for load tests).
    #[arg(long, default_value_t = 4096)]
    max_clients: u32,
    /// wsjpegsink keepalive in seconds.
    #[arg(long, default_value_t = 30)]
    keepalive: u32,
    /// Extra wsjpegsink properties, e.g. "auth-token=x".
    #[arg(long, default_value = "")]
    sink_props: String,
    /// Listen but feed no frames (pipeline in READY, like a parked camera).
    #[arg(long)]
    idle: bool,
    /// wsjpeg only: push detections (three objects) for a frame this many times a second, as
    /// a detector beside the camera would (0 = none).
    #[arg(long, default_value_t = 0.0)]
    detections_fps: f64,
    /// Relay only: send the same buffer every time instead of copying each frame into fresh
    /// memory (cache- and TLB-hot, so flattering).
    #[arg(long)]
    relay_reuse_frames: bool,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    duration: Option<f64>,
    /// Exit when standard input closes (used by `run` so no server outlives it).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// WebSocket viewers at full speed.
    #[arg(long, default_value_t = 10)]
    viewers: usize,
    /// MJPEG viewers (`/stream.mjpg`) at full speed.
    #[arg(long, default_value_t = 0)]
    mjpeg: usize,
    /// Stalled WebSocket viewers: small receive buffer, reading only a few frames a second.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Seconds over which the viewers are opened.
    #[arg(long, default_value_t = 2.0)]
    ramp: f64,
    /// Seconds between the end of the ramp and the start of the measurement window.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Length of the measurement window in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// SO_RCVBUF of stalled viewers in bytes.
    #[arg(long, default_value_t = 128 * 1024)]
    stalled_rcvbuf: u32,
    /// Frames per second a stalled viewer reads.
    #[arg(long, default_value_t = 5.0)]
    stalled_fps: f64,
    /// Viewers that join the live stream one by one during the window, to time the first
    /// frame of a newcomer.
    #[arg(long, default_value_t = 10)]
    probes: usize,
    /// Path of the MJPEG stream.
    #[arg(long, default_value = "/stream.mjpg")]
    mjpeg_path: String,
    /// Viewers ask for detections (`detections=1`).
    #[arg(long)]
    with_detections: bool,
    /// What the WebSocket viewers ask for: JPEG frames, or H.264 (`codec=h264`, or as
    /// fragmented MP4 with `fmp4`; the server must offer it: `run` does with --h264-bitrate).
    #[arg(long, value_enum, default_value = "jpeg")]
    codec: Codec,
    /// Do not add `meta=1` to the WebSocket URL (latency and skips become n/a).
    #[arg(long)]
    no_meta: bool,
    /// Seconds a viewer may take to connect.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// Fail (exit 1) if any WebSocket or MJPEG viewer gets fewer frames per second.
    #[arg(long)]
    min_fps: Option<f64>,
    /// Fail if the WebSocket viewers' p99 latency exceeds this (ms).
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// Fail if more viewers than this could not connect or were dropped.
    #[arg(long)]
    max_failed: Option<usize>,
    /// Fail if a stalled viewer gets fewer frames per second than this (it must still be
    /// served, with the newest frame when it reads).
    #[arg(long)]
    min_stalled_fps: Option<f64>,
    /// Fail if a frame a stalled viewer receives is older than this (ms): latest frame wins,
    /// so it must never fall seconds behind.
    #[arg(long)]
    max_stalled_age_ms: Option<f64>,
    /// Write the full report as JSON to this file ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
}

impl LoadArgs {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            min_fps: self.min_fps,
            max_p99_ms: self.max_p99_ms,
            max_failed: self.max_failed,
            min_stalled_fps: self.min_stalled_fps,
            max_stalled_age_ms: self.max_stalled_age_ms,
        }
    }

    fn config(&self, target: Target, server_pid: Option<u32>) -> Result<LoadConfig> {
        let secs = |name: &str, v: f64| -> Result<Duration> {
            Duration::try_from_secs_f64(v).map_err(|_| anyhow!("--{name} must be >= 0 seconds"))
        };
        if self.duration <= 0.0 || self.duration > 3600.0 {
            bail!("--duration must be between 0 and 3600 seconds");
        }
        if self.ramp > 600.0 {
            bail!("--ramp must be at most 600 seconds");
        }
        let target = if self.no_meta {
            target
        } else {
            target.with_query_param("meta", "1")
        };
        let target = if self.with_detections {
            target.with_query_param("detections", "1")
        } else {
            target
        };
        let target = match self.codec {
            Codec::Jpeg => target,
            Codec::H264 => target.with_query_param("codec", "h264"),
            Codec::Fmp4 => target
                .with_query_param("codec", "h264")
                .with_query_param("container", "fmp4"),
        };
        Ok(LoadConfig {
            target,
            mjpeg_path: self.mjpeg_path.clone(),
            viewers: self.viewers,
            mjpeg: self.mjpeg,
            stalled: self.stalled,
            ramp: secs("ramp", self.ramp)?,
            settle: secs("settle", self.settle)?,
            duration: secs("duration", self.duration)?,
            server_pid,
            stalled_recv_buffer: self.stalled_rcvbuf,
            stalled_fps: self.stalled_fps,
            probes: self.probes,
            connect_timeout: secs("connect-timeout", self.connect_timeout)?,
        })
    }
}

#[derive(Args, Debug, Clone)]
struct LoadCmd {
    /// WebSocket URL of the stream, e.g. ws://127.0.0.1:3003/stream (loopback only).
    #[arg(long)]
    url: String,
    /// Also take a private (RFC 1918) IPv4 address: a test network of your own, such as a
    /// veth pair into a network namespace. Never aim this tool at a machine you do not own.
    #[arg(long)]
    private_network: bool,
    /// PID of the server process, to sample its CPU time and memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Which server(s) to measure.
    #[arg(long, value_enum, default_value = "wsjpeg")]
    server: RunServer,
    /// How many times to repeat the whole run (fresh server each time); medians are reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seconds between the server's start and the first viewer.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Extra wsjpegsink properties, e.g. "auth-token=x".
    #[arg(long, default_value = "")]
    sink_props: String,
    /// On a shared machine: before each run wait until the machine is busy less than this
    /// (% of one core), and redo a run during which other processes used more than this.
    #[arg(long)]
    quiet_below: Option<f64>,
    /// Longest wait for a quiet machine before running anyway (seconds).
    #[arg(long, default_value_t = 300.0)]
    quiet_wait: f64,
    /// How many times a run disturbed by other processes is redone (with --quiet-below).
    #[arg(long, default_value_t = 3)]
    retries: usize,
    /// wsjpeg only: detections beside the frames (pushed at --detections-fps, viewers asking
    /// for them), none, or both alternating with the ratio on / off.
    #[arg(long, value_enum, default_value = "off")]
    detections: RunDetections,
    /// How often the detector pushes detections when they are on.
    #[arg(long, default_value_t = 5.0)]
    detections_fps: f64,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunDetections {
    Off,
    On,
    /// Both, alternating, with the ratio on / off.
    Both,
}

/// One kind of run: which server, with or without detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Variant {
    server: ServerKind,
    detections: bool,
}

impl Variant {
    fn name(self) -> &'static str {
        match (self.server, self.detections) {
            (ServerKind::Wsjpeg, false) => "wsjpeg",
            (ServerKind::Wsjpeg, true) => "detections",
            (ServerKind::Relay, _) => "relay",
        }
    }
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    /// Measure this running process.
    #[arg(long, conflicts_with_all = ["server", "command"])]
    pid: Option<u32>,
    /// Start this server idle (listening, no frames) in a child process and measure it.
    #[arg(long, value_enum, conflicts_with = "command")]
    server: Option<ServerKind>,
    /// Seconds to wait after starting before measuring.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Write the result as JSON to this file ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
    /// Start this command (e.g. target/release/wsjpeg-launcher --test-pattern --port 3010)
    /// and measure it; it is stopped with SIGTERM afterwards.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
struct HlsEdgeArgs {
    /// Players per run; several (comma-separated) make several runs, each with a fresh origin
    /// and edge.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    players: Vec<usize>,
    /// Seconds from the first player's start to the end of the run.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds over which the players start, one after the other.
    #[arg(long, default_value_t = 2.0)]
    ramp: f64,
    /// Seconds the origin runs before the first player (its CPU then is reported as the
    /// share of feeding the pipeline).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds a request may take before it counts as unanswered (the edge may hold one 5 s).
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Players straight to the origin, no edge (what the edge saves).
    #[arg(long)]
    no_edge: bool,
    /// nginx (default: on PATH, or /usr/sbin/nginx).
    #[arg(long)]
    nginx: Option<std::path::PathBuf>,
    /// The edge configuration to run (its device address, port and cache folder are replaced).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/nginx/wsjpeg-hls-edge.conf"))]
    edge_conf: std::path::PathBuf,
    /// On a shared machine: before each run wait until the machine is busy less than this
    /// (% of one core).
    #[arg(long)]
    quiet_below: Option<f64>,
    /// Longest wait for a quiet machine before running anyway (seconds).
    #[arg(long, default_value_t = 300.0)]
    quiet_wait: f64,
    /// Write the runs as JSON to this file ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args, Debug, Clone)]
struct RtspArgs {
    /// The launcher to measure.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/wsjpeg-launcher"))]
    launcher: std::path::PathBuf,
    /// Clients per phase; each number is measured with WebSocket viewers and with RTSP clients.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    clients: Vec<usize>,
    /// Rounds of every phase (medians are reported); the kinds alternate within a round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// RTSP transports to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tcp")]
    transport: Vec<wsjpeg_bench::rtsp::Transport>,
    /// Seconds from the clients' start to the measurement (camera, encoder, first keyframe).
    #[arg(long, default_value_t = 4.0)]
    settle: f64,
    /// Seconds measured per phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of the latency run (0: none).
    #[arg(long, default_value_t = 20.0)]
    latency_seconds: f64,
    /// `rtspsrc latency` (its jitter buffer, ms) of the latency run's RTSP client.
    #[arg(long, default_value_t = 200)]
    jitter_buffer_ms: u32,
    /// More launcher arguments (the bench passes --test-pattern, --address, --port,
    /// --rtsp-port and --max-clients), e.g. `-- --h264-encoder x264enc`.
    #[arg(last = true)]
    launcher_args: Vec<String>,
    /// Write the phases and latencies as JSON to this file ("-" for stdout).
    #[arg(long)]
    json: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Serve(args) => serve_cmd(args).map(|_| true),
        Cmd::Load(args) => load_cmd(args),
        Cmd::Run(args) => run_cmd(args),
        Cmd::Idle(args) => idle_cmd(args).map(|_| true),
        Cmd::HlsEdge(args) => hls_edge_cmd(args),
        Cmd::Rtsp(args) => rtsp_cmd(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("wsjpeg-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(procfs::cores().max(2))
        .thread_name("load")
        .enable_all()
        .build()
        .context("building the load runtime")
}

fn write_json(path: &str, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    if path == "-" {
        println!("{text}");
    } else {
        std::fs::write(path, text + "\n").with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

fn serve_cmd(args: ServeArgs) -> Result<()> {
    wsjpeg_bench::util::raise_fd_limit();
    let spec = args.source.spec();
    // An idle server gets no frame: do not load the encoder's plugins into it.
    let frames = if args.idle {
        Vec::new()
    } else {
        serve::encode_frames(&spec)?
    };
    let sizes: Vec<usize> = frames.iter().map(|f| f.len()).collect();
    if !args.idle {
        eprintln!(
            "frames: {} distinct, {:?} bytes, {}x{} at {} fps",
            frames.len(),
            sizes,
            spec.width,
            spec.height,
            args.source.fps
        );
    }
    let mut element = None;
    let mut relay = None;
    let port = match args.server {
        ServerKind::Wsjpeg => {
            let server = ElementServer::start(
                &ElementOptions {
                    address: args.address.clone(),
                    port: args.port,
                    fps: args.source.fps,
                    max_clients: args.max_clients,
                    keepalive: args.keepalive,
                    idle: args.idle,
                    sink_props: args.sink_props.clone(),
                    detections_fps: args.detections_fps,
                    h264: args.source.h264_units()?,
                },
                frames,
                &spec,
            )?;
            let port = server.port;
            element = Some(server);
            port
        }
        ServerKind::Relay => {
            let ip: std::net::IpAddr = args
                .address
                .parse()
                .with_context(|| format!("invalid address '{}'", args.address))?;
            let r = Relay::start(
                SocketAddr::new(ip, args.port),
                frames,
                args.source.fps,
                args.idle,
                !args.relay_reuse_frames,
            )?;
            let port = r.port;
            relay = Some(r);
            port
        }
    };
    println!("PORT={port}");
    println!("PID={}", std::process::id());
    println!("URL=ws://{}:{port}/stream", args.address);
    std::io::stdout().flush()?;

    let (stop_tx, stop_rx) = mpsc::channel::<&'static str>();
    if args.exit_on_stdin_eof {
        let tx = stop_tx.clone();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let stdin = std::io::stdin();
            while matches!(stdin.lock().read_line(&mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
            let _ = tx.send("standard input closed");
        });
    }
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    loop {
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            break;
        }
        match stop_rx.recv_timeout(Duration::from_millis(250)) {
            Ok(why) => {
                eprintln!("stopping: {why}");
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if let Some(e) = element.as_ref().and_then(|s| s.error()) {
            bail!("pipeline error: {e}");
        }
    }
    drop(element);
    drop(relay);
    Ok(())
}

fn load_cmd(args: LoadCmd) -> Result<bool> {
    let target = Target::parse_within(&args.url, args.private_network)?;
    let cfg = args.load.config(target, args.server_pid)?;
    let url = format!("ws://{}{}", cfg.target.host, cfg.target.path);
    let rt = runtime()?;
    let raw = rt.block_on(load::run(cfg.clone()))?;
    let report = Report::build(
        "load",
        &url,
        &raw,
        args.server_pid,
        raw.sampled.window_s.max(cfg.duration.as_secs_f64()),
        &args.load.thresholds(),
    );
    print!("{}", report.table());
    if let Some(path) = &args.load.json {
        write_json(path, &serde_json::to_value(&report)?)?;
    }
    Ok(report.passed())
}

/// A server started as a child process of this binary.
struct ChildServer {
    child: Child,
    port: u16,
    pid: u32,
}

impl ChildServer {
    fn start(
        kind: ServerKind,
        source: &SourceArgs,
        sink_props: &str,
        idle: bool,
        detections_fps: f64,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("locating this program")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--server")
            .arg(match kind {
                ServerKind::Wsjpeg => "wsjpeg",
                ServerKind::Relay => "relay",
            })
            .args([
                "--address",
                "127.0.0.1",
                "--port",
                "0",
                "--exit-on-stdin-eof",
            ])
            .args(source.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !sink_props.is_empty() {
            cmd.args(["--sink-props", sink_props]);
        }
        if idle {
            cmd.arg("--idle");
        }
        if detections_fps > 0.0 {
            cmd.args(["--detections-fps", &detections_fps.to_string()]);
        }
        let mut child = cmd.spawn().context("starting the server process")?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("PORT=") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => Ok(ChildServer { child, port, pid }),
            _ => {
                let _ = child.kill();
                let status = child.wait().ok();
                bail!("the server process did not report its port (exit status {status:?})")
            }
        }
    }

    fn stop(mut self) {
        // Closing its stdin asks it to exit; SIGKILL if it does not within 3 s.
        drop(self.child.stdin.take());
        wsjpeg_bench::util::wait_or_kill(&mut self.child, Duration::from_secs(3));
    }
}

fn run_cmd(mut args: RunArgs) -> Result<bool> {
    if args.load.codec != Codec::Jpeg {
        if args.server != RunServer::Wsjpeg {
            bail!("--codec h264 and fmp4 are for --server wsjpeg (the relay serves JPEG only)");
        }
        if args.source.h264_bitrate == 0 {
            args.source.h264_bitrate = 2000;
        }
    }
    let servers: Vec<ServerKind> = match args.server {
        RunServer::Wsjpeg => vec![ServerKind::Wsjpeg],
        RunServer::Relay => vec![ServerKind::Relay],
        RunServer::Both => vec![ServerKind::Wsjpeg, ServerKind::Relay],
    };
    let detections: &[bool] = match args.detections {
        RunDetections::Off => &[false],
        RunDetections::On => &[true],
        // On first, so that the ratio says what detections cost.
        RunDetections::Both => &[true, false],
    };
    if args.detections != RunDetections::Off && args.server != RunServer::Wsjpeg {
        bail!("--detections is for --server wsjpeg (the relay has no detections)");
    }
    let kinds: Vec<Variant> = servers
        .iter()
        .flat_map(|&server| {
            detections
                .iter()
                .map(move |&detections| Variant { server, detections })
        })
        .collect();
    let repeat = args.repeat.max(1);
    let rt = runtime()?;
    let mut reports: Vec<(Variant, Report)> = Vec::new();
    let mut passed = true;
    let mut discarded: Vec<Report> = Vec::new();
    for round in 0..repeat {
        for &kind in &kinds {
            let name = kind.name();
            let mut attempt = 0;
            let report = loop {
                attempt += 1;
                if let Some(limit) = args.quiet_below {
                    wait_quiet(limit, Duration::from_secs_f64(args.quiet_wait.max(0.0)));
                }
                let detections_fps = if kind.detections {
                    args.detections_fps
                } else {
                    0.0
                };
                let server = ChildServer::start(
                    kind.server,
                    &args.source,
                    &args.sink_props,
                    false,
                    detections_fps,
                )?;
                std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
                let target = Target::parse(&format!("ws://127.0.0.1:{}/stream", server.port))?;
                let mut load = args.load.clone();
                load.with_detections |= kind.detections;
                let cfg = load.config(target, Some(server.pid))?;
                let url = format!("ws://{}{}", cfg.target.host, cfg.target.path);
                let raw = rt.block_on(load::run(cfg.clone()));
                server.stop();
                let raw = raw?;
                let label = format!("{name} run {}/{repeat}", round + 1);
                let report = Report::build(
                    &label,
                    &url,
                    &raw,
                    cfg.server_pid,
                    raw.sampled.window_s.max(cfg.duration.as_secs_f64()),
                    &args.load.thresholds(),
                );
                print!("{}", report.table());
                // Let sockets in TIME_WAIT and the last process's exit settle.
                std::thread::sleep(Duration::from_millis(500));
                let noisy = args
                    .quiet_below
                    .zip(report.others_percent)
                    .is_some_and(|(limit, others)| others > limit);
                if noisy && attempt <= args.retries {
                    println!(
                        "(other processes used {:.0} % of a core during the window: run discarded, retrying)\n",
                        report.others_percent.unwrap_or(0.0)
                    );
                    discarded.push(report);
                    continue;
                }
                println!();
                break report;
            };
            if kind.server == ServerKind::Wsjpeg || kinds.len() == 1 {
                passed &= report.passed();
            }
            reports.push((kind, report));
        }
    }
    let figures = |k: Variant| -> Vec<KeyFigures> {
        reports
            .iter()
            .filter(|(kind, _)| *kind == k)
            .map(|(_, r)| KeyFigures::of(r))
            .collect()
    };
    let columns: Vec<(&str, Vec<KeyFigures>)> =
        kinds.iter().map(|&k| (k.name(), figures(k))).collect();
    if repeat > 1 || kinds.len() > 1 {
        let cols: Vec<(&str, &[KeyFigures])> =
            columns.iter().map(|(n, f)| (*n, f.as_slice())).collect();
        println!(
            "== {} viewers, {} MJPEG, {} stalled; {} s windows",
            args.load.viewers, args.load.mjpeg, args.load.stalled, args.load.duration
        );
        print!("{}", medians_table(&cols));
    }
    if let Some(path) = &args.load.json {
        let medians: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .map(|(name, figs)| {
                let m: serde_json::Map<String, serde_json::Value> = KeyFigures::median_of(figs)
                    .into_iter()
                    .map(|(k, v, _)| (k.to_string(), serde_json::json!(v)))
                    .collect();
                (name.to_string(), serde_json::Value::Object(m))
            })
            .collect();
        let all: Vec<&Report> = reports.iter().map(|(_, r)| r).collect();
        write_json(
            path,
            &serde_json::json!({ "medians": medians, "runs": all, "discarded": discarded }),
        )?;
    }
    if !passed {
        println!("some checks FAILED");
    }
    Ok(passed)
}

/// Waits until the whole machine was busy less than `limit` % (of one core) over a second,
/// or `max_wait` has passed.
fn wait_quiet(limit: f64, max_wait: Duration) {
    let start = Instant::now();
    let mut said = false;
    loop {
        let a = procfs::Snapshot::take(None);
        std::thread::sleep(Duration::from_secs(1));
        let busy = a
            .machine_percent(&procfs::Snapshot::take(None), procfs::cores())
            .map(|m| m.0);
        match busy {
            Some(b) if b >= limit && start.elapsed() < max_wait => {
                if !said {
                    println!(
                        "(machine {b:.0} % busy: waiting for it to calm down below {limit} %)"
                    );
                    said = true;
                }
            }
            _ => return,
        }
    }
}

fn idle_cmd(args: IdleArgs) -> Result<()> {
    let mut child_server = None;
    let mut child_cmd: Option<Child> = None;
    let pid = if let Some(pid) = args.pid {
        pid
    } else if let Some(kind) = args.server {
        let s = ChildServer::start(kind, &SourceArgs::default_for_idle(), "", true, 0.0)?;
        let pid = s.pid;
        child_server = Some(s);
        pid
    } else if let Some((program, rest)) = args.command.split_first() {
        let child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let pid = child.id();
        child_cmd = Some(child);
        pid
    } else {
        bail!("give --pid, --server, or a command after --");
    };
    std::thread::sleep(Duration::from_secs_f64(args.warmup.max(0.0)));
    let result = measure_idle(pid, Duration::from_secs_f64(args.duration.max(0.5)));
    if let Some(s) = child_server {
        s.stop();
    }
    if let Some(mut c) = child_cmd {
        // SAFETY: kill only signals the process we started.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
    let (cpu, rss_mb, rss_max_mb, secs) = result?;
    println!(
        "idle (pid {pid}): CPU {cpu:.4} % of a core over {secs:.1} s, RSS {rss_mb:.1} MB (max {rss_max_mb:.1} MB)"
    );
    if let Some(path) = &args.json {
        write_json(
            path,
            &serde_json::json!({"pid": pid, "cpu_percent": cpu, "rss_mb": rss_mb,
                                "rss_max_mb": rss_max_mb, "seconds": secs}),
        )?;
    }
    Ok(())
}

impl SourceArgs {
    fn default_for_idle() -> SourceArgs {
        SourceArgs {
            fps: 30.0,
            width: 1280,
            height: 720,
            quality: 85,
            pattern: "circular".into(),
            distinct: 1,
            frame_size: None,
            h264_bitrate: 0,
            keyframe_frames: 30,
        }
    }
}

/// CPU % of one core, RSS at the end and its maximum (MB), and the measured seconds.
fn measure_idle(pid: u32, duration: Duration) -> Result<(f64, f64, f64, f64)> {
    let start = Instant::now();
    let cpu = |pid| procfs::cpu_seconds_precise(pid).or_else(|_| procfs::cpu_seconds(pid));
    let c0 = cpu(pid)?;
    let mut rss = Vec::new();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(250));
        rss.push(procfs::rss_bytes(pid)? as f64 / (1024.0 * 1024.0));
    }
    let c1 = cpu(pid)?;
    let secs = start.elapsed().as_secs_f64();
    let last = rss.last().copied().unwrap_or(0.0);
    let max = rss.iter().copied().fold(0.0, f64::max);
    Ok(((c1 - c0) / secs * 100.0, last, max, secs))
}

fn hls_edge_cmd(mut args: HlsEdgeArgs) -> Result<bool> {
    wsjpeg_bench::util::raise_fd_limit();
    if args.source.h264_bitrate == 0 {
        args.source.h264_bitrate = 2000;
    }
    let secs = |name: &str, v: f64| -> Result<Duration> {
        Duration::try_from_secs_f64(v).map_err(|_| anyhow!("--{name} must be >= 0 seconds"))
    };
    let nginx = match (&args.nginx, args.no_edge) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => Some(
            hls_edge::find_nginx()
                .context("nginx is not installed (apt-get install nginx), or give --nginx")?,
        ),
    };
    let committed = std::fs::read_to_string(&args.edge_conf)
        .with_context(|| format!("reading {}", args.edge_conf.display()))?;
    let rt = runtime()?;
    let mut runs = Vec::new();
    for &players in &args.players {
        let options = hls_edge::RunOptions {
            players,
            duration: secs("duration", args.duration)?,
            ramp: secs("ramp", args.ramp)?,
            warmup: secs("warmup", args.warmup)?,
            request_timeout: secs("request-timeout", args.request_timeout)?,
        };
        if let Some(limit) = args.quiet_below {
            wait_quiet(limit, secs("quiet-wait", args.quiet_wait)?);
        }
        let origin = ChildServer::start(ServerKind::Wsjpeg, &args.source, "", false, 0.0)?;
        let edge = match &nginx {
            Some(binary) => {
                // The players, nginx's connections to the origin, and room.
                let connections = (players as u32).saturating_mul(2).max(512) + 256;
                match hls_edge::Edge::start(binary, &committed, origin.port, connections) {
                    Ok(edge) => Some(edge),
                    Err(e) => {
                        origin.stop();
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let run = hls_edge::run(&rt, origin.port, origin.pid, edge.as_ref(), &options);
        let log = edge
            .as_ref()
            .map(hls_edge::Edge::error_log)
            .unwrap_or_default();
        drop(edge);
        origin.stop();
        let run = run?;
        print!("{}", hls_edge::describe(&run));
        if !log.trim().is_empty() {
            println!("nginx logged:\n{}", log.trim_end());
        }
        println!();
        runs.push(run);
        // Let sockets in TIME_WAIT and the last processes' exit settle.
        std::thread::sleep(Duration::from_millis(500));
    }
    print!("{}", hls_edge::table(&runs));
    if let Some(path) = &args.json {
        write_json(path, &serde_json::to_value(&runs)?)?;
    }
    Ok(runs.iter().all(|r| r.failed() == 0))
}

fn rtsp_cmd(args: RtspArgs) -> Result<bool> {
    use wsjpeg_bench::rtsp;
    wsjpeg_bench::util::raise_fd_limit();
    gst::init().context("initialising GStreamer")?;
    let secs = |name: &str, v: f64| -> Result<Duration> {
        Duration::try_from_secs_f64(v).map_err(|_| anyhow!("--{name} must be >= 0 seconds"))
    };
    let window = rtsp::Window {
        settle: secs("settle", args.settle)?,
        duration: secs("duration", args.duration)?,
    };
    let rt = runtime()?;
    let launcher = rtsp::Launcher::start(&args.launcher, &args.launcher_args)?;
    println!(
        "launcher {} (PID {}), {} rounds, {:.0} s per phase",
        args.launcher.display(),
        launcher.pid(),
        args.rounds,
        args.duration
    );
    let mut phases = Vec::new();
    for round in 1..=args.rounds {
        for &clients in &args.clients {
            // Alternate which kind goes first, so neither always follows the other.
            let mut kinds: Vec<Option<rtsp::Transport>> = std::iter::once(None)
                .chain(args.transport.iter().copied().map(Some))
                .collect();
            if round % 2 == 0 {
                kinds.reverse();
            }
            for kind in kinds {
                let phase = match kind {
                    None => rtsp::websocket_phase(&rt, &launcher, clients, round, window)?,
                    Some(t) => rtsp::rtsp_phase(&launcher, clients, t, round, window)?,
                };
                println!(
                    "round {round}: {clients:>3} {:<9} launcher {:5.1} % · clients {:5.1} % · \
                     fps min {:4.1} median {:4.1} · failed {}",
                    phase.kind,
                    phase.launcher_cpu_percent,
                    phase.clients_cpu_percent,
                    phase.min_fps,
                    phase.median_fps,
                    phase.failed
                );
                phases.push(phase);
            }
        }
    }
    print!("\n{}", rtsp::table(&phases));
    let mut latencies = Vec::new();
    if args.latency_seconds > 0.0 {
        for &transport in &args.transport {
            let window = rtsp::Window {
                settle: window.settle,
                duration: secs("latency-seconds", args.latency_seconds)?,
            };
            let l = rtsp::latency(&rt, &launcher, transport, args.jitter_buffer_ms, window)?;
            let show = |d: &Option<wsjpeg_bench::report::Distribution>| match d {
                Some(d) => format!(
                    "p50 {:.1} ms · p90 {:.1} · p99 {:.1} · max {:.1} ({} pictures)",
                    d.p50, d.p90, d.p99, d.max, d.samples
                ),
                None => "no pictures".into(),
            };
            println!(
                "capture → received, RTSP over {}: {}",
                transport.as_str(),
                show(&l.rtsp)
            );
            println!(
                "capture → received, WebSocket H.264 beside it: {}",
                show(&l.websocket)
            );
            latencies.push(l);
        }
    }
    if let Some(path) = &args.json {
        write_json(
            path,
            &serde_json::json!({ "phases": phases, "latency": latencies }),
        )?;
    }
    Ok(phases.iter().all(|p| p.failed == 0))
}
