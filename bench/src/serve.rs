//! An in-process `wsjpegsink` fed by `appsrc` with real JPEG frames at a fixed rate.
//!
//! Frames are encoded once with GStreamer's `jpegenc` (default: 1280×720
//! `videotestsrc pattern=circular`, quality 85, ≈ 250 KB) and pushed with `do-timestamp`, so
//! the capture time in the `?meta=1` header is the moment the frame entered the pipeline and
//! latency includes the pipeline (appsrc queue → sink → viewers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use gst::prelude::*;

/// What the frames look like.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    pub width: u32,
    pub height: u32,
    pub quality: u32,
    pub pattern: String,
    /// How many different frames to encode and cycle through.
    pub distinct: u32,
    /// Pad each frame with JPEG comment segments to exactly this many bytes.
    pub size: Option<usize>,
}

impl Default for FrameSpec {
    fn default() -> Self {
        FrameSpec {
            width: 1280,
            height: 720,
            quality: 85,
            pattern: "circular".into(),
            distinct: 1,
            size: None,
        }
    }
}

pub fn init_gstreamer() -> Result<()> {
    gst::init().context("initialising GStreamer")?;
    gstwsjpeg::plugin_register_static().context("registering the wsjpeg plugin")?;
    Ok(())
}

/// Encodes `spec.distinct` JPEG frames with `videotestsrc ! jpegenc`.
pub fn encode_frames(spec: &FrameSpec) -> Result<Vec<Bytes>> {
    init_gstreamer()?;
    let count = spec.distinct.max(1);
    let description = format!(
        "videotestsrc num-buffers={count} pattern={} ! video/x-raw,width={},height={} \
         ! jpegenc quality={} ! appsink name=out sync=false",
        spec.pattern, spec.width, spec.height, spec.quality
    );
    let pipeline = gst::parse::launch(&description)
        .with_context(|| format!("building '{description}'"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let appsink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("no appsink")?;
    pipeline
        .set_state(gst::State::Playing)
        .context("starting the encoder pipeline")?;
    let mut frames = Vec::new();
    for _ in 0..count {
        let Ok(sample) = appsink.pull_sample() else {
            break;
        };
        let buffer = sample.buffer().context("sample without buffer")?;
        let map = buffer.map_readable().context("mapping the JPEG")?;
        frames.push(Bytes::copy_from_slice(&map));
    }
    let _ = pipeline.set_state(gst::State::Null);
    if frames.is_empty() {
        bail!("the encoder produced no frame (are gst-plugins-good and -base installed?)");
    }
    match spec.size {
        Some(size) => frames.iter().map(|f| pad_jpeg(f, size)).collect(),
        None => Ok(frames),
    }
}

/// Encodes `count` frames of the same picture source as H.264 access units (x264, ultrafast,
/// zero latency, no B-frames, a keyframe every `keyframe_frames`), byte-stream, one unit each.
/// Cycling through them keeps the stream decodable when `count` is a multiple of
/// `keyframe_frames`.
pub fn encode_h264(
    spec: &FrameSpec,
    fps: f64,
    bitrate_kbps: u32,
    keyframe_frames: u32,
    count: u32,
) -> Result<Vec<Bytes>> {
    init_gstreamer()?;
    let fps_n = (fps * 1000.0).round() as i64;
    let description = format!(
        "videotestsrc num-buffers={count} pattern={} ! video/x-raw,format=I420,width={},height={},framerate={fps_n}/1000 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} \
         key-int-max={keyframe_frames} bframes=0 ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out sync=false",
        spec.pattern, spec.width, spec.height
    );
    let pipeline = gst::parse::launch(&description)
        .with_context(|| format!("building '{description}' (is x264enc installed?)"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let appsink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("no appsink")?;
    pipeline
        .set_state(gst::State::Playing)
        .context("starting the H.264 encoder pipeline")?;
    let mut units = Vec::new();
    while let Ok(sample) = appsink.pull_sample() {
        let buffer = sample.buffer().context("sample without buffer")?;
        let map = buffer.map_readable().context("mapping an access unit")?;
        units.push(Bytes::copy_from_slice(&map));
    }
    let _ = pipeline.set_state(gst::State::Null);
    if units.is_empty() {
        bail!("the H.264 encoder produced nothing (is gstreamer1.0-plugins-ugly installed?)");
    }
    Ok(units)
}

/// The JPEG `jpeg` grown to exactly `size` bytes with comment (COM) segments right after SOI:
/// still a valid picture, the same to every decoder, and any size a camera might send.
pub fn pad_jpeg(jpeg: &[u8], size: usize) -> Result<Bytes> {
    const MAX_SEGMENT: usize = 65_535 + 2; // marker + length field + 65,533 bytes of comment
    if jpeg.len() > size {
        bail!(
            "--frame-size {size}: the encoded frame already has {} bytes (lower --quality or \
             pick a simpler --pattern)",
            jpeg.len()
        );
    }
    let (soi, rest) = jpeg.split_at_checked(2).context("not a JPEG")?;
    let mut missing = size - jpeg.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(soi);
    while missing > 0 {
        // A segment takes at least 4 bytes (marker and length); never leave 1–3 over.
        let mut take = missing.min(MAX_SEGMENT);
        if missing - take > 0 && missing - take < 4 {
            take -= 4;
        }
        if take < 4 {
            bail!("--frame-size {size}: {missing} bytes cannot be padded (a segment needs 4)");
        }
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((take - 2) as u16).to_be_bytes());
        out.resize(out.len() + take - 4, b' ');
        missing -= take;
    }
    out.extend_from_slice(rest);
    Ok(Bytes::from(out))
}

/// Pushes frames at a fixed rate from a thread of its own.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    /// Calls `push` with the next frame every `1/fps` seconds (absolute deadlines, no drift)
    /// until stopped or until `push` returns false.
    pub fn start(
        frames: Vec<Bytes>,
        fps: f64,
        mut push: impl FnMut(Bytes) -> bool + Send + 'static,
    ) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let interval = Duration::from_secs_f64(1.0 / fps.max(0.1));
        if frames.is_empty() {
            return Feeder { stop, thread: None };
        }
        let thread = std::thread::Builder::new()
            .name("feeder".into())
            .spawn(move || {
                let mut next = Instant::now();
                let mut i = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    if !push(frames[i % frames.len()].clone()) {
                        break;
                    }
                    i += 1;
                    next += interval;
                    match next.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::sleep(wait),
                        // Fell behind by more than a frame: do not burst to catch up.
                        None => next = Instant::now(),
                    }
                }
            })
            .ok();
        Feeder { stop, thread }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone)]
pub struct ElementOptions {
    pub address: String,
    pub port: u16,
    pub fps: f64,
    pub max_clients: u32,
    pub keepalive: u32,
    /// Bring the pipeline only to READY: the server listens, no frame flows (a parked
    /// camera).
    pub idle: bool,
    /// Extra `wsjpegsink` properties, `name=value` separated by spaces.
    pub sink_props: String,
    /// Push detections (three objects) for a frame this many times a second, as a detector
    /// beside the camera would; 0 = none.
    pub detections_fps: f64,
    /// H.264 access units served beside the JPEG frames (`wsh264sink`), cycled through at the
    /// same rate; none: no H.264 stream.
    pub h264: Vec<Bytes>,
}

/// `appsrc ! wsjpegsink` running in this process.
pub struct ElementServer {
    pub pipeline: gst::Pipeline,
    pub port: u16,
    _feeder: Option<Feeder>,
    _h264_feeder: Option<Feeder>,
}

impl ElementServer {
    pub fn start(opts: &ElementOptions, frames: Vec<Bytes>, spec: &FrameSpec) -> Result<Self> {
        init_gstreamer()?;
        let fps_n = (opts.fps * 1000.0).round() as i64;
        let h264_branch = if opts.h264.is_empty() {
            String::new()
        } else {
            format!(
                " appsrc name=h264src is-live=true format=time do-timestamp=true \
                 caps=video/x-h264,stream-format=byte-stream,alignment=au,width={},height={},framerate={fps_n}/1000 \
                 ! wsh264sink sink=sink",
                spec.width, spec.height
            )
        };
        let description = format!(
            "appsrc name=src is-live=true format=time do-timestamp=true \
             caps=image/jpeg,width={},height={},framerate={fps_n}/1000 \
             ! wsjpegsink name=sink address={} port={} max-clients={} keepalive={} {}{h264_branch}",
            spec.width,
            spec.height,
            opts.address,
            opts.port,
            opts.max_clients,
            opts.keepalive,
            opts.sink_props
        );
        let pipeline = gst::parse::launch(&description)
            .with_context(|| format!("building '{description}'"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("not a pipeline"))?;
        let sink = pipeline.by_name("sink").context("no sink")?;
        // The clock the detections name their frames by.
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        pipeline
            .set_state(gst::State::Ready)
            .map_err(|_| anyhow!("wsjpegsink did not start: {}", bus_error(&pipeline)))?;
        let port = sink.property::<u32>("bound-port") as u16;
        if port == 0 {
            bail!("wsjpegsink reports no bound port");
        }
        let feeder = if opts.idle {
            None
        } else {
            pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| anyhow!("pipeline did not play: {}", bus_error(&pipeline)))?;
            let src = pipeline
                .by_name("src")
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .context("no appsrc")?;
            let detector = Detector::new(&sink, opts.fps, opts.detections_fps);
            Some(Feeder::start(frames, opts.fps, move |jpeg| {
                let pushed_at = detector.as_ref().and_then(Detector::now);
                let ok = src.push_buffer(gst::Buffer::from_slice(jpeg)).is_ok();
                if let (Some(detector), Some(at)) = (&detector, pushed_at) {
                    detector.frame_pushed(at);
                }
                ok
            }))
        };
        let h264_feeder = match pipeline
            .by_name("h264src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        {
            Some(src) if !opts.idle => {
                Some(Feeder::start(opts.h264.clone(), opts.fps, move |unit| {
                    src.push_buffer(gst::Buffer::from_slice(unit)).is_ok()
                }))
            }
            _ => None,
        };
        Ok(ElementServer {
            pipeline,
            port,
            _feeder: feeder,
            _h264_feeder: h264_feeder,
        })
    }

    /// An error posted on the bus, if any.
    pub fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        }
    }
}

impl Drop for ElementServer {
    fn drop(&mut self) {
        self._feeder = None;
        self._h264_feeder = None;
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Stands in for a detector running beside the camera at its own rate: every so many frames it
/// pushes three objects for the frame before (which has gone out by then), named by its capture
/// time on the pipeline clock.
struct Detector {
    clock: gst::Clock,
    sink: gst::Element,
    every: u64,
    state: std::sync::Mutex<(u64, Option<gst::ClockTime>)>,
}

impl Detector {
    fn new(sink: &gst::Element, fps: f64, detections_fps: f64) -> Option<Detector> {
        if detections_fps <= 0.0 {
            return None;
        }
        Some(Detector {
            clock: gst::SystemClock::obtain(),
            sink: sink.clone(),
            every: (fps / detections_fps).round().max(1.0) as u64,
            state: std::sync::Mutex::new((0, None)),
        })
    }

    fn now(&self) -> Option<gst::ClockTime> {
        Some(self.clock.time())
    }

    /// A frame entered the pipeline at clock time `at` (appsrc stamps it then).
    fn frame_pushed(&self, at: gst::ClockTime) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (count, previous) = *state;
        *state = (count + 1, Some(at));
        if let Some(previous) = previous.filter(|_| count % self.every == 0) {
            let objects = [("person", 100.0), ("car", 400.0), ("dog", 700.0)].map(|(label, x)| {
                gstwsjpeg::detections::DetectedObject {
                    label: label.into(),
                    score: Some(0.8),
                    bbox: [x, 200.0, 150.0, 300.0],
                    id: None,
                    parent: None,
                }
            });
            let detections = gstwsjpeg::detections::detections_structure(
                gstwsjpeg::detections::FrameTime::ClockTime(previous),
                &objects,
            );
            let _ = self
                .sink
                .emit_by_name::<bool>("push-detections", &[&detections]);
        }
    }
}

fn bus_error(pipeline: &gst::Pipeline) -> String {
    pipeline
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "no error message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_frames_have_the_size_asked_and_stay_valid_jpegs() {
        let spec = FrameSpec {
            width: 320,
            height: 240,
            ..FrameSpec::default()
        };
        let jpeg = encode_frames(&spec).unwrap().remove(0);
        for size in [
            jpeg.len(),
            jpeg.len() + 4,
            jpeg.len() + 70_000,
            65_536 * 3 + 1,
        ] {
            let padded = pad_jpeg(&jpeg, size).unwrap();
            assert_eq!(padded.len(), size);
            assert_eq!(wsjpeg_server::jpeg::validate(&padded), Ok(size));
            assert_eq!(
                wsjpeg_server::jpeg::dimensions(&padded),
                Some((320, 240)),
                "the picture is the same"
            );
        }
        assert!(
            pad_jpeg(&jpeg, jpeg.len() + 2).is_err(),
            "2 bytes fit no segment"
        );
        assert!(pad_jpeg(&jpeg, 100).is_err(), "smaller than the picture");
    }
}
