// SPDX-License-Identifier: MIT
//! The H.264 encoder of a camera: a pipeline of its own,
//! `appsrc (JPEG) ! jpegdec ! <encoder> ! h264parse ! appsink`, fed with the frames the viewers
//! get, that runs only while someone needs H.264 (a viewer that asked for it, or an H.264
//! recording) and hands each access unit to all of them: one encoder, whatever the number.
//!
//! The encoder is the Jetson's `nvv4l2h264enc`, else `x264enc` (ultrafast, zero latency, no
//! B-frames), else `openh264enc`, with a keyframe every `--keyframe-interval` and on request
//! (a viewer joining or falling behind asks through the server, rate-limited there).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use gst::prelude::*;

use crate::encoder::NVMM_CAPS;
use crate::events::Event;
use crate::gst_util::{reaches_paused, retimed, take_error};

/// Frames waiting for the encoder beyond this are dropped (it is slower than the camera).
const MAX_PENDING_BYTES: u64 = 8 * 1024 * 1024;
const HARDWARE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum H264Choice {
    /// nvv4l2h264enc on a Jetson, else x264enc, else openh264enc.
    Auto,
    Nvv4l2h264enc,
    X264enc,
    Openh264enc,
}

/// How to encode.
#[derive(Debug, Clone, Copy)]
pub struct H264Settings {
    pub choice: H264Choice,
    pub bitrate_kbps: u32,
    pub keyframe_interval: Duration,
    pub fps: u32,
}

impl H264Settings {
    fn keyframe_frames(&self) -> u32 {
        ((self.keyframe_interval.as_secs_f64() * f64::from(self.fps)).round() as u32).max(1)
    }
}

/// The encoder elements (gst-launch text) between `jpegdec` and `h264parse`, or why there is
/// none.
pub fn encoder_text(settings: &H264Settings) -> Result<String> {
    let hardware = || {
        gst::ElementFactory::find("nvv4l2h264enc").is_some()
            && gst::ElementFactory::find("nvvidconv").is_some()
            && reaches_paused(
                &format!(
                    "videotestsrc num-buffers=1 ! nvvidconv ! {NVMM_CAPS} ! nvv4l2h264enc ! fakesink"
                ),
                HARDWARE_PROBE_TIMEOUT,
            )
    };
    let x264 = || gst::ElementFactory::find("x264enc").is_some();
    let openh264 = || gst::ElementFactory::find("openh264enc").is_some();
    let keyint = settings.keyframe_frames();
    let kbps = settings.bitrate_kbps;
    let hardware_text = || {
        format!(
            "nvvidconv ! {NVMM_CAPS} ! nvv4l2h264enc bitrate={} iframeinterval={keyint} \
             idrinterval={keyint} insert-sps-pps=true",
            kbps * 1000
        )
    };
    let x264_text = || {
        format!(
            "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} \
             key-int-max={keyint} bframes=0"
        )
    };
    let openh264_text = || {
        format!(
            "videoconvert ! openh264enc complexity=low bitrate={} gop-size={keyint}",
            kbps * 1000
        )
    };
    match settings.choice {
        H264Choice::Auto if hardware() => Ok(hardware_text()),
        H264Choice::Auto if x264() => Ok(x264_text()),
        H264Choice::Auto if openh264() => Ok(openh264_text()),
        H264Choice::Auto => bail!(
            "no H.264 encoder: install gstreamer1.0-plugins-ugly (x264enc) or gstreamer1.0-plugins-bad (openh264enc)"
        ),
        H264Choice::Nvv4l2h264enc if hardware() => Ok(hardware_text()),
        H264Choice::X264enc if x264() => Ok(x264_text()),
        H264Choice::Openh264enc if openh264() => Ok(openh264_text()),
        forced => bail!(
            "--h264-encoder {}: the encoder is not installed or does not work here",
            clap::ValueEnum::to_possible_value(&forced)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        ),
    }
}

/// Where the access units go: the server's H.264 input, a recording.
#[derive(Default)]
struct Outputs {
    live: Option<gst_app::AppSrc>,
    /// The recording, which must start at a keyframe (`false` until it has had one).
    recording: Option<(gst_app::AppSrc, bool)>,
}

/// The camera's H.264 encoder, while it runs.
pub struct H264Encoder {
    pipeline: gst::Pipeline,
    input: gst_app::AppSrc,
    output: gst_app::AppSink,
    outputs: Arc<Mutex<Outputs>>,
}

impl H264Encoder {
    pub fn start(
        settings: &H264Settings,
        camera: usize,
        generation: u64,
        events: Sender<Event>,
    ) -> Result<H264Encoder> {
        let text = format!(
            "appsrc name=in is-live=true format=time block=false caps=image/jpeg ! jpegdec \
             ! {} ! {} ! h264parse config-interval=-1 \
             ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! appsink name=out sync=false",
            crate::colour_range::jpeg_to_limited_text(),
            encoder_text(settings)?
        );
        log::debug!("H.264 pipeline: {text}");
        let pipeline = gst::parse::launch(&text)
            .map_err(|e| anyhow!("cannot build the H.264 encoder: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the H.264 encoder is not a pipeline"))?;
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let input = pipeline
            .by_name("in")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| anyhow!("the H.264 encoder has no input"))?;
        let output = pipeline
            .by_name("out")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| anyhow!("the H.264 encoder has no output"))?;
        let outputs = Arc::new(Mutex::new(Outputs::default()));
        hand_out(&output, outputs.clone());
        watch_bus(&pipeline, camera, generation, events);
        let encoder = H264Encoder {
            pipeline,
            input,
            output,
            outputs,
        };
        if encoder.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = take_error(&encoder.pipeline);
            bail!(
                "the H.264 encoder cannot start: {}",
                reason.unwrap_or_else(|| "its pipeline fails".into())
            );
        }
        Ok(encoder)
    }

    /// The factories of the encoder pipeline's elements, in no particular order.
    pub fn element_factories(&self) -> Vec<String> {
        self.pipeline
            .iterate_recurse()
            .into_iter()
            .flatten()
            .filter_map(|e| e.factory().map(|f| f.name().to_string()))
            .collect()
    }

    /// Where the camera's JPEG frames go.
    pub fn input(&self) -> gst_app::AppSrc {
        self.input.clone()
    }

    /// The server's H.264 input gets every access unit from now on.
    pub fn set_live(&self, live: Option<gst_app::AppSrc>) {
        self.outputs().live = live;
    }

    /// A recording gets the access units from the next keyframe on (asked for at once).
    pub fn set_recording(&self, recording: Option<gst_app::AppSrc>) {
        let starts = recording.is_some();
        self.outputs().recording = recording.map(|r| (r, false));
        if starts {
            self.request_keyframe();
        }
    }

    /// Asks the encoder for a keyframe with its SPS and PPS: through its `force-IDR` action
    /// signal where it has one (the Jetson encoder), else with the force-key-unit event.
    pub fn request_keyframe(&self) {
        let forcing = self
            .pipeline
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|e| gst::glib::subclass::SignalId::lookup("force-IDR", e.type_()).is_some());
        if let Some(encoder) = forcing {
            encoder.emit_by_name::<()>("force-IDR", &[]);
            return;
        }
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        let _ = self.output.send_event(event);
    }

    fn outputs(&self) -> std::sync::MutexGuard<'_, Outputs> {
        self.outputs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for H264Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Hands a JPEG frame to the encoder unless it is already far behind.
pub fn offer_frame(input: &gst_app::AppSrc, buffer: gst::Buffer) {
    if input.current_level_bytes() <= MAX_PENDING_BYTES {
        let _ = input.push_buffer(buffer);
    }
}

/// Gives each access unit to the live stream and the recording, each stamped onto its own
/// pipeline's running time (all pipelines run on the system clock).
fn hand_out(output: &gst_app::AppSink, outputs: Arc<Mutex<Outputs>>) {
    output.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                // x264enc moves its output 1000 hours ahead in a segment that starts there: the
                // capture time is the running time, not the timestamp.
                let running = sample
                    .segment()
                    .and_then(|segment| segment.downcast_ref::<gst::ClockTime>())
                    .zip(buffer.pts())
                    .and_then(|(segment, pts)| segment.to_running_time(pts));
                let capture = running
                    .zip(appsink.base_time())
                    .map(|(running, base)| running + base);
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let caps = sample.caps_owned();
                let mut outputs = outputs.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(live) = &outputs.live {
                    let _ = live.push_buffer(retimed(&buffer, capture, live, caps.as_ref()));
                }
                if let Some((recording, started)) = &mut outputs.recording {
                    *started |= keyframe;
                    if *started {
                        let unit = retimed(&buffer, capture, recording, caps.as_ref());
                        if unit.pts().is_some() {
                            let _ = recording.push_buffer(unit);
                        }
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// An error stops the encoder (the control loop does); JPEG streaming goes on.
fn watch_bus(pipeline: &gst::Pipeline, camera: usize, generation: u64, events: Sender<Event>) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| {
        if let gst::MessageView::Error(err) = message.view() {
            let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
            let _ = events.send(Event::H264Failed {
                camera,
                generation,
                reason: format!("{} ({source})", err.error()),
            });
        }
        gst::BusSyncReply::Drop
    });
}
