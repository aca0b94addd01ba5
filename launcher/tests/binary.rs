// SPDX-License-Identifier: MIT
//! The real `wsjpeg-launcher` program: flags, signals, the healthcheck subcommand.

mod common;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::client::*;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_wsjpeg-launcher");
const SECOND: Duration = Duration::from_secs(1);

fn spawn(args: &[&str]) -> Child {
    Command::new(LAUNCHER)
        .env("WSJPEG_RTSP_PORT", "0")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the launcher starts")
}

/// The launcher with its log (RUST_LOG=info) read from stderr by a thread that returns it all
/// once the program has exited.
fn spawn_logged(args: &[&str]) -> (Child, JoinHandle<String>) {
    let mut child = Command::new(LAUNCHER)
        .env("WSJPEG_RTSP_PORT", "0")
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the launcher starts");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });
    (child, log)
}

async fn wait_for_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the launcher did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The launcher with the test pattern on a free local port, plus `extra` flags.
fn spawn_test_pattern(extra: &[&str]) -> (Child, u16, ReservedPort) {
    let reserved = ReservedPort::any();
    let port = reserved.port;
    let port_text = reserved.text();
    let mut args = vec![
        "--test-pattern",
        "--address",
        "127.0.0.1",
        "--port",
        &port_text,
    ];
    args.extend_from_slice(extra);
    (spawn(&args), port, reserved)
}

async fn wait_for_server(port: u16) {
    let up = eventually(10 * SECOND, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "the launcher listens on {port}");
}

#[test]
fn bad_flags_get_a_one_line_error_and_exit_2() {
    for (args, expected) in [
        (vec!["--width", "0"], "--width"),
        (vec!["--quality", "101"], "--quality"),
        (vec!["--encoder", "turbo"], "--encoder"),
        (vec!["--pipeline", "videotestsrc ! ! !"], "--pipeline"),
        (vec!["--linger", "soon"], "--linger"),
        (vec!["--encoder", "nvjpeg", "--test-pattern"], "nvjpeg"),
        (
            vec!["--test-pattern", "--device", "/dev/video0"],
            "--device",
        ),
    ] {
        let output = Command::new(LAUNCHER)
            .env("WSJPEG_RTSP_PORT", "0")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.contains("error"), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?} names {expected}: {stderr}"
        );
    }
}

#[test]
fn help_explains_every_flag() {
    use clap::CommandFactory;
    // The flags come from the program's own definition: a new flag without a description, or
    // missing from --help, fails here.
    let command = wsjpeg_launcher::cli::Cli::command();
    let mut commands = vec![(Vec::<String>::new(), command.clone())];
    commands.extend(
        command
            .get_subcommands()
            .map(|sub| (vec![sub.get_name().to_string()], sub.clone())),
    );
    let mut checked = 0;
    for (path, command) in commands {
        let output = Command::new(LAUNCHER)
            .env("WSJPEG_RTSP_PORT", "0")
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let described = arg
                .get_help()
                .is_some_and(|h| !h.to_string().trim().is_empty());
            assert!(described, "--{long} has a description");
            assert!(
                help.contains(&format!("--{long}")),
                "--help mentions --{long}"
            );
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    help.contains(env.as_ref()),
                    "--help names {env} for --{long}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 38, "{checked} flags checked");
}

#[test]
fn taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(LAUNCHER)
        .env("WSJPEG_RTSP_PORT", "0")
        .args(["--test-pattern", "--address", "127.0.0.1", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&port) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn taken_rtsp_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(LAUNCHER)
        .args(["--test-pattern", "--address", "127.0.0.1", "--port", "0"])
        .args(["--h264-encoder", "x264enc", "--rtsp-port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("RTSP") && stderr.contains(&port) && stderr.contains("in use"),
        "{stderr}"
    );
}

/// `signal` to a launcher streaming to a viewer: the viewer gets close code 1001, the camera is
/// released (the launcher logs it once its pipeline is stopped) and the program exits 0 within
/// 2 s.
async fn stops_cleanly_on(signal: &str, number: i32) {
    let reserved = ReservedPort::any();
    let (port, port_text) = (reserved.port, reserved.text());
    let (mut child, log) = spawn_logged(&[
        "--test-pattern",
        "--address",
        "127.0.0.1",
        "--port",
        &port_text,
    ]);
    wait_for_server(port).await;
    let mut ws = connect(port, "/stream").await;
    assert!(next_frame(&mut ws, 10 * SECOND).await.is_some());

    let started = Instant::now();
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1001));
    let status = wait_for_exit(&mut child, 30 * SECOND).await;
    let took = started.elapsed();
    let log = log.join().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    // How quickly is BENCHMARKS.md's; here only that it exits rather than hangs.
    eprintln!("exit took {took:?}");
    let received = log
        .find(&format!("Signal {number} received"))
        .unwrap_or_else(|| panic!("the signal is logged: {log}"));
    let released = log
        .find("Camera 0 (test pattern): released")
        .unwrap_or_else(|| panic!("the camera release is logged: {log}"));
    assert!(received < released, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_viewers_with_1001_releases_the_camera_and_exits_0_quickly() {
    stops_cleanly_on("TERM", libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_closes_viewers_with_1001_releases_the_camera_and_exits_0_quickly() {
    stops_cleanly_on("INT", libc::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_reports_the_server() {
    let reserved = ReservedPort::any();
    let (port, port_text) = (reserved.port, reserved.text());
    let check = |port: &str| {
        Command::new(LAUNCHER)
            .env("WSJPEG_RTSP_PORT", "0")
            .args(["healthcheck", "--port", port])
            .output()
            .unwrap()
    };
    assert!(!check(&port_text).status.success(), "nothing listens yet");
    let mut child = spawn(&[
        "--test-pattern",
        "--address",
        "127.0.0.1",
        "--port",
        &port_text,
    ]);
    wait_for_server(port).await;
    let output = check(&port_text);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn healthcheck(port: u16) -> std::process::Output {
    Command::new(LAUNCHER)
        .env("WSJPEG_RTSP_PORT", "0")
        .args(["healthcheck", "--port", &port.to_string()])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_fails_on_503_and_when_nothing_listens() {
    let reserved = ReservedPort::any();
    let (port, port_text) = (reserved.port, reserved.text());
    let mut child = spawn(&[
        "--device",
        "/dev/video-missing",
        "--address",
        "127.0.0.1",
        "--port",
        &port_text,
    ]);
    wait_for_server(port).await;
    // The camera is opened, and found missing, when someone watches.
    let mut ws = connect(port, "/stream").await;
    let error = wait_camera_state(&mut ws, "error", 5 * SECOND).await;
    let health = http_get(port, "/healthz", &[], usize::MAX).await.status;
    let unhealthy = healthcheck(port);
    let _ = child.kill();
    let _ = child.wait();
    let gone = healthcheck(port);
    assert!(error.is_some(), "the camera is in error");
    assert_eq!(health, 503);
    let stderr = String::from_utf8_lossy(&unhealthy.stderr);
    assert_eq!(unhealthy.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing listens"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_are_served_on_consecutive_ports() {
    // Two consecutive ports, both kept for the launcher.
    let (first, _second) = loop {
        let first = ReservedPort::any();
        if let Some(second) = ReservedPort::at(first.port + 1) {
            break (first, second);
        }
    };
    let (port, port_text) = (first.port, first.text());
    let mut child = spawn(&[
        "--device",
        "/dev/video-missing-a",
        "--device",
        "/dev/video-missing-b",
        "--address",
        "127.0.0.1",
        "--port",
        &port_text,
    ]);
    wait_for_server(port).await;
    wait_for_server(port + 1).await;
    let mut second = connect(port + 1, "/stream").await;
    let error = wait_camera_state(&mut second, "error", 5 * SECOND)
        .await
        .expect("an error status for the missing camera");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("video-missing-b"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_serve_https_and_the_healthcheck_follows() {
    let dir = std::env::temp_dir().join(format!("wsjpeg-launcher-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let (mut child, port, _reserved) = spawn_test_pattern(&[
        "--tls-certificate",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let port_text = port.to_string();
    wait_for_server(port).await;
    let check = |tls: bool| {
        let mut args = vec!["healthcheck", "--port", &port_text];
        if tls {
            args.push("--tls");
        }
        Command::new(LAUNCHER)
            .env("WSJPEG_RTSP_PORT", "0")
            .args(&args)
            .output()
            .unwrap()
    };
    let with_tls = check(true);
    let without_tls = check(false);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        with_tls.status.success(),
        "{}",
        String::from_utf8_lossy(&with_tls.stderr)
    );
    assert!(
        !without_tls.status.success(),
        "plain http is not served on a TLS port"
    );
}

#[test]
fn tls_certificate_without_key_is_a_flag_error() {
    let output = Command::new(LAUNCHER)
        .env("WSJPEG_RTSP_PORT", "0")
        .args(["--test-pattern", "--tls-certificate", "/tmp/cert.pem"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
}

/// CPU time (user + system) the process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    // The command name may hold spaces: the fields that follow start after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| fields[index].parse::<u64>().expect("a tick count");
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks_per_second = 100;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / ticks_per_second)
}

/// The camera opened for one snapshot and was released again (the `/status` camera state).
async fn open_and_release(port: u16) {
    let snapshot = http_get(port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(snapshot.status, 200, "a snapshot opens the camera");
    let deadline = Instant::now() + 10 * SECOND;
    let mut released = false;
    while !released && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let status = http_get(port, "/status", &[], usize::MAX).await;
        released = status.status == 200 && status.json()["camera"]["state"] == "idle";
    }
    assert!(released, "the camera is released after the linger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_after_releasing_the_camera_costs_no_cpu() {
    let (mut child, port, _reserved) = spawn_test_pattern(&["--linger", "200ms"]);
    wait_for_server(port).await;
    // A spinning control loop burns a whole core; an idle one wakes for nothing. 1 % of a
    // core over 5 s is far above idle and far below a spin, however busy the machine is.
    let budget = Duration::from_millis(50);
    for cycles in [1, 3] {
        for _ in 0..cycles {
            open_and_release(port).await;
        }
        tokio::time::sleep(SECOND).await;
        let before = cpu_time(child.id());
        tokio::time::sleep(5 * SECOND).await;
        let used = cpu_time(child.id()) - before;
        assert!(
            used <= budget,
            "the idle launcher used {used:?} of CPU in 5 s after {cycles} start/release cycle(s)"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
