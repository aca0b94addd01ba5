// SPDX-License-Identifier: MIT
//! LL-HLS on the port of a `wsjpegsink` whose `wsh264sink` feeds it: real x264 pipelines, and
//! the players people use read it — ffprobe and ffmpeg, GStreamer's `hlsdemux`, VLC — as well
//! as the low-latency rules a player like hls.js relies on (parts, blocking reloads, the
//! preload hint), bad requests, tokens, and the end of a run when players stop.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SECOND: Duration = Duration::from_secs(1);
/// The longest a part may be (the playlist's PART-TARGET).
const PART_TARGET: Duration = Duration::from_millis(210);
/// How long a run lasts after the last request (the origin's idle time), and a margin.
const RUN_ENDS_WITHIN: Duration = Duration::from_secs(6 + 4);

/// A live 320x240 pattern as JPEG (`wsjpegsink name=sink`) and H.264 with a keyframe a second
/// (`wsh264sink`).
fn h264_server(sink_props: &str) -> Server {
    Server::launch(&format!(
        "videotestsrc is-live=true pattern=ball \
         ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! tee name=t \
         t. ! queue ! jpegenc quality=80 ! wsjpegsink name=sink port=0 address=127.0.0.1 {sink_props} \
         t. ! queue ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=30 bitrate=600 \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! wsh264sink"
    ))
}

/// What a player reads in a media playlist.
#[derive(Debug, Default)]
struct Playlist {
    text: String,
    media_sequence: u64,
    map: String,
    /// Complete segments: (msn, URI, the URIs of its parts as listed).
    segments: Vec<(u64, String, Vec<String>)>,
    /// Parts listed after the last complete segment (of the segment being filled).
    open_parts: Vec<String>,
    preload_hint: String,
}

impl Playlist {
    fn parse(text: &str) -> Playlist {
        let mut playlist = Playlist {
            text: text.to_string(),
            ..Playlist::default()
        };
        let uri_of = |line: &str| {
            line.split("URI=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let mut parts = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                playlist.media_sequence = n.parse().expect("a media sequence number");
            } else if line.starts_with("#EXT-X-MAP:") {
                playlist.map = uri_of(line);
            } else if line.starts_with("#EXT-X-PART:") {
                parts.push(uri_of(line));
            } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
                playlist.preload_hint = uri_of(line);
            } else if line.starts_with("#EXTINF:") {
                let uri = lines
                    .next()
                    .expect("a segment URI after EXTINF")
                    .to_string();
                let msn = playlist.media_sequence + playlist.segments.len() as u64;
                playlist
                    .segments
                    .push((msn, uri, std::mem::take(&mut parts)));
            }
        }
        playlist.open_parts = parts;
        playlist
    }

    /// The msn and part index a low-latency player asks for next (the part after the newest).
    fn next_part(&self) -> (u64, usize) {
        let open_msn = self.media_sequence + self.segments.len() as u64;
        (open_msn, self.open_parts.len())
    }

    /// Every URI it names.
    fn uris(&self) -> Vec<String> {
        let mut uris = vec![self.map.clone(), self.preload_hint.clone()];
        for (_, uri, parts) in &self.segments {
            uris.push(uri.clone());
            uris.extend(parts.iter().cloned());
        }
        uris.extend(self.open_parts.iter().cloned());
        uris
    }
}

async fn get(port: u16, path: &str) -> Response {
    http_get(port, path, &[], usize::MAX).await
}

async fn playlist(port: u16, query: &str) -> Playlist {
    let response = get(port, &format!("/hls/index.m3u8{query}")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    Playlist::parse(&response.text())
}

/// Runs a live `pipeline` ending in `fakesink name=out signal-handoffs=true` until `frames`
/// pictures reached it; `Err` on an error message or if they did not come `within`.
fn decode_live(pipeline: &str, frames: u64, within: Duration) -> Result<(), String> {
    use gst::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    init();
    let pipeline = gst::parse::launch(pipeline)
        .map_err(|e| format!("{pipeline}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "a pipeline".to_string())?;
    let decoded = Arc::new(AtomicU64::new(0));
    let counter = decoded.clone();
    pipeline
        .by_name("out")
        .ok_or("no fakesink named out")?
        .connect("handoff", false, move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            None
        });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("a bus")?;
    let deadline = Instant::now() + within;
    let result = loop {
        if decoded.load(Ordering::Relaxed) >= frames {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!(
                "{} of {frames} pictures within {within:?}",
                decoded.load(Ordering::Relaxed)
            ));
        }
        if let Some(message) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error],
        ) && let gst::MessageView::Error(e) = message.view()
        {
            break Err(format!("{} {:?}", e.error(), e.debug()));
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_gstreamer_and_vlc_play_the_playlist() {
    let server = h264_server("");
    let url = format!("http://127.0.0.1:{}/hls/index.m3u8", server.port);
    let first = playlist(server.port, "").await;
    assert!(
        !first.segments.is_empty(),
        "the first answer waits for a whole segment"
    );

    if require_player("HLS player tests", "ffprobe", "ffmpeg") {
        let probe = run_player(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
                &url,
            ],
            20 * SECOND,
        )
        .expect("ffprobe reads the playlist");
        // The stream, once in its program and once on its own.
        let streams: Vec<&str> = probe.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            !streams.is_empty() && streams.iter().all(|s| *s == "h264,320,240"),
            "{probe}"
        );
        let decoded = run_player(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                &url,
                "-frames:v",
                "60",
                "-f",
                "null",
                "-",
            ],
            20 * SECOND,
        );
        assert!(
            decoded.as_ref().is_ok_and(|out| out.trim().is_empty()),
            "ffmpeg: {decoded:?}"
        );
    }

    // The demuxer of GStreamer 1.16+, and (from 1.22) the streams-aware one that playbin3
    // and uridecodebin3 pick.
    let mut pipelines = vec![(
        "hlsdemux",
        format!("souphttpsrc location={url} ! hlsdemux ! qtdemux ! h264parse ! avdec_h264"),
    )];
    if gst::ElementFactory::find("hlsdemux2").is_some() {
        pipelines.push((
            "uridecodebin3 (hlsdemux2)",
            format!("uridecodebin3 uri={url} caps=video/x-raw"),
        ));
    }
    for (demuxer, pipeline) in pipelines {
        let decoded = decode_live(
            &format!(
                "{pipeline} ! video/x-raw,width=320,height=240 ! fakesink name=out signal-handoffs=true"
            ),
            60,
            20 * SECOND,
        );
        assert!(decoded.is_ok(), "{demuxer}: {decoded:?}");
    }

    if require_player("HLS player tests", "cvlc", "vlc-bin vlc-plugin-base") {
        let log =
            run_player("cvlc", &cvlc_args(&url), 30 * SECOND).expect("VLC plays the playlist");
        assert!(
            log.contains("codec (h264) started"),
            "VLC decodes H.264:\n{log}"
        );
        assert!(log.contains("320x240"), "at the stream's size:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_is_its_parts_and_each_part_is_on_time() {
    let server = h264_server("");
    let port = server.port;
    let list = playlist(port, "").await;
    assert!(
        list.text
            .contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES")
    );

    // A segment with its parts listed, once the playlist has one.
    let deadline = Instant::now() + 10 * SECOND;
    let (segment, parts) = loop {
        let list = playlist(port, "").await;
        if let Some((_, uri, parts)) = list.segments.iter().rev().find(|(_, _, p)| !p.is_empty()) {
            break (uri.clone(), parts.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no segment with parts:\n{}",
            list.text
        );
        tokio::time::sleep(PART_TARGET).await;
    };
    let whole = get(port, &format!("/hls/{segment}")).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(
        whole.header("cache-control"),
        Some("public, max-age=60, immutable")
    );
    let mut joined = Vec::new();
    for part in &parts {
        let response = get(port, &format!("/hls/{part}")).await;
        assert_eq!(response.status, 200, "{part}");
        joined.extend_from_slice(&response.body);
    }
    assert!(joined == whole.body, "{segment} is {parts:?} back to back");
    assert_eq!(&whole.body[4..8], b"moof", "a segment is fragments");

    // A blocking reload for the next part: answered once that part exists, and it lists it.
    // When it exists is read by polling the playlist beside it.
    let list = playlist(port, "").await;
    let (msn, part) = list.next_part();
    let hint = list.preload_hint.clone();
    let asked = Instant::now();
    let blocked = tokio::spawn(async move {
        let response = get(
            port,
            &format!("/hls/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
        )
        .await;
        (response, asked.elapsed())
    });
    let hinted = tokio::spawn(async move { get(port, &format!("/hls/{hint}")).await });
    let seen = loop {
        let now = playlist(port, "").await;
        if now.next_part() > (msn, part) {
            break asked.elapsed();
        }
        assert!(asked.elapsed() < 5 * SECOND, "the part never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (response, answered) = blocked.await.expect("the blocking request");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("cache-control"), Some("public, max-age=6"));
    let after = Playlist::parse(&response.text());
    assert!(
        after.next_part() > (msn, part),
        "the answer has the part:\n{}",
        after.text
    );
    // Woken by the part, not by the 3 s limit (a generous margin: the machine may be busy).
    assert!(
        answered < seen + SECOND,
        "answered {answered:?} after asking, the part was listed {seen:?} after"
    );
    let hinted = hinted.await.expect("the hinted part");
    assert_eq!(
        hinted.status,
        200,
        "the hinted part, once finished: {}",
        hinted.text()
    );
    assert!(!hinted.body.is_empty());

    // Far ahead: refused at once.
    for query in [
        format!("_HLS_msn={}", msn + 3),
        format!("_HLS_msn={msn}&_HLS_part={}", part + 40),
    ] {
        let started = Instant::now();
        let response = get(port, &format!("/hls/index.m3u8?{query}")).await;
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert!(response.text().contains("ahead"), "{}", response.text());
        // Not held like a blocking request (up to 3 s).
        assert!(started.elapsed() < 2 * SECOND, "{query} is refused at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_status_and_the_origin_goes_on() {
    let server = h264_server("");
    let port = server.port;
    let list = playlist(port, "").await;
    let run_of = |uri: &str| uri.split('-').nth(1).unwrap_or_default().to_string();
    let run = run_of(&list.map);
    for (query, status, says) in [
        ("_HLS_foo=1", 400, "unknown delivery directive _HLS_foo"),
        ("_HLS_msn=-1", 400, "whole number"),
        ("_HLS_msn=99999999999999999999999", 400, "whole number"),
        ("_HLS_msn=1&_HLS_part=x", 400, "whole number"),
        ("_HLS_part=2", 400, "needs _HLS_msn"),
        ("_HLS_skip=maybe", 400, "_HLS_skip"),
        ("_HLS_msn=18446744073709551615&_HLS_part=0", 400, "ahead"),
    ] {
        let response = get(port, &format!("/hls/index.m3u8?{query}")).await;
        assert_eq!(response.status, status, "{query}: {}", response.text());
        assert!(
            response.text().contains(says),
            "{query}: {}",
            response.text()
        );
        assert_eq!(
            response.header("cache-control"),
            Some("no-store"),
            "{query}"
        );
    }
    for path in [
        format!("/hls/seg-{run}-999999.m4s"),
        format!("/hls/part-{run}-999999999.m4s"),
        format!("/hls/seg-{run}x-0.m4s"),
        "/hls/seg-0-0.m4s".to_string(),
        "/hls/nothing".to_string(),
        "/hls/%2e%2e%2fstatus".to_string(),
        "/hls/a/b".to_string(),
        "/hls/".to_string(),
    ] {
        let started = Instant::now();
        let response = get(port, &path).await;
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert!(
            started.elapsed() < 2 * SECOND,
            "{path} is answered at once, never held"
        );
    }
    let response = http_request(port, "POST", "/hls/index.m3u8", &[], b"").await;
    assert_eq!(response.status, 405);
    let response = http_request(port, "HEAD", "/hls/index.m3u8", &[], b"").await;
    assert_eq!(response.status, 200);
    assert!(
        playlist(port, "").await.segments.len() >= list.segments.len(),
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_goes_on_every_uri_and_every_uri_needs_it() {
    let server = h264_server("auth-token=s3cret");
    let port = server.port;
    assert_eq!(get(port, "/hls/index.m3u8").await.status, 401);
    let list = playlist(port, "?token=s3cret").await;
    let uris = list.uris();
    assert!(
        uris.iter().all(|u| u.ends_with("?token=s3cret")),
        "{}",
        list.text
    );
    for uri in uris
        .iter()
        .filter(|u| !u.starts_with("part-") || list.open_parts.contains(u))
        .take(4)
    {
        assert_eq!(get(port, &format!("/hls/{uri}")).await.status, 200, "{uri}");
        let bare = uri.trim_end_matches("?token=s3cret");
        assert_eq!(
            get(port, &format!("/hls/{bare}")).await.status,
            401,
            "{bare}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_ends_when_players_stop_and_the_next_has_new_names() {
    let server = h264_server("");
    let port = server.port;
    let first = playlist(port, "").await;
    assert_eq!(
        server.n_clients(),
        1,
        "the origin counts as one viewer while players ask"
    );
    let old_names = first.uris();
    let last_msn = first.media_sequence + first.segments.len() as u64;
    let metric = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stopped = Instant::now();
    loop {
        let metrics = get(port, "/metrics").await.text();
        if metric(&metrics, "wsjpeg_hls_running") == Some(0) {
            break;
        }
        assert!(
            stopped.elapsed() < RUN_ENDS_WITHIN,
            "the run went on without players"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        stopped.elapsed() > 4 * SECOND,
        "it waited for players to come back first"
    );
    assert_eq!(server.n_clients(), 0, "and then let the camera go");
    for uri in old_names.iter().take(3) {
        assert_eq!(get(port, &format!("/hls/{uri}")).await.status, 404, "{uri}");
    }
    let second = playlist(port, "").await;
    assert!(
        second.media_sequence >= last_msn,
        "numbers go on: {} after {last_msn}",
        second.media_sequence
    );
    for uri in second.uris() {
        assert!(
            !old_names.contains(&uri),
            "{uri} was a name of the run before"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h264_there_is_no_playlist_and_the_answer_says_why() {
    let server = Server::test_pattern(320, 240, 30, "");
    let response = get(server.port, "/hls/index.m3u8").await;
    assert_eq!(response.status, 404);
    assert!(
        response.text().contains("No H.264 stream here"),
        "{}",
        response.text()
    );
    assert_eq!(server.n_clients(), 0, "nothing was started");
}
