//! `/status` JSON and `/metrics` Prometheus text.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::ServerContext;
use crate::protocol::CameraState;

pub fn status_json(ctx: &ServerContext) -> Value {
    let hub = &ctx.hub;
    let config = ctx.config();
    let video = hub.video_info();
    let camera = hub.camera_status();
    let c = &hub.counters;
    let clients: Vec<Value> = hub
        .clients()
        .iter()
        .map(|client| {
            let max_fps = client.max_fps();
            json!({
                "id": client.id,
                "kind": client.kind.as_str(),
                "address": client.address.to_string(),
                "connected_seconds": client.connected.elapsed().as_secs(),
                "fps": round2(client.fps()),
                "frames_sent": client.frames_sent.load(Ordering::Relaxed),
                "bytes_sent": client.bytes_sent.load(Ordering::Relaxed),
                "drops": client.frames_skipped.load(Ordering::Relaxed),
                "paused": client.paused.load(Ordering::Relaxed),
                "max_fps": if max_fps > 0.0 { json!(max_fps) } else { Value::Null },
            })
        })
        .collect();
    let source = &config.source_info;
    json!({
        "server": "wsjpeg",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": hub.started.elapsed().as_secs(),
        "connected_clients": clients.len(),
        "max_clients": config.max_clients,
        "connections": {
            "open": ctx.connections.len(),
            "max": config.connection_limit(),
        },
        "camera_active": camera.state == CameraState::Streaming,
        "camera": { "state": camera.state, "message": camera.message },
        "settings": {
            "width": video.width,
            "height": video.height,
            "target_fps": video.framerate,
            "jpeg_quality": source.get("jpeg-quality").cloned().unwrap_or(Value::Null),
        },
        "encoder": source.get("encoder").cloned().unwrap_or(Value::Null),
        "source": Value::Object(source.clone()),
        "fps_in": round2(hub.fps_in()),
        "last_frame_age_seconds": hub.latest_frame().map(|f| round2(f.published.elapsed().as_secs_f64())),
        "frames": {
            "in": c.frames_in.load(Ordering::Relaxed),
            "invalid": c.frames_invalid.load(Ordering::Relaxed),
            "sent": c.frames_sent.load(Ordering::Relaxed),
            "skipped": c.frames_skipped.load(Ordering::Relaxed),
        },
        "bytes_sent": c.bytes_sent.load(Ordering::Relaxed),
        "clients_refused": c.clients_refused.load(Ordering::Relaxed),
        "clients": clients,
        // Null while the application reports no recording (`recording-state` unset).
        "recording": hub.recording_status(),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn metrics_text(ctx: &ServerContext) -> String {
    let hub = &ctx.hub;
    let c = &hub.counters;
    let camera = hub.camera_status();
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP wsjpeg_{name} {help}\n# TYPE wsjpeg_{name} {kind}\nwsjpeg_{name} {value}\n"
        );
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed).to_string();
    metric(
        "frames_in_total",
        "counter",
        "Frames received from the pipeline.",
        load(&c.frames_in),
    );
    metric(
        "frames_invalid_total",
        "counter",
        "Frames dropped because they were not complete JPEGs.",
        load(&c.frames_invalid),
    );
    metric(
        "frames_sent_total",
        "counter",
        "Frames delivered, summed over viewers.",
        load(&c.frames_sent),
    );
    metric(
        "frames_skipped_total",
        "counter",
        "Frames viewers skipped because they were still busy with an older one.",
        load(&c.frames_skipped),
    );
    metric(
        "bytes_sent_total",
        "counter",
        "Frame bytes delivered, summed over viewers.",
        load(&c.bytes_sent),
    );
    metric(
        "clients_refused_total",
        "counter",
        "Viewers refused because max-clients was reached.",
        load(&c.clients_refused),
    );
    metric(
        "clients",
        "gauge",
        "Viewers now connected.",
        hub.n_clients().to_string(),
    );
    metric(
        "connections",
        "gauge",
        "Open connections of any kind (viewers, requests, idle keep-alive).",
        ctx.connections.len().to_string(),
    );
    metric(
        "camera_streaming",
        "gauge",
        "1 while frames are flowing.",
        u8::from(camera.state == CameraState::Streaming).to_string(),
    );
    metric(
        "camera_error",
        "gauge",
        "1 while the camera is in error.",
        u8::from(camera.state == CameraState::Error).to_string(),
    );
    let age = hub
        .latest_frame()
        .map(|f| format!("{:.3}", f.published.elapsed().as_secs_f64()))
        .unwrap_or_else(|| "NaN".to_string());
    metric(
        "last_frame_age_seconds",
        "gauge",
        "Seconds since the newest frame arrived (NaN when there is none).",
        age,
    );
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        hub.started.elapsed().as_secs().to_string(),
    );
    // Only while the application reports a recorder: no recording metrics means no recorder.
    if let Some(recording) = hub.recording_status() {
        metric(
            "recording_active",
            "gauge",
            "1 while a recording is being written.",
            u8::from(recording.active).to_string(),
        );
        metric(
            "recording_bytes_written_total",
            "counter",
            "Bytes written to recordings, as reported by the application.",
            recording.bytes_written.to_string(),
        );
        metric(
            "recording_segments_deleted_total",
            "counter",
            "Recording segments deleted to stay within the size or count limits.",
            recording.segments_deleted.to_string(),
        );
        metric(
            "recording_frames_dropped_total",
            "counter",
            "Frames the recording dropped because the disk was slower than the camera.",
            recording.frames_dropped.to_string(),
        );
    }
    out
}
