// SPDX-License-Identifier: MIT
//! Recording: the JPEG frames the viewers get, cut into segments named by their start time.
//!
//! A pipeline of its own, `appsrc ! [encode] ! splitmuxsink`, fed from the camera pipeline's
//! frame callback. Its appsrc is the only queue: when the disk is slower than the camera, frames
//! are dropped there and counted, so neither the camera nor the viewers ever wait on the disk.
//!
//! Retention runs each time a segment is about to be opened, when the previous one is closed
//! and the new one does not exist yet: the finished segments then fit the limits, so the folder
//! never holds more than `--record-max-bytes` plus the segments being written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use wsjpeg_server::segment::Kind;

use crate::events::Event;
use crate::gst_util::take_error;

/// Frames waiting for the disk beyond this are dropped.
const MAX_PENDING_BYTES: u64 = 32 * 1024 * 1024;
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// The camera's JPEG frames in Matroska, no re-encoding.
    Mjpeg,
    /// H.264 in fragmented MP4, playable in a browser.
    H264,
}

#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub dir: PathBuf,
    pub segment: Duration,
    pub max_bytes: Option<u64>,
    pub keep: Option<usize>,
    pub format: RecordFormat,
    /// Record from start-up (`--record`), not only on request.
    pub autostart: bool,
}

impl RecordFormat {
    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Mjpeg => "mjpeg",
            RecordFormat::H264 => "h264",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            RecordFormat::Mjpeg => "mkv",
            RecordFormat::H264 => "mp4",
        }
    }
}

/// Checks that DIR exists (creating it) and takes a file.
pub fn check_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create recording folder {}", dir.display()))?;
    let probe = dir.join(".wsjpeg-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("recording folder {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The name of a segment of `camera` that starts at `start`, in the grammar the server lists
/// and serves (`2026-11-25T03-12-00Z_cam0.mkv`).
pub fn segment_name(start: SystemTime, camera: &str, format: RecordFormat) -> String {
    wsjpeg_server::segment::segment_name(start, camera, format.extension())
}

/// Orders segment names by age: start time, then camera, then the restarts within one second
/// (`_cam0` before `_cam0-1`, which a plain name sort puts the other way round).
pub fn segment_age_key(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// Whether `name` is one of our video segments: the server's grammar, with a real date and
/// time. Retention deletes only such files (and the detections kept beside them).
pub fn is_segment_name(name: &str) -> bool {
    wsjpeg_server::segment::parse_name(name).is_some_and(|n| n.kind == Kind::Segment)
}

/// The file beside a segment that keeps the detections taken while it was written.
pub fn detections_name(segment: &str) -> Option<String> {
    wsjpeg_server::segment::detections_name(segment)
}

/// Figures the control loop reports in `recording-state`.
#[derive(Debug, Default)]
pub struct RecordingFigures {
    pub current: Mutex<Option<String>>,
    pub finished_bytes: AtomicU64,
    pub dropped: AtomicU64,
    /// Segments this recording deleted to stay within the limits.
    pub deleted: AtomicU64,
    /// Detections not kept beside their segment (`sidecar`'s cap).
    pub detections_dropped: AtomicU64,
    /// Frames that reached the muxer: a recording stopped before its first frame leaves no
    /// segment behind (one without a frame does not play).
    pub frames: AtomicU64,
}

/// The segments being written now, by every camera's recording (they share the folder), so that
/// no camera's retention deletes another's. Held while a segment is named and room is made for
/// it, which also keeps two cameras from deleting at once.
#[derive(Debug, Default)]
pub struct Writing(Mutex<HashSet<String>>);

impl Writing {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct RecordingPipeline {
    pipeline: gst::Pipeline,
    pub appsrc: gst_app::AppSrc,
    pub format: RecordFormat,
    pub figures: Arc<RecordingFigures>,
    dir: PathBuf,
    writing: Arc<Writing>,
}

impl RecordingPipeline {
    pub fn start(
        config: &RecordingConfig,
        camera: usize,
        generation: u64,
        writing: Arc<Writing>,
        events: Sender<Event>,
    ) -> Result<RecordingPipeline> {
        check_dir(&config.dir)?;
        // H.264 comes from the camera's one encoder, shared with the viewers (crate::h264).
        let text = match config.format {
            RecordFormat::Mjpeg => {
                "appsrc name=rec is-live=true format=time block=false ! jpegparse name=last"
            }
            RecordFormat::H264 => {
                "appsrc name=rec is-live=true format=time block=false \
                 caps=video/x-h264,stream-format=byte-stream,alignment=au ! h264parse name=last"
            }
        };
        let pipeline = gst::parse::launch(text)
            .map_err(|e| anyhow!("cannot build the recording pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the recording pipeline is not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let appsrc = pipeline
            .by_name("rec")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| anyhow!("the recording pipeline has no input"))?;
        appsrc.set_property("max-bytes", MAX_PENDING_BYTES * 2);
        let split = gst::ElementFactory::make("splitmuxsink").build()?;
        let muxer = match config.format {
            RecordFormat::Mjpeg => gst::ElementFactory::make("matroskamux").build()?,
            // Fragmented: what was written before a crash still plays.
            RecordFormat::H264 => gst::ElementFactory::make("mp4mux")
                .property("fragment-duration", 1000u32)
                .build()?,
        };
        split.set_property("muxer", &muxer);
        split.set_property(
            "max-size-time",
            config.segment.as_nanos().min(u64::MAX as u128) as u64,
        );
        // Linked once the muxer is set: the default one (mp4mux) takes no JPEG.
        pipeline.add(&split)?;
        pipeline
            .by_name("last")
            .ok_or_else(|| anyhow!("the recording pipeline has no output"))?
            .link(&split)
            .map_err(|_| {
                anyhow!(
                    "the {} muxer does not take these frames",
                    config.format.name()
                )
            })?;
        let figures = Arc::new(RecordingFigures::default());
        count_frames(&pipeline, figures.clone());
        name_segments(
            &split,
            config,
            camera,
            figures.clone(),
            writing.clone(),
            events.clone(),
        );
        watch_bus(&pipeline, camera, generation, figures.clone(), events);
        // Built first, so that a failure to start is cleaned up by its `Drop`.
        let recording = RecordingPipeline {
            pipeline,
            appsrc,
            format: config.format,
            figures,
            dir: config.dir.clone(),
            writing,
        };
        if recording.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = take_error(&recording.pipeline);
            bail!(
                "cannot start recording: {}",
                reason.unwrap_or_else(|| "the pipeline failed".into())
            );
        }
        Ok(recording)
    }

    /// Bytes in finished segments plus the one being written.
    pub fn bytes_written(&self) -> u64 {
        let current = self
            .current_file()
            .and_then(|name| std::fs::metadata(self.dir.join(name)).ok())
            .map(|m| m.len())
            .unwrap_or(0);
        self.figures.finished_bytes.load(Ordering::Relaxed) + current
    }

    pub fn current_file(&self) -> Option<String> {
        self.figures.current.lock().ok().and_then(|c| c.clone())
    }

    /// Ends the current segment so it plays (EOS through the muxer), then stops.
    pub fn finalize(self) {
        if self.appsrc.end_of_stream().is_ok()
            && let Some(bus) = self.pipeline.bus()
        {
            let timeout = gst::ClockTime::from_nseconds(FINALIZE_TIMEOUT.as_nanos() as u64);
            let _ = bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos]);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        // Drop (below) removes the segment if it has no frame.
    }

    /// A segment without a frame (stopped before the camera gave one) is no recording.
    fn remove_if_empty(&self) {
        if self.figures.frames.load(Ordering::Relaxed) > 0 {
            return;
        }
        if let Some(name) = self.current_file() {
            log::info!("Recording stopped before its first frame: {name} removed");
            let _ = std::fs::remove_file(self.dir.join(&name));
            if let Some(detections) = detections_name(&name) {
                let _ = std::fs::remove_file(self.dir.join(detections));
            }
        }
    }
}

impl Drop for RecordingPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.remove_if_empty();
        // Closed now: from here on it is a finished segment like the others.
        if let Some(name) = self.current_file() {
            self.writing.lock().remove(&name);
        }
    }
}

/// Hands a frame to the recording unless too much is already waiting for the disk.
pub fn offer_frame(appsrc: &gst_app::AppSrc, figures: &RecordingFigures, buffer: gst::Buffer) {
    if appsrc.current_level_bytes() > MAX_PENDING_BYTES {
        figures.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _ = appsrc.push_buffer(buffer);
}

/// Counts the frames that go on to the muxer.
fn count_frames(pipeline: &gst::Pipeline, figures: Arc<RecordingFigures>) {
    let Some(pad) = pipeline
        .by_name("last")
        .and_then(|last| last.static_pad("src"))
    else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        figures.frames.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

fn name_segments(
    split: &gst::Element,
    config: &RecordingConfig,
    camera: usize,
    figures: Arc<RecordingFigures>,
    writing: Arc<Writing>,
    events: Sender<Event>,
) {
    let config = config.clone();
    let camera_name = format!("cam{camera}");
    // Called when the previous segment is closed (its file too) and before the new one is opened.
    split.connect("format-location-full", false, move |_| {
        let mut writing = writing.lock();
        let mut current = figures
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = current.take() {
            writing.remove(&previous);
        }
        let deleted = make_room(&config, &writing);
        figures.deleted.fetch_add(deleted, Ordering::Relaxed);
        let mut name = segment_name(SystemTime::now(), &camera_name, config.format);
        // Two segments within one second (a quick restart): keep both.
        let mut n = 1;
        while config.dir.join(&name).exists() {
            name = segment_name(
                SystemTime::now(),
                &format!("{camera_name}-{n}"),
                config.format,
            );
            n += 1;
        }
        writing.insert(name.clone());
        *current = Some(name.clone());
        // The listing marks the file being written from the state the control loop reports.
        let _ = events.send(Event::SegmentOpened { camera });
        Some(config.dir.join(name).display().to_string().to_value())
    });
}

/// Errors become events for the control loop; each closed segment adds to the byte count and
/// triggers retention. EOS stays on the bus for `finalize`.
fn watch_bus(
    pipeline: &gst::Pipeline,
    camera: usize,
    generation: u64,
    figures: Arc<RecordingFigures>,
    events: Sender<Event>,
) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| {
        let event = match message.view() {
            gst::MessageView::Eos(_) => return gst::BusSyncReply::Pass,
            gst::MessageView::Error(err) => Some(Event::RecordingFailed {
                camera,
                generation,
                reason: err.error().to_string(),
            }),
            gst::MessageView::Element(element) => {
                let closed = element
                    .structure()
                    .filter(|s| s.name() == "splitmuxsink-fragment-closed")
                    .and_then(|s| s.get::<String>("location").ok());
                closed.map(|location| {
                    let size = std::fs::metadata(&location).map(|m| m.len()).unwrap_or(0);
                    figures.finished_bytes.fetch_add(size, Ordering::Relaxed);
                    Event::SegmentClosed { camera }
                })
            }
            _ => None,
        };
        if let Some(event) = event {
            let _ = events.send(event);
        }
        gst::BusSyncReply::Drop
    });
}

/// Makes room for a new segment: deletes the oldest finished segments until the folder holds at
/// most `max_bytes` and, counting the new one, at most `keep` segments. A segment's detections
/// count with it and go with it. The segments in `writing` are never deleted (they still
/// count). Returns how many were deleted.
pub fn make_room(config: &RecordingConfig, writing: &HashSet<String>) -> u64 {
    if config.max_bytes.is_none() && config.keep.is_none() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(&config.dir) else {
        return 0;
    };
    let file_size = |name: &str| {
        std::fs::symlink_metadata(config.dir.join(name))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    let mut segments: Vec<(String, u64)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            let detections = detections_name(&name)
                .and_then(|d| file_size(&d))
                .unwrap_or(0);
            (meta.is_file() && is_segment_name(&name)).then_some((name, meta.len() + detections))
        })
        .collect();
    segments.sort_by(|(a, _), (b, _)| segment_age_key(a).cmp(segment_age_key(b)));
    let mut total: u64 = segments.iter().map(|(_, size)| size).sum();
    let mut count = segments.len() + 1;
    let mut deleted = 0;
    for (name, size) in segments {
        let over_bytes = config.max_bytes.is_some_and(|max| total > max);
        let over_count = config.keep.is_some_and(|keep| count > keep);
        if !over_bytes && !over_count {
            break;
        }
        if writing.contains(&name) {
            continue;
        }
        if std::fs::remove_file(config.dir.join(&name)).is_ok() {
            if let Some(detections) = detections_name(&name) {
                let _ = std::fs::remove_file(config.dir.join(detections));
            }
            log::info!("Recording: deleted {name} (retention)");
            total = total.saturating_sub(size);
            count -= 1;
            deleted += 1;
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_time_and_are_recognised() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let name = segment_name(t, "cam0", RecordFormat::Mjpeg);
        assert_eq!(name, "2026-11-18T11-06-40Z_cam0.mkv");
        assert!(is_segment_name(&name));
        assert!(is_segment_name("2026-11-18T07-46-40Z_cam0-1.mp4"));
        for bad in [
            "../2026-11-18T07-46-40Z_cam0.mkv",
            "2026-11-18T07:46:40Z_cam0.mkv",
            "2026-11-18T07-46-40Z_cam0.txt",
            "2026-11-18T07-46-40Z_c/m.mkv",
            "notes.mkv",
        ] {
            assert!(!is_segment_name(bad), "{bad}");
        }
    }

    #[test]
    fn restarts_within_one_second_sort_after_the_first_segment() {
        let mut names = [
            "2026-11-18T07-46-41Z_cam0.mkv",
            "2026-11-18T07-46-40Z_cam0-1.mkv",
            "2026-11-18T07-46-40Z_cam1.mkv",
            "2026-11-18T07-46-40Z_cam0.mkv",
        ];
        names.sort_by_key(|n| segment_age_key(n));
        assert_eq!(
            names,
            [
                "2026-11-18T07-46-40Z_cam0.mkv",
                "2026-11-18T07-46-40Z_cam0-1.mkv",
                "2026-11-18T07-46-40Z_cam1.mkv",
                "2026-11-18T07-46-41Z_cam0.mkv",
            ]
        );
    }

    /// A folder holding segments of `sizes` bytes, one second apart, oldest first.
    fn folder_with_segments(tag: &str, sizes: &[usize]) -> (PathBuf, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("wsjpeg-room-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let names: Vec<String> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let name = segment_name(
                    start + Duration::from_secs(i as u64),
                    "cam0",
                    RecordFormat::Mjpeg,
                );
                std::fs::write(dir.join(&name), vec![0u8; *size]).unwrap();
                name
            })
            .collect();
        // Not a segment: never counted, never deleted.
        std::fs::write(dir.join("notes.txt"), vec![0u8; 5000]).unwrap();
        (dir, names)
    }

    fn remaining(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn limits(dir: &Path, max_bytes: Option<u64>, keep: Option<usize>) -> RecordingConfig {
        RecordingConfig {
            dir: dir.to_path_buf(),
            segment: Duration::from_secs(1),
            max_bytes,
            keep,
            format: RecordFormat::Mjpeg,
            autostart: true,
        }
    }

    #[test]
    fn making_room_deletes_the_oldest_until_the_bytes_fit() {
        let (dir, names) = folder_with_segments("bytes", &[100, 100, 100, 100]);
        let deleted = make_room(&limits(&dir, Some(250), None), &HashSet::new());
        assert_eq!(deleted, 2);
        let mut expected = vec![names[2].clone(), names[3].clone(), "notes.txt".into()];
        expected.sort();
        assert_eq!(remaining(&dir), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn making_room_counts_the_segment_about_to_be_opened() {
        let (dir, names) = folder_with_segments("keep", &[10, 10, 10]);
        assert_eq!(make_room(&limits(&dir, None, Some(2)), &HashSet::new()), 2);
        let mut expected = vec![names[2].clone(), "notes.txt".into()];
        expected.sort();
        assert_eq!(remaining(&dir), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn making_room_never_deletes_a_segment_being_written() {
        let (dir, names) = folder_with_segments("writing", &[100, 100, 100]);
        // Another camera's segment, the oldest here, is still being written.
        let writing = HashSet::from([names[0].clone()]);
        assert_eq!(make_room(&limits(&dir, Some(1), Some(1)), &writing), 2);
        let mut expected = vec![names[0].clone(), "notes.txt".into()];
        expected.sort();
        assert_eq!(remaining(&dir), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
