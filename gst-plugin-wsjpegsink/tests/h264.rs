// SPDX-License-Identifier: MIT
//! `wsh264sink`: H.264 on the port of a `wsjpegsink`, for viewers that connect with
//! `/stream?codec=h264`. Real x264 pipelines, real WebSocket clients, ffmpeg to decode what
//! they received.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use wsjpeg_server::media::WSJ_HEADER_LEN;
use wsjpeg_server::protocol::{MetaHeader, parse_meta_header, unix_time_us};

const SECOND: Duration = Duration::from_secs(1);

/// A live pattern served as JPEG by `wsjpegsink name=sink` and as H.264 (a keyframe every
/// `keyframe_frames` frames) by `wsh264sink name=h264`.
fn h264_pipeline(keyframe_frames: u32, bitrate_kbps: u32, pattern: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} horizontal-speed=4 \
         ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! tee name=t \
         t. ! queue ! jpegenc quality=80 ! wsjpegsink name=sink port=0 address=127.0.0.1 \
         t. ! queue ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 \
            key-int-max={keyframe_frames} bitrate={bitrate_kbps} \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! wsh264sink name=h264"
    )
}

fn h264_server(keyframe_frames: u32, bitrate_kbps: u32) -> Server {
    Server::launch(&h264_pipeline(keyframe_frames, bitrate_kbps, "smpte"))
}

/// One access unit as a viewer receives it.
struct Unit {
    header: MetaHeader,
    annex_b: Vec<u8>,
}

impl Unit {
    fn parse(message: &[u8]) -> Unit {
        let header = parse_meta_header(message).expect("every H.264 message has a header");
        assert_eq!(header.len, WSJ_HEADER_LEN, "the H.264 header is 32 bytes");
        assert!(
            message[25..WSJ_HEADER_LEN].iter().all(|b| *b == 0),
            "reserved bytes are zero"
        );
        Unit {
            header,
            annex_b: message[header.len..].to_vec(),
        }
    }

    /// The types of its NAL units (7 SPS, 8 PPS, 5 IDR slice, 1 other slice, 9 delimiter).
    fn nal_types(&self) -> Vec<u8> {
        let data = &self.annex_b;
        (0..data.len().saturating_sub(3))
            .filter(|&i| data[i..i + 3] == [0, 0, 1])
            .map(|i| data[i + 3] & 0x1F)
            .collect()
    }
}

async fn next_unit(ws: &mut WebSocket, within: Duration) -> Option<Unit> {
    next_frame(ws, within).await.map(|m| Unit::parse(&m))
}

/// Decodes a stream of access units with ffmpeg; returns how many frames it decoded, or what
/// it complained about.
fn decode_with_ffmpeg(units: &[Unit], label: &str) -> Result<u64, String> {
    let dir = unique_temp_dir(label);
    let file = dir.join("captured.h264");
    let stream: Vec<u8> = units.iter().flat_map(|u| u.annex_b.clone()).collect();
    std::fs::write(&file, stream).map_err(|e| e.to_string())?;
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| format!("ffmpeg runs (package ffmpeg): {e}"))?;
    let complaints = String::from_utf8_lossy(&decoded.stderr).trim().to_string();
    if !decoded.status.success() || !complaints.is_empty() {
        return Err(complaints);
    }
    let frames = count_frames_with_ffprobe(&file)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(frames)
}

fn count_frames_with_ffprobe(file: &Path) -> Result<u64, String> {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            "h264",
            "-count_frames",
            "-select_streams",
            "v:0",
        ])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .map_err(|e| format!("ffprobe runs: {e}"))?;
    let text = String::from_utf8_lossy(&probe.stdout);
    text.trim().parse().map_err(|_| {
        format!(
            "ffprobe said {text:?} {:?}",
            String::from_utf8_lossy(&probe.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_viewer_starts_on_a_keyframe_and_what_it_gets_decodes() {
    let server = h264_server(30, 1000);
    let mut ws = connect(server.port, "/stream?codec=h264").await;
    let hello = next_text_of_type(&mut ws, "hello", 5 * SECOND)
        .await
        .expect("a hello");
    assert_eq!(hello["codec"], "h264", "{hello}");
    assert!(
        hello["h264"].is_object(),
        "the hello says H.264 is offered: {hello}"
    );
    // Before the first unit the viewer is told what to configure its decoder with, as the
    // SPS and the caps say it.
    let announced = next_text_of_type(&mut ws, "h264", 5 * SECOND)
        .await
        .expect("the codec is announced");
    assert!(
        announced["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.42")),
        "constrained baseline from x264 ultrafast: {announced}"
    );
    assert_eq!(announced["width"], 320, "{announced}");
    assert_eq!(announced["height"], 240, "{announced}");

    let first = next_unit(&mut ws, 5 * SECOND)
        .await
        .expect("an access unit");
    assert!(first.header.keyframe, "the first access unit is a keyframe");
    let types = first.nal_types();
    for (nal, name) in [(7, "SPS"), (8, "PPS"), (5, "IDR slice")] {
        assert!(
            types.contains(&nal),
            "the first unit has its {name}: {types:?}"
        );
    }
    let position = |nal| types.iter().position(|t| *t == nal);
    assert!(
        position(7) < position(5) && position(8) < position(5),
        "{types:?}"
    );
    let age_ms = unix_time_us().saturating_sub(first.header.capture_time_us) / 1000;
    assert!(
        age_ms < 2000,
        "the capture time is the frame's: {age_ms} ms old"
    );

    let mut units = vec![first];
    while units.len() < 100 {
        units.push(
            next_unit(&mut ws, 2 * SECOND)
                .await
                .expect("units keep coming"),
        );
    }
    for pair in units.windows(2) {
        assert_eq!(
            pair[1].header.sequence,
            pair[0].header.sequence + 1,
            "a viewer that keeps up gets every access unit in order"
        );
    }
    for unit in &units {
        assert_eq!(
            unit.header.keyframe,
            unit.nal_types().contains(&5),
            "the keyframe flag says whether the unit has an IDR slice"
        );
    }
    let keyframes = units.iter().filter(|u| u.header.keyframe).count();
    assert!(
        (3..=5).contains(&keyframes),
        "a keyframe every 30 frames: {keyframes} in 100"
    );
    let decoded = decode_with_ffmpeg(&units, "h264-decode").expect("ffmpeg decodes it cleanly");
    assert_eq!(decoded, units.len() as u64, "one picture per access unit");

    // A viewer joining a running stream learns the codec from its hello already.
    let mut late = connect(server.port, "/stream?codec=h264").await;
    let hello = next_text_of_type(&mut late, "hello", 5 * SECOND)
        .await
        .expect("a hello");
    assert_eq!(hello["h264"]["codec"], announced["codec"], "{hello}");
    assert_eq!(hello["h264"]["width"], 320, "{hello}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_mjpeg_and_snapshots_go_on_beside_h264_viewers() {
    let server = h264_server(30, 1000);
    let mut h264 = connect(server.port, "/stream?codec=h264").await;
    let mut jpeg = connect(server.port, "/stream").await;
    let h264_sink = server.pipeline.by_name("h264").expect("wsh264sink");
    assert!(
        eventually(5 * SECOND, || h264_sink.property::<u32>("n-clients") == 1).await,
        "wsh264sink counts its viewer"
    );
    let h264_reader = tokio::spawn(async move {
        let mut units = 0;
        let deadline = Instant::now() + 2 * SECOND;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if next_unit(&mut h264, left).await.is_some() {
                units += 1;
            }
        }
        (units, h264)
    });
    let share = count_share(&mut jpeg, server.port, 2 * SECOND).await;
    let (units, h264) = h264_reader.await.expect("reader");
    share.assert_most("the JPEG viewer beside the H.264 one");
    // Both branches encode every frame of one source: the H.264 viewer gets about as many
    // units as the server took JPEG frames in over the same window.
    assert!(
        units as f64 >= 0.75 * share.taken_in as f64,
        "H.264 beside JPEG: {units} units while the server took in {} JPEG frames",
        share.taken_in
    );

    let snapshot = http_get(server.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(snapshot.status, 200);
    assert!(is_complete_jpeg(&snapshot.body), "a whole JPEG snapshot");
    let mjpeg = http_get(server.port, "/stream.mjpg", &[], 60_000).await;
    assert_eq!(mjpeg.status, 200);
    assert!(
        mjpeg.body.windows(2).filter(|w| *w == [0xFF, 0xD8]).count() >= 2,
        "MJPEG frames flow"
    );

    drop(h264);
    assert!(
        eventually(5 * SECOND, || h264_sink.property::<u32>("n-clients") == 0).await,
        "and forgets it when it leaves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_viewer_asks_upstream_for_a_keyframe() {
    // A keyframe every 20 s: without the force-key-unit event a viewer would wait that long.
    let server = h264_server(600, 1000);
    let mut early = connect(server.port, "/stream?codec=h264").await;
    next_unit(&mut early, 5 * SECOND)
        .await
        .expect("the first keyframe");
    tokio::time::sleep(2 * SECOND).await;
    for round in 0..2 {
        let joined = Instant::now();
        let mut ws = connect(server.port, "/stream?codec=h264").await;
        let first = next_unit(&mut ws, 5 * SECOND)
            .await
            .expect("an access unit");
        assert!(
            first.header.keyframe,
            "round {round}: it starts on a keyframe"
        );
        // The interval is 20 s: a keyframe within a few seconds came because it was asked for.
        assert!(
            joined.elapsed() < 5 * SECOND,
            "round {round}: the keyframe came on request, after {:?}",
            joined.elapsed()
        );
        tokio::time::sleep(SECOND).await;
    }
    // The early viewer went on without a break through the keyframes the others asked for.
    let mut last = None;
    for _ in 0..30 {
        let unit = next_unit(&mut early, 2 * SECOND).await.expect("units");
        if let Some(previous) = last {
            assert_eq!(unit.header.sequence, previous + 1);
        }
        last = Some(unit.header.sequence);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_drops_to_the_next_keyframe_and_the_others_are_unaffected() {
    // A keyframe a second and a big stream, so that a viewer that stops reading falls behind
    // fast, with a socket that holds little.
    let server = Server::launch(&h264_pipeline(30, 8000, "snow"));
    let request = upgrade_request(server.port, "/stream?codec=h264", "");
    let mut stalled = stalled_client(server.port, &request).await;
    assert_eq!(
        read_response_head(&mut stalled, 5 * SECOND).await,
        Some(101)
    );
    let mut steady = connect(server.port, "/stream?codec=h264").await;

    let steady_reader = tokio::spawn(async move {
        let mut sequences = Vec::new();
        let deadline = Instant::now() + 5 * SECOND;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(unit) = next_unit(&mut steady, left).await {
                sequences.push((unit.header.sequence, unit.header.keyframe));
            }
        }
        sequences
    });
    tokio::time::sleep(3 * SECOND).await;

    let resumed = Instant::now();
    let mut units = Vec::new();
    while resumed.elapsed() < 2 * SECOND {
        let Some(frame) = read_server_frame(&mut stalled, 2 * SECOND).await else {
            break;
        };
        if frame.opcode == 2 {
            units.push(Unit::parse(&frame.payload));
        }
    }
    let sequences = steady_reader.await.expect("steady reader");
    // The stalled viewer costs the steady one nothing: it gets (nearly) every unit the server
    // published meanwhile. A busy machine may make it fall behind now and then, and then it
    // goes on at a keyframe, as any viewer does; a fan-out held up by the stalled socket would
    // give it next to nothing.
    let (first, last) = (sequences[0].0, sequences[sequences.len() - 1].0);
    let published = last - first + 1;
    assert!(
        sequences.len() as f64 >= 0.75 * published as f64,
        "the steady viewer got {} of {published} units",
        sequences.len()
    );
    assert!(
        sequences.windows(2).all(|w| w[1].0 == w[0].0 + 1 || w[1].1),
        "the steady viewer's stream stays decodable: any gap ends at a keyframe"
    );

    assert!(!units.is_empty(), "the stalled viewer gets units again");
    assert!(units[0].header.keyframe, "it started on a keyframe");
    let mut gaps = 0;
    for pair in units.windows(2) {
        if pair[1].header.sequence != pair[0].header.sequence + 1 {
            gaps += 1;
            assert!(
                pair[1].header.keyframe,
                "after dropping frames it goes on at a keyframe"
            );
        }
    }
    assert!(gaps >= 1, "it fell behind and dropped frames");
    let newest = units.last().expect("units");
    let age_ms = unix_time_us().saturating_sub(newest.header.capture_time_us) / 1000;
    assert!(
        age_ms < 2000,
        "within a keyframe interval and a second it is live again: {age_ms} ms old"
    );
    // Everything it got, gaps included, decodes: one picture per unit.
    let decoded = decode_with_ffmpeg(&units, "h264-resumed").expect("what it got decodes");
    assert_eq!(decoded, units.len() as u64, "one picture per unit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_h264_where_there_is_none_is_refused() {
    let server = Server::test_pattern(320, 240, 30, "");
    let mut ws = connect(server.port, "/stream?codec=h264").await;
    let hello = next_text_of_type(&mut ws, "hello", 5 * SECOND).await;
    if let Some(hello) = &hello {
        assert!(hello.get("h264").is_none_or(|h| h.is_null()), "{hello}");
    }
    let error = next_text_of_type(&mut ws, "error", 5 * SECOND)
        .await
        .expect("an error message");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("H.264")),
        "{error}"
    );
    assert_eq!(close_code(&mut ws, 5 * SECOND).await, Some(1003));
    let mut jpeg = connect(server.port, "/stream").await;
    assert!(count_frames(&mut jpeg, SECOND).await > 10, "JPEG goes on");
}

/// Runs `description` and returns the first error on its bus: its source's name and text.
fn first_error(description: &str, feed: bool) -> (String, String, String) {
    init();
    let pipeline = gst::parse::launch(description)
        .expect("pipeline parses")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let _ = pipeline.set_state(gst::State::Playing);
    if feed && let Some(src) = pipeline.by_name("src") {
        let src = src.downcast::<gst_app::AppSrc>().expect("an appsrc");
        let _ = src.push_buffer(gst::Buffer::from_slice(vec![0u8, 0, 0, 1, 0x65, 0x88]));
    }
    let bus = pipeline.bus().expect("a bus");
    let error = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error on the bus");
    let gst::MessageView::Error(error) = error.view() else {
        unreachable!("filtered for errors")
    };
    let source = error
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let text = error.error().to_string();
    let debug = error.debug().map(|d| d.to_string()).unwrap_or_default();
    let _ = pipeline.set_state(gst::State::Null);
    (source, text, debug)
}

#[test]
fn caps_other_than_byte_stream_access_units_are_refused_clearly() {
    let (source, text, debug) = first_error(
        "videotestsrc is-live=true ! jpegenc ! wsjpegsink name=sink port=0 address=127.0.0.1 \
         appsrc name=src caps=video/x-h264,stream-format=avc,alignment=au ! wsh264sink name=h264",
        true,
    );
    assert_eq!(source, "h264", "the sink says it: {text}");
    assert!(
        text.contains("stream-format=byte-stream") && text.contains("alignment=au"),
        "{text}"
    );
    assert!(debug.contains("h264parse"), "and how to fix it: {debug}");
}

#[test]
fn wsh264sink_needs_one_wsjpegsink_to_serve_on() {
    let (source, text, _) = first_error(
        "appsrc name=src caps=video/x-h264,stream-format=byte-stream,alignment=au ! wsh264sink name=h264",
        false,
    );
    assert_eq!(source, "h264");
    assert!(text.contains("no wsjpegsink"), "{text}");

    let (_, text, _) = first_error(
        "videotestsrc is-live=true ! jpegenc ! wsjpegsink name=a port=0 address=127.0.0.1 \
         videotestsrc is-live=true ! jpegenc ! wsjpegsink name=b port=0 address=127.0.0.1 \
         appsrc name=src caps=video/x-h264,stream-format=byte-stream,alignment=au ! wsh264sink",
        false,
    );
    assert!(text.contains("sink=NAME"), "{text}");

    let (_, text, _) = first_error(
        "videotestsrc is-live=true ! jpegenc ! wsjpegsink name=a port=0 address=127.0.0.1 \
         appsrc name=src caps=video/x-h264,stream-format=byte-stream,alignment=au ! wsh264sink sink=b",
        false,
    );
    assert!(text.contains("named 'b'"), "{text}");

    let (_, text, _) = first_error(
        "videotestsrc is-live=true ! jpegenc ! wsjpegsink name=fed-twice port=0 address=127.0.0.1 \
         appsrc caps=video/x-h264,stream-format=byte-stream,alignment=au ! wsh264sink sink=fed-twice \
         appsrc caps=video/x-h264,stream-format=byte-stream,alignment=au ! wsh264sink sink=fed-twice",
        false,
    );
    assert!(
        text.contains("another wsh264sink already serves H.264 on fed-twice"),
        "{text}"
    );
}

#[test]
fn gst_launch_serves_h264_and_survives_a_viewer_that_vanishes() {
    let description = h264_pipeline(30, 1000, "smpte").replace("name=sink ", "");
    let mut process = GstLaunch::launch(&description);
    let port = process.port;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for _ in 0..3 {
            let mut ws = connect(port, "/stream?codec=h264").await;
            next_unit(&mut ws, 5 * SECOND).await.expect("a unit");
            // Gone without a close, with unread data in its socket.
            drop(ws);
        }
        let mut ws = connect(port, "/stream?codec=h264").await;
        let first = next_unit(&mut ws, 5 * SECOND).await.expect("a unit");
        assert!(first.header.keyframe);
        assert!(!first.annex_b.is_empty());
    });
    process.assert_alive("viewers of the H.264 stream left without a word");
    process.assert_clean_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_pause_and_resume_an_h264_viewer_goes_on_at_a_keyframe_never_a_jpeg() {
    let server = h264_server(30, 1000);
    let mut ws = connect(server.port, "/stream?codec=h264").await;
    for _ in 0..3 {
        next_unit(&mut ws, 10 * SECOND).await.expect("units flow");
    }
    send_json(&mut ws, serde_json::json!({"type": "pause"})).await;
    tokio::time::sleep(SECOND / 2).await;
    send_json(&mut ws, serde_json::json!({"type": "resume"})).await;
    // Units already on their way when the pause took effect may come first; every binary
    // message is H.264, and the first after the pause's gap is a keyframe.
    let mut units = Vec::new();
    let deadline = Instant::now() + 10 * SECOND;
    while units.len() < 20 {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("units after resume within 10 s");
        let message = next_frame(&mut ws, left).await.expect("units after resume");
        assert!(
            !message.starts_with(&[0xFF, 0xD8]),
            "a JPEG was sent to an H.264 viewer"
        );
        units.push(Unit::parse(&message));
    }
    let gap = units
        .windows(2)
        .position(|w| w[1].header.sequence != w[0].header.sequence + 1)
        .map_or(0, |i| i + 1);
    assert!(
        units[gap].header.keyframe,
        "after the pause it goes on at a keyframe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_fps_is_refused_in_words_for_an_h264_viewer_and_every_unit_still_comes() {
    let server = h264_server(30, 1000);
    let mut ws = connect(server.port, "/stream?codec=h264").await;
    next_unit(&mut ws, 10 * SECOND).await.expect("units flow");
    send_json(&mut ws, serde_json::json!({"type": "max-fps", "fps": 2})).await;
    let error = next_text_of_type(&mut ws, "error", 5 * SECOND)
        .await
        .expect("an error message says max-fps does not apply");
    assert!(
        error["message"].as_str().unwrap_or("").contains("max-fps"),
        "{error}"
    );
    // Capped at 2 fps (or cut to keyframes), 30 units would take 15 s or more.
    let started = Instant::now();
    for _ in 0..30 {
        next_unit(&mut ws, 10 * SECOND).await.expect("units go on");
    }
    assert!(
        started.elapsed() < 10 * SECOND,
        "the H.264 viewer was capped after all: 30 units took {:?}",
        started.elapsed()
    );
}

fn parsed(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .expect("pipeline parses")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_sinks_in_two_pipelines_of_one_process_serve_one_port() {
    let encoder = parsed(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=30 \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! wsh264sink name=h264 sink=two-pipelines-jpeg",
    );
    let camera = parsed(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! jpegenc ! wsjpegsink name=two-pipelines-jpeg port=0 address=127.0.0.1",
    );
    // The H.264 pipeline starts first: the pairing waits for no server.
    for pipeline in [&encoder, &camera] {
        pipeline
            .set_state(gst::State::Playing)
            .expect("pipeline plays");
    }
    let port = camera
        .by_name("two-pipelines-jpeg")
        .expect("the wsjpegsink")
        .property::<u32>("bound-port") as u16;
    let h264_sink = encoder.by_name("h264").expect("the wsh264sink");

    let mut ws = connect(port, "/stream?codec=h264").await;
    let hello = next_text_of_type(&mut ws, "hello", 5 * SECOND)
        .await
        .expect("a hello");
    assert!(hello["h264"].is_object(), "H.264 is offered: {hello}");
    assert!(
        eventually(5 * SECOND, || h264_sink.property::<u32>("n-clients") == 1).await,
        "the wsh264sink of the other pipeline counts the viewer"
    );
    let mut units = Vec::new();
    let deadline = Instant::now() + SECOND;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(unit) = next_unit(&mut ws, left).await {
            units.push(unit);
        }
    }
    assert!(
        units.first().is_some_and(|u| u.header.keyframe),
        "the stream starts at a keyframe"
    );
    let decoded = decode_with_ffmpeg(&units, "two-pipelines").expect("what came decodes");
    assert_eq!(decoded, units.len() as u64, "every unit is a picture");
    let mut jpeg = connect(port, "/stream").await;
    let frame = next_frame(&mut jpeg, 5 * SECOND).await.expect("a JPEG");
    assert!(is_complete_jpeg(&frame), "JPEG goes on on the same port");

    drop(ws);
    assert!(
        eventually(5 * SECOND, || h264_sink.property::<u32>("n-clients") == 0).await,
        "the viewer's leaving is counted too"
    );
    // The encoder's pipeline stops: the port no longer offers H.264.
    encoder.set_state(gst::State::Null).expect("stops");
    let mut late = connect(port, "/stream?codec=h264").await;
    let hello = next_text_of_type(&mut late, "hello", 5 * SECOND)
        .await
        .expect("a hello");
    assert!(hello["h264"].is_null(), "no producer, no H.264: {hello}");
    camera.set_state(gst::State::Null).expect("stops");
}

/// Decodes a fragmented MP4 file with `qtdemux ! h264parse ! avdec_h264`; returns the number
/// of pictures decoded.
fn decode_with_qtdemux(file: &Path) -> Result<u64, String> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! fakesink name=out signal-handoffs=true",
        file.display()
    ))
    .map_err(|e| format!("the pipeline (avdec_h264: package gstreamer1.0-libav): {e}"))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "a pipeline".to_string())?;
    let decoded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = decoded.clone();
    pipeline
        .by_name("out")
        .ok_or("fakesink")?
        .connect("handoff", false, move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("a bus")?;
    let ending = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(20),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match ending.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(decoded.load(std::sync::atomic::Ordering::Relaxed)),
        Some(gst::MessageView::Error(e)) => Err(format!("{} {:?}", e.error(), e.debug())),
        _ => Err("neither EOS nor an error within 20 s".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_mp4_viewers_get_an_init_segment_then_fragments_that_ffprobe_and_qtdemux_play() {
    let server = h264_server(30, 1000);
    let mut ws = connect(server.port, "/stream?codec=h264&container=fmp4").await;
    let hello = next_text_of_type(&mut ws, "hello", 5 * SECOND)
        .await
        .expect("a hello");
    assert_eq!(hello["container"], "fmp4", "{hello}");
    let announced = next_text_of_type(&mut ws, "h264", 5 * SECOND)
        .await
        .expect("the codec is announced");
    let codec = announced["codec"].as_str().expect("a codec string");
    assert_eq!(
        announced["mime"],
        format!("video/mp4; codecs=\"{codec}\""),
        "{announced}"
    );
    let mut messages = Vec::new();
    let deadline = Instant::now() + 2 * SECOND;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(message) = next_frame(&mut ws, left).await {
            messages.push(message);
        }
    }
    let kind = |m: &Vec<u8>| String::from_utf8_lossy(&m[4..8]).into_owned();
    assert_eq!(
        kind(&messages[0]),
        "ftyp",
        "the initialisation segment first"
    );
    let fragments = messages[1..].iter().filter(|m| kind(m) == "moof").count() as u64;
    assert_eq!(
        fragments as usize,
        messages.len() - 1,
        "then fragments only (one size, one init)"
    );
    assert!(fragments >= 30, "about 60 pictures in 2 s, got {fragments}");
    let newest_capture = {
        let last = messages.last().expect("a fragment");
        let tfdt = last.windows(4).position(|w| w == b"tfdt").expect("a tfdt");
        u64::from_be_bytes(last[tfdt + 8..tfdt + 16].try_into().expect("8 bytes"))
    };
    let age_ms = unix_time_us().saturating_sub(newest_capture) / 1000;
    assert!(
        age_ms < 2000,
        "decode times are capture times: {age_ms} ms old"
    );

    let dir = unique_temp_dir("fmp4");
    let file = dir.join("received.mp4");
    std::fs::write(&file, messages.concat()).expect("written");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        format!("h264,320,240,{fragments}"),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(decode_with_qtdemux(&file), Ok(fragments));
    let _ = std::fs::remove_dir_all(&dir);
}
