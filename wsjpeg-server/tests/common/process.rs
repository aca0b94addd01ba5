// SPDX-License-Identifier: MIT
//! A test process that watches itself: skips that say so, a deadline for a hanging binary,
//! panics on the server's threads, temp folders, ports kept for servers in other processes,
//! and its own memory and descriptors. Shared by the tests of the server and of the plugin.

use std::sync::Once;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Starts the watch of this test process: its deadline and the count of server panics. Every
/// server a test starts calls it first.
pub fn watch_process() {
    static WATCH: Once = Once::new();
    WATCH.call_once(|| {
        count_server_panics();
        end_a_hanging_test_binary();
    });
}

/// A test that cannot run here (no nginx, no OpenCV, no IPv6, not root…). Under CI (`CI` set)
/// or with `require` set (such as `WSJPEG_REQUIRE_NGINX`), that is a failure. Otherwise the test
/// skips and says so: on stderr, and in the file `WSJPEG_SKIP_LOG` names, which
/// `scripts/test.sh` prints as a summary at the end. Returns whether the test may go on (never).
pub fn cannot_run(group: &str, why: &str, require: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none() && std::env::var_os(require).is_none(),
        "{group} must run here ({}), but cannot: {why}",
        if std::env::var_os("CI").is_some() {
            "CI"
        } else {
            require
        }
    );
    eprintln!("SKIP {group}: {why}");
    if let Some(log) = std::env::var_os("WSJPEG_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{group}: {why}");
        }
    }
    false
}

/// A port of 127.0.0.1 kept for a server the test starts in another process: bound with
/// SO_REUSEADDR but not listening, so nothing else takes it and connections are refused until
/// the server (which binds with SO_REUSEADDR too, as nginx and ours do) listens there.
pub struct ReservedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl ReservedPort {
    pub fn any() -> ReservedPort {
        ReservedPort::at(0).expect("a free port")
    }

    /// `port` itself, if it is free.
    pub fn at(port: u16) -> Option<ReservedPort> {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        socket.set_reuse_address(true).ok()?;
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .ok()?;
        let port = socket.local_addr().ok()?.as_socket()?.port();
        Some(ReservedPort {
            _socket: socket,
            port,
        })
    }

    pub fn text(&self) -> String {
        self.port.to_string()
    }
}

/// No test binary runs this long when its features work (the longest takes about a minute
/// on a busy machine); one that does is stuck waiting on something that broke.
const TEST_BINARY_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Ends the test binary with a failure once [`TEST_BINARY_DEADLINE`] has passed, so that a
/// broken feature fails the suite instead of hanging it (every wait of a test has its own
/// bound too; this is the bound of last resort).
fn end_a_hanging_test_binary() {
    let _ = std::thread::Builder::new()
        .name("test-deadline".into())
        .spawn(|| {
            std::thread::sleep(TEST_BINARY_DEADLINE);
            eprintln!(
                "a test of {} still runs after {} min: it hangs",
                std::env::args().next().unwrap_or_default(),
                TEST_BINARY_DEADLINE.as_secs() / 60
            );
            std::process::exit(101);
        });
}

static SERVER_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts panics on the server's own threads (`wsjpeg-…`), which tokio would otherwise only
/// print: a panicking viewer task is a bug even when the test around it passes.
fn count_server_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("wsjpeg"))
        {
            SERVER_PANICS.fetch_add(1, Ordering::Relaxed);
        }
        previous(info)
    }));
}

/// Panics on the server's threads in this process so far.
pub fn server_panics() -> usize {
    SERVER_PANICS.load(Ordering::Relaxed)
}

/// A new folder under the temp dir, unique in this process and among processes.
pub fn unique_temp_dir(label: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wsjpeg-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        TempDir(unique_temp_dir(label))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn write(&self, name: &str, data: &[u8]) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, data).expect("file written");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Takes this process's lock for tests that measure the process (memory, descriptors) and
/// must not share it with other tests of their binary.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The server process's resident memory, from /proc.
pub fn rss_bytes() -> u64 {
    rss_bytes_of("self")
}

/// The resident memory of process `pid` (or `self`), from /proc.
pub fn rss_bytes_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Open file descriptors of this process (the server's, plus whatever the test holds).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}
