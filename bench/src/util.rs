//! Small helpers: clocks, random numbers, percentiles, URLs.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Microseconds since the Unix epoch (the clock of the `?meta=1` capture times).
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A small xorshift generator: WebSocket keys and masks need variety, not secrecy.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// A parsed `ws://` or `http://` URL on a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `Host` header value as given in the URL.
    pub host: String,
    pub addr: SocketAddr,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses `url` (`ws://`, `http://`) and resolves it. Only loopback addresses are accepted:
    /// this tool generates heavy traffic and must never aim it at another machine.
    pub fn parse(url: &str) -> Result<Target> {
        Target::parse_within(url, false)
    }

    /// [`Target::parse`], also taking private (RFC 1918) IPv4 addresses when `private` is set:
    /// a test network of one's own, such as a veth pair into a network namespace.
    pub fn parse_within(url: &str, private: bool) -> Result<Target> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .with_context(|| format!("'{url}': only ws:// and http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() {
            bail!("'{url}' has no host");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .with_context(|| format!("'{url}': unterminated IPv6 address"))?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (authority.to_string(), ""),
            }
        };
        let port: u16 = if port.is_empty() {
            80
        } else {
            port.parse()
                .with_context(|| format!("'{url}': invalid port '{port}'"))?
        };
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve '{host}'"))?
            .find(|a| {
                a.ip().is_loopback()
                    || (private && matches!(a.ip(), std::net::IpAddr::V4(v4) if v4.is_private()))
            })
            .with_context(|| {
                format!("'{host}' is not a loopback address: this tool only loads servers on this machine")
            })?;
        Ok(Target {
            host: authority.to_string(),
            addr,
            path,
        })
    }

    /// The same server with another path (and query).
    pub fn with_path(&self, path: &str) -> Target {
        Target {
            host: self.host.clone(),
            addr: self.addr,
            path: path.to_string(),
        }
    }

    /// Adds `name=value` to the query unless `name` is already there.
    pub fn with_query_param(&self, name: &str, value: &str) -> Target {
        let (path, query) = match self.path.split_once('?') {
            Some((p, q)) => (p, q),
            None => (self.path.as_str(), ""),
        };
        let present = query
            .split('&')
            .any(|kv| kv.split('=').next() == Some(name));
        if present {
            return self.clone();
        }
        let query = if query.is_empty() {
            format!("{name}={value}")
        } else {
            format!("{query}&{name}={value}")
        };
        self.with_path(&format!("{path}?{query}"))
    }

    pub fn is_loopback(ip: IpAddr) -> bool {
        ip.is_loopback()
    }
}

/// Value at quantile `q` (0..=1) of sorted `values`, nearest-rank.
pub fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Median of a few floats (ignores NaN).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Raises the soft limit on open files to the hard limit (many viewers need many sockets).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return wanted.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Waits up to `grace` for a child that was asked to exit, then kills it; reaped either way.
pub fn wait_or_kill(child: &mut Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
