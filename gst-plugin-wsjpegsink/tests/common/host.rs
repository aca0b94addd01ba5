// SPDX-License-Identifier: MIT
//! The element as its first users run it: inside `gst-launch-1.0`, a C program that keeps
//! SIGPIPE at its default and loads the plugin library cargo built, and the same pipelines in
//! this test process. Suites that must hold in any host run against both through [`Host`].

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Server, status_blocking};

/// A folder holding only the plugin library cargo built for this test run. `cargo test` leaves
/// it in target/<profile>/deps (next to the test binary) and only `cargo build` copies it up
/// one level; the deps folder also holds proc-macro libraries GStreamer should not try to load.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let deps = exe.parent().expect("target/<profile>/deps");
        let candidates = [
            deps.join("libgstwsjpeg.so"),
            deps.parent()
                .expect("target/<profile>")
                .join("libgstwsjpeg.so"),
        ];
        let library = candidates
            .iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no built plugin in {candidates:?}"));
        let dir = super::unique_temp_dir("plugin");
        // A link, not a copy: a debug build of the library is about 90 MB.
        std::os::unix::fs::symlink(library, dir.join("libgstwsjpeg.so")).expect("plugin linked");
        dir
    })
}

/// A registry of this test process's own, so that no stale user registry decides what loads.
pub fn registry_file() -> PathBuf {
    std::env::temp_dir().join(format!("wsjpeg-registry-{}.bin", std::process::id()))
}

/// The environment under which GStreamer tools load the plugin cargo built.
pub fn gst_tool(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", registry_file())
        .env_remove("GST_DEBUG_DUMP_DOT_DIR");
    command
}

/// `gst-launch-1.0 -v PIPELINE` in a process of its own. Its output is collected; the bound
/// port is read from the `bound-port` notification that `-v` prints.
pub struct GstLaunch {
    child: Child,
    pub port: u16,
    output: Arc<Mutex<String>>,
}

impl GstLaunch {
    /// `pipeline` must contain a `wsjpegsink` with `port=0`.
    pub fn launch(pipeline: &str) -> GstLaunch {
        Self::launch_with(pipeline, |_| {})
    }

    /// [`GstLaunch::launch`], with a chance to change the command (environment, limits).
    pub fn launch_with(pipeline: &str, configure: impl FnOnce(&mut Command)) -> GstLaunch {
        let mut command = gst_tool("gst-launch-1.0");
        command
            .arg("-v")
            .args(pipeline.split_whitespace())
            .env("GST_DEBUG", "wsjpegsink:2")
            .env("GST_DEBUG_NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command
            .spawn()
            .expect("gst-launch-1.0 starts (package gstreamer1.0-tools)");
        let output = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for (stream, port_tx) in [
            (Box::new(stdout) as Box<dyn Read + Send>, Some(port_tx)),
            (Box::new(stderr), None),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = &port_tx
                        && let Some(port) = line
                            .split_once(": bound-port = ")
                            .and_then(|(_, p)| p.trim().parse::<u16>().ok())
                            .filter(|p| *p != 0)
                    {
                        let _ = tx.send(port);
                    }
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let port = match port_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gst-launch-1.0 printed no bound port:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        let launched = GstLaunch {
            child,
            port,
            output,
        };
        assert!(
            !launched.ignores_sigpipe(),
            "gst-launch-1.0 must run with SIGPIPE at its default, as it does for users"
        );
        launched
    }

    /// Whether SIGPIPE is ignored in the process (bit 13 of SigIgn in /proc/PID/status).
    pub fn ignores_sigpipe(&self) -> bool {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (libc::SIGPIPE - 1)) != 0)
    }

    /// A live test pattern, encoded by jpegenc: the element's own example line.
    pub fn test_pattern(width: u32, height: u32, fps: u32, sink_props: &str) -> GstLaunch {
        GstLaunch::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 \
             ! jpegenc quality=80 ! wsjpegsink name=sink port=0 address=127.0.0.1 {sink_props}"
        ))
    }

    /// One JPEG, sent again and again at `fps` (no encoder: cheap even for big frames).
    pub fn repeating(jpeg: &[u8], fps: u32, sink_props: &str) -> GstLaunch {
        let file = super::unique_temp_dir("frame").join("frame.jpg");
        std::fs::write(&file, jpeg).expect("frame written");
        // multifilesrc reads the whole file per buffer but stamps no time: identity gives each
        // buffer its time from the byte rate, and the sink, synchronised, waits for it.
        let byte_rate = jpeg.len() as u64 * u64::from(fps);
        GstLaunch::launch(&format!(
            "multifilesrc location={} loop=true caps=image/jpeg,framerate={fps}/1 \
             ! identity datarate={byte_rate} \
             ! wsjpegsink name=sink sync=true port=0 address=127.0.0.1 {sink_props}",
            file.display()
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running; panics with its output if it is not.
    pub fn assert_alive(&mut self, after: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "gst-launch-1.0 died after {after}: {status:?} (signal {:?})\n{}",
                std::os::unix::process::ExitStatusExt::signal(&status),
                self.output()
            );
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Stops it as a user does, with Ctrl-C, and returns how it exited.
    pub fn interrupt(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gst-launch-1.0 did not stop on SIGINT:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Interrupts it and checks a clean exit with no panic in its output.
    pub fn assert_clean_exit(&mut self) {
        let status = self.interrupt();
        let output = self.output();
        assert!(
            status.success(),
            "gst-launch-1.0 exited with {status:?} on SIGINT:\n{output}"
        );
        assert!(
            !output.contains("panicked"),
            "the element panicked:\n{output}"
        );
    }
}

impl Drop for GstLaunch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a suite runs the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    InProcess,
    GstLaunch,
}

/// A running element in either host, seen through what both offer.
pub enum Host {
    InProcess {
        server: Server,
        /// Pushes the frames of [`Host::repeating`].
        feeder: Option<super::Feeder>,
    },
    GstLaunch(GstLaunch),
}

impl Host {
    pub fn test_pattern(kind: HostKind, width: u32, height: u32, fps: u32, props: &str) -> Host {
        match kind {
            HostKind::InProcess => Host::InProcess {
                server: Server::test_pattern(width, height, fps, props),
                feeder: None,
            },
            HostKind::GstLaunch => {
                Host::GstLaunch(GstLaunch::test_pattern(width, height, fps, props))
            }
        }
    }

    /// `jpeg` at `fps`, over and over.
    pub fn repeating(kind: HostKind, jpeg: &[u8], fps: u32, props: &str) -> Host {
        match kind {
            HostKind::InProcess => {
                let server = Server::fed(props);
                let feeder = Some(server.feed(jpeg.to_vec(), fps));
                Host::InProcess { server, feeder }
            }
            HostKind::GstLaunch => Host::GstLaunch(GstLaunch::repeating(jpeg, fps, props)),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Host::InProcess { server, .. } => server.port,
            Host::GstLaunch(process) => process.port,
        }
    }

    fn pid(&self) -> String {
        match self {
            Host::InProcess { .. } => "self".to_string(),
            Host::GstLaunch(process) => process.pid().to_string(),
        }
    }

    /// The server's own `/status`, read over a plain blocking connection.
    pub fn status(&self) -> serde_json::Value {
        status_blocking(self.port())
    }

    /// Viewers the element counts now.
    pub fn n_clients(&self) -> u32 {
        match self {
            Host::InProcess { server, .. } => server.n_clients(),
            Host::GstLaunch(_) => {
                // /status itself is a request, not a viewer.
                self.status()["connected_clients"]
                    .as_u64()
                    .unwrap_or(u64::MAX) as u32
            }
        }
    }

    pub fn frames_in(&self) -> u64 {
        self.status()["frames"]["in"].as_u64().expect("frames.in")
    }

    /// Open file descriptors of the process the element runs in.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// Resident memory of the process the element runs in.
    pub fn rss_bytes(&self) -> u64 {
        super::rss_bytes_of(&self.pid().to_string())
    }

    /// After a suite: no panic on the element's threads; a process host must still run, and
    /// stop cleanly on Ctrl-C.
    pub fn finish(self) {
        match self {
            Host::InProcess { .. } => {
                assert_eq!(super::server_panics(), 0, "a server thread panicked")
            }
            Host::GstLaunch(mut process) => {
                process.assert_alive("the test");
                process.assert_clean_exit();
            }
        }
    }

    /// Panics if a process host died.
    pub fn assert_alive(&mut self, after: &str) {
        if let Host::GstLaunch(process) = self {
            process.assert_alive(after);
        }
    }
}

/// Generates `NAME::in_process` and `NAME::in_gst_launch` tests from `async fn NAME(HostKind)`.
#[macro_export]
macro_rules! on_both_hosts {
    ($($body:ident),+ $(,)?) => {
        $(
            mod $body {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_process() {
                    super::$body($crate::common::HostKind::InProcess).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_gst_launch() {
                    super::$body($crate::common::HostKind::GstLaunch).await
                }
            }
        )+
    };
}
