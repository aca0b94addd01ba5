// SPDX-License-Identifier: MIT
//! Soak test: a live stream served for N minutes to a mix of steady viewers and viewers that
//! keep coming and going, then a report of the server's memory, open files and delivered frame
//! rates, and a PASS/FAIL verdict. Run it through `scripts/soak.sh`.
//!
//! The server runs in a child process (this program with `--serve`), so that the memory and
//! file descriptors measured in /proc are the server's alone.
//!
//! ```text
//! soak [--minutes N] [--width W] [--height H] [--fps F] [--steady N] [--churners N]
//! ```

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsjpeg_server::protocol::parse_meta_header;
use wsjpeg_server::websocket::codec;

const SECOND: Duration = Duration::from_secs(1);
/// Verdict thresholds.
const FD_SLACK: u64 = 4;
const RSS_SLACK: u64 = 10 * 1024 * 1024;
const MIN_DELIVERY: f64 = 0.9;

#[derive(Debug, Clone)]
struct Options {
    minutes: f64,
    width: u32,
    height: u32,
    fps: u32,
    steady: usize,
    churners: usize,
}

fn parse_options() -> Result<(bool, Options), String> {
    let mut options = Options {
        minutes: 10.0,
        width: 640,
        height: 480,
        fps: 30,
        steady: 4,
        churners: 4,
    };
    let mut serve = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--serve" => serve = true,
            "--minutes" => options.minutes = parse(&value("--minutes")?)?,
            "--width" => options.width = parse(&value("--width")?)?,
            "--height" => options.height = parse(&value("--height")?)?,
            "--fps" => options.fps = parse(&value("--fps")?)?,
            "--steady" => options.steady = parse(&value("--steady")?)?,
            "--churners" => options.churners = parse(&value("--churners")?)?,
            "-h" | "--help" => {
                println!(
                    "soak [--minutes N (10)] [--width W (640)] [--height H (480)] [--fps F (30)] \
                     [--steady N (4)] [--churners N (4)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((serve, options))
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("invalid number {s}"))
}

fn main() {
    let (serve, options) = parse_options().unwrap_or_else(|e| {
        eprintln!("soak: {e}");
        std::process::exit(2);
    });
    if serve {
        run_server(&options);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let pass = runtime.block_on(soak(options));
    std::process::exit(if pass { 0 } else { 1 });
}

/// The server process: a live test pattern into wsjpegsink on a free port, printed on stdout;
/// runs until stdin closes (the parent exited or is done).
fn run_server(options: &Options) {
    gst::init().expect("GStreamer initialises");
    gstwsjpeg::plugin_register_static().expect("the plugin registers");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width={},height={},framerate={}/1 \
         ! jpegenc quality=80 ! wsjpegsink name=sink port=0 address=127.0.0.1",
        options.width, options.height, options.fps
    ))
    .expect("pipeline parses");
    // Like any application, read the bus: the element posts a message at every viewer change,
    // and an unread bus would keep them all (memory that is the harness's, not the server's).
    let bus = pipeline.bus().expect("a bus");
    std::thread::spawn(move || {
        for message in bus.iter_timed(gst::ClockTime::NONE) {
            if let gst::MessageView::Error(err) = message.view() {
                eprintln!(
                    "soak server: pipeline error: {} ({:?})",
                    err.error(),
                    err.debug()
                );
                std::process::exit(3);
            }
        }
    });
    pipeline
        .set_state(gst::State::Playing)
        .expect("pipeline plays");
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("sink"))
        .expect("the sink");
    println!("PORT {}", sink.property::<u32>("bound-port"));
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    let _ = pipeline.set_state(gst::State::Null);
}

/// What /proc says about a process.
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn fds_of(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

async fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tokio::time::timeout(10 * SECOND, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = raw
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
        .ok_or("no status")?;
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|end| raw[end + 4..].to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

async fn connected_clients(port: u16) -> Option<u64> {
    let (_, body) = http_get(port, "/status").await.ok()?;
    serde_json::from_slice::<serde_json::Value>(&body).ok()?["connected_clients"].as_u64()
}

type WebSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(port: u16, path: &str) -> Result<WebSocket, String> {
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (ws, _) = tokio::time::timeout(5 * SECOND, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "handshake timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn ws_first_frame(ws: &mut WebSocket) -> Result<(), String> {
    loop {
        match tokio::time::timeout(5 * SECOND, ws.next()).await {
            Ok(Some(Ok(Message::Binary(_)))) => return Ok(()),
            Ok(Some(Ok(_))) => continue,
            other => return Err(format!("no frame: {other:?}")),
        }
    }
}

/// A steady WebSocket viewer's figures.
#[derive(Debug, Default)]
struct Steady {
    received: u64,
    published: u64,
    seconds: f64,
    error: Option<String>,
}

async fn steady_websocket(port: u16, stop: Arc<AtomicBool>) -> Steady {
    let mut result = Steady::default();
    let mut ws = match ws_connect(port, "/stream?meta=1").await {
        Ok(ws) => ws,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    let start = Instant::now();
    let mut first = None;
    let mut last = 0;
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(SECOND / 5, ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(Message::Binary(data)))) => {
                let Some(meta) = parse_meta_header(&data) else {
                    continue;
                };
                let sequence = meta.sequence;
                first.get_or_insert(sequence);
                last = sequence;
                result.received += 1;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                if text.contains("\"ping\"") {
                    let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => {
                result.error = Some(format!("viewer ended: {other:?}"));
                break;
            }
        }
    }
    result.seconds = start.elapsed().as_secs_f64();
    result.published = first.map(|f| last - f + 1).unwrap_or(0);
    let _ = ws.close(None).await;
    result
}

/// A steady MJPEG viewer: counts the parts (boundaries) it reads.
async fn steady_mjpeg(port: u16, stop: Arc<AtomicBool>) -> Steady {
    let mut result = Steady::default();
    let mut stream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    let request = format!("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        result.error = Some(e.to_string());
        return result;
    }
    let start = Instant::now();
    let needle = b"Content-Type: image/jpeg";
    let mut buf = vec![0u8; 256 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(SECOND / 5, stream.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(n)) if n > 0 => {
                carry.extend_from_slice(&buf[..n]);
                let mut from = 0;
                while let Some(at) = carry[from..]
                    .windows(needle.len())
                    .position(|w| w == needle)
                {
                    result.received += 1;
                    from += at + needle.len();
                }
                // Keep a tail in case the marker is split between reads.
                let keep = carry.len().saturating_sub(needle.len()).max(from);
                carry.drain(..keep);
            }
            other => {
                result.error = Some(format!("stream ended: {other:?}"));
                break;
            }
        }
    }
    result.seconds = start.elapsed().as_secs_f64();
    result
}

/// One short visit of the kind `i` selects; `Err` for anything unexpected.
async fn visit(port: u16, i: u64) -> Result<(), String> {
    match i % 6 {
        0 => {
            let mut ws = ws_connect(port, "/stream").await?;
            ws_first_frame(&mut ws).await?;
            ws.close(None).await.map_err(|e| e.to_string())?;
            let _ = tokio::time::timeout(5 * SECOND, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
        }
        1 => {
            let mut ws = ws_connect(port, "/stream?meta=1").await?;
            ws_first_frame(&mut ws).await?;
        }
        2 => {
            let mut ws = ws_connect(port, "/stream").await?;
            ws_first_frame(&mut ws).await?;
            if let tokio_tungstenite::MaybeTlsStream::Plain(s) = ws.get_ref() {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
        }
        3 => {
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            stream
                .write_all(
                    format!("GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < 16 * 1024 {
                match tokio::time::timeout(5 * SECOND, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => got += n,
                    other => return Err(format!("MJPEG ended early: {other:?}")),
                }
            }
        }
        4 => {
            let (status, body) = http_get(port, "/snapshot.jpg").await?;
            if status != 200 || !body.starts_with(&[0xFF, 0xD8]) {
                return Err(format!("snapshot answered {status}"));
            }
        }
        _ => {
            let (status, _) = http_get(port, "/status").await?;
            if status != 200 {
                return Err(format!("status answered {status}"));
            }
        }
    }
    Ok(())
}

async fn churner(
    port: u16,
    seed: u64,
    stop: Arc<AtomicBool>,
    visits: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = visit(port, i).await
            && errors.fetch_add(1, Ordering::Relaxed) < 5
        {
            eprintln!("soak: visit {} failed: {e}", i % 6);
        }
        visits.fetch_add(1, Ordering::Relaxed);
        i += 1;
        // A few visits per second per churner: a busy household, not a benchmark.
        tokio::time::sleep(Duration::from_millis(50 + (i * 37) % 150)).await;
    }
}

/// The viewers of one phase: steady ones, a stalled one and the churners.
struct Mix {
    stop: Arc<AtomicBool>,
    visits: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    steady: Vec<tokio::task::JoinHandle<Steady>>,
    mjpeg: tokio::task::JoinHandle<Steady>,
    stalled: Option<TcpStream>,
    churners: Vec<tokio::task::JoinHandle<()>>,
}

impl Mix {
    async fn start(port: u16, options: &Options) -> Mix {
        let stop = Arc::new(AtomicBool::new(false));
        let visits = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let steady = (0..options.steady)
            .map(|_| tokio::spawn(steady_websocket(port, stop.clone())))
            .collect();
        let mjpeg = tokio::spawn(steady_mjpeg(port, stop.clone()));
        let churners = (0..options.churners as u64)
            .map(|c| {
                tokio::spawn(churner(
                    port,
                    c,
                    stop.clone(),
                    visits.clone(),
                    errors.clone(),
                ))
            })
            .collect();
        Mix {
            stop,
            visits,
            errors,
            steady,
            mjpeg,
            stalled: stalled_viewer(port).await,
            churners,
        }
    }

    async fn finish(mut self) -> (Vec<Steady>, Steady) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.churners.drain(..) {
            let _ = c.await;
        }
        let mut steady = Vec::new();
        for s in self.steady.drain(..) {
            steady.push(s.await.unwrap_or_default());
        }
        let mjpeg = (&mut self.mjpeg).await.unwrap_or_default();
        self.stalled.take();
        (steady, mjpeg)
    }
}

/// A viewer that never reads: it must cost a frame, not a queue.
async fn stalled_viewer(port: u16) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    let _ = socket.set_recv_buffer_size(16 * 1024);
    let mut s = socket.connect(([127, 0, 0, 1], port).into()).await.ok()?;
    let key = codec::client_key(*b"wsjpeg soak key!");
    s.write_all(
        codec::upgrade_request(&format!("127.0.0.1:{port}"), "/stream", &key, "").as_bytes(),
    )
    .await
    .ok()?;
    Some(s)
}

/// Waits (up to 15 s) until the server counts no viewer, then a moment for sockets to close.
async fn settle(port: u16) -> Option<u64> {
    let started = Instant::now();
    let mut clients = connected_clients(port).await;
    while clients != Some(0) && started.elapsed() < 15 * SECOND {
        tokio::time::sleep(SECOND / 5).await;
        clients = connected_clients(port).await;
    }
    tokio::time::sleep(SECOND).await;
    clients
}

async fn soak(options: Options) -> bool {
    let duration = Duration::from_secs_f64(options.minutes * 60.0);
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--serve",
            "--width",
            &options.width.to_string(),
            "--height",
            &options.height.to_string(),
            "--fps",
            &options.fps.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server process starts");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server prints its port");
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected server output {line:?}"));
    println!(
        "soak: {:.1} min, {}x{} at {} fps on port {port} (server pid {pid}); {} steady WebSocket \
         viewers, 1 steady MJPEG viewer, 1 stalled viewer, {} churners",
        options.minutes,
        options.width,
        options.height,
        options.fps,
        options.steady,
        options.churners
    );

    // Warm-up: the same mix for a while, so that what lives for ever (runtime threads, the
    // allocator's arenas) exists before the baseline is taken with nobody connected.
    let warm_up = (duration / 10).clamp(5 * SECOND, 30 * SECOND);
    let mix = Mix::start(port, &options).await;
    tokio::time::sleep(warm_up).await;
    mix.finish().await;
    let clients_left = settle(port).await;
    if clients_left != Some(0) {
        println!("soak: {clients_left:?} clients still connected after the warm-up");
    }
    let rss_start = rss_of(pid);
    let fds_start = fds_of(pid);

    let mix = Mix::start(port, &options).await;
    let started = Instant::now();
    let mut rss_max = rss_start;
    let mut fds_max = fds_start;
    let mut next_report = started + 60 * SECOND;
    while started.elapsed() < duration {
        tokio::time::sleep(SECOND.min(duration.saturating_sub(started.elapsed()))).await;
        rss_max = rss_max.max(rss_of(pid));
        fds_max = fds_max.max(fds_of(pid));
        if Instant::now() >= next_report {
            next_report += 60 * SECOND;
            println!(
                "soak: {:>4.0} s  RSS {:.1} MB  fds {}  visits {}  errors {}",
                started.elapsed().as_secs_f64(),
                rss_of(pid) as f64 / 1e6,
                fds_of(pid),
                mix.visits.load(Ordering::Relaxed),
                mix.errors.load(Ordering::Relaxed)
            );
        }
    }
    let visits = mix.visits.clone();
    let errors = mix.errors.clone();
    let (steady_results, mjpeg) = mix.finish().await;
    // Everyone has left: the server must be back to its idle state.
    let clients_left = settle(port).await;
    let rss_end = rss_of(pid);
    let fds_end = fds_of(pid);

    drop(child.stdin.take());
    let _ = child.wait();

    let mut pass = true;
    let mut check = |ok: bool, what: String| {
        println!("  [{}] {what}", if ok { " ok " } else { "FAIL" });
        pass &= ok;
    };
    println!("\nsoak report ({:.1} min)", options.minutes);
    println!(
        "  server RSS: start {:.1} MB, end {:.1} MB, max {:.1} MB",
        rss_start as f64 / 1e6,
        rss_end as f64 / 1e6,
        rss_max as f64 / 1e6
    );
    println!("  server open fds: start {fds_start}, end {fds_end} (both idle), max {fds_max}");
    println!(
        "  churn: {} visits, {} unexpected failures",
        visits.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    let source_fps = steady_results
        .iter()
        .map(|s| s.published as f64 / s.seconds.max(1e-3))
        .fold(0.0, f64::max);
    println!(
        "  source: {source_fps:.1} fps published (target {})",
        options.fps
    );
    for (i, s) in steady_results.iter().enumerate() {
        let ratio = s.received as f64 / s.published.max(1) as f64;
        check(
            s.error.is_none() && ratio >= MIN_DELIVERY,
            format!(
                "steady WebSocket viewer {i}: {:.1} fps delivered, {} of {} frames ({:.1} %){}",
                s.received as f64 / s.seconds.max(1e-3),
                s.received,
                s.published,
                ratio * 100.0,
                s.error
                    .as_deref()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    let mjpeg_fps = mjpeg.received as f64 / mjpeg.seconds.max(1e-3);
    check(
        mjpeg.error.is_none() && mjpeg_fps >= MIN_DELIVERY * source_fps,
        format!(
            "steady MJPEG viewer: {mjpeg_fps:.1} fps delivered{}",
            mjpeg
                .error
                .as_deref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default()
        ),
    );
    check(
        source_fps >= 0.9 * options.fps as f64,
        format!("the source kept {source_fps:.1} of {} fps", options.fps),
    );
    check(
        errors.load(Ordering::Relaxed) == 0,
        "no visit failed".to_string(),
    );
    check(
        clients_left == Some(0),
        format!("connected clients back to 0 (now {clients_left:?})"),
    );
    check(
        fds_end <= fds_start + FD_SLACK,
        format!("open fds back to the start level ({fds_end} <= {fds_start} + {FD_SLACK})"),
    );
    check(
        rss_end <= rss_start + RSS_SLACK,
        format!(
            "RSS back near the start ({:.1} MB <= {:.1} + {} MB)",
            rss_end as f64 / 1e6,
            rss_start as f64 / 1e6,
            RSS_SLACK / 1024 / 1024
        ),
    );
    println!("{}", if pass { "PASS" } else { "FAIL" });
    pass
}
