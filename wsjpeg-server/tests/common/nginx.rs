// SPDX-License-Identifier: MIT
//! A real nginx (Debian's `nginx` package) started by a test on loopback, with a configuration
//! of the test's own in a temp folder; one process (no master, no workers to leave behind),
//! killed when dropped.
//!
//! Tests that use it skip (with a message) when nginx is not installed, unless
//! `WSJPEG_REQUIRE_NGINX` is set, as CI does: then a missing nginx is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ReservedPort, cannot_run, unique_temp_dir};

fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// nginx, or `None` (after saying why) when it is not installed and not required.
pub fn find_nginx(test: &str) -> Option<PathBuf> {
    let found = nginx_binary();
    if found.is_none() {
        cannot_run(
            "nginx tests",
            &format!("{test}: nginx is not installed (apt-get install nginx)"),
            "WSJPEG_REQUIRE_NGINX",
        );
    }
    found
}

/// An nginx process; killed on drop.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    /// The ports kept for it, the one players use first.
    pub ports: Vec<u16>,
    /// The ports, kept from the start (nginx binds them with SO_REUSEADDR beside these).
    _reserved: Vec<ReservedPort>,
}

impl Nginx {
    /// nginx with the configuration `config(folder, ports)` gives for a fresh temp folder and
    /// `ports` free ports of 127.0.0.1; started once it accepts connections on the first.
    pub fn start(
        binary: &Path,
        label: &str,
        ports: usize,
        config: impl Fn(&Path, &[u16]) -> String,
    ) -> Nginx {
        let dir = unique_temp_dir(label);
        let mut last_error = String::new();
        for _ in 0..3 {
            let reserved: Vec<ReservedPort> =
                (0..ports.max(1)).map(|_| ReservedPort::any()).collect();
            let numbers: Vec<u16> = reserved.iter().map(|r| r.port).collect();
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, config(&dir, &numbers)).expect("nginx.conf written");
            let mut child = Command::new(binary)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nginx starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut stderr = String::new();
                    if let Some(mut err) = child.stderr.take() {
                        use std::io::Read;
                        let _ = err.read_to_string(&mut stderr);
                    }
                    last_error = format!(
                        "nginx exited with {status}: {stderr}{}",
                        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                    );
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", numbers[0])).is_ok() {
                    return Nginx {
                        child,
                        dir,
                        ports: numbers,
                        _reserved: reserved,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start: {last_error}");
    }

    /// The port players use.
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("nginx error log:\n{}", self.error_log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
