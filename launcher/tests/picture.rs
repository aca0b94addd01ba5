// SPDX-License-Identifier: MIT
//! What the viewers see is what the camera sees: levels kept on every path the launcher builds
//! (JPEG, snapshot, recording, H.264), and the picture's shape kept for a source of another
//! shape. Pictures are decoded with ffmpeg and compared with the source's own levels.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::*;
use common::*;
use wsjpeg_launcher::encoder::Format;
use wsjpeg_launcher::h264::H264Choice;
use wsjpeg_launcher::recorder::{RecordFormat, RecordingConfig};
use wsjpeg_launcher::source::Source;
use wsjpeg_server::protocol::parse_meta_header;

const SECOND: Duration = Duration::from_secs(1);
const WIDTH: usize = 320;
const HEIGHT: usize = 240;

/// A decoded picture's luma (full range, 0–255), row by row.
struct Luma {
    width: usize,
    height: usize,
    samples: Vec<u8>,
}

impl Luma {
    fn at(&self, x: usize, y: usize) -> u8 {
        self.samples[y * self.width + x]
    }
}

/// The luma of the last picture ffmpeg decodes from `file` (read as `format`, if given),
/// converted to full range as a viewer would show it.
fn decode_last(file: &Path, format: Option<&str>, width: usize, height: usize) -> Luma {
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error"]);
    if let Some(format) = format {
        command.args(["-f", format]);
    }
    let output = command
        .arg("-i")
        .arg(file)
        .args(["-f", "rawvideo", "-pix_fmt", "yuvj420p", "-"])
        .output()
        .expect("ffmpeg runs (package ffmpeg)");
    let frame = width * height * 3 / 2;
    assert!(
        output.status.success() && output.stdout.len() >= frame,
        "ffmpeg decodes {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let last = &output.stdout[output.stdout.len() / frame * frame - frame..];
    Luma {
        width,
        height,
        samples: last[..width * height].to_vec(),
    }
}

fn temp_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("a temporary file");
    path
}

/// The source's own levels: the same pattern rendered as RGB (full range by definition).
fn reference_rows(pattern: &str) -> Vec<u8> {
    let output = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            &format!("pattern={pattern}"),
            "num-buffers=1",
        ])
        .arg("!")
        .arg(format!(
            "video/x-raw,format=RGB,width={WIDTH},height={HEIGHT}"
        ))
        .args(["!", "fdsink", "fd=1"])
        .output()
        .expect("gst-launch-1.0 runs");
    assert_eq!(output.stdout.len(), WIDTH * HEIGHT * 3, "one RGB picture");
    (0..HEIGHT)
        .map(|y| output.stdout[(y * WIDTH + WIDTH / 2) * 3])
        .collect()
}

fn launcher_for(pattern: &str, dir: &Path) -> Running {
    let mut config = config(Source::Fragment(format!(
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={WIDTH},height={HEIGHT}"
    )));
    config.format = Format {
        width: WIDTH as u32,
        height: HEIGHT as u32,
        fps: 30,
        quality: 95,
    };
    config.h264.choice = H264Choice::X264enc;
    config.h264.bitrate_kbps = 4000;
    config.recording = Some(RecordingConfig {
        dir: dir.to_path_buf(),
        segment: Duration::from_secs(60),
        max_bytes: None,
        keep: None,
        format: RecordFormat::Mjpeg,
        autostart: true,
    });
    Running::start(config)
}

/// The H.264 a viewer receives over a second or so, from its first keyframe.
async fn h264_stream(port: u16) -> Vec<u8> {
    let mut ws = connect(port, "/stream?codec=h264").await;
    let mut stream = Vec::new();
    let mut units = 0;
    while units < 20 {
        let frame = next_frame(&mut ws, 10 * SECOND)
            .await
            .expect("H.264 units come");
        let header = parse_meta_header(&frame).expect("a unit header");
        stream.extend_from_slice(&frame[header.len..]);
        units += 1;
    }
    stream
}

/// The picture of every path of a launcher showing `pattern`: snapshot, live JPEG, recording,
/// H.264.
async fn every_path(pattern: &str) -> Vec<(&'static str, Luma)> {
    let dir = unique_temp_dir(&format!("levels-{pattern}"));
    let running = launcher_for(pattern, &dir);
    let mut ws = connect(running.port, "/stream").await;
    let live = next_frame(&mut ws, 10 * SECOND)
        .await
        .expect("a JPEG frame");
    let snapshot = http_get(running.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(snapshot.status, 200);
    let h264 = h264_stream(running.port).await;
    drop(ws);
    drop(running);
    let recording = std::fs::read_dir(&dir)
        .expect("the recording folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "mkv"))
        .expect("a recorded segment");
    let pictures = vec![
        (
            "live JPEG",
            decode_last(&temp_file(&dir, "live.jpg", &live), None, WIDTH, HEIGHT),
        ),
        (
            "snapshot",
            decode_last(
                &temp_file(&dir, "snapshot.jpg", &snapshot.body),
                None,
                WIDTH,
                HEIGHT,
            ),
        ),
        ("recording", decode_last(&recording, None, WIDTH, HEIGHT)),
        (
            "H.264",
            decode_last(
                &temp_file(&dir, "live.h264", &h264),
                Some("h264"),
                WIDTH,
                HEIGHT,
            ),
        ),
    ];
    let _ = std::fs::remove_dir_all(&dir);
    pictures
}

fn centre(luma: &Luma) -> u8 {
    luma.at(luma.width / 2, luma.height / 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn white_is_white_and_black_is_black_on_every_path() {
    let deadline = Instant::now() + 120 * SECOND;
    for (name, luma) in every_path("white").await {
        assert!(
            centre(&luma) >= 250,
            "white on the {name} path reads {}",
            centre(&luma)
        );
    }
    for (name, luma) in every_path("black").await {
        assert!(
            centre(&luma) <= 5,
            "black on the {name} path reads {}",
            centre(&luma)
        );
    }
    assert!(Instant::now() < deadline, "the test took over two minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grey_ramp_keeps_its_levels_and_jpeg_and_h264_agree() {
    let reference = reference_rows("gradient");
    let pictures = every_path("gradient").await;
    // Rows away from the picture's top and bottom edges, where chroma siting and the codec's
    // blocks blur a ramp least.
    let rows = (8..HEIGHT - 8).step_by(8);
    for (name, luma) in &pictures {
        for y in rows.clone() {
            let got = luma.at(WIDTH / 2, y);
            assert!(
                got.abs_diff(reference[y]) <= 4,
                "row {y} on the {name} path reads {got}, the source {}",
                reference[y]
            );
        }
    }
    let (jpeg, h264) = (&pictures[1].1, &pictures[3].1);
    for y in rows {
        let (a, b) = (jpeg.at(WIDTH / 2, y), h264.at(WIDTH / 2, y));
        assert!(a.abs_diff(b) <= 4, "row {y}: JPEG {a}, H.264 {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_by_three_source_keeps_its_shape_and_both_codecs_show_one_size() {
    // A white 640×480 picture in a 320×180 (16:9) stream: 240×180 of picture between black
    // bars of 40 columns, not a picture stretched to the full width.
    let mut config = config(Source::Fragment(
        "videotestsrc is-live=true pattern=white ! video/x-raw,width=640,height=480".to_string(),
    ));
    config.format = Format {
        width: 320,
        height: 180,
        fps: 30,
        quality: 90,
    };
    config.h264.choice = H264Choice::X264enc;
    let running = Running::start(config);
    let dir = unique_temp_dir("shape");
    let snapshot = http_get(running.port, "/snapshot.jpg", &[], usize::MAX).await;
    assert_eq!(snapshot.status, 200);
    let h264 = h264_stream(running.port).await;
    let jpeg = decode_last(
        &temp_file(&dir, "shape.jpg", &snapshot.body),
        None,
        320,
        180,
    );
    let video = decode_last(
        &temp_file(&dir, "shape.h264", &h264),
        Some("h264"),
        320,
        180,
    );
    for (name, luma, file) in [
        ("JPEG", &jpeg, "shape.jpg"),
        ("H.264", &video, "shape.h264"),
    ] {
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(dir.join(file))
            .output()
            .expect("ffprobe runs");
        assert_eq!(
            String::from_utf8_lossy(&probe.stdout).trim(),
            "320,180",
            "the {name} picture's size"
        );
        let y = luma.height / 2;
        for x in [4, 30, 290, 315] {
            assert!(
                luma.at(x, y) <= 20,
                "{name}: column {x} is a black bar, reads {}",
                luma.at(x, y)
            );
        }
        for x in [50, 160, 270] {
            assert!(
                luma.at(x, y) >= 235,
                "{name}: column {x} is picture, reads {}",
                luma.at(x, y)
            );
        }
    }
    let status = http_get(running.port, "/status", &[], usize::MAX)
        .await
        .json();
    let _ = std::fs::remove_dir_all(&dir);
    drop(running);
    let video_info = &status["settings"];
    assert_eq!(
        (video_info["width"].as_u64(), video_info["height"].as_u64()),
        (Some(320), Some(180)),
        "/status says the one size: {status}"
    );
}
