// SPDX-License-Identifier: MIT
//! RTSP for NVRs, Home Assistant and media servers: `rtsp://…/cam0` serves the H.264 of the
//! launcher's one encoder to ffprobe, ffmpeg (TCP and UDP), GStreamer's `rtspsrc` and VLC; the
//! first client opens the camera and the last one leaving releases it; `--auth-token` asks
//! for credentials; clients that vanish are timed out; hostile input is answered with errors.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::client::*;
use common::*;
use gst::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsjpeg_launcher::Config;
use wsjpeg_launcher::h264::H264Choice;
use wsjpeg_launcher::source::Source;

const SECOND: Duration = Duration::from_secs(1);
/// The launcher's linger in the tests and a margin for a loaded machine.
const RELEASED_WITHIN: Duration = Duration::from_secs(8);

fn rtsp_launcher(token: Option<&str>) -> Running {
    let mut config: Config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    config.server.auth_token = token.map(str::to_string);
    config.rtsp = Some(rtsp_config());
    Running::start(config)
}

fn url(running: &Running) -> String {
    format!(
        "rtsp://127.0.0.1:{}/cam0",
        running.rtsp_port.expect("RTSP serves")
    )
}

async fn run_async(program: &str, args: &[&str], within: Duration) -> Result<String, String> {
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_player(&program, &args, within)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// ffmpeg decodes `frames` pictures from the URL over `transport`: how many it reported.
async fn ffmpeg_frames(url: &str, transport: &str, frames: usize) -> Result<usize, String> {
    let frames = frames.to_string();
    let output = run_async(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "warning",
            "-rtsp_transport",
            transport,
            "-i",
            url,
            "-frames:v",
            &frames,
            "-f",
            "framecrc",
            "-",
        ],
        20 * SECOND,
    )
    .await?;
    // A keyframe cut in two (parameter sets before each of its slices) shows as two pictures
    // with one timestamp.
    if output.contains("non monotonically increasing") {
        return Err(format!("pictures share timestamps: {output}"));
    }
    Ok(output.lines().filter(|l| l.starts_with("0,")).count())
}

/// A GStreamer client: `rtspsrc` depayloaded (and decoded when `decode`), counting pictures.
struct GstClient {
    pipeline: gst::Pipeline,
    frames: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl GstClient {
    fn start(url: &str, decode: bool, extra: &str) -> GstClient {
        let decoder = if decode {
            "! h264parse ! avdec_h264 "
        } else {
            ""
        };
        let text = format!(
            "rtspsrc location={url} latency=100 {extra} ! rtph264depay {decoder}\
             ! fakesink name=out sync=false signal-handoffs=true"
        );
        let pipeline = gst::parse::launch(&text)
            .expect("client pipeline")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = frames.clone();
        pipeline
            .by_name("out")
            .expect("fakesink")
            .connect("handoff", false, move |_| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            });
        pipeline.set_state(gst::State::Playing).expect("plays");
        GstClient { pipeline, frames }
    }

    fn frames(&self) -> usize {
        self.frames.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let message = bus.pop_filtered(&[gst::MessageType::Error])?;
        match message.view() {
            gst::MessageView::Error(err) => Some(format!("{} ({:?})", err.error(), err.debug())),
            _ => None,
        }
    }
}

impl Drop for GstClient {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Sends one raw request and reads the answer's head: its status code and text (`None`: the
/// connection closed or nothing came).
async fn rtsp_exchange(stream: &mut TcpStream, request: &[u8]) -> Option<(u16, String)> {
    stream.write_all(request).await.ok()?;
    read_head(stream, 5 * SECOND).await
}

async fn read_head(stream: &mut TcpStream, within: Duration) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut byte))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

fn rtsp_clients(running: &Running) -> usize {
    let status = status_blocking(running.port);
    status["clients"]
        .as_array()
        .map(|clients| clients.iter().filter(|c| c["kind"] == "rtsp").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_h264_at_the_camera_size() {
    if !require_player("RTSP player tests", "ffprobe", "ffmpeg") {
        return;
    }
    let running = rtsp_launcher(None);
    let url = url(&running);
    let output = run_async(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "default=noprint_wrappers=1",
            &url,
        ],
        20 * SECOND,
    )
    .await
    .expect("ffprobe reads the stream");
    let size = format();
    assert!(output.contains("codec_name=h264"), "{output}");
    assert!(
        output.contains(&format!("width={}", size.width)),
        "{output}"
    );
    assert!(
        output.contains(&format!("height={}", size.height)),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_frames_over_tcp_and_udp() {
    if !require_player("RTSP player tests", "ffmpeg", "ffmpeg") {
        return;
    }
    let running = rtsp_launcher(None);
    let url = url(&running);
    for transport in ["tcp", "udp"] {
        let frames = ffmpeg_frames(&url, transport, 30).await;
        assert_eq!(frames, Ok(30), "over {transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtspsrc_decodes_sixty_frames() {
    let running = rtsp_launcher(None);
    let client = GstClient::start(&url(&running), true, "");
    let decoded = eventually(20 * SECOND, || client.frames() >= 60).await;
    assert!(
        decoded,
        "{} frames decoded, error: {:?}",
        client.frames(),
        client.error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlc_plays_the_stream() {
    if !require_player("RTSP player tests", "cvlc", "vlc-bin vlc-plugin-base")
        || !require_player("RTSP player tests", "setpriv", "util-linux")
    {
        return;
    }
    // Debian builds VLC without live555, its RTSP client: then VLC cannot play RTSP at all.
    let live555 = Command::new("sh")
        .args(["-c", "ls /usr/lib/*/vlc/plugins/access/ | grep -q live555"])
        .status()
        .is_ok_and(|s| s.success());
    if !live555 {
        // Not a missing package but a VLC that cannot read RTSP at all (Debian 12's, CI's): no
        // install fixes it, so even CI only says so.
        let why = "SKIP RTSP with VLC: this VLC has no live555 access module (Debian's has none)";
        eprintln!("{why}");
        if let Some(log) = std::env::var_os("WSJPEG_SKIP_LOG") {
            use std::io::Write as _;
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(file, "{why}");
            }
        }
        return;
    }
    let running = rtsp_launcher(None);
    let url = url(&running);
    let log = run_async("cvlc", &cvlc_args(&url), 30 * SECOND).await;
    // VLC may exit non-zero at the end of --run-time; what matters is that it decoded.
    let text = log.unwrap_or_else(|e| e);
    assert!(text.contains("codec (h264) started"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_clients_each_receive_twenty_five_frames_a_second() {
    let running = rtsp_launcher(None);
    let url = url(&running);
    let clients: Vec<GstClient> = (0..10)
        .map(|i| {
            let transport = if i % 2 == 0 { "protocols=tcp" } else { "" };
            GstClient::start(&url, false, transport)
        })
        .collect();
    assert!(
        eventually(20 * SECOND, || clients.iter().all(|c| c.frames() > 0)).await,
        "every client starts: {:?}",
        clients
            .iter()
            .map(|c| (c.frames(), c.error()))
            .collect::<Vec<_>>()
    );
    let before: Vec<usize> = clients.iter().map(GstClient::frames).collect();
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    for (i, (client, before)) in clients.iter().zip(before).enumerate() {
        let fps = (client.frames() - before) as f64 / window.as_secs_f64();
        assert!(fps >= 25.0, "client {i}: {fps:.1} frames/s");
    }
    assert_eq!(rtsp_clients(&running), 10);
    let view = running.view();
    assert_eq!(view.h264_starts, 1, "one encoder for all: {view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_client_opens_the_camera_and_the_last_releases_it() {
    let running = rtsp_launcher(None);
    assert!(
        always(SECOND, || !running.view().running).await,
        "idle before anyone asks"
    );
    let first = GstClient::start(&url(&running), false, "");
    assert!(eventually(15 * SECOND, || first.frames() > 10).await);
    let view = running.view();
    assert!(view.running && view.h264, "{view:?}");
    assert_eq!(rtsp_clients(&running), 1);
    let metrics = http_get(running.port, "/metrics", &[], usize::MAX).await;
    assert!(
        metrics.text().contains("wsjpeg_clients 1\n"),
        "{}",
        metrics.text()
    );

    let second = GstClient::start(&url(&running), false, "protocols=tcp");
    assert!(eventually(15 * SECOND, || second.frames() > 10).await);
    drop(first);
    let frames = second.frames();
    assert!(eventually(5 * SECOND, || second.frames() > frames + 30).await);
    assert!(running.view().running);
    drop(second);

    assert!(
        eventually(RELEASED_WITHIN, || {
            let view = running.view();
            !view.running && view.h264_elements.is_empty()
        })
        .await,
        "the last client left: camera and encoder stop: {:?}",
        running.view()
    );
    assert_eq!(rtsp_clients(&running), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_camera_has_its_mount_and_wakes_alone() {
    let mut config: Config = config(Source::TestPattern);
    config.sources.push(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    config.rtsp = Some(rtsp_config());
    let running = Running::start(config);
    let port = running.rtsp_port.expect("RTSP serves");
    let client = GstClient::start(&format!("rtsp://127.0.0.1:{port}/cam1"), false, "");
    assert!(
        eventually(15 * SECOND, || client.frames() > 10).await,
        "{:?}",
        client.error()
    );
    assert!(running.view_of(1).running && running.view_of(1).h264);
    assert!(!running.view_of(0).running, "{:?}", running.view_of(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_cannot_open_is_said_at_once() {
    let mut config: Config = config(Source::Device("/dev/video-missing".into()));
    config.h264.choice = H264Choice::X264enc;
    config.rtsp = Some(rtsp_config());
    let running = Running::start(config);
    // A snapshot request wakes the camera, which fails.
    let _ = http_get(running.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert!(
        eventually(10 * SECOND, || {
            status_blocking(running.port)["camera"]["state"] == "error"
        })
        .await
    );
    let port = running.rtsp_port.expect("RTSP serves");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    let answer = rtsp_exchange(
        &mut stream,
        format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url(&running)).as_bytes(),
    )
    .await;
    assert_eq!(answer.map(|(code, _)| code), Some(503));
    assert!(started.elapsed() < 2 * SECOND, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_a_camera_holds_up_no_other_client() {
    let mut config: Config = config(Source::TestPattern);
    config
        .sources
        .push(Source::Device("/dev/video-missing".into()));
    config.h264.choice = H264Choice::X264enc;
    config.rtsp = Some(rtsp_config());
    let running = Running::start(config);
    let port = running.rtsp_port.expect("RTSP serves");
    let watcher = GstClient::start(&url(&running), false, "protocols=tcp");
    assert!(eventually(15 * SECOND, || watcher.frames() > 10).await);
    // The missing camera's media waits for units that never come.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(
            format!("DESCRIBE rtsp://127.0.0.1:{port}/cam1 RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    let frames = watcher.frames();
    tokio::time::sleep(3 * SECOND).await;
    let fps = (watcher.frames() - frames) as f64 / 3.0;
    assert!(fps >= 25.0, "the watcher got {fps:.1} frames/s meanwhile");
    let newcomer = GstClient::start(&url(&running), false, "");
    assert!(
        eventually(5 * SECOND, || newcomer.frames() > 10).await,
        "a newcomer is served meanwhile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_refuses_one_more_with_503() {
    let mut config: Config = config(Source::TestPattern);
    config.h264.choice = H264Choice::X264enc;
    config.server.max_clients = 1;
    config.rtsp = Some(rtsp_config());
    let running = Running::start(config);
    let url = url(&running);
    let first = GstClient::start(&url, false, "");
    assert!(eventually(15 * SECOND, || first.frames() > 10).await);
    let port = running.rtsp_port.expect("RTSP serves");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let answer = rtsp_exchange(
        &mut stream,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(answer.map(|(code, _)| code), Some(503));
    let frames = first.frames();
    assert!(eventually(5 * SECOND, || first.frames() > frames + 30).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_asks_for_credentials() {
    let running = rtsp_launcher(Some("s3cret"));
    let port = running.rtsp_port.expect("RTSP serves");
    let url = url(&running);
    let describe = |authorization: &str| {
        format!(
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n{authorization}\r\n"
        )
    };
    let basic = |user: &str, password: &str| {
        use base64_encoding::encode;
        format!(
            "Authorization: Basic {}\r\n",
            encode(format!("{user}:{password}").as_bytes())
        )
    };
    for (what, header) in [
        ("none", String::new()),
        ("a wrong token", basic("wsjpeg", "wrong")),
        ("a wrong user", basic("admin", "s3cret")),
    ] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let answer = rtsp_exchange(&mut stream, describe(&header).as_bytes()).await;
        let (code, head) = answer.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(code, 401, "{what}: {head}");
        assert!(head.contains("WWW-Authenticate"), "{what}: {head}");
    }
    assert!(
        always(SECOND, || !running.view().running).await,
        "refused clients do not wake the camera"
    );

    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let answer = rtsp_exchange(&mut stream, describe(&basic("wsjpeg", "s3cret")).as_bytes()).await;
    let (code, head) = answer.expect("an answer");
    assert_eq!(code, 200, "{head}");
    drop(stream);

    // Players put the credentials in the URL.
    let with_credentials = url.replace("rtsp://", "rtsp://wsjpeg:s3cret@");
    let client = GstClient::start(&with_credentials, false, "");
    assert!(
        eventually(15 * SECOND, || client.frames() > 10).await,
        "{:?}",
        client.error()
    );
    let refused = GstClient::start(&url, false, "");
    assert!(
        eventually(10 * SECOND, || refused.error().is_some()
            || refused.frames() > 0)
        .await
    );
    assert_eq!(refused.frames(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_is_timed_out_and_freed() {
    let running = rtsp_launcher(None);
    let port = running.rtsp_port.expect("RTSP serves");
    let url = url(&running);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (code, head) = rtsp_exchange(
        &mut stream,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n").as_bytes(),
    )
    .await
    .expect("DESCRIBE answered");
    assert_eq!(code, 200, "{head}");
    // Read the SDP body so the next answer starts clean.
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    // UDP to ports nobody reads: the client goes silent after PLAY (no RTCP, no keep-alive).
    let (code, head) = rtsp_exchange(
        &mut stream,
        format!(
            "SETUP {url}/stream=0 RTSP/1.0\r\nCSeq: 2\r\n\
             Transport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("SETUP answered");
    assert_eq!(code, 200, "{head}");
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
        .expect("a session");
    let (code, head) = rtsp_exchange(
        &mut stream,
        format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("PLAY answered");
    assert_eq!(code, 200, "{head}");
    assert!(eventually(10 * SECOND, || running.view().h264).await);
    assert_eq!(rtsp_clients(&running), 1);

    // The session times out (2 s in the tests), the client is closed and everything it held
    // is released.
    assert!(
        eventually(2 * RELEASED_WITHIN, || {
            let view = running.view();
            !view.running && view.h264_elements.is_empty()
        })
        .await,
        "a silent client is timed out: {:?}",
        running.view()
    );
    assert_eq!(rtsp_clients(&running), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sets_up_is_closed_and_frees_the_camera() {
    let running = rtsp_launcher(None);
    let port = running.rtsp_port.expect("RTSP serves");
    let url = url(&running);
    let mut describer = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (code, _) = rtsp_exchange(
        &mut describer,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes(),
    )
    .await
    .expect("DESCRIBE answered");
    assert_eq!(code, 200);
    assert!(running.view().running);
    let mut mute = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    mute.write_all(b"\x00\x01 no request line").await.unwrap();
    // Both are closed once the session timeout (2 s in the tests) passes without a session.
    for (what, stream) in [("describer", &mut describer), ("mute", &mut mute)] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(10 * SECOND, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "{what} is closed");
    }
    assert!(
        eventually(RELEASED_WITHIN, || !running.view().running).await,
        "the camera is released: {:?}",
        running.view()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_errors_and_others_are_served() {
    let running = rtsp_launcher(None);
    let port = running.rtsp_port.expect("RTSP serves");
    let url = url(&running);
    let watcher = GstClient::start(&url, false, "protocols=tcp");
    assert!(eventually(15 * SECOND, || watcher.frames() > 10).await);

    let answers = [
        ("garbage", b"\x00\x01hello there\r\n\r\n".to_vec()),
        (
            "an unknown method",
            format!("BREW {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
        ),
        (
            "SETUP for another path",
            format!(
                "SETUP rtsp://127.0.0.1:{port}/other/stream=0 RTSP/1.0\r\nCSeq: 1\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            )
            .into_bytes(),
        ),
        (
            "DESCRIBE of a camera that does not exist",
            format!("DESCRIBE rtsp://127.0.0.1:{port}/cam7 RTSP/1.0\r\nCSeq: 1\r\n\r\n")
                .into_bytes(),
        ),
        (
            "huge headers",
            format!(
                "OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-Big: {}\r\n\r\n",
                "a".repeat(1 << 20)
            )
            .into_bytes(),
        ),
    ];
    for (what, request) in answers {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        match rtsp_exchange(&mut stream, &request).await {
            // gst-rtsp-server reads a header line into a fixed buffer and drops the rest of a
            // long one: the request is answered as if it were short, memory stays bounded.
            Some((code, _)) if what == "huge headers" => assert_eq!(code, 200),
            Some((code, head)) => assert!(code >= 400, "{what}: {head}"),
            // What is no request line at all gets no answer (the library waits for one).
            None => assert_eq!(what, "garbage", "{what}: no answer"),
        }
    }
    let frames = watcher.frames();
    assert!(
        eventually(5 * SECOND, || watcher.frames() > frames + 30).await,
        "the watcher is still served"
    );
    assert!(watcher.error().is_none());
    let newcomer = GstClient::start(&url, false, "");
    assert!(eventually(15 * SECOND, || newcomer.frames() > 10).await);
}

/// Base64 for a Basic header, without a dependency for it.
mod base64_encoding {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// The page's "?" panel lists the RTSP address from `/status`: the port and path are there
/// before the camera ever runs, and stay while it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_the_rtsp_port_and_path() {
    let running = rtsp_launcher(None);
    let port = running.rtsp_port.expect("RTSP serves");
    let status = status_blocking(running.port);
    assert_eq!(status["source"]["rtsp-port"], port, "{status}");
    assert_eq!(status["source"]["rtsp-path"], "/cam0", "{status}");
}
