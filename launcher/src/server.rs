// SPDX-License-Identifier: MIT
//! The always-on half: `appsrc ! wsjpegsink`. READY while the camera is parked (viewers stay
//! connected and are told the camera is idle), PLAYING while it runs.

use std::path::PathBuf;
use std::sync::mpsc::Sender;

use anyhow::{Result, anyhow};
use gst::prelude::*;

use crate::events::Event;
use crate::gst_util::take_error;

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub address: String,
    pub max_clients: u32,
    pub max_connections: u32,
    pub keepalive: u32,
    pub write_timeout: u32,
    pub allowed_origins: String,
    pub auth_token: Option<String>,
    pub detector_token: Option<String>,
    pub document_root: Option<PathBuf>,
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

pub struct ServerPipeline {
    pipeline: gst::Pipeline,
    pub appsrc: gst_app::AppSrc,
    pub sink: gst::Element,
    /// H.264 access units for `wsh264sink`, which serves them on the same port (when an
    /// encoder can be had).
    pub h264: Option<gst_app::AppSrc>,
    pub port: u16,
}

impl ServerPipeline {
    pub fn start(
        settings: &ServerSettings,
        port: u16,
        camera: usize,
        recording_dir: Option<&std::path::Path>,
        offer_h264: bool,
        events: Sender<Event>,
    ) -> Result<ServerPipeline> {
        let pipeline = gst::Pipeline::with_name(&format!("server{camera}"));
        // Camera and server pipelines share the clock, so capture times carry across.
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let appsrc = gst_app::AppSrc::builder()
            .name("frames")
            .is_live(true)
            .format(gst::Format::Time)
            .caps(&gst::Caps::new_empty_simple("image/jpeg"))
            .build();
        let sink = gst::ElementFactory::make("wsjpegsink")
            .name(format!("camera{camera}"))
            .property("address", &settings.address)
            .property("port", port as u32)
            .property("max-clients", settings.max_clients)
            .property("max-connections", settings.max_connections)
            .property("keepalive", settings.keepalive)
            .property("write-timeout", settings.write_timeout)
            .property("allowed-origins", &settings.allowed_origins)
            .property("auth-token", settings.auth_token.as_deref())
            .property("detector-token", settings.detector_token.as_deref())
            .property(
                "document-root",
                settings
                    .document_root
                    .as_ref()
                    .map(|p| p.display().to_string()),
            )
            .property(
                "tls-certificate",
                settings
                    .tls_certificate
                    .as_ref()
                    .map(|p| p.display().to_string()),
            )
            .property(
                "tls-key",
                settings.tls_key.as_ref().map(|p| p.display().to_string()),
            )
            .build()
            .map_err(|_| anyhow!("the wsjpegsink element is not available"))?;
        pipeline.add_many([appsrc.upcast_ref(), &sink])?;
        appsrc.link(&sink)?;
        let h264 = if offer_h264 {
            Some(add_h264_branch(&pipeline, camera, &events)?)
        } else {
            None
        };
        if let Some(dir) = recording_dir {
            enable_recording_control(&sink, dir, camera, events.clone());
        }
        sink.connect_notify(Some("n-clients"), move |sink, _| {
            let n = sink.property::<u32>("n-clients");
            let _ = events.send(Event::Viewers { camera, n });
        });
        let started = pipeline.set_state(gst::State::Ready);
        if started.is_err() {
            let reason = take_error(&pipeline)
                .unwrap_or_else(|| format!("cannot listen on {}:{port}", settings.address));
            let _ = pipeline.set_state(gst::State::Null);
            return Err(anyhow!(reason));
        }
        drain_bus(&pipeline, camera);
        let port = sink.property::<u32>("bound-port") as u16;
        Ok(ServerPipeline {
            pipeline,
            appsrc,
            sink,
            h264,
            port,
        })
    }

    /// Camera parked: no frames, viewers stay, status `idle`.
    pub fn park(&self) {
        let _ = self.pipeline.set_state(gst::State::Ready);
    }

    /// Camera starting or running: viewers see `starting`, then `streaming` with the first frame.
    pub fn activate(&self) -> Result<()> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map(|_| ())
            .map_err(|_| anyhow!("the server pipeline cannot start streaming"))
    }

    pub fn set_camera_error(&self, message: Option<&str>) {
        self.sink
            .set_property("camera-error", message.unwrap_or(""));
    }

    pub fn set_source_info(&self, info: gst::Structure) {
        self.sink.set_property("source-info", info);
    }

    pub fn set_recording_state(&self, state: &gst::Structure) {
        if self.sink.find_property("recording-state").is_some() {
            self.sink.set_property("recording-state", state);
        }
    }

    pub fn n_clients(&self) -> u32 {
        self.sink.property::<u32>("n-clients")
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for ServerPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Lists the recordings over HTTP and turns `POST /api/record/start|stop` into control-loop
/// events. The handler runs on a server thread: it only sends.
fn enable_recording_control(
    sink: &gst::Element,
    dir: &std::path::Path,
    camera: usize,
    events: Sender<Event>,
) {
    // The element may be an older installed libgstwsjpeg.so loaded before ours (see
    // `init_gstreamer`): without the recording interface, recording is simply not offered
    // over HTTP, rather than a panic on an unknown property or signal.
    if sink.find_property("recording-dir").is_none()
        || gst::glib::subclass::signal::SignalId::lookup("recording-control", sink.type_())
            .is_none()
    {
        log::warn!(
            "This wsjpegsink has no recording interface: recording is not offered over HTTP"
        );
        return;
    }
    sink.set_property("recording-dir", dir.display().to_string());
    sink.connect("recording-control", false, move |args| {
        let start = match args.get(1).and_then(|v| v.get::<String>().ok()).as_deref() {
            Some("start") => true,
            Some("stop") => false,
            _ => return Some(false.to_value()),
        };
        let sent = events.send(Event::RecordControl { camera, start }).is_ok();
        Some(sent.to_value())
    });
}

/// `appsrc name=h264 ! wsh264sink`: H.264 on the port of the pipeline's wsjpegsink, fed by the encoder while
/// it runs; viewer counts and keyframe requests go to the control loop.
fn add_h264_branch(
    pipeline: &gst::Pipeline,
    camera: usize,
    events: &Sender<Event>,
) -> Result<gst_app::AppSrc> {
    let h264 = gst_app::AppSrc::builder()
        .name("h264")
        .is_live(true)
        .format(gst::Format::Time)
        .caps(
            &gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        )
        .build();
    let h264_sink = gst::ElementFactory::make("wsh264sink")
        .name(format!("camera{camera}-h264"))
        .build()
        .map_err(|_| anyhow!("the wsh264sink element is not available"))?;
    pipeline.add_many([h264.upcast_ref(), &h264_sink])?;
    h264.link(&h264_sink)?;
    forward_keyframe_requests(&h264, camera, events.clone());
    let viewers = events.clone();
    h264_sink.connect_notify(Some("n-clients"), move |sink, _| {
        let n = sink.property::<u32>("n-clients");
        let _ = viewers.send(Event::H264Viewers { camera, n });
    });
    Ok(h264)
}

/// A viewer of the H.264 stream asks for a keyframe: the server sends the force-key-unit event
/// upstream from `wsh264sink`; it ends at this appsrc, and the control loop hands it on to the
/// encoder in the camera's other pipeline.
fn forward_keyframe_requests(h264: &gst_app::AppSrc, camera: usize, events: Sender<Event>) {
    let Some(pad) = h264.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let asks = info
            .event()
            .is_some_and(|event| gst_video::ForceKeyUnitEvent::is(event) && event.is_upstream());
        if asks {
            let _ = events.send(Event::KeyframeWanted { camera });
        }
        gst::PadProbeReturn::Ok
    });
}

/// Nobody polls this bus, and the sink posts a message at every viewer change: without a
/// handler they would pile up. Viewer changes reach the loop through `notify::n-clients`.
fn drain_bus(pipeline: &gst::Pipeline, camera: usize) {
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, message| {
        match message.view() {
            gst::MessageView::Error(err) => {
                log::error!(
                    "Camera {camera} server: {} ({:?})",
                    err.error(),
                    err.debug()
                )
            }
            gst::MessageView::Warning(w) => log::warn!("Camera {camera} server: {}", w.error()),
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}
