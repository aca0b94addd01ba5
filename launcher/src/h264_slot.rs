// SPDX-License-Identifier: MIT
//! One camera's H.264 encoder as the control loop sees it: who wants it (viewers of the H.264
//! stream, an H.264 recording), the encoder while the camera runs and someone does, and why it
//! stopped if it failed.

use std::sync::mpsc::Sender;

use crate::camera::H264Tap;
use crate::events::Event;
use crate::h264::{H264Encoder, H264Settings};

#[derive(Default)]
pub struct H264Slot {
    viewers: u32,
    encoder: Option<H264Encoder>,
    tap: H264Tap,
    /// Tells a failure of this encoder from one of an earlier, already replaced one.
    generation: u64,
    /// Why the encoder stopped, until the camera starts again.
    error: Option<String>,
    /// The recording the encoder feeds now.
    recording: Option<gst_app::AppSrc>,
}

impl H264Slot {
    pub fn set_viewers(&mut self, n: u32) {
        self.viewers = n;
    }

    /// What the camera pipeline's frame callback feeds.
    pub fn tap(&self) -> H264Tap {
        self.tap.clone()
    }

    pub fn is_running(&self) -> bool {
        self.encoder.is_some()
    }

    /// The factories of the running encoder's elements (empty while it does not run).
    pub fn element_factories(&self) -> Vec<String> {
        self.encoder
            .as_ref()
            .map(H264Encoder::element_factories)
            .unwrap_or_default()
    }

    /// How many encoders were started so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Runs the encoder while the camera runs and a viewer or an H.264 recording wants it,
    /// feeding the server's H.264 input (`live`) and the `recording`.
    pub fn update(
        &mut self,
        camera_running: bool,
        recording: Option<gst_app::AppSrc>,
        live: Option<&gst_app::AppSrc>,
        settings: &H264Settings,
        camera: usize,
        events: &Sender<Event>,
    ) {
        let wanted =
            camera_running && self.error.is_none() && (self.viewers > 0 || recording.is_some());
        if wanted && self.encoder.is_none() {
            self.generation += 1;
            match H264Encoder::start(settings, camera, self.generation, events.clone()) {
                Ok(encoder) => {
                    encoder.set_live(live.cloned());
                    if let Ok(mut tap) = self.tap.lock() {
                        *tap = Some(encoder.input());
                    }
                    log::info!(
                        "Camera {camera}: H.264 encoder started ({} viewer(s){})",
                        self.viewers,
                        if recording.is_some() {
                            ", recording"
                        } else {
                            ""
                        }
                    );
                    self.encoder = Some(encoder);
                    self.recording = None;
                }
                Err(err) => self.failed(camera, &format!("{err:#}")),
            }
        } else if !wanted && self.encoder.is_some() {
            self.stop();
            log::info!("Camera {camera}: H.264 encoder stopped, nobody needs it");
        }
        if let Some(encoder) = &self.encoder
            && self.recording != recording
        {
            encoder.set_recording(recording.clone());
            self.recording = recording;
        }
    }

    pub fn request_keyframe(&self) {
        if let Some(encoder) = &self.encoder {
            encoder.request_keyframe();
        }
    }

    /// The encoder failed: it stops; JPEG streaming goes on. Tried again at the camera's next
    /// start.
    pub fn failed(&mut self, camera: usize, reason: &str) {
        log::error!("Camera {camera}: H.264 encoder stopped: {reason}");
        self.stop();
        self.error = Some(reason.to_string());
    }

    /// The camera starts again: so may the encoder.
    pub fn camera_started(&mut self) {
        self.error = None;
    }

    pub fn stop(&mut self) {
        if let Ok(mut tap) = self.tap.lock() {
            *tap = None;
        }
        self.recording = None;
        self.encoder = None;
    }
}
