// SPDX-License-Identifier: MIT
//! The element inside `gst-launch-1.0`, the way its first users run it: a C program with SIGPIPE
//! at its default. Clients that hang up at the worst moment must not kill it, and Ctrl-C still
//! ends it cleanly. (Rust programs, this test binary included, ignore SIGPIPE, which is why
//! none of this shows in-process.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECOND: Duration = Duration::from_secs(1);

/// Closes `stream` with a reset instead of a FIN.
fn reset(stream: &StdTcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// A client socket whose receive buffer holds little: the server is still writing a frame
/// larger than it when the client hangs up, so its next write meets the hung-up socket (the
/// moment SIGPIPE would strike) for certain, not by timing.
fn small_window_client(port: u16) -> StdTcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(8 * 1024).expect("SO_RCVBUF");
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .expect("the server accepts");
    socket.into()
}

/// Waits (up to 20 s) until the server has let go of every client of the test, so that each
/// of their hang-ups has met a write: only the connection asking is open, no viewer is left.
/// Checks meanwhile that gst-launch-1.0 is alive.
fn settled(host: &mut GstLaunch, token: Option<&str>, after: &str) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n");
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        host.assert_alive(after);
        let (_, body) = exchange_blocking(host.port, request.as_bytes());
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status["connections"]["open"] == 1 && status["connected_clients"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server still holds clients 20 s after {after}: {status}"
        );
        std::thread::sleep(SECOND / 20);
    }
}

fn healthy(port: u16) {
    assert_eq!(
        get_blocking(port, "/healthz").0,
        200,
        "the server still answers"
    );
}

#[test]
fn pipelined_requests_then_close() {
    let mut host = GstLaunch::test_pattern(320, 240, 25, "auth-token=s3cret");
    for round in 0..200 {
        let mut stream = StdTcpStream::connect(("127.0.0.1", host.port)).unwrap();
        let _ = stream.write_all(&b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3));
        if round % 2 == 1 {
            reset(&stream);
        }
        drop(stream);
    }
    settled(
        &mut host,
        Some("s3cret"),
        "200 pipelined requests closed unread",
    );
    healthy(host.port);
    host.assert_clean_exit();
}

#[test]
fn mjpeg_read_then_close() {
    let big = encode_jpeg(1280, 720, "snow", 20);
    let mut host = GstLaunch::repeating(&big, 30, "");
    for round in 0..60 {
        let mut stream = small_window_client(host.port);
        stream.set_read_timeout(Some(5 * SECOND)).unwrap();
        stream
            .write_all(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // Part of a frame: the server is in the middle of writing the rest.
        let mut buf = vec![0u8; 40_000];
        let mut got = 0;
        while got < 30_000 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if round % 2 == 1 {
            reset(&stream);
        }
    }
    settled(&mut host, None, "MJPEG viewers leaving mid-frame");
    healthy(host.port);
    host.assert_clean_exit();
}

#[test]
fn websocket_viewers_leave_mid_frame() {
    let big = encode_jpeg(1280, 720, "snow", 20);
    let mut host = GstLaunch::repeating(&big, 30, "");
    for round in 0..60 {
        let mut stream = small_window_client(host.port);
        stream.set_read_timeout(Some(5 * SECOND)).unwrap();
        stream
            .write_all(upgrade_request(host.port, "/stream", "").as_bytes())
            .unwrap();
        let mut buf = vec![0u8; 40_000];
        let mut got = 0;
        while got < 30_000 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        if round % 2 == 1 {
            reset(&stream);
        }
    }
    settled(&mut host, None, "WebSocket viewers leaving mid-frame");
    healthy(host.port);
    host.assert_clean_exit();
}

#[test]
fn websocket_upgrade_then_close_before_the_answer() {
    let mut host = GstLaunch::test_pattern(320, 240, 25, "");
    for round in 0..200 {
        let stream = StdTcpStream::connect(("127.0.0.1", host.port)).unwrap();
        let _ = (&stream).write_all(upgrade_request(host.port, "/stream", "").as_bytes());
        if round % 2 == 1 {
            reset(&stream);
        }
    }
    settled(&mut host, None, "upgrades abandoned before the 101");
    healthy(host.port);
    host.assert_clean_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_aborted_upgrades() {
    let mut host = GstLaunch::test_pattern(320, 240, 25, "");
    let port = host.port;
    let workers = (0..8).map(|w| {
        tokio::spawn(async move {
            for i in (w..1000).step_by(8) {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let _ = stream
                    .write_all(upgrade_request(port, "/stream?meta=1", "").as_bytes())
                    .await;
                if i % 3 == 0 {
                    // Some wait for the hello, so the server is writing when they go.
                    let mut buf = [0u8; 256];
                    let _ = tokio::time::timeout(SECOND, stream.read(&mut buf)).await;
                }
                if i % 2 == 0 {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
            }
        })
    });
    for worker in futures_util::future::join_all(workers).await {
        worker.expect("a client worker panicked");
    }
    tokio::task::block_in_place(|| settled(&mut host, None, "1,000 aborted upgrades"));
    let mut ws = connect(port, "/stream").await;
    assert!(
        next_frame(&mut ws, 5 * SECOND).await.is_some(),
        "a newcomer is served"
    );
    drop(ws);
    assert!(
        eventually(10 * SECOND, || status_blocking(port)["connected_clients"]
            == 0)
        .await,
        "nobody is counted after everyone left"
    );
    host.assert_clean_exit();
}

#[test]
fn the_token_never_shows_in_verbose_output_or_pipeline_dumps() {
    const TOKEN: &str = "Secret-Token-5a1f";
    let dumps = unique_temp_dir("dot");
    let mut host = GstLaunch::launch_with(
        &format!(
            "videotestsrc is-live=true ! video/x-raw,width=160,height=120 ! jpegenc \
             ! wsjpegsink name=sink port=0 address=127.0.0.1 auth-token={TOKEN}"
        ),
        |command| {
            command.env("GST_DEBUG_DUMP_DOT_DIR", &dumps);
        },
    );
    assert_eq!(
        get_blocking(host.port, "/status").0,
        401,
        "/status needs the token"
    );
    std::thread::sleep(SECOND / 2);
    host.assert_clean_exit();
    let dot_files: Vec<_> = std::fs::read_dir(&dumps)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "dot"))
        .collect();
    assert!(!dot_files.is_empty(), "gst-launch wrote pipeline dumps");
    let mut shown_masked = false;
    for file in &dot_files {
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains(TOKEN), "{:?} holds the token", file.path());
        shown_masked |= text.contains("auth-token=\\\"*****\\\"");
    }
    assert!(shown_masked, "the dumps say that a token is set");
    assert!(
        !host.output().contains(TOKEN),
        "gst-launch -v printed the token"
    );
    let _ = std::fs::remove_dir_all(&dumps);
}

/// CPU seconds the process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    const LIMIT: libc::rlim_t = 96;
    let mut host = GstLaunch::launch_with(
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=10/1 ! jpegenc \
         ! wsjpegsink name=sink port=0 address=127.0.0.1 max-clients=1000 max-connections=1000",
        |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: LIMIT,
                        rlim_max: LIMIT,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    let port = host.port;
    // Viewers at work cannot be closed to make room: take every descriptor with them.
    let mut viewers = Vec::new();
    while viewers.len() < LIMIT as usize {
        let attempt = tokio::time::timeout(2 * SECOND, async {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream
                .write_all(upgrade_request(port, "/stream", "").as_bytes())
                .await
                .ok()?;
            (read_response_head(&mut stream, 2 * SECOND).await == Some(101)).then_some(stream)
        })
        .await;
        match attempt {
            Ok(Some(stream)) => viewers.push(stream),
            _ => break,
        }
    }
    assert!(
        viewers.len() < LIMIT as usize,
        "the server ran out of descriptors after {} viewers",
        viewers.len()
    );
    // More clients queue in the backlog while accept fails: the loop must not spin.
    let waiting: Vec<StdTcpStream> = (0..5)
        .map(|_| StdTcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let cpu_before = cpu_seconds(host.pid());
    let started = Instant::now();
    tokio::time::sleep(3 * SECOND).await;
    let cpu = cpu_seconds(host.pid()) - cpu_before;
    let busy = cpu / started.elapsed().as_secs_f64();
    eprintln!(
        "{} viewers hold the descriptors; the server used {:.0} % of a core meanwhile",
        viewers.len(),
        busy * 100.0
    );
    assert!(
        busy < 0.5,
        "the accept loop spins: {:.0} % of a core",
        busy * 100.0
    );
    let warnings = host.output().matches("Cannot accept connections").count();
    // Once per burst (again only after a quiet spell), not once per failed accept.
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings for one burst:\n{}",
        host.output()
    );
    host.assert_alive("running out of descriptors");

    // Viewers leave: the queued clients and newcomers are served again.
    drop(viewers);
    drop(waiting);
    assert!(
        eventually(15 * SECOND, || get_blocking(port, "/healthz").0 == 200).await,
        "the server answers again once descriptors are free"
    );
    host.assert_clean_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_viewers_are_warned_about_once_per_burst() {
    let mut host = GstLaunch::test_pattern(160, 120, 10, "max-clients=2");
    let port = host.port;
    let mut viewers = Vec::new();
    for _ in 0..2 {
        viewers.push(connect(port, "/stream").await);
    }
    for _ in 0..10 {
        let mut refused = connect(port, "/stream").await;
        assert_eq!(close_code(&mut refused, 5 * SECOND).await, Some(1013));
    }
    let warned = |host: &GstLaunch| {
        host.output()
            .lines()
            .filter(|l| l.contains("max-clients (2) reached"))
            .count()
    };
    assert!(
        eventually(5 * SECOND, || warned(&host) >= 1).await,
        "a refusal is warned about, naming the limit:\n{}",
        host.output()
    );
    assert_eq!(warned(&host), 1, "once per burst:\n{}", host.output());
    assert!(
        host.output().contains("--max-clients"),
        "and how to raise it"
    );
    drop(viewers);
    host.assert_clean_exit();
}
