// SPDX-License-Identifier: MIT
//! The fragmented MP4 of the H.264 track as third-party readers see it: an initialisation
//! segment and one fragment per access unit, concatenated as a viewer receives them, read by
//! ffprobe. The access units are x264's (a committed fixture: 30 frames of 320x240, a keyframe
//! every 10).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture;
use wsjpeg_server::media::fmp4::{self, ParameterSets};
use wsjpeg_server::media::{self, AccessUnit};

const FRAME_US: u64 = 33_333;
const FIRST_CAPTURE_US: u64 = 1_765_000_000_000_000;

/// The fixture's access units, 30 fps from a fixed capture time.
fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    media::access_units(stream)
        .into_iter()
        .enumerate()
        .map(|(n, data)| AccessUnit {
            sequence: n as u64 + 1,
            keyframe: media::is_keyframe(&data),
            capture_time_us: FIRST_CAPTURE_US + n as u64 * FRAME_US,
            duration_us: FRAME_US as u32,
            data,
        })
        .collect()
}

fn temp_file(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wsjpeg-fmp4-{label}-{}.mp4", std::process::id()))
}

/// What a viewer that starts at the unit `from` receives, as one file.
fn as_viewer_receives(units: &[AccessUnit], from: usize) -> Vec<u8> {
    let sets = ParameterSets::of(&units[from].data).expect("a keyframe with SPS and PPS");
    let mut file = fmp4::init_segment(&sets).expect("an init segment").to_vec();
    for unit in &units[from..] {
        file.extend_from_slice(&fmp4::fragment(unit).parts()[0]);
    }
    file
}

fn ffprobe(file: &Path, entries: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", entries, "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs (package ffmpeg)");
    assert!(
        out.stderr.is_empty(),
        "ffprobe complains: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn ffprobe_reads_every_picture_at_its_size_and_capture_time() {
    let units = access_units(&fixture("ball-320x240-30.h264"));
    assert_eq!(units.len(), 30);
    let file = temp_file("whole");
    std::fs::write(&file, as_viewer_receives(&units, 0)).expect("written");
    assert_eq!(
        ffprobe(&file, "stream=codec_name,width,height,nb_read_frames"),
        "h264,320,240,30"
    );
    let times: Vec<f64> = ffprobe(&file, "packet=pts_time")
        .lines()
        .map(|l| l.trim_end_matches(',').parse().expect("a time"))
        .collect();
    assert_eq!(times.len(), 30);
    for (n, time) in times.iter().enumerate() {
        let expected = (FIRST_CAPTURE_US + n as u64 * FRAME_US) as f64 / 1e6;
        assert!(
            (time - expected).abs() < 1e-5,
            "picture {n} at {time}, captured at {expected}"
        );
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_viewer_that_joins_at_a_later_keyframe_gets_a_file_that_plays_too() {
    let units = access_units(&fixture("ball-320x240-30.h264"));
    let from = units
        .iter()
        .skip(1)
        .position(|u| u.keyframe)
        .expect("a second keyframe")
        + 1;
    let file = temp_file("joined");
    std::fs::write(&file, as_viewer_receives(&units, from)).expect("written");
    assert_eq!(
        ffprobe(&file, "stream=width,height,nb_read_frames"),
        format!("320,240,{}", units.len() - from)
    );
    let _ = std::fs::remove_file(&file);
}
