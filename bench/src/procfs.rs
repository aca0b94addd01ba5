//! CPU time and memory of a process, and of the whole machine, from `/proc`.

use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Clock ticks per second used by `/proc/*/stat` times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .with_context(|| format!("unexpected format of {path}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    if fields.len() < 13 {
        bail!("unexpected format of {path}");
    }
    let utime: f64 = fields[11].parse().context("utime")?;
    let stime: f64 = fields[12].parse().context("stime")?;
    Ok((utime + stime) / clock_ticks())
}

/// CPU time of all threads of `pid` in seconds, with nanosecond resolution, from
/// `/proc/PID/task/*/schedstat` (threads that already exited are not counted: use it for
/// idle processes, where the clock-tick resolution of `/proc/PID/stat` is too coarse).
pub fn cpu_seconds_precise(pid: u32) -> Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let mut ns: u64 = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(ns as f64 / 1e9)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS in {path}"))
}

/// Jiffies of the whole machine (all cores), from `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineJiffies {
    pub busy: u64,
    pub total: u64,
    /// Interrupt and softirq time: on loopback most TCP receive work is done there and is
    /// charged to no process.
    pub irq: u64,
}

pub fn machine_jiffies() -> Result<MachineJiffies> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        bail!("short cpu line in /proc/stat");
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    let irq = v.get(5).copied().unwrap_or(0) + v.get(6).copied().unwrap_or(0);
    Ok(MachineJiffies {
        busy: total - idle,
        total,
        irq,
    })
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A point-in-time reading of a process and the machine.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    pub cpu_s: Option<f64>,
    pub rss: Option<u64>,
    pub machine: Option<MachineJiffies>,
}

impl Snapshot {
    pub fn take(pid: Option<u32>) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            cpu_s: pid.and_then(|p| cpu_seconds(p).ok()),
            rss: pid.and_then(|p| rss_bytes(p).ok()),
            machine: machine_jiffies().ok(),
        }
    }

    /// CPU use of the process between `self` and `later`, in % of one core.
    pub fn cpu_percent(&self, later: &Snapshot) -> Option<f64> {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        Some((later.cpu_s? - self.cpu_s?) / secs * 100.0)
    }

    pub fn cpu_seconds(&self, later: &Snapshot) -> Option<f64> {
        Some(later.cpu_s? - self.cpu_s?)
    }

    /// Whole-machine busy and interrupt shares between `self` and `later`, in % of one core
    /// (200 % = both cores of a 2-core machine).
    pub fn machine_percent(&self, later: &Snapshot, cores: usize) -> Option<(f64, f64)> {
        let a = self.machine?;
        let b = later.machine?;
        let dt = b.total.checked_sub(a.total)?;
        if dt == 0 {
            return None;
        }
        let scale = 100.0 * cores as f64 / dt as f64;
        Some((
            b.busy.saturating_sub(a.busy) as f64 * scale,
            b.irq.saturating_sub(a.irq) as f64 * scale,
        ))
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        // Burn CPU on this thread until the precise clock has seen 0.3 s of it (however long
        // a busy machine takes to give it): the coarse clock, in ticks, must see it too.
        let before = (cpu_seconds(pid).unwrap(), cpu_seconds_precise(pid).unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 1u64;
        let spent = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let spent = (
                cpu_seconds(pid).unwrap() - before.0,
                cpu_seconds_precise(pid).unwrap() - before.1,
            );
            if spent.1 >= 0.3 {
                break spent;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "precise CPU time grew by only {} in 60 s of spinning",
                spent.1
            );
        };
        // Clock ticks are 10 ms: the coarse figure follows within a few of them.
        assert!(
            spent.0 >= spent.1 - 0.1,
            "CPU time in ticks grew by {}, precisely by {}",
            spent.0,
            spent.1
        );
        let rss = rss_bytes(pid).unwrap();
        let held = vec![1u8; 64 << 20];
        let grown = rss_bytes(pid).unwrap();
        assert!(
            grown >= rss + (48 << 20),
            "64 MB touched, RSS {rss} -> {grown}"
        );
        drop(std::hint::black_box(held));
        let m = machine_jiffies().unwrap();
        assert!(m.total >= m.busy && m.busy >= m.irq);
        assert!(cpu_seconds(u32::MAX).is_err());
    }
}
