// SPDX-License-Identifier: MIT
//! A thousand viewers come and go, politely or not: afterwards nobody is counted, and the
//! process has the file descriptors and (nearly) the memory it had before. In this process and
//! inside gst-launch-1.0, one at a time: alone in its test binary, so that /proc/self is the
//! server's (plus the test's own sockets, all closed by the time it measures).

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use gst::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECOND: Duration = Duration::from_secs(1);
const CYCLES: usize = 1000;
const WORKERS: usize = 8;
/// Open descriptors may differ by a few (a runtime's lazily created ones, logging).
const FD_SLACK: usize = 4;
/// What the allocator may keep from the busiest moment (arenas of two runtimes' threads);
/// a leak of 8 KB per visit would show.
const RSS_SLACK: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// WebSocket, waits for a frame, closes with a close frame and waits for the answer.
    WebSocketClean,
    /// WebSocket, waits for a frame, drops the TCP connection (FIN).
    WebSocketDropped,
    /// WebSocket, waits for a frame, resets the TCP connection (RST).
    WebSocketReset,
    /// Sends the upgrade request and leaves before the answer.
    WebSocketAbandoned,
    /// MJPEG, reads a part or two, drops.
    Mjpeg,
    /// MJPEG, reads nothing, resets.
    MjpegReset,
    /// Snapshot, read in full.
    Snapshot,
}

const VISITS: [Visit; 7] = [
    Visit::WebSocketClean,
    Visit::WebSocketDropped,
    Visit::WebSocketReset,
    Visit::WebSocketAbandoned,
    Visit::Mjpeg,
    Visit::MjpegReset,
    Visit::Snapshot,
];

fn reset_on_drop(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

async fn raw_get(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("server accepts");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await
        .expect("request is sent");
    stream
}

async fn visit(port: u16, kind: Visit) {
    match kind {
        Visit::WebSocketClean => {
            let mut ws = connect(port, "/stream").await;
            assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
            ws.close(None).await.expect("close frame is sent");
            let drained = tokio::time::timeout(5 * SECOND, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            assert!(drained.is_ok(), "the server answers the close");
        }
        Visit::WebSocketDropped => {
            let mut ws = connect(port, "/stream").await;
            assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
        }
        Visit::WebSocketReset => {
            let mut stream = raw_websocket(port, "/stream").await;
            let first = read_server_frame(&mut stream, 5 * SECOND).await;
            assert_eq!(first.map(|f| f.opcode), Some(0x1), "hello first");
            reset_on_drop(&stream);
        }
        Visit::WebSocketAbandoned => {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream
                .write_all(upgrade_request(port, "/stream", "").as_bytes())
                .await
                .unwrap();
        }
        Visit::Mjpeg => {
            let mut stream = raw_get(port, "/stream.mjpg").await;
            assert_eq!(read_response_head(&mut stream, 5 * SECOND).await, Some(200));
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < 8 * 1024 {
                match tokio::time::timeout(5 * SECOND, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => got += n,
                    other => panic!("MJPEG stream ended early: {other:?}"),
                }
            }
        }
        Visit::MjpegReset => {
            let stream = raw_get(port, "/?action=stream").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            reset_on_drop(&stream);
        }
        Visit::Snapshot => {
            let response = http_get(port, "/snapshot.jpg", &[], usize::MAX).await;
            assert_eq!(response.status, 200);
            assert!(is_complete_jpeg(&response.body));
        }
    }
}

/// Runs `count` visits over `WORKERS` concurrent clients, kinds in turn.
async fn churn(port: u16, count: usize) {
    let workers = (0..WORKERS).map(|w| {
        tokio::spawn(async move {
            for i in (w..count).step_by(WORKERS) {
                visit(port, VISITS[i % VISITS.len()]).await;
            }
        })
    });
    for result in futures_util::future::join_all(workers).await {
        result.expect("a client worker panicked");
    }
}

/// Waits until no viewer is counted and the descriptor count has settled at or below `limit`.
async fn settle(server: &Host, fd_limit: usize) -> (bool, bool) {
    let clients_gone = eventually(15 * SECOND, || server.n_clients() == 0).await;
    let fds_back = eventually(10 * SECOND, || server.fd_count() <= fd_limit).await;
    (clients_gone, fds_back)
}

on_both_hosts!(a_thousand_viewers_come_and_go_and_leave_nothing_behind);

async fn a_thousand_viewers_come_and_go_and_leave_nothing_behind(kind: HostKind) {
    let _alone = serial().await;
    let server = Host::test_pattern(kind, 320, 240, 30, "");
    if let Host::InProcess { server, .. } = &server {
        // The element posts a bus message at each viewer change; an application reads them
        // (gst-launch does). Here nobody would, and the bus would keep thousands of them,
        // which is not the server's memory.
        server
            .pipeline
            .bus()
            .expect("a bus")
            .set_sync_handler(|_, _| gst::BusSyncReply::Drop);
    }
    // Warm up: the first visits of each kind create what lives for ever (runtime threads,
    // caches, the allocator's arenas); what is left after the thousand is what leaks.
    churn(server.port(), 4 * VISITS.len() * WORKERS).await;
    let (clients_gone, _) = settle(&server, usize::MAX).await;
    assert!(
        clients_gone,
        "{} viewers after the warm-up",
        server.n_clients()
    );
    tokio::time::sleep(SECOND / 2).await;
    let fd_start = server.fd_count();
    let rss_start = server.rss_bytes();
    let frames_in_start = server.frames_in();

    let started = Instant::now();
    churn(server.port(), CYCLES).await;
    let churn_time = started.elapsed();
    let fd_peak = server.fd_count();
    let (clients_gone, fds_back) = settle(&server, fd_start + FD_SLACK).await;
    let fd_end = server.fd_count();
    let rss_end = server.rss_bytes();
    let frames_in = server.frames_in();
    eprintln!(
        "{kind:?}: {CYCLES} visits in {churn_time:?}; fds {fd_start} -> {fd_peak} (right after) -> {fd_end}; \
         RSS {} -> {} MB; {} frames in meanwhile",
        rss_start / 1_000_000,
        rss_end / 1_000_000,
        frames_in - frames_in_start
    );

    assert!(
        clients_gone,
        "n-clients is {} after everyone left",
        server.n_clients()
    );
    assert!(
        fds_back,
        "open descriptors went from {fd_start} to {fd_end} (slack {FD_SLACK})"
    );
    assert!(
        rss_end <= rss_start + RSS_SLACK,
        "RSS went from {rss_start} to {rss_end}"
    );
    assert!(
        churn_time < 30 * SECOND,
        "the visits took {churn_time:?}: connecting is too slow"
    );
    // The stream went on throughout, and a newcomer is served as usual.
    assert!(
        frames_in - frames_in_start >= (churn_time.as_secs_f64() * 30.0 * 0.8) as u64,
        "the source kept its rate during the churn"
    );
    let mut ws = connect(server.port(), "/stream").await;
    count_share(&mut ws, server.port(), SECOND)
        .await
        .assert_most("a newcomer after the churn");
    drop(ws);
    server.finish();
}
