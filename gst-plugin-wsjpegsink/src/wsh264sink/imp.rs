// SPDX-License-Identifier: MIT
/**
 * SECTION:element-wsh264sink
 *
 * Serves H.264 on the port of a `wsjpegsink` (of the same pipeline, or of any pipeline of the
 * process when `sink` names it): viewers that connect to
 * `/stream?codec=h264` get each access unit, in order from a keyframe, as one binary
 * WebSocket message behind a 32-byte header. The JPEG stream, MJPEG, snapshots and
 * recordings of the `wsjpegsink` go on as they are.
 *
 * It takes `video/x-h264, stream-format=byte-stream, alignment=au` with SPS and PPS before
 * every keyframe (`h264parse config-interval=-1`). A viewer that joins or falls behind asks
 * upstream for a keyframe (the force-key-unit event, at most twice a second); a viewer that
 * falls behind drops frames until the next keyframe instead of queueing them.
 *
 * ## Example pipeline
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,format=I420 ! tee name=t \
 *     t. ! queue ! jpegenc ! wsjpegsink \
 *     t. ! queue ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
 *        ! h264parse config-interval=-1 ! wsh264sink
 * ]|
 *
 * Since: 0.1
 */
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use wsjpeg_server::sync::lock;
use wsjpeg_server::{Producer, VideoTrack};

use crate::timing::capture_time_us;
use crate::tracks;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "wsh264sink",
        gst::DebugColorFlags::empty(),
        Some("WebSocket H.264 sink"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    /// The name of the wsjpegsink to serve with; `None`: the only one in the pipeline.
    sink: Option<String>,
}

#[derive(Default)]
struct State {
    /// The track the wsjpegsink's server carries, and this element as its producer, while
    /// started.
    attached: Option<(Arc<VideoTrack>, Arc<dyn Producer>)>,
}

#[derive(Default)]
pub struct WsH264Sink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Viewers following the track, as it last said.
    viewers: AtomicU32,
}

#[glib::object_subclass]
impl ObjectSubclass for WsH264Sink {
    const NAME: &'static str = "GstWsH264Sink";
    type Type = super::WsH264Sink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for WsH264Sink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("sink")
                    .nick("JPEG sink")
                    .blurb("Name of the wsjpegsink whose server carries the H.264 stream, in any pipeline of the process; unset: the only one in this pipeline")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("n-clients")
                    .nick("Number of H.264 viewers")
                    .blurb("Viewers of the H.264 stream now; notifies on change (an application may run the encoder only while it is above 0)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_enable_last_sample(false);
        obj.set_sync(false);
        // Its input may not come for long (an application runs the encoder only while H.264
        // viewers watch): waiting for it to preroll would hold the whole pipeline, and with
        // it the JPEG stream, in PAUSED.
        obj.set_async(false);
        // Caps the pad refuses stop the stream with a bare "not-negotiated" from upstream; the
        // probe runs before that check and says what is wrong and how to fix it.
        if let Some(pad) = obj.static_pad("sink") {
            let element = obj.downgrade();
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(event)) = &info.data
                    && let gst::EventView::Caps(caps) = event.view()
                    && let Some(element) = element.upgrade()
                {
                    element.imp().refuse_unusable_caps(caps.caps());
                }
                gst::PadProbeReturn::Ok
            });
        }
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "sink" {
            lock(&self.settings).sink = value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty());
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "sink" => lock(&self.settings).sink.to_value(),
            "n-clients" => self.viewers.load(Ordering::Relaxed).to_value(),
            name => unimplemented!("Property '{name}'"),
        }
    }
}

impl GstObjectImpl for WsH264Sink {}

impl ElementImpl for WsH264Sink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "WebSocket H.264 Sink",
                "Sink/Network",
                "Serves live H.264 to browsers on the port of a wsjpegsink, from keyframes on",
                "wsjpeg developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &accepted_caps(),
            )
            .expect("static pad template");
            vec![sink]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for WsH264Sink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let wanted = lock(&self.settings).sink.clone();
        let obj = self.obj();
        let (jpeg_sink, track) = match tracks::jpeg_sinks(wanted.as_deref(), obj.upcast_ref())
            .as_slice()
        {
            [only] => only.clone(),
            [] => {
                return Err(gst::error_msg!(
                    gst::ResourceError::NotFound,
                    (
                        "wsh264sink: no wsjpegsink {}: H.264 is served on a wsjpegsink's port",
                        match &wanted {
                            Some(name) => format!("named '{name}' in this process"),
                            None => "in this pipeline".to_string(),
                        }
                    )
                ));
            }
            several => {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    (
                        "wsh264sink: {} wsjpegsinks {}; name the one to serve H.264 on with sink=NAME",
                        several.len(),
                        if wanted.is_some() {
                            "of that name in this process"
                        } else {
                            "in this pipeline"
                        }
                    )
                ));
            }
        };
        let producer: Arc<dyn Producer> = Arc::new(ElementProducer {
            element: obj.downgrade(),
        });
        track.attach(producer.clone()).map_err(|_| {
            gst::error_msg!(
                gst::ResourceError::Busy,
                (
                    "wsh264sink: another wsh264sink already serves H.264 on {}; one stream per wsjpegsink",
                    jpeg_sink
                )
            )
        })?;
        gst::info!(CAT, imp = self, "Serving H.264 with {}", jpeg_sink);
        *lock(&self.state) = State {
            attached: Some((track, producer)),
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some((track, producer)) = lock(&self.state).attached.take() {
            track.detach(&producer);
        }
        self.followers_changed(0);
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        self.warn_of_profile_browsers_lack(caps);
        let size = |field: &str| {
            caps.structure(0)
                .and_then(|s| s.get::<i32>(field).ok())
                .and_then(|v| u32::try_from(v).ok())
        };
        if let Some(track) = self.track() {
            track.set_size(size("width"), size("height"));
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(track) = self.track() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["Failed to map buffer"]);
            gst::FlowError::Error
        })?;
        let capture_time = capture_time_us(self.obj().upcast_ref(), buffer);
        // Copied, so the encoder's buffer goes back at once.
        let duration_us = buffer
            .duration()
            .and_then(|d| u32::try_from(d.useconds()).ok());
        track.publish_timed(
            bytes::Bytes::copy_from_slice(&map),
            capture_time,
            duration_us,
        );
        Ok(gst::FlowSuccess::Ok)
    }
}

impl WsH264Sink {
    fn track(&self) -> Option<Arc<VideoTrack>> {
        lock(&self.state)
            .attached
            .as_ref()
            .map(|(track, _)| track.clone())
    }

    /// Browsers decode baseline, main and high profile; x264 fed 4:4:4 or 10-bit video makes
    /// a stream they cannot (`videotestsrc ! x264enc` gives high-4:4:4).
    fn warn_of_profile_browsers_lack(&self, caps: &gst::Caps) {
        let profile = caps
            .structure(0)
            .and_then(|s| s.get::<&str>("profile").ok());
        if let Some(profile) = profile
            && (profile.starts_with("high-4") || profile.starts_with("high-10"))
        {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("H.264 profile {profile} is one browsers do not decode: viewers will stay on JPEG"),
                [
                    "Give the encoder video/x-raw,format=I420 (or put video/x-h264,profile=constrained-baseline after it)"
                ]
            );
        }
    }

    fn refuse_unusable_caps(&self, caps: &gst::CapsRef) {
        if !caps.can_intersect(&accepted_caps()) {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("wsh264sink takes video/x-h264 with stream-format=byte-stream and alignment=au, not {caps}"),
                ["Put h264parse before it: ... ! h264parse config-interval=-1 ! wsh264sink"]
            );
        }
    }

    /// `n-clients` follows the track's count; the notification goes out on a thread of
    /// GStreamer's, so a handler that starts an encoder holds up no viewer.
    fn followers_changed(&self, n: u32) {
        if self.viewers.swap(n, Ordering::Relaxed) != n {
            self.obj().call_async(|element| element.notify("n-clients"));
        }
    }

    fn request_keyframe(&self) {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        gst::debug!(CAT, imp = self, "Asking upstream for a keyframe");
        let _ = self
            .obj()
            .sink_pads()
            .first()
            .map(|pad| pad.push_event(event));
    }
}

fn accepted_caps() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build()
}

/// How the track reaches the element: keyframe requests go upstream as the force-key-unit
/// event, follower counts become `n-clients`.
struct ElementProducer {
    element: glib::WeakRef<super::WsH264Sink>,
}

impl Producer for ElementProducer {
    fn request_keyframe(&self) {
        if let Some(element) = self.element.upgrade() {
            element.imp().request_keyframe();
        }
    }

    fn followers_changed(&self, n: u32) {
        if let Some(element) = self.element.upgrade() {
            element.imp().followers_changed(n);
        }
    }
}
