// SPDX-License-Identifier: MIT
//! wsjpeg-launcher: builds the camera pipeline with the best JPEG path, serves it with
//! `wsjpegsink`, and runs the camera only while someone watches.

pub mod camera;
pub mod cli;
mod colour_range;
pub mod controller;
pub mod detector;
pub mod encoder;
pub mod events;
mod gst_util;
pub mod h264;
mod h264_slot;
pub mod healthcheck;
pub mod recorder;
mod recording_slot;
pub mod rtsp;
pub mod server;
mod sidecar;
pub mod source;

use anyhow::{Context, Result, bail};

pub use controller::{Config, Launcher};
pub use events::Event;

/// Initialises GStreamer and registers the plugin linked into this program, so no
/// GST_PLUGIN_PATH is needed.
pub fn init_gstreamer() -> Result<()> {
    gst::init().context("cannot initialise GStreamer")?;
    // The installed libgstwsjpeg.so may already have been loaded from the plugin path (with
    // GST_REGISTRY_FORK=no); registering the type twice would abort. Either copy will do.
    if gst::glib::Type::from_name("GstWsJpegSink").is_none() {
        gstwsjpeg::plugin_register_static().context("cannot register the wsjpeg plugin")?;
    }
    Ok(())
}

/// Turns the command line into a launcher configuration, rejecting what cannot work.
pub fn config_from_args(args: &cli::RunArgs) -> Result<Config> {
    let sources = if args.test_pattern {
        vec![source::Source::TestPattern]
    } else if let Some(fragment) = &args.pipeline {
        vec![source::Source::Fragment(fragment.clone())]
    } else if args.devices.is_empty() {
        vec![source::Source::Device("/dev/video0".into())]
    } else {
        args.devices
            .iter()
            .cloned()
            .map(source::Source::Device)
            .collect()
    };
    for source in &sources {
        source.validate()?;
    }
    let format = encoder::Format {
        width: args.width,
        height: args.height,
        fps: args.fps,
        quality: args.quality,
    };
    if args.encoder == encoder::EncoderChoice::Nvjpeg && !encoder::hardware_encoder_works(&format) {
        bail!(
            "--encoder nvjpeg: the Jetson JPEG encoder (nvvidconv, nvjpegenc) is not installed or \
             does not work here; use --encoder auto or jpeg"
        );
    }
    if args.encoder == encoder::EncoderChoice::Jpeg
        && gst::ElementFactory::find("jpegenc").is_none()
    {
        bail!("--encoder jpeg: jpegenc is missing (install gstreamer1.0-plugins-good)");
    }
    let h264 = h264::H264Settings {
        choice: args.h264_encoder,
        bitrate_kbps: args.h264_bitrate,
        keyframe_interval: args.keyframe_interval.clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(60),
        ),
        fps: args.fps,
    };
    if args.h264_encoder != h264::H264Choice::Auto {
        h264::encoder_text(&h264)?;
    }
    let recording = recording_config(args, &h264)?;
    let detection = args
        .detect
        .as_ref()
        .map(|fragment| detector::DetectionConfig {
            fragment: fragment.clone(),
            fps: args.detect_fps,
            width: args.detect_width,
        });
    if let Some(detection) = &detection {
        detection.validate()?;
    }
    if let Some(root) = &args.document_root
        && !root.is_dir()
    {
        bail!("--document-root {}: not a folder", root.display());
    }
    Ok(Config {
        sources,
        encoder: args.encoder,
        format,
        port: args.port,
        linger: args.linger,
        always_on: args.always_on,
        stall_timeout: args
            .stall_timeout
            .max(std::time::Duration::from_millis(500)),
        server: server::ServerSettings {
            address: args.address.clone(),
            max_clients: args.max_clients,
            max_connections: args.max_connections,
            keepalive: args.keepalive,
            write_timeout: args.write_timeout,
            allowed_origins: args.allowed_origins.clone(),
            auth_token: args.auth_token.clone().filter(|t| !t.is_empty()),
            detector_token: args.detector_token.clone().filter(|t| !t.is_empty()),
            document_root: args.document_root.clone(),
            tls_certificate: args.tls_certificate.clone(),
            tls_key: args.tls_key.clone(),
        },
        recording,
        detection,
        h264,
        rtsp: (args.rtsp_port != 0).then_some(rtsp::RtspConfig {
            port: args.rtsp_port,
            session_timeout: rtsp::DEFAULT_SESSION_TIMEOUT,
        }),
    })
}

fn recording_config(
    args: &cli::RunArgs,
    h264: &h264::H264Settings,
) -> Result<Option<recorder::RecordingConfig>> {
    let Some(dir) = args.record.clone().or_else(|| args.record_dir.clone()) else {
        return Ok(None);
    };
    recorder::check_dir(&dir)?;
    if args.record_format == recorder::RecordFormat::H264 {
        h264::encoder_text(h264)?;
    }
    Ok(Some(recorder::RecordingConfig {
        dir,
        segment: std::time::Duration::from_secs(args.record_segment),
        max_bytes: args.record_max_bytes,
        keep: args.record_keep.map(|k| k as usize),
        format: args.record_format,
        autostart: args.record.is_some(),
    }))
}
