// SPDX-License-Identifier: MIT
//! Third-party players run as a user runs them: installed or not (a test skips, or fails where
//! players are required), and run to their end with a deadline. Shared by the HLS and RTSP
//! tests of the plugin and the launcher.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::cannot_run;

/// Whether `program` is installed; if not, the `group` of tests is skipped (or fails where
/// `WSJPEG_REQUIRE_PLAYERS` or CI is set).
pub fn require_player(group: &str, program: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        cannot_run(
            group,
            &format!("{program} is not installed (apt-get install {package})"),
            "WSJPEG_REQUIRE_PLAYERS",
        );
    }
    found
}

/// VLC's arguments to play `url` for 3 s without a window or sound, logging what it decodes
/// ("codec (h264) started").
pub fn cvlc_args(url: &str) -> [&str; 7] {
    [
        "-vv",
        "--play-and-exit",
        "--run-time=3",
        "--vout=dummy",
        "--aout=dummy",
        "--no-dbus",
        url,
    ]
}

/// Runs `program` with `args` to its end (killed after `within`): its stdout and stderr, or
/// why it failed. VLC refuses to run as root, so as root it runs as `nobody`.
pub fn run_player(program: &str, args: &[&str], within: Duration) -> Result<String, String> {
    let mut command = if program == "cvlc" && unsafe { libc::geteuid() } == 0 {
        let home = std::env::temp_dir().join(format!("wsjpeg-vlc-{}", std::process::id()));
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        let _ = Command::new("chmod").arg("777").arg(&home).status();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let output = child.wait_with_output().map_err(|e| e.to_string())?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return if status.success() {
                Ok(text)
            } else {
                Err(format!("{program} exited with {status}: {text}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{program} did not finish within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
