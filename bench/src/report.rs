//! Aggregation of a load run into a report, its table, its JSON and its pass/fail checks.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::{Kind, RawResults, ViewerResult};
use crate::util::{median, percentile};

#[derive(Debug, Clone, Serialize, Default)]
pub struct Distribution {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

impl Distribution {
    /// From microsecond samples, reported in milliseconds.
    pub fn from_us(mut us: Vec<u32>) -> Option<Distribution> {
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let ms = |q: f64| percentile(&us, q).unwrap_or(0) as f64 / 1000.0;
        Some(Distribution {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: ms(1.0),
            samples: us.len(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub kind: Kind,
    pub viewers: usize,
    pub connected: usize,
    /// Could not connect or were refused.
    pub failed: usize,
    /// Connected, then lost before the window ended.
    pub dropped: usize,
    pub fps_min: Option<f64>,
    pub fps_median: Option<f64>,
    pub fps_mean: Option<f64>,
    pub frames: u64,
    pub bytes: u64,
    /// Frames skipped (sequence gaps); `None` when the server sends no sequence numbers.
    pub skipped: Option<u64>,
    /// Receive time minus capture time; `None` when the server sends no capture times.
    pub latency_ms: Option<Distribution>,
    pub first_frame_ms: Option<Distribution>,
    /// `detections` messages per viewer per second; `None` when none came.
    pub detections_per_s: Option<f64>,
    /// What a viewer received, on average, in Mbit/s.
    pub mbit_per_viewer: Option<f64>,
    pub errors: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerFigures {
    pub pid: Option<u32>,
    pub cpu_percent: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub cpu_s_per_gb: Option<f64>,
    pub rss_start_mb: Option<f64>,
    pub rss_max_mb: Option<f64>,
    pub rss_end_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub url: String,
    pub window_s: f64,
    pub groups: Vec<Group>,
    /// Viewers joining the live stream one at a time during the window.
    pub join_first_frame_ms: Option<Distribution>,
    pub join_errors: Vec<String>,
    pub delivered_gb: f64,
    pub server: ServerFigures,
    pub client_cpu_percent: Option<f64>,
    /// Whole machine, % of one core (200 % = both cores busy).
    pub machine_busy_percent: Option<f64>,
    /// Interrupt + softirq time (mostly loopback TCP), charged to no process.
    pub irq_percent: Option<f64>,
    /// Machine minus server, load tool and interrupts: other processes competing for the
    /// cores.
    pub others_percent: Option<f64>,
    pub loadavg_before: Option<f64>,
    /// Machine busy (% of one core) in the second before the run: others' load.
    pub machine_busy_before: Option<f64>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Thresholds for a pass/fail verdict (CI smoke runs).
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    /// Every WebSocket and MJPEG viewer must reach this rate.
    pub min_fps: Option<f64>,
    /// p99 latency of the WebSocket viewers.
    pub max_p99_ms: Option<f64>,
    /// Failed plus dropped viewers allowed.
    pub max_failed: Option<usize>,
    /// Every stalled viewer must still get this rate.
    pub min_stalled_fps: Option<f64>,
    /// The oldest frame a stalled viewer may receive.
    pub max_stalled_age_ms: Option<f64>,
}

const MB: f64 = 1024.0 * 1024.0;

fn group(kind: Kind, viewers: &[&ViewerResult], window_s: f64) -> Group {
    let connected = viewers.iter().filter(|v| v.connected).count();
    let failed = viewers.iter().filter(|v| v.failed).count();
    let dropped = viewers
        .iter()
        .filter(|v| v.connected && !v.failed && v.error.is_some())
        .count();
    let fps: Vec<f64> = viewers.iter().map(|v| v.frames as f64 / window_s).collect();
    let mut errors = BTreeMap::new();
    for v in viewers {
        if let Some(e) = &v.error {
            *errors.entry(e.clone()).or_insert(0) += 1;
        }
    }
    let timed = viewers.iter().any(|v| v.timed);
    let sequenced = viewers.iter().any(|v| v.sequenced);
    let detections: u64 = viewers.iter().map(|v| v.detections).sum();
    let bytes: u64 = viewers.iter().map(|v| v.bytes).sum();
    Group {
        mbit_per_viewer: (!viewers.is_empty() && window_s > 0.0)
            .then(|| bytes as f64 * 8.0 / 1e6 / viewers.len() as f64 / window_s),
        detections_per_s: (detections > 0 && !viewers.is_empty())
            .then(|| detections as f64 / viewers.len() as f64 / window_s),
        kind,
        viewers: viewers.len(),
        connected,
        failed,
        dropped,
        fps_min: fps.iter().copied().reduce(f64::min),
        fps_median: median(&fps),
        fps_mean: (!fps.is_empty()).then(|| fps.iter().sum::<f64>() / fps.len() as f64),
        frames: viewers.iter().map(|v| v.frames).sum(),
        bytes: viewers.iter().map(|v| v.bytes).sum(),
        skipped: sequenced.then(|| viewers.iter().map(|v| v.skipped).sum()),
        latency_ms: if timed {
            Distribution::from_us(
                viewers
                    .iter()
                    .flat_map(|v| v.latencies_us.iter().copied())
                    .collect(),
            )
        } else {
            None
        },
        first_frame_ms: Distribution::from_us(
            viewers.iter().filter_map(|v| v.first_frame_us).collect(),
        ),
        errors,
    }
}

impl Report {
    pub fn build(
        label: &str,
        url: &str,
        raw: &RawResults,
        server_pid: Option<u32>,
        window_s: f64,
        thresholds: &Thresholds,
    ) -> Report {
        let mut groups = Vec::new();
        for kind in [Kind::WebSocket, Kind::Mjpeg, Kind::Stalled] {
            let members: Vec<&ViewerResult> =
                raw.viewers.iter().filter(|v| v.kind == kind).collect();
            if !members.is_empty() {
                groups.push(group(kind, &members, window_s));
            }
        }
        let delivered_bytes: u64 = groups.iter().map(|g| g.bytes).sum();
        let delivered_gb = delivered_bytes as f64 / 1e9;
        let s = &raw.sampled;
        let server = ServerFigures {
            pid: server_pid,
            cpu_percent: s.server_cpu_percent,
            cpu_seconds: s.server_cpu_seconds,
            cpu_s_per_gb: s
                .server_cpu_seconds
                .filter(|_| delivered_gb > 0.0)
                .map(|c| c / delivered_gb),
            rss_start_mb: s.server_rss_start.map(|b| b as f64 / MB),
            rss_max_mb: s.server_rss_max.map(|b| b as f64 / MB),
            rss_end_mb: s.server_rss_end.map(|b| b as f64 / MB),
        };
        let others_percent = match (s.machine_percent, s.client_cpu_percent) {
            (Some(m), Some(c)) => Some(
                (m - c - s.server_cpu_percent.unwrap_or(0.0) - s.irq_percent.unwrap_or(0.0))
                    .max(0.0),
            ),
            _ => None,
        };
        let mut report = Report {
            label: label.to_string(),
            url: url.to_string(),
            window_s,
            groups,
            join_first_frame_ms: Distribution::from_us(raw.probes_first_frame_us.clone()),
            join_errors: raw.probe_errors.clone(),
            delivered_gb,
            server,
            client_cpu_percent: s.client_cpu_percent,
            machine_busy_percent: s.machine_percent,
            irq_percent: s.irq_percent,
            others_percent,
            loadavg_before: raw.loadavg_before,
            machine_busy_before: raw.machine_busy_before,
            checks: Vec::new(),
        };
        report.checks = report.check(thresholds);
        report
    }

    pub fn group(&self, kind: Kind) -> Option<&Group> {
        self.groups.iter().find(|g| g.kind == kind)
    }

    fn check(&self, t: &Thresholds) -> Vec<Check> {
        let mut checks = Vec::new();
        if let Some(min) = t.min_fps {
            for g in self.groups.iter().filter(|g| g.kind != Kind::Stalled) {
                let got = g.fps_min.unwrap_or(0.0);
                checks.push(Check {
                    name: format!("{} min fps >= {min}", g.kind.as_str()),
                    passed: got >= min,
                    detail: format!("slowest viewer {got:.2} fps"),
                });
            }
        }
        if let Some(max) = t.max_p99_ms {
            let p99 = self
                .group(Kind::WebSocket)
                .and_then(|g| g.latency_ms.as_ref())
                .map(|d| d.p99);
            checks.push(Check {
                name: format!("websocket p99 <= {max} ms"),
                passed: p99.is_some_and(|p| p <= max),
                detail: match p99 {
                    Some(p) => format!("p99 {p:.2} ms"),
                    None => "no latency measured".into(),
                },
            });
        }
        let stalled = self.group(Kind::Stalled);
        if let Some(min) = t.min_stalled_fps {
            let got = stalled.and_then(|g| g.fps_min);
            checks.push(Check {
                name: format!("stalled min fps >= {min}"),
                passed: got.is_some_and(|f| f >= min),
                detail: match got {
                    Some(f) => format!("slowest stalled viewer {f:.2} fps"),
                    None => "no stalled viewer".into(),
                },
            });
        }
        if let Some(max) = t.max_stalled_age_ms {
            let oldest = stalled.and_then(|g| g.latency_ms.as_ref()).map(|d| d.max);
            checks.push(Check {
                name: format!("stalled frame age <= {max} ms"),
                passed: oldest.is_some_and(|a| a <= max),
                detail: match oldest {
                    Some(a) => format!("oldest frame a stalled viewer got: {a:.0} ms"),
                    None => "no stalled latency measured".into(),
                },
            });
        }
        if let Some(max) = t.max_failed {
            let bad: usize = self.groups.iter().map(|g| g.failed + g.dropped).sum();
            checks.push(Check {
                name: format!("failed + dropped viewers <= {max}"),
                passed: bad <= max,
                detail: format!("{bad} failed or dropped"),
            });
        }
        checks
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The human-readable summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== {} ({}), window {:.1} s",
            self.label, self.url, self.window_s
        );
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>6} {:>5} {:>5} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "group",
            "viewers",
            "conn",
            "fail",
            "drop",
            "fps min",
            "fps med",
            "skipped",
            "lat p50",
            "lat p99",
            "lat max",
            "1st p50",
            "1st max"
        );
        for g in &self.groups {
            let lat = |f: fn(&Distribution) -> f64| {
                g.latency_ms
                    .as_ref()
                    .map_or("n/a".to_string(), |d| format!("{:.2}ms", f(d)))
            };
            let first = |f: fn(&Distribution) -> f64| {
                g.first_frame_ms
                    .as_ref()
                    .map_or("n/a".to_string(), |d| format!("{:.2}ms", f(d)))
            };
            let _ = writeln!(
                out,
                "{:<10} {:>6} {:>6} {:>5} {:>5} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
                g.kind.as_str(),
                g.viewers,
                g.connected,
                g.failed,
                g.dropped,
                g.fps_min.map_or("n/a".into(), |v| format!("{v:.2}")),
                g.fps_median.map_or("n/a".into(), |v| format!("{v:.2}")),
                g.skipped.map_or("n/a".into(), |v| v.to_string()),
                lat(|d| d.p50),
                lat(|d| d.p99),
                lat(|d| d.max),
                first(|d| d.p50),
                first(|d| d.max),
            );
        }
        match &self.join_first_frame_ms {
            Some(d) => {
                let _ = writeln!(
                    out,
                    "joining a live stream: first frame p50 {:.2} ms, max {:.2} ms ({} joins)",
                    d.p50, d.max, d.samples
                );
            }
            None if !self.join_errors.is_empty() => {
                let _ = writeln!(out, "joining a live stream: failed");
            }
            None => {}
        }
        for e in &self.join_errors {
            let _ = writeln!(out, "  join error: {e}");
        }
        let f =
            |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"));
        let s = &self.server;
        let _ = writeln!(
            out,
            "server (pid {}): CPU {} of a core, {} CPU-s/GB ({:.2} GB delivered), RSS {} -> {} (max {})",
            s.pid.map_or("?".to_string(), |p| p.to_string()),
            f(s.cpu_percent, " %"),
            f(s.cpu_s_per_gb, ""),
            self.delivered_gb,
            f(s.rss_start_mb, " MB"),
            f(s.rss_end_mb, " MB"),
            f(s.rss_max_mb, " MB"),
        );
        let _ = writeln!(
            out,
            "load tool CPU {}, machine busy {} (of 200 %): softirq {}, other processes {}; before the run: busy {}, load average {}",
            f(self.client_cpu_percent, " %"),
            f(self.machine_busy_percent, " %"),
            f(self.irq_percent, " %"),
            f(self.others_percent, " %"),
            f(self.machine_busy_before, " %"),
            f(self.loadavg_before, ""),
        );
        for g in &self.groups {
            for (e, n) in &g.errors {
                let _ = writeln!(out, "  {} x{}: {}", g.kind.as_str(), n, e);
            }
        }
        for c in &self.checks {
            let _ = writeln!(
                out,
                "check {}: {} ({})",
                c.name,
                if c.passed { "PASS" } else { "FAIL" },
                c.detail
            );
        }
        out
    }
}

/// A figure's name, its median over runs, and its value in each run.
pub type MedianRow = (&'static str, Option<f64>, Vec<Option<f64>>);

/// The figures compared across repeats and implementations.
#[derive(Debug, Clone, Serialize, Default)]
pub struct KeyFigures {
    pub ws_fps_min: Option<f64>,
    pub ws_lat_p50_ms: Option<f64>,
    pub ws_lat_p99_ms: Option<f64>,
    pub ws_lat_max_ms: Option<f64>,
    pub ws_skipped: Option<f64>,
    pub ws_detections_per_s: Option<f64>,
    pub ws_mbit_per_viewer: Option<f64>,
    pub mjpeg_fps_min: Option<f64>,
    pub mjpeg_lat_p99_ms: Option<f64>,
    pub stalled_fps_median: Option<f64>,
    pub stalled_lat_p50_ms: Option<f64>,
    pub stalled_lat_max_ms: Option<f64>,
    pub failed: Option<f64>,
    pub ramp_first_frame_p50_ms: Option<f64>,
    pub join_first_frame_p50_ms: Option<f64>,
    pub join_first_frame_max_ms: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_s_per_gb: Option<f64>,
    pub server_rss_start_mb: Option<f64>,
    pub server_rss_max_mb: Option<f64>,
    pub client_cpu_percent: Option<f64>,
    pub irq_percent: Option<f64>,
    pub others_percent: Option<f64>,
    pub busy_before_percent: Option<f64>,
}

impl KeyFigures {
    pub fn of(r: &Report) -> KeyFigures {
        let ws = r.group(Kind::WebSocket);
        let mj = r.group(Kind::Mjpeg);
        let st = r.group(Kind::Stalled);
        KeyFigures {
            ws_fps_min: ws.and_then(|g| g.fps_min),
            ws_lat_p50_ms: ws.and_then(|g| g.latency_ms.as_ref()).map(|d| d.p50),
            ws_lat_p99_ms: ws.and_then(|g| g.latency_ms.as_ref()).map(|d| d.p99),
            ws_lat_max_ms: ws.and_then(|g| g.latency_ms.as_ref()).map(|d| d.max),
            ws_skipped: ws.and_then(|g| g.skipped).map(|s| s as f64),
            ws_detections_per_s: ws.and_then(|g| g.detections_per_s),
            ws_mbit_per_viewer: ws.and_then(|g| g.mbit_per_viewer),
            mjpeg_fps_min: mj.and_then(|g| g.fps_min),
            mjpeg_lat_p99_ms: mj.and_then(|g| g.latency_ms.as_ref()).map(|d| d.p99),
            stalled_fps_median: st.and_then(|g| g.fps_median),
            stalled_lat_p50_ms: st.and_then(|g| g.latency_ms.as_ref()).map(|d| d.p50),
            stalled_lat_max_ms: st.and_then(|g| g.latency_ms.as_ref()).map(|d| d.max),
            failed: Some(r.groups.iter().map(|g| g.failed + g.dropped).sum::<usize>() as f64),
            ramp_first_frame_p50_ms: ws.and_then(|g| g.first_frame_ms.as_ref()).map(|d| d.p50),
            join_first_frame_p50_ms: r.join_first_frame_ms.as_ref().map(|d| d.p50),
            join_first_frame_max_ms: r.join_first_frame_ms.as_ref().map(|d| d.max),
            server_cpu_percent: r.server.cpu_percent,
            server_cpu_s_per_gb: r.server.cpu_s_per_gb,
            server_rss_start_mb: r.server.rss_start_mb,
            server_rss_max_mb: r.server.rss_max_mb,
            client_cpu_percent: r.client_cpu_percent,
            irq_percent: r.irq_percent,
            others_percent: r.others_percent,
            busy_before_percent: r.machine_busy_before,
        }
    }

    /// (name, value) pairs in display order.
    pub fn fields(&self) -> Vec<(&'static str, Option<f64>)> {
        vec![
            ("ws fps min", self.ws_fps_min),
            ("ws latency p50 ms", self.ws_lat_p50_ms),
            ("ws latency p99 ms", self.ws_lat_p99_ms),
            ("ws latency max ms", self.ws_lat_max_ms),
            ("ws skipped frames", self.ws_skipped),
            ("ws detections /viewer/s", self.ws_detections_per_s),
            ("ws Mbit/s per viewer", self.ws_mbit_per_viewer),
            ("mjpeg fps min", self.mjpeg_fps_min),
            ("mjpeg latency p99 ms", self.mjpeg_lat_p99_ms),
            ("stalled fps median", self.stalled_fps_median),
            ("stalled latency p50 ms", self.stalled_lat_p50_ms),
            ("stalled latency max ms", self.stalled_lat_max_ms),
            ("failed+dropped viewers", self.failed),
            ("first frame (ramp) p50 ms", self.ramp_first_frame_p50_ms),
            ("first frame (join) p50 ms", self.join_first_frame_p50_ms),
            ("first frame (join) max ms", self.join_first_frame_max_ms),
            ("server CPU % of a core", self.server_cpu_percent),
            ("server CPU-s/GB", self.server_cpu_s_per_gb),
            ("server RSS start MB", self.server_rss_start_mb),
            ("server RSS max MB", self.server_rss_max_mb),
            ("load tool CPU %", self.client_cpu_percent),
            ("softirq CPU %", self.irq_percent),
            ("other processes CPU %", self.others_percent),
            ("machine busy before run %", self.busy_before_percent),
        ]
    }

    /// The median of each figure over several runs.
    pub fn median_of(runs: &[KeyFigures]) -> Vec<MedianRow> {
        let per_run: Vec<Vec<(&'static str, Option<f64>)>> =
            runs.iter().map(|r| r.fields()).collect();
        let Some(first) = per_run.first() else {
            return Vec::new();
        };
        (0..first.len())
            .map(|i| {
                let values: Vec<Option<f64>> = per_run.iter().map(|r| r[i].1).collect();
                let present: Vec<f64> = values.iter().flatten().copied().collect();
                (first[i].0, median(&present), values)
            })
            .collect()
    }
}

/// Table of medians for one or two implementations (with the ratio to the second).
pub fn medians_table(columns: &[(&str, &[KeyFigures])]) -> String {
    let mut out = String::new();
    let meds: Vec<Vec<MedianRow>> = columns
        .iter()
        .map(|(_, runs)| KeyFigures::median_of(runs))
        .collect();
    let Some(first) = meds.first() else {
        return out;
    };
    let _ = write!(out, "{:<28}", "median of runs");
    for (name, runs) in columns {
        let _ = write!(out, " {:>14}", format!("{name} (n={})", runs.len()));
    }
    if columns.len() == 2 {
        let _ = write!(out, " {:>10}", "ratio");
    }
    let _ = writeln!(out, "   per run");
    for i in 0..first.len() {
        let values: Vec<Option<f64>> = meds.iter().map(|m| m[i].1).collect();
        if values.iter().all(|v| v.is_none()) {
            continue;
        }
        let _ = write!(out, "{:<28}", first[i].0);
        for v in &values {
            let _ = write!(
                out,
                " {:>14}",
                v.map_or("n/a".into(), |v| format!("{v:.2}"))
            );
        }
        if let [Some(a), Some(b)] = values[..] {
            let ratio = if b != 0.0 {
                format!("{:.2}", a / b)
            } else {
                "-".into()
            };
            let _ = write!(out, " {ratio:>10}");
        } else if columns.len() == 2 {
            let _ = write!(out, " {:>10}", "-");
        }
        let runs: Vec<String> = meds
            .iter()
            .map(|m| {
                m[i].2
                    .iter()
                    .map(|v| v.map_or("n/a".into(), |v| format!("{v:.2}")))
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        let _ = writeln!(out, "   {}", runs.join(" | "));
    }
    out
}
