// SPDX-License-Identifier: MIT
//! https and wss on the same port, and clients that botch the handshake hurt nobody.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsjpeg_server::{Config, Settings, TlsFiles};

const SECOND: Duration = Duration::from_secs(1);

/// A server that serves https and wss with `cert`, fed a test pattern.
fn tls_pattern(cert: &Certificate, width: u32, height: u32, fps: u32, settings: Settings) -> Live {
    let live = Live::with_config(Config {
        address: "127.0.0.1".into(),
        port: 0,
        tls: Some(TlsFiles {
            certificate: cert.certificate_path(),
            key: cert.key_path(),
        }),
        settings,
        h264: None,
    });
    live.start_pattern(width, height, fps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_on_the_same_port() {
    let cert = Certificate::generate();
    let server = tls_pattern(&cert, 320, 240, 30, Settings::default());
    let status = https_get(&cert, server.port, "/status").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(status.contains("\"connected_clients\""));

    let tls = cert.connect(server.port).await;
    let url = format!("wss://localhost:{}/stream", server.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    use futures_util::StreamExt;
    let mut frames = 0;
    let frames_in = || server.frames_in();
    let before = frames_in();
    let deadline = Instant::now() + 2 * SECOND;
    while Instant::now() < deadline {
        match tokio::time::timeout(SECOND, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(data)))) => {
                assert!(is_complete_jpeg(&data));
                frames += 1;
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("wss stream ended: {other:?}"),
        }
    }
    Share {
        received: frames,
        taken_in: frames_in() - before,
    }
    .assert_most("the wss viewer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_failed_handshakes_do_not_hold_up_others() {
    let cert = Certificate::generate();
    let server = tls_pattern(&cert, 320, 240, 30, Settings::default());
    // Clients that open TCP and never start TLS, and some that send garbage instead.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    for _ in 0..5 {
        let mut garbage = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        garbage
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        idle.push(garbage);
    }
    // A browser that typed http:// for the TLS port is sent to https://, same host and path.
    let plain = http_get_raw(server.port, "Host: cam.local:3443\r\n").await;
    assert!(
        plain.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{plain}"
    );
    assert!(
        plain.contains("\r\nLocation: https://cam.local:3443/status\r\n"),
        "{plain}"
    );
    // Without a Host to send it to, it is told what to do, in plain text it can read.
    let plain = http_get_raw(server.port, "").await;
    assert!(plain.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{plain}");
    assert!(
        plain.ends_with("\r\n\r\nThis port serves HTTPS: use https:// and wss:// URLs.\n"),
        "{plain}"
    );

    let started = Instant::now();
    let status = https_get(&cert, server.port, "/healthz").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Not after the idle handshakes' 10 s deadline: they do not hold up a good client.
    assert!(
        started.elapsed() < 5 * SECOND,
        "a good client is served at once: {:?}",
        started.elapsed()
    );
    drop(idle);
}

async fn http_get_raw(port: u16, host_header: &str) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET /status HTTP/1.1\r\n{host_header}Connection: close\r\n\r\n");
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(3 * SECOND, tcp.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_token_together() {
    let cert = Certificate::generate();
    let settings = Settings {
        auth_token: Some("Tls-Token-41c".into()),
        ..Settings::default()
    };
    let server = tls_pattern(&cert, 320, 240, 30, settings);
    let port = server.port;
    let refused = https_get(&cert, port, "/status").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let allowed = https_get(&cert, port, "/status?token=Tls-Token-41c").await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    let health = https_get(&cert, port, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "/healthz needs no token: {health}"
    );

    // wss: without the token the handshake is refused with 401; with it, frames arrive.
    let mut tls = cert.connect(port).await;
    tls.write_all(upgrade_request(port, "/stream", "").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(5 * SECOND, tls.read(&mut head))
        .await
        .expect("an answer in time")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let tls = cert.connect(port).await;
    let url = format!("wss://localhost:{port}/stream?token=Tls-Token-41c");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    use futures_util::StreamExt;
    let frame = tokio::time::timeout(5 * SECOND, async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(data))) => return data,
                Some(Ok(_)) => continue,
                other => panic!("wss stream ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a frame in time");
    assert!(is_complete_jpeg(&frame));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_the_tls_handshake_is_closed_after_ten_seconds() {
    let cert = Certificate::generate();
    let server = tls_pattern(&cert, 160, 120, 10, Settings::default());
    // Half a ClientHello, then nothing.
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00])
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(20 * SECOND, stalled.read_to_end(&mut rest)).await;
    let after = started.elapsed();
    eprintln!("stalled TLS handshake closed after {after:?}");
    assert!(ended.is_ok(), "the stalled handshake was never cut off");
    assert!(
        after >= 9 * SECOND && after < 15 * SECOND,
        "cut off after {after:?}, the deadline is 10 s"
    );
    // Meanwhile everyone else was served.
    let health = https_get(&cert, server.port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}
