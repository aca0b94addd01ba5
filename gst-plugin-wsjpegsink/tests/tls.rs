// SPDX-License-Identifier: MIT
//! https and wss on the same port, and clients that botch the handshake hurt nobody.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECOND: Duration = Duration::from_secs(1);

struct Certificate {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl Certificate {
    fn generate() -> Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "wsjpeg-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Certificate {
            der: cert.der().clone(),
            dir,
        }
    }

    fn sink_props(&self) -> String {
        format!(
            "tls-certificate={} tls-key={}",
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        )
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn connect(&self, port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(5 * SECOND, self.connector().connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake succeeds")
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn https_get(cert: &Certificate, port: u16, path: &str) -> String {
    let mut tls = cert.connect(port).await;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(5 * SECOND, tls.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_on_the_same_port() {
    let cert = Certificate::generate();
    let server = Server::test_pattern(320, 240, 30, &cert.sink_props());
    let status = https_get(&cert, server.port, "/status").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(status.contains("\"connected_clients\""));

    let tls = cert.connect(server.port).await;
    let url = format!("wss://localhost:{}/stream", server.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    use futures_util::StreamExt;
    let mut frames = 0;
    let frames_in = || server.stats().get::<u64>("frames-in").unwrap_or(0);
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
    let server = Server::test_pattern(320, 240, 30, &cert.sink_props());
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
    // A plain-http client on the TLS port is told to use https, in plain text it can read.
    let plain = http_get_raw(server.port).await;
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

async fn http_get_raw(port: u16) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = tcp
        .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(3 * SECOND, tcp.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn missing_key_file_fails_the_state_change_naming_it() {
    init();
    let cert = Certificate::generate();
    let pipeline = gst::parse::launch(&format!(
        "appsrc ! wsjpegsink port=0 tls-certificate={} tls-key=/nonexistent/key.pem",
        cert.dir.join("cert.pem").display()
    ))
    .unwrap();
    assert!(pipeline.set_state(gst::State::Ready).is_err());
    let message = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])
        .unwrap();
    let gst::MessageView::Error(err) = message.view() else {
        unreachable!()
    };
    assert!(
        err.error().to_string().contains("/nonexistent/key.pem"),
        "{}",
        err.error()
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn certificate_without_key_is_refused() {
    init();
    let cert = Certificate::generate();
    let sink = gst::ElementFactory::make("wsjpegsink")
        .property("port", 0u32)
        .property(
            "tls-certificate",
            cert.dir.join("cert.pem").display().to_string(),
        )
        .build()
        .unwrap();
    assert!(sink.set_state(gst::State::Ready).is_err());
    let _ = sink.set_state(gst::State::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_that_hang_up_mid_frame_never_kill_a_gst_launch_host() {
    let cert = Certificate::generate();
    let big = encode_jpeg(1280, 720, "snow", 20);
    let mut host = GstLaunch::repeating(&big, 30, &cert.sink_props());
    let port = host.port;
    for round in 0..40 {
        let mut tls = cert.connect(port).await;
        let request = if round % 2 == 0 {
            format!("GET /stream.mjpg HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n")
        } else {
            upgrade_request(port, "/stream", "")
        };
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 32 * 1024];
        let mut got = 0;
        while got < 20_000 {
            match tokio::time::timeout(5 * SECOND, tls.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got += n,
                other => panic!("the stream ended early: {other:?}"),
            }
        }
        let (tcp, _) = tls.get_ref();
        if round % 4 < 2 {
            socket2::SockRef::from(tcp)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
    }
    tokio::time::sleep(SECOND / 2).await;
    host.assert_alive("TLS viewers leaving mid-frame");
    let health = https_get(&cert, port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    host.assert_clean_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_token_together() {
    let cert = Certificate::generate();
    let props = format!("{} auth-token=Tls-Token-41c", cert.sink_props());
    let server = Server::test_pattern(320, 240, 30, &props);
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
    let server = Server::test_pattern(160, 120, 10, &cert.sink_props());
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
