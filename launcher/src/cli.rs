// SPDX-License-Identifier: MIT
//! Command line: every flag has an environment variable of the same name, `WSJPEG_` + upper case.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::encoder::EncoderChoice;
use crate::h264::H264Choice;
use crate::recorder::RecordFormat;

#[derive(Debug, Parser)]
#[command(
    name = "wsjpeg-launcher",
    version,
    about = "Serves a camera to every browser on the network as live JPEG over WebSocket and MJPEG",
    long_about = "Serves a camera to every browser on the network as live JPEG over WebSocket and \
MJPEG.\n\nThe web server is up from the start; the camera is opened when the first viewer arrives \
and released after the last one leaves (plus --linger). The JPEG path is chosen once per camera \
start: the camera's own MJPEG when it offers the asked size and rate, else the Jetson hardware \
encoder (nvjpegenc), else the software encoder (jpegenc).\n\nOpen http://<this machine>:3003/ in \
a browser. Set RUST_LOG=debug for more detail.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exits 0 when the local server answers /healthz with 200 (for Docker's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Port of the server to check.
    #[arg(long, env = "WSJPEG_PORT", default_value_t = 3003)]
    pub port: u16,
    /// Host to connect to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The server uses TLS (--tls-certificate); its certificate is not verified, the check is
    /// local.
    #[arg(long, env = "WSJPEG_HEALTHCHECK_TLS")]
    pub tls: bool,
    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// V4L2 camera device. Repeat for several cameras: the first is served on --port, the next
    /// on --port + 1, and so on (comma-separated in the environment variable).
    #[arg(
        long = "device",
        env = "WSJPEG_DEVICE",
        value_delimiter = ',',
        conflicts_with_all = ["test_pattern", "pipeline"]
    )]
    pub devices: Vec<PathBuf>,

    /// Serve a moving test pattern instead of a camera (for machines without one).
    #[arg(long, env = "WSJPEG_TEST_PATTERN", conflicts_with = "pipeline")]
    pub test_pattern: bool,

    /// A gst-launch fragment producing raw video or image/jpeg to use as the camera,
    /// e.g. "rtspsrc location=rtsp://cam/ ! decodebin".
    #[arg(long, env = "WSJPEG_PIPELINE")]
    pub pipeline: Option<String>,

    /// Frame width asked of the camera and the encoder.
    #[arg(long, env = "WSJPEG_WIDTH", default_value_t = 1280, value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub width: u32,

    /// Frame height asked of the camera and the encoder.
    #[arg(long, env = "WSJPEG_HEIGHT", default_value_t = 720, value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub height: u32,

    /// Frames per second asked of the camera.
    #[arg(long, env = "WSJPEG_FPS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,

    /// JPEG quality (1-100) when the launcher encodes; passthrough keeps the camera's.
    #[arg(long, env = "WSJPEG_QUALITY", default_value_t = 85, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub quality: u32,

    /// How frames become JPEG.
    #[arg(long, env = "WSJPEG_ENCODER", value_enum, default_value_t = EncoderChoice::Auto)]
    pub encoder: EncoderChoice,

    /// Address to listen on (IPv4 or IPv6; "::" listens on both).
    #[arg(long, env = "WSJPEG_ADDRESS", default_value = "0.0.0.0")]
    pub address: String,

    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "WSJPEG_PORT", default_value_t = 3003)]
    pub port: u16,

    /// RTSP port: rtsp://<address>:<port>/cam<n> for each camera (cam0 first), H.264 from the
    /// same encoder as the browsers' (0 turns RTSP off).
    #[arg(long, env = "WSJPEG_RTSP_PORT", default_value_t = 8554)]
    pub rtsp_port: u16,

    /// Keep the camera running this long after the last viewer leaves, so a page reload does
    /// not restart it (e.g. 5s, 500ms, 1m).
    #[arg(long, env = "WSJPEG_LINGER", default_value = "5s", value_parser = humantime::parse_duration)]
    pub linger: Duration,

    /// Keep the camera running even when nobody watches.
    #[arg(long, env = "WSJPEG_ALWAYS_ON")]
    pub always_on: bool,

    /// A camera that delivers no frame for this long is treated as lost and restarted.
    #[arg(long, env = "WSJPEG_STALL_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,

    /// Viewers beyond this are refused (HTTP 503, WebSocket close 1013).
    #[arg(long, env = "WSJPEG_MAX_CLIENTS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,

    /// Open connections of any kind (viewers, page loads, idle keep-alive). At the limit the
    /// oldest idle one is closed to make room; 0 = four per --max-clients.
    #[arg(long, env = "WSJPEG_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: u32,

    /// Seconds of silence after which a viewer is pinged (0 = never).
    #[arg(long, env = "WSJPEG_KEEPALIVE", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub keepalive: u32,

    /// Seconds a viewer's socket may take no data at all before the viewer is disconnected
    /// and its slot freed; slow viewers that still take data are kept (0 = never).
    #[arg(long, env = "WSJPEG_WRITE_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub write_timeout: u32,

    /// Comma-separated Origins allowed to open the WebSocket; empty = pages from this server
    /// only; "*" = any.
    #[arg(long, env = "WSJPEG_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,

    /// Require this token on every request but /healthz (?token=, Bearer, or cookie).
    #[arg(long, env = "WSJPEG_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// PEM certificate chain: with --tls-key, the port serves https and wss.
    #[arg(long, env = "WSJPEG_TLS_CERTIFICATE", requires = "tls_key")]
    pub tls_certificate: Option<PathBuf>,

    /// PEM private key of --tls-certificate.
    #[arg(long, env = "WSJPEG_TLS_KEY", requires = "tls_certificate")]
    pub tls_key: Option<PathBuf>,

    /// Record continuously into this folder while the launcher runs (the camera stays on).
    /// Recording can also be stopped and started over HTTP (POST /api/record/stop|start).
    #[arg(
        long,
        env = "WSJPEG_RECORD",
        value_name = "DIR",
        conflicts_with = "record_dir"
    )]
    pub record: Option<PathBuf>,

    /// Offer recording on demand into this folder: POST /api/record/start and /stop,
    /// GET /api/recordings, GET /recordings/NAME. Without this or --record there is no recording.
    #[arg(long, env = "WSJPEG_RECORD_DIR", value_name = "DIR")]
    pub record_dir: Option<PathBuf>,

    /// Length of each recorded file, in seconds.
    #[arg(long, env = "WSJPEG_RECORD_SEGMENT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub record_segment: u64,

    /// Delete the oldest recordings when the folder holds more than this (e.g. 500M, 20G).
    #[arg(long, env = "WSJPEG_RECORD_MAX_BYTES", value_parser = parse_size, default_value = "4G")]
    pub record_max_bytes: Option<u64>,

    /// Keep at most this many recorded files, deleting the oldest.
    #[arg(long, env = "WSJPEG_RECORD_KEEP", value_parser = clap::value_parser!(u64).range(1..))]
    pub record_keep: Option<u64>,

    /// mjpeg: the viewers' JPEG frames in Matroska, no encoding cost. h264: MP4 a browser plays.
    #[arg(long, env = "WSJPEG_RECORD_FORMAT", value_enum, default_value_t = RecordFormat::Mjpeg)]
    pub record_format: RecordFormat,

    /// H.264 encoder, for viewers that ask for H.264 and for --record-format h264 (one encoder
    /// serves both).
    #[arg(long, alias = "record-h264-encoder", env = "WSJPEG_H264_ENCODER", value_enum, default_value_t = H264Choice::Auto)]
    pub h264_encoder: H264Choice,

    /// H.264 bitrate in kbit/s.
    #[arg(long, env = "WSJPEG_H264_BITRATE", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(100..=100_000))]
    pub h264_bitrate: u32,

    /// Time between H.264 keyframes (a viewer that falls behind resumes at the next one).
    #[arg(long, env = "WSJPEG_KEYFRAME_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub keyframe_interval: Duration,

    /// Run an object detector beside the live view: a gst-launch fragment that takes raw video
    /// and attaches region-of-interest metas, e.g. "facedetect display=false". Its boxes are
    /// drawn by the viewers; the video is never re-encoded or held up for it.
    #[arg(long, env = "WSJPEG_DETECT", value_name = "ELEMENTS")]
    pub detect: Option<String>,

    /// Frames per second handed to the detector, at most.
    #[arg(long, env = "WSJPEG_DETECT_FPS", default_value_t = 5.0, value_parser = parse_detect_fps)]
    pub detect_fps: f64,

    /// Width of the frames the detector sees (the height keeps the picture's aspect).
    #[arg(long, env = "WSJPEG_DETECT_WIDTH", default_value_t = 640, value_parser = clap::value_parser!(u32).range(16..=8192))]
    pub detect_width: u32,

    /// A detector in another process may push detections over its WebSocket when it presents
    /// this token (?detector_token= or an X-Detector-Token header). Unset: nobody may.
    #[arg(long, env = "WSJPEG_DETECTOR_TOKEN", hide_env_values = true)]
    pub detector_token: Option<String>,

    /// Serve the viewer page from this folder instead of the built-in one.
    #[arg(long, env = "WSJPEG_DOCUMENT_ROOT")]
    pub document_root: Option<PathBuf>,
}

/// A frame rate between 0.1 and 60.
fn parse_detect_fps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(fps) if (0.1..=60.0).contains(&fps) => Ok(fps),
        _ => Err(format!("'{text}' is not a frame rate between 0.1 and 60")),
    }
}

/// `1024`, `500K`, `500M`, `20G`, `1T` (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size like 500M or 20G"))?;
    let factor: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("'{text}': unknown unit (use K, M, G or T)")),
    };
    match number.checked_mul(factor) {
        Some(0) | None => Err(format!("'{text}' is not a usable size")),
        Some(bytes) => Ok(bytes),
    }
}
