//! Low-Latency HLS through an nginx edge: the origin (a `wsjpeg-bench serve` child process fed
//! pre-encoded H.264), nginx running the committed edge configuration
//! (`packaging/nginx/wsjpeg-hls-edge.conf`, [`crate::hls_clients::edge`]) in front of it, and
//! simulated players doing what hls.js does in low-latency mode ([`crate::hls_clients::llhls`]).
//!
//! What the origin pays is read where it is paid: its requests and bytes from its own
//! `/metrics`, its CPU time from `/proc` of its process (which also feeds JPEG and H.264 into
//! the pipeline: the same process measured before the first player gives that share); nginx's
//! requests from its `stub_status` page and its CPU time from `/proc` of its one process; the
//! players' requests, statuses and delays from the players.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::hls_clients::edge::{STATUS_PATH, edge_include, edge_nginx_conf, stub_status_requests};
use crate::hls_clients::llhls::{PlayerReport, PlayerSetup, play_all};
use crate::procfs;

/// The playlist's path on the origin and on the edge.
pub const PLAYLIST_PATH: &str = "/hls/index.m3u8";

/// nginx on `PATH` or where Debian puts it.
pub fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// nginx running the committed edge configuration in front of an origin on 127.0.0.1, in one
/// process (no master: its `/proc` figures are all of nginx); stopped when dropped.
pub struct Edge {
    child: Child,
    dir: PathBuf,
    /// Where players connect.
    pub port: u16,
    /// The `stub_status` page's port.
    pub status_port: u16,
}

impl Edge {
    /// `committed` is the text of the edge configuration; `worker_connections` must cover the
    /// players and nginx's connections to the origin.
    pub fn start(
        nginx: &Path,
        committed: &str,
        origin: u16,
        worker_connections: u32,
    ) -> Result<Edge> {
        let dir = std::env::temp_dir().join(format!("wsjpeg-bench-edge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut last_error = String::new();
        // A port found free may be taken before nginx binds it: try again with others.
        for _ in 0..3 {
            let (port, status_port) = (free_port()?, free_port()?);
            let include = edge_include(
                committed,
                &dir.join("cache"),
                loopback(origin),
                loopback(port),
            )
            .map_err(|e| anyhow!(e))?;
            let include_path = dir.join("wsjpeg-hls-edge.conf");
            std::fs::write(&include_path, include).context("writing the edge configuration")?;
            let conf = dir.join("nginx.conf");
            std::fs::write(
                &conf,
                edge_nginx_conf(
                    &dir,
                    &include_path,
                    loopback(status_port),
                    worker_connections,
                ),
            )
            .context("writing nginx.conf")?;
            let mut child = Command::new(nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", nginx.display()))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "nginx exited with {status}: {}",
                        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect(loopback(port)).is_ok() {
                    return Ok(Edge {
                        child,
                        dir,
                        port,
                        status_port,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        bail!("nginx did not start: {last_error}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Requests nginx served so far (its `stub_status`, the page's own requests included).
    pub fn requests(&self) -> Option<u64> {
        let text = http_get_text(self.status_port, STATUS_PATH).ok()?;
        stub_status_requests(&text)
    }

    /// Warnings and errors nginx logged.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(loopback(0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:`port`: the body as text.
fn http_get_text(port: u16, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(loopback(port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP answer to {path}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or("no status"));
    }
    Ok(body.to_string())
}

/// The origin's HLS figures from its `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OriginFigures {
    pub playlists: u64,
    pub blocking_playlists: u64,
    pub media: u64,
    pub media_bytes: u64,
}

impl OriginFigures {
    pub fn read(port: u16) -> Result<OriginFigures> {
        let text = http_get_text(port, "/metrics")?;
        let value = |name: &str| -> Result<u64> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (key, value) = l.split_once(' ')?;
                    (key == name).then(|| value.trim().parse::<f64>().ok())?
                })
                .map(|v| v as u64)
                .with_context(|| format!("the origin's /metrics has no {name}"))
        };
        Ok(OriginFigures {
            playlists: value("wsjpeg_hls_playlist_requests_total")?,
            blocking_playlists: value("wsjpeg_hls_blocking_playlist_requests_total")?,
            media: value("wsjpeg_hls_media_requests_total")?,
            media_bytes: value("wsjpeg_hls_media_bytes_total")?,
        })
    }
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub players: usize,
    /// From the first player's start to every player's end.
    pub duration: Duration,
    /// The players start one after the other over this.
    pub ramp: Duration,
    /// The origin runs this long without players first (its CPU then is the baseline).
    pub warmup: Duration,
    pub request_timeout: Duration,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct HlsEdgeRun {
    pub players: usize,
    /// Through the edge, or straight to the origin.
    pub through_edge: bool,
    pub seconds: f64,
    // The players.
    pub requests: u64,
    pub requests_per_second: f64,
    pub answered_200: u64,
    /// Other statuses, by code.
    pub statuses: BTreeMap<String, u64>,
    pub unanswered: u64,
    pub problems: Vec<String>,
    pub blocking_playlists: u64,
    pub parts_min: u64,
    pub parts_median: u64,
    pub resyncs: u64,
    /// Part delay: arrival less the end of the part's media, ms.
    pub part_delay_p50_ms: Option<f64>,
    pub part_delay_p99_ms: Option<f64>,
    pub first_playlist_median_ms: Option<f64>,
    pub first_playlist_max_ms: Option<f64>,
    /// What one player fetched, median over the players, kbit/s.
    pub player_kbps_median: f64,
    pub distinct_objects: usize,
    pub playlist_cache: BTreeMap<String, u64>,
    pub media_cache: BTreeMap<String, u64>,
    // The origin.
    pub origin: OriginFigures,
    pub origin_kbps: f64,
    pub origin_cpu_percent: Option<f64>,
    pub origin_baseline_cpu_percent: Option<f64>,
    // nginx.
    pub nginx_requests: Option<u64>,
    pub nginx_cpu_percent: Option<f64>,
    // The machine.
    pub players_cpu_percent: Option<f64>,
    pub machine_busy_percent: Option<f64>,
    pub softirq_percent: Option<f64>,
    /// The machine's busy time less the softirq time and the origin's, nginx's and the
    /// players' processes: other processes on a shared machine.
    pub others_percent: Option<f64>,
}

impl HlsEdgeRun {
    pub fn failed(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.unanswered
    }
}

fn cpu_percent(pid: Option<u32>, before: Option<f64>, seconds: f64) -> Option<f64> {
    let now = procfs::cpu_seconds(pid?).ok()?;
    Some((now - before?) / seconds * 100.0)
}

/// Runs `options.players` players against `edge` (or, without one, the origin itself) for
/// `options.duration`, the origin being the process `origin_pid` listening on `origin_port`.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    origin_port: u16,
    origin_pid: u32,
    edge: Option<&Edge>,
    options: &RunOptions,
) -> Result<HlsEdgeRun> {
    let cpu = |pid: Option<u32>| pid.and_then(|p| procfs::cpu_seconds(p).ok());
    let nginx_pid = edge.map(Edge::pid);
    let baseline_start = (Instant::now(), cpu(Some(origin_pid)));
    std::thread::sleep(options.warmup);
    let baseline = cpu_percent(
        Some(origin_pid),
        baseline_start.1,
        baseline_start.0.elapsed().as_secs_f64(),
    );

    let origin_before = OriginFigures::read(origin_port)?;
    let nginx_before = edge.and_then(Edge::requests);
    let own_pid = std::process::id();
    let started = Instant::now();
    let snapshot = procfs::Snapshot::take(None);
    let cpu_before = (cpu(Some(origin_pid)), cpu(nginx_pid), cpu(Some(own_pid)));
    let port = edge.map_or(origin_port, |e| e.port);
    let setup = PlayerSetup {
        addr: loopback(port),
        playlist_path: PLAYLIST_PATH.to_string(),
        stop_at: tokio::time::Instant::now() + options.duration,
        request_timeout: options.request_timeout,
    };
    let reports = runtime.block_on(play_all(options.players, options.ramp, setup));
    let seconds = started.elapsed().as_secs_f64();
    let origin_cpu = cpu_percent(Some(origin_pid), cpu_before.0, seconds);
    let nginx_cpu = cpu_percent(nginx_pid, cpu_before.1, seconds);
    let players_cpu = cpu_percent(Some(own_pid), cpu_before.2, seconds);
    let machine = snapshot.machine_percent(&procfs::Snapshot::take(None), procfs::cores());
    let origin_after = OriginFigures::read(origin_port)?;
    let nginx_after = edge.and_then(Edge::requests);

    let mut all = PlayerReport::default();
    for report in &reports {
        all.merge(report);
    }
    let mut parts: Vec<u64> = reports.iter().map(|r| r.parts).collect();
    parts.sort_unstable();
    let mut kbps: Vec<f64> = reports
        .iter()
        .map(|r| r.media_bytes as f64 * 8.0 / 1000.0 / seconds)
        .collect();
    kbps.sort_by(f64::total_cmp);
    let mut delays = all.part_delays_us.clone();
    delays.sort_unstable();
    let mut first: Vec<Duration> = reports.iter().filter_map(|r| r.first_playlist).collect();
    first.sort_unstable();
    let quantile = |q: f64| -> Option<f64> {
        let at = ((delays.len().checked_sub(1)?) as f64 * q).round() as usize;
        Some(delays[at] as f64 / 1000.0)
    };
    let origin = OriginFigures {
        playlists: origin_after.playlists - origin_before.playlists,
        blocking_playlists: origin_after.blocking_playlists - origin_before.blocking_playlists,
        media: origin_after.media - origin_before.media,
        media_bytes: origin_after.media_bytes - origin_before.media_bytes,
    };
    Ok(HlsEdgeRun {
        players: options.players,
        through_edge: edge.is_some(),
        seconds,
        requests: all.requests,
        requests_per_second: all.requests as f64 / seconds,
        answered_200: all.ok,
        statuses: all
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect(),
        unanswered: all.unanswered,
        problems: all.problems.clone(),
        blocking_playlists: all.blocking_playlists,
        parts_min: parts.first().copied().unwrap_or(0),
        parts_median: parts.get(parts.len() / 2).copied().unwrap_or(0),
        resyncs: all.resyncs,
        part_delay_p50_ms: quantile(0.5),
        part_delay_p99_ms: quantile(0.99),
        first_playlist_median_ms: first.get(first.len() / 2).map(|d| d.as_secs_f64() * 1000.0),
        first_playlist_max_ms: first.last().map(|d| d.as_secs_f64() * 1000.0),
        player_kbps_median: kbps.get(kbps.len() / 2).copied().unwrap_or(0.0),
        distinct_objects: all.objects.len(),
        playlist_cache: all.playlist_cache.clone(),
        media_cache: all.media_cache.clone(),
        origin,
        origin_kbps: origin.media_bytes as f64 * 8.0 / 1000.0 / seconds,
        origin_cpu_percent: origin_cpu,
        origin_baseline_cpu_percent: baseline,
        // Less the status page's second request.
        nginx_requests: nginx_after
            .zip(nginx_before)
            .map(|(a, b)| a.saturating_sub(b + 1)),
        nginx_cpu_percent: nginx_cpu,
        players_cpu_percent: players_cpu,
        machine_busy_percent: machine.map(|m| m.0),
        softirq_percent: machine.map(|m| m.1),
        others_percent: machine.map(|(busy, softirq)| {
            let ours = [origin_cpu, nginx_cpu, players_cpu]
                .iter()
                .map(|c| c.unwrap_or(0.0))
                .sum::<f64>();
            (busy - softirq - ours).max(0.0)
        }),
    })
}

fn figure(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
}

/// One run in words, for the terminal.
pub fn describe(run: &HlsEdgeRun) -> String {
    let via = if run.through_edge {
        "through the edge"
    } else {
        "straight to the origin"
    };
    let mut out = format!(
        "{} players {via}, {:.1} s: {} requests ({:.0}/s), {} answered 200, other statuses {:?}, \
         {} unanswered; parts per player min {} median {}, {} resyncs; part delay p50 {} ms \
         p99 {} ms; first playlist median {} ms, last {} ms\n\
         players: {} blocking reloads, {} distinct media objects, {:.0} kbit/s each (median); \
         X-Cache-Status of the playlists {:?}, of the media {:?}\n\
         origin: {} media requests, {:.2} MB ({:.0} kbit/s), {} blocking reloads, {} playlist \
         requests; CPU {} % of a core ({} % before the players)\n\
         nginx: {} requests, CPU {} %; players' process CPU {} %; machine {} % busy ({} % \
         softirq, {} % other processes) of {} cores\n",
        run.players,
        run.seconds,
        run.requests,
        run.requests_per_second,
        run.answered_200,
        run.statuses,
        run.unanswered,
        run.parts_min,
        run.parts_median,
        run.resyncs,
        figure(run.part_delay_p50_ms, 0),
        figure(run.part_delay_p99_ms, 0),
        figure(run.first_playlist_median_ms, 0),
        figure(run.first_playlist_max_ms, 0),
        run.blocking_playlists,
        run.distinct_objects,
        run.player_kbps_median,
        run.playlist_cache,
        run.media_cache,
        run.origin.media,
        run.origin.media_bytes as f64 / 1e6,
        run.origin_kbps,
        run.origin.blocking_playlists,
        run.origin.playlists,
        figure(run.origin_cpu_percent, 1),
        figure(run.origin_baseline_cpu_percent, 1),
        run.nginx_requests
            .map_or_else(|| "n/a".to_string(), |n| n.to_string()),
        figure(run.nginx_cpu_percent, 1),
        figure(run.players_cpu_percent, 1),
        figure(run.machine_busy_percent, 0),
        figure(run.softirq_percent, 0),
        figure(run.others_percent, 0),
        procfs::cores(),
    );
    for problem in &run.problems {
        out.push_str(&format!("  problem: {problem}\n"));
    }
    out
}

/// The runs side by side, as a Markdown table.
pub fn table(runs: &[HlsEdgeRun]) -> String {
    let mut out = String::from(
        "| players | via | player req/s | failed | parts/player (min, median) | part delay p50 / p99 ms \
         | origin media req. (distinct objects) | origin egress kbit/s (one player's) \
         | origin blocking reloads (players') | origin CPU % (before players) | nginx req. \
         | nginx CPU % | players' CPU % | other processes' CPU % |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {}, {} | {} / {} | {} ({}) | {:.0} ({:.0}) | {} ({}) | {} ({}) \
             | {} | {} | {} | {} |\n",
            run.players,
            if run.through_edge { "edge" } else { "origin" },
            run.requests_per_second,
            run.failed(),
            run.parts_min,
            run.parts_median,
            figure(run.part_delay_p50_ms, 0),
            figure(run.part_delay_p99_ms, 0),
            run.origin.media,
            run.distinct_objects,
            run.origin_kbps,
            run.player_kbps_median,
            run.origin.blocking_playlists,
            run.blocking_playlists,
            figure(run.origin_cpu_percent, 1),
            figure(run.origin_baseline_cpu_percent, 1),
            run.nginx_requests
                .map_or_else(|| "n/a".to_string(), |n| n.to_string()),
            figure(run.nginx_cpu_percent, 1),
            figure(run.players_cpu_percent, 1),
            figure(run.others_percent, 0),
        ));
    }
    out
}
