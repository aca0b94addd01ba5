// SPDX-License-Identifier: MIT
//! TLS as the element sets it up: certificate and key files that fail the state change, and a
//! gst-launch-1.0 host that TLS clients leaving mid-frame cannot kill. What the server does
//! with TLS clients is tested in the server's own `tls.rs`.

#[path = "../../wsjpeg-server/tests/common/certificate.rs"]
mod certificate;
mod common;

use std::time::Duration;

use certificate::*;
use common::*;
use gst::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECOND: Duration = Duration::from_secs(1);

/// The element's properties for serving with `cert`.
fn sink_props(cert: &Certificate) -> String {
    format!(
        "tls-certificate={} tls-key={}",
        cert.certificate_path().display(),
        cert.key_path().display()
    )
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
    let mut host = GstLaunch::repeating(&big, 30, &sink_props(&cert));
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
