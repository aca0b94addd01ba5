//! `/status` JSON and `/metrics` Prometheus text.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::protocol::CameraState;
use crate::snapshot::Snapshot;

pub fn status_json(snapshot: &Snapshot, source: &serde_json::Map<String, Value>) -> Value {
    let s = snapshot;
    let clients: Vec<Value> = s
        .clients
        .iter()
        .map(|client| {
            json!({
                "id": client.id,
                "kind": client.kind.as_str(),
                "address": client.address.to_string(),
                "connected_seconds": client.connected_for.as_secs(),
                "fps": round2(client.fps),
                "frames_sent": client.frames_sent,
                "bytes_sent": client.bytes_sent,
                "drops": client.frames_skipped,
                "paused": client.paused,
                "max_fps": client.max_fps,
            })
        })
        .collect();
    json!({
        "server": "wsjpeg",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.uptime.as_secs(),
        "connected_clients": clients.len(),
        "max_clients": s.max_clients,
        "connections": {
            "open": s.connections_open,
            "max": s.connections_max,
        },
        "camera_active": s.camera.state == CameraState::Streaming,
        "camera": { "state": s.camera.state, "message": s.camera.message },
        "settings": {
            "width": s.video.width,
            "height": s.video.height,
            "target_fps": s.video.framerate,
            "jpeg_quality": source.get("jpeg-quality").cloned().unwrap_or(Value::Null),
        },
        "encoder": source.get("encoder").cloned().unwrap_or(Value::Null),
        "source": Value::Object(source.clone()),
        "fps_in": round2(s.fps_in),
        "last_frame_age_seconds": s.last_frame_age.map(|age| round2(age.as_secs_f64())),
        "frames": {
            "in": s.frames_in,
            "invalid": s.frames_invalid,
            "sent": s.frames_sent,
            "skipped": s.frames_skipped,
        },
        "bytes_sent": s.bytes_sent,
        "clients_refused": s.clients_refused,
        "clients": clients,
        // Null while the application reports no recording (`recording-state` unset).
        "recording": s.recording,
        "detections": {
            "total": s.detections.total,
            "per_second": round2(s.detections.per_second),
            "objects": s.detections.objects,
            // How far the detector lags behind the frames it looks at.
            "delay_ms": s.detections.last_delay_us.map(|us| round2(us as f64 / 1000.0)),
        },
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn metrics_text(snapshot: &Snapshot) -> String {
    let s = snapshot;
    let camera = &s.camera;
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP wsjpeg_{name} {help}\n# TYPE wsjpeg_{name} {kind}\nwsjpeg_{name} {value}\n"
        );
    };
    metric(
        "frames_in_total",
        "counter",
        "Frames received from the pipeline.",
        s.frames_in.to_string(),
    );
    metric(
        "frames_invalid_total",
        "counter",
        "Frames dropped because they were not complete JPEGs.",
        s.frames_invalid.to_string(),
    );
    metric(
        "frames_sent_total",
        "counter",
        "Frames delivered, summed over viewers.",
        s.frames_sent.to_string(),
    );
    metric(
        "frames_skipped_total",
        "counter",
        "Frames viewers skipped because they were still busy with an older one.",
        s.frames_skipped.to_string(),
    );
    metric(
        "bytes_sent_total",
        "counter",
        "Frame bytes delivered, summed over viewers.",
        s.bytes_sent.to_string(),
    );
    metric(
        "clients_refused_total",
        "counter",
        "Viewers refused because max-clients was reached.",
        s.clients_refused.to_string(),
    );
    metric(
        "clients",
        "gauge",
        "Viewers now connected.",
        s.clients.len().to_string(),
    );
    metric(
        "connections",
        "gauge",
        "Open connections of any kind (viewers, requests, idle keep-alive).",
        s.connections_open.to_string(),
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
    let age = s
        .last_frame_age
        .map(|age| format!("{:.3}", age.as_secs_f64()))
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
        s.uptime.as_secs().to_string(),
    );
    let d = &s.detections;
    metric(
        "detections_total",
        "counter",
        "Detection results taken (from the pipeline, the application or a detector client).",
        d.total.to_string(),
    );
    metric(
        "detections_per_second",
        "gauge",
        "Detection results per second, over the last second or more.",
        format!("{:.2}", d.per_second),
    );
    metric(
        "detected_objects",
        "gauge",
        "Objects in the newest detection result.",
        d.objects.to_string(),
    );
    metric(
        "detection_delay_seconds",
        "gauge",
        "How long after its frame's capture the newest detection result arrived (NaN before the first).",
        d.last_delay_us
            .map(|us| format!("{:.3}", us as f64 / 1e6))
            .unwrap_or_else(|| "NaN".to_string()),
    );
    let h = &s.hls;
    metric(
        "hls_running",
        "gauge",
        "1 while HLS players keep the origin's window running.",
        u8::from(h.running).to_string(),
    );
    metric(
        "hls_playlist_requests_total",
        "counter",
        "HLS playlist requests answered or refused, blocking reloads included.",
        h.playlists.to_string(),
    );
    metric(
        "hls_blocking_playlist_requests_total",
        "counter",
        "HLS playlist requests with _HLS_msn (blocking reloads).",
        h.blocked_playlists.to_string(),
    );
    metric(
        "hls_media_requests_total",
        "counter",
        "HLS segments, parts and initialisation segments served.",
        h.media.to_string(),
    );
    metric(
        "hls_media_bytes_total",
        "counter",
        "Bytes of HLS segments, parts and initialisation segments served.",
        h.media_bytes.to_string(),
    );
    // Only while the application reports a recorder: no recording metrics means no recorder.
    if let Some(recording) = &s.recording {
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
        metric(
            "recording_detections_dropped_total",
            "counter",
            "Detections not kept beside a segment, which may hold no more bytes of them than of video.",
            recording.detections_dropped.to_string(),
        );
    }
    out
}
