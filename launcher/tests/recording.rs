// SPDX-License-Identifier: MIT
//! Recording: segments that play, retention, failures that spare the live view.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::*;
use common::*;
use wsjpeg_launcher::h264::{self, H264Choice};
use wsjpeg_launcher::recorder::{self, RecordFormat, RecordingConfig};
use wsjpeg_launcher::source::Source;
use wsjpeg_server::protocol::parse_meta_header;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_wsjpeg-launcher");
const SECOND: Duration = Duration::from_secs(1);

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsjpeg-rec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(recorder::is_segment_name)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort_by_key(|f| age_key(f));
    files
}

fn age_key(file: &Path) -> String {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    recorder::segment_age_key(name).to_string()
}

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

/// What ffprobe says of a file: (format, codec, duration in s, frames).
fn probe(file: &Path) -> Option<(String, String, f64, u64)> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=format_name,duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs (package ffmpeg)");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let stream = json["streams"].get(0)?;
    Some((
        json["format"]["format_name"].as_str()?.to_string(),
        stream["codec_name"].as_str()?.to_string(),
        json["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0.0),
        stream["nb_read_frames"].as_str()?.parse().ok()?,
    ))
}

/// The launcher binary recording the test pattern into `dir` in `segment`-second files.
fn spawn_recording(dir: &Path, segment: &str) -> std::process::Child {
    Command::new(LAUNCHER)
        .env("WSJPEG_RTSP_PORT", "0")
        .args(["--test-pattern", "--width", "320", "--height", "240"])
        .args([
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--record-segment",
            segment,
        ])
        .arg("--record")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (20 s at most) until `condition` holds for the segments in `dir`, oldest first.
fn wait_for_segments(dir: &Path, mut condition: impl FnMut(&[PathBuf]) -> bool) -> bool {
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        if condition(&segments(dir)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// At least `n` segments, the newest being written and half as big as the one before: well
/// inside a segment, away from both of its ends.
fn halfway_through(n: usize) -> impl FnMut(&[PathBuf]) -> bool {
    move |files| {
        files.len() >= n && 2 * size(&files[files.len() - 1]) >= size(&files[files.len() - 2])
    }
}

fn recording_config(dir: &Path, segment: u64) -> RecordingConfig {
    RecordingConfig {
        dir: dir.to_path_buf(),
        segment: Duration::from_secs(segment),
        max_bytes: None,
        keep: None,
        format: RecordFormat::Mjpeg,
        autostart: true,
    }
}

#[test]
fn record_flag_cuts_playable_segments_and_sigterm_finalizes_the_last() {
    let dir = temp_dir("segments");
    let mut child = spawn_recording(&dir, "2");
    // Three whole segments, and stopped halfway through the fourth.
    let recorded = wait_for_segments(&dir, halfway_through(4));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(recorded, "segments: {:?}", segments(&dir));
    assert_eq!(status.code(), Some(0));

    let files = segments(&dir);
    assert!(files.len() >= 3, "segments: {files:?}");
    let last = files.len() - 1;
    for (i, file) in files.iter().enumerate() {
        let (format, codec, duration, frames) =
            probe(file).unwrap_or_else(|| panic!("{} does not play", file.display()));
        assert!(format.contains("matroska"), "{format}");
        assert_eq!(codec, "mjpeg");
        if i < last {
            // Whole segments: 2 s at 30 fps.
            assert!(
                (1.6..=2.5).contains(&duration),
                "{}: {duration} s",
                file.display()
            );
            assert!(
                (48..=75).contains(&frames),
                "{}: {frames} frames",
                file.display()
            );
        } else {
            assert!(
                frames > 0 && duration > 0.0,
                "the last one is finalized too"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_leaves_finished_segments_playable() {
    let dir = temp_dir("sigkill");
    let mut child = spawn_recording(&dir, "1");
    // Killed while the third segment is being written.
    let recorded = wait_for_segments(&dir, halfway_through(3));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(recorded, "segments: {:?}", segments(&dir));
    let files = segments(&dir);
    assert!(files.len() >= 3, "segments: {files:?}");
    for file in &files[..files.len() - 1] {
        let (_, codec, _, frames) =
            probe(file).unwrap_or_else(|| panic!("{} does not play", file.display()));
        assert_eq!(codec, "mjpeg");
        assert!(frames >= 20, "{}: {frames}", file.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Watches a recording folder under retention, checking what the launcher guarantees at every
/// look: the finished segments (all but the newest, the one being written) fit `max_bytes`,
/// there are at most `keep` segments, the segment being written is never deleted, and deleted
/// segments are always older than the ones kept.
struct RetentionWatch {
    dir: PathBuf,
    max_bytes: Option<u64>,
    keep: Option<usize>,
    /// Every segment seen, by age key.
    seen: BTreeSet<String>,
    deleted: usize,
}

impl RetentionWatch {
    fn new(recording: &RecordingConfig) -> RetentionWatch {
        RetentionWatch {
            dir: recording.dir.clone(),
            max_bytes: recording.max_bytes,
            keep: recording.keep,
            seen: BTreeSet::new(),
            deleted: 0,
        }
    }

    fn look(&mut self) {
        let files = segments(&self.dir);
        let Some((newest, finished)) = files.split_last() else {
            assert!(self.seen.is_empty(), "every segment was deleted");
            return;
        };
        let present: Vec<String> = files.iter().map(|f| age_key(f)).collect();
        self.seen.extend(present.iter().cloned());
        if let Some(max) = self.max_bytes {
            let total: u64 = finished.iter().map(|f| size(f)).sum();
            assert!(
                total <= max,
                "finished segments hold {total} bytes > {max}: {files:?}"
            );
        }
        if let Some(keep) = self.keep {
            assert!(files.len() <= keep, "more than {keep} segments: {files:?}");
        }
        let latest = self.seen.last().cloned().unwrap_or_default();
        assert_eq!(
            age_key(newest),
            latest,
            "the segment being written was deleted: {files:?}"
        );
        let gone: Vec<&String> = self.seen.iter().filter(|s| !present.contains(s)).collect();
        assert!(
            gone.iter().all(|g| **g < present[0]),
            "deleted {gone:?} while keeping older ones: {files:?}"
        );
        self.deleted = gone.len();
    }

    /// Looks every 20 ms until `n` segments were started.
    async fn until_started(&mut self, n: usize) {
        let deadline = Instant::now() + 30 * SECOND;
        while self.seen.len() < n {
            assert!(
                Instant::now() < deadline,
                "{} segments in 30 s",
                self.seen.len()
            );
            self.look();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_folder_under_its_limit_oldest_first() {
    let dir = temp_dir("retention");
    let mut config = config(Source::TestPattern);
    let mut recording = recording_config(&dir, 1);
    // A few of the test pattern's one-second segments.
    recording.max_bytes = Some(250_000);
    config.recording = Some(recording.clone());
    let running = Running::start(config);
    let mut watch = RetentionWatch::new(&recording);
    watch.until_started(7).await;
    drop(running);
    let first = watch.seen.first().cloned().unwrap_or_default();
    assert!(
        segments(&dir).iter().all(|f| age_key(f) != first),
        "the oldest segment went first"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_keep_holds_that_many_segments_and_spares_the_one_being_written() {
    let dir = temp_dir("keep");
    let mut config = config(Source::TestPattern);
    let mut recording = recording_config(&dir, 1);
    recording.keep = Some(2);
    config.recording = Some(recording.clone());
    let running = Running::start(config);
    let mut watch = RetentionWatch::new(&recording);
    watch.until_started(5).await;
    assert!(watch.deleted >= 3, "{} deleted", watch.deleted);
    let status = http_get(running.port, "/status", &[], usize::MAX)
        .await
        .json();
    let current = status["recording"]["file"].as_str().unwrap_or_default();
    assert!(
        !current.is_empty() && dir.join(current).is_file(),
        "the file reported as being written exists: {}",
        status["recording"]
    );
    assert!(
        status["recording"]["segments_deleted"].as_u64() >= Some(3),
        "{}",
        status["recording"]
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_folder_stops_the_recording_not_the_stream() {
    let dir = temp_dir("vanish");
    let mut config = config(Source::TestPattern);
    config.recording = Some(recording_config(&dir, 1));
    let running = Running::start(config);
    let mut ws = connect(running.port, "/stream").await;
    assert!(next_frame(&mut ws, 5 * SECOND).await.is_some());
    assert!(eventually(5 * SECOND, || running.view().recording).await);
    assert!(
        eventually(5 * SECOND, || !segments(&dir).is_empty()).await,
        "a segment is being written"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let counting = count_share(&mut ws, running.port, 4 * SECOND);
    let (share, failed) = tokio::join!(counting, async {
        eventually(4 * SECOND, || running.view().recording_error.is_some()).await
    });
    assert!(failed, "the recording reports the error");
    assert!(!running.view().recording);
    share.assert_most("the viewer, while the recording failed");
}

#[test]
fn h264_recording_is_mp4_that_plays() {
    if gst_is_missing("x264enc") {
        panic!("x264enc is needed (package gstreamer1.0-plugins-ugly)");
    }
    let dir = temp_dir("h264");
    let mut config = config(Source::TestPattern);
    let mut recording = recording_config(&dir, 3);
    recording.format = RecordFormat::H264;
    config.h264.choice = H264Choice::X264enc;
    config.recording = Some(recording);
    let running = Running::start(config);
    // Fragmented MP4 plays while it is written: stop once the second segment does, well
    // before a third one starts.
    let second_plays = wait_for_segments(&dir, |files| {
        files.len() >= 2 && probe(&files[1]).is_some_and(|(_, _, _, frames)| frames > 10)
    });
    drop(running);
    let files = segments(&dir);
    assert!(second_plays, "segments: {files:?}");
    for file in &files {
        assert_eq!(file.extension().and_then(|e| e.to_str()), Some("mp4"));
        let (format, codec, _, frames) =
            probe(file).unwrap_or_else(|| panic!("{} does not play", file.display()));
        assert!(format.contains("mp4"), "{format}");
        assert_eq!(codec, "h264");
        assert!(frames > 10, "{frames}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn gst_is_missing(factory: &str) -> bool {
    init();
    gst::ElementFactory::find(factory).is_none()
}

#[test]
fn forced_h264_encoder_that_is_missing_is_a_clear_error() {
    init();
    let settings = h264::H264Settings {
        choice: H264Choice::Nvv4l2h264enc,
        ..config(Source::TestPattern).h264
    };
    let err = h264::encoder_text(&settings).unwrap_err();
    assert!(err.to_string().contains("nvv4l2h264enc"), "{err}");
}

#[test]
fn bad_recording_flags_are_refused() {
    for (args, expected) in [
        (vec!["--record-segment", "0"], "--record-segment"),
        (
            vec!["--record", "/proc/wsjpeg-cannot-write"],
            "recording folder",
        ),
        (
            vec!["--record-dir", "/tmp/x", "--record-max-bytes", "lots"],
            "--record-max-bytes",
        ),
    ] {
        let output = Command::new(LAUNCHER)
            .env("WSJPEG_RTSP_PORT", "0")
            .arg("--test-pattern")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_start_list_download_stop() {
    let dir = temp_dir("http");
    let mut config = config(Source::TestPattern);
    let mut recording = recording_config(&dir, 1);
    recording.autostart = false;
    config.recording = Some(recording);
    config.server.auth_token = Some("s3cret".into());
    let running = Running::start(config);
    let port = running.port;
    let auth = [("Authorization", "Bearer s3cret")];

    // Offered, not running; the camera stays parked.
    let status = http_get(port, "/status", &auth, usize::MAX).await.json();
    assert_eq!(status["recording"]["active"], false);
    assert_eq!(status["recording"]["control"], true);
    assert!(!running.view().running);

    assert_eq!(
        http_request(port, "POST", "/api/record/start", &[], b"")
            .await
            .status,
        401
    );
    let get = http_get(port, "/api/record/start", &auth, usize::MAX).await;
    assert_eq!(get.status, 405, "start is POST only");
    let started = http_request(port, "POST", "/api/record/start", &auth, b"").await;
    assert_eq!(started.status, 202);
    assert!(
        eventually(5 * SECOND, || running.view().recording).await,
        "recording starts, and with it the camera, without any viewer"
    );
    assert!(running.view().running);
    // A finished segment, and the launcher reporting the next one as being written.
    let listed = wait_for(10 * SECOND, || async {
        let list = http_get(port, "/api/recordings", &auth, usize::MAX)
            .await
            .json();
        let entries = list["recordings"].as_array()?;
        (entries.len() >= 2 && entries[0]["in_progress"] == true).then_some(list)
    })
    .await;
    let list = match listed {
        Some(list) => list,
        None => http_get(port, "/api/recordings", &auth, usize::MAX)
            .await
            .json(),
    };
    let entries = list["recordings"].as_array().expect("a list").clone();
    assert!(entries.len() >= 2, "{list}");
    let status = http_get(port, "/status", &auth, usize::MAX).await.json();
    assert_eq!(
        entries[0]["in_progress"], true,
        "newest first, still being written: {list} {}",
        status["recording"]
    );
    let finished = entries
        .iter()
        .find(|e| e["in_progress"] == false)
        .expect("a finished segment");
    let name = finished["name"].as_str().unwrap();
    let size = finished["size"].as_u64().unwrap();
    let whole = http_get(port, &format!("/recordings/{name}"), &auth, usize::MAX).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body.len() as u64, size);
    assert_eq!(whole.body, std::fs::read(dir.join(name)).unwrap());
    let part = http_get(
        port,
        &format!("/recordings/{name}"),
        &[auth[0], ("Range", "bytes=0-99")],
        usize::MAX,
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[..100]);
    let traversal = http_get(
        port,
        "/recordings/..%2f..%2fetc%2fpasswd",
        &auth,
        usize::MAX,
    )
    .await;
    assert_eq!(traversal.status, 400, "not a recording's name");

    let stopped = http_request(port, "POST", "/api/record/stop", &auth, b"").await;
    assert_eq!(stopped.status, 202);
    assert!(eventually(5 * SECOND, || !running.view().recording).await);
    let status = http_get(port, "/status", &auth, usize::MAX).await.json();
    assert_eq!(status["recording"]["active"], false);
    assert!(status["recording"]["bytes_written"].as_u64().unwrap() > 0);
    assert!(
        eventually(5 * SECOND, || !running.view().running).await,
        "no viewer and no recording: the camera is released"
    );
    let files = segments(&dir);
    let last = files.last().expect("segments");
    let (_, codec, _, frames) = probe(last).expect("the last segment was finalized and plays");
    assert_eq!(codec, "mjpeg");
    assert!(frames > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_loss_finishes_the_segment_and_recording_resumes_in_a_new_one() {
    let dir = temp_dir("loss");
    // A camera that fails after 45 frames every time it is started.
    let mut config = config(Source::Fragment(
        "videotestsrc is-live=true ! video/x-raw,framerate=30/1 ! identity error-after=45".into(),
    ));
    config.recording = Some(recording_config(&dir, 60));
    let running = Running::start(config);
    assert!(
        eventually(15 * SECOND, || segments(&dir).len() >= 2).await,
        "a new segment after the camera came back: {:?}",
        segments(&dir)
    );
    assert!(eventually(5 * SECOND, || running.view().recording).await);
    drop(running);
    let files = segments(&dir);
    let (_, codec, _, frames) =
        probe(&files[0]).expect("the segment cut by the loss was finished and plays");
    assert_eq!(codec, "mjpeg");
    assert!(
        (20..=45).contains(&frames),
        "{frames} frames before the loss"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_are_kept_beside_each_segment_and_go_with_it() {
    init();
    standins::register_detector("wsjpegtestinfer");
    let dir = temp_dir("detections");
    let mut config = config(Source::TestPattern);
    let mut recording = recording_config(&dir, 1);
    recording.keep = Some(3);
    config.recording = Some(recording);
    config.detection = Some(wsjpeg_launcher::detector::DetectionConfig {
        fragment: "wsjpegtestinfer".into(),
        fps: 5.0,
        width: 160,
    });
    let running = Running::start(config);
    let port = running.port;
    // Segments come and go (--record-keep 3) while detections are written beside them.
    let listed = wait_for(15 * SECOND, || async {
        let list = http_get(port, "/api/recordings", &[], usize::MAX)
            .await
            .json();
        let entries = list["recordings"].as_array()?.clone();
        let finished: Vec<_> = entries
            .into_iter()
            .filter(|e| e["in_progress"] == false && e["detections"].is_string())
            .collect();
        (finished.len() >= 2).then_some(finished)
    })
    .await
    .expect("finished segments with their detections listed");
    let sidecar = listed[0]["detections"].as_str().unwrap().to_string();
    assert_eq!(
        sidecar,
        format!(
            "{}.detections.jsonl",
            listed[0]["name"]
                .as_str()
                .unwrap()
                .rsplit_once('.')
                .unwrap()
                .0
        )
    );
    let download = http_get(port, &format!("/recordings/{sidecar}"), &[], usize::MAX).await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type"),
        Some("application/x-ndjson")
    );
    let lines: Vec<serde_json::Value> = download
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON message a line"))
        .collect();
    // About five a second (--detect-fps 5): at least one in a one-second segment on a busy
    // machine.
    assert!(!lines.is_empty(), "detections in {sidecar}");
    for line in &lines {
        assert_eq!(line["type"], "detections");
        assert!(
            line["time"].as_u64().is_some(),
            "each with its frame's capture time"
        );
        // The stand-in's person over the left half of the 320×240 stream.
        assert_eq!(line["objects"][0]["label"], "person");
        assert_eq!(
            line["objects"][0]["box"],
            serde_json::json!([0.0, 0.0, 160.0, 240.0])
        );
    }
    // Retention took the oldest segments, and their detections with them.
    assert!(
        eventually(15 * SECOND, || {
            let names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            let sidecars = names.iter().filter(|n| n.ends_with(".detections.jsonl"));
            sidecars.clone().count() <= 3
                && sidecars.into_iter().all(|s| {
                    let stem = s.trim_end_matches(".detections.jsonl");
                    names.iter().any(|n| n == &format!("{stem}.mkv"))
                })
                && segments(&dir).len() <= 3
        })
        .await,
        "no detections without their segment"
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_detections_never_outgrows_its_segment_and_the_excess_is_counted() {
    let dir = temp_dir("detections-flood");
    let mut config = config(Source::TestPattern);
    config.recording = Some(recording_config(&dir, 60));
    config.server.detector_token = Some("det".into());
    let running = Running::start(config);
    let port = running.port;
    let mut detector = connect(port, "/stream?meta=1&detector_token=det").await;
    let objects: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            let x = f64::from(i) * 10.0;
            serde_json::json!({"label": "person", "score": 0.9, "box": [x, 10.0, 20.0, 40.0]})
        })
        .collect();
    // As fast as it can: many sets for every frame, far more bytes than the frames take.
    let flood_until = Instant::now() + 4 * SECOND;
    while Instant::now() < flood_until {
        let Some(frame) = next_frame(&mut detector, 5 * SECOND).await else {
            panic!("frames flow");
        };
        let sequence = parse_meta_header(&frame).expect("a meta header").sequence;
        for _ in 0..40 {
            send_json(
                &mut detector,
                serde_json::json!({"type": "detections", "frame": sequence, "objects": objects}),
            )
            .await;
        }
    }
    let dropped = wait_for(10 * SECOND, || async {
        let status = http_get(port, "/status", &[], usize::MAX).await.json();
        let dropped = status["recording"]["detections_dropped"].as_u64()?;
        (dropped > 0).then_some(dropped)
    })
    .await
    .expect("/status counts the detections not kept");
    let files = segments(&dir);
    let segment = files.last().expect("a segment");
    let name = segment.file_name().unwrap().to_str().unwrap().to_string();
    let sidecar = dir.join(recorder::detections_name(&name).expect("a sidecar name"));
    let (video, detections) = (size(segment), size(&sidecar));
    assert!(detections > 0, "detections are kept");
    assert!(
        detections <= video + 64 * 1024,
        "{detections} bytes of detections beside {video} bytes of video ({dropped} dropped)"
    );
    drop(detector);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stopped_before_its_first_frame_leaves_no_segment() {
    let dir = temp_dir("no-frame");
    let mut config = config(Source::TestPattern);
    let mut recording = recording_config(&dir, 60);
    recording.autostart = false;
    config.recording = Some(recording);
    let running = Running::start(config);
    let port = running.port;
    // Start and stop at once, again and again, while the camera is parked: most stops come
    // before the camera's first frame.
    for _ in 0..10 {
        let started = http_request(port, "POST", "/api/record/start", &[], b"").await;
        assert_eq!(started.status, 202);
        let stopped = http_request(port, "POST", "/api/record/stop", &[], b"").await;
        assert_eq!(stopped.status, 202);
        eventually(5 * SECOND, || {
            let view = running.view();
            !view.recording && !view.running
        })
        .await;
    }
    // And one that records for a while: its segment stays, and plays.
    http_request(port, "POST", "/api/record/start", &[], b"").await;
    assert!(eventually(5 * SECOND, || running.view().recording).await);
    tokio::time::sleep(2 * SECOND).await;
    http_request(port, "POST", "/api/record/stop", &[], b"").await;
    assert!(eventually(5 * SECOND, || !running.view().recording).await);

    let listed = http_get(port, "/api/recordings", &[], usize::MAX)
        .await
        .json();
    let names: Vec<String> = listed["recordings"]
        .as_array()
        .expect("a listing")
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect();
    let files = segments(&dir);
    assert_eq!(
        files.len(),
        names.len(),
        "every segment on disk is listed: {files:?} {names:?}"
    );
    assert!(!files.is_empty(), "the recording with frames stays");
    for file in &files {
        let (_, codec, _, frames) =
            probe(file).unwrap_or_else(|| panic!("{} does not play", file.display()));
        assert_eq!(codec, "mjpeg");
        assert!(frames > 0, "{} has no frame", file.display());
    }
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
