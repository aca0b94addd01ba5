// SPDX-License-Identifier: MIT
//! Recordings the application writes into `recording-dir`: the listing (`GET /api/recordings`),
//! downloads with HTTP ranges (`GET /recordings/NAME`) and start/stop requests
//! (`POST /api/record/start|stop`, answered by the `recording-control` signal).
//!
//! Every disk access runs on a blocking thread of the server's runtime, never on the streaming
//! thread, and a download is read in small chunks only as fast as the client takes them.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;
use warp::Rejection;
use warp::reply::{Reply, Response};

use super::access::{origin_allowed, request_scheme};
use super::{Peer, ServerContext, files};
use crate::CAT;

/// The application's `recording-control` handler must answer within this.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// A recording's name, checked and parsed:
/// `^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z_[A-Za-z0-9._-]+\.(mkv|mp4)$`, no `..`, and a real
/// date and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingName {
    /// Start time, seconds since the Unix epoch.
    pub start: i64,
    /// Start time as UTC ISO-8601, e.g. `2026-11-25T03:12:00Z`.
    pub start_iso: String,
    pub content_type: &'static str,
}

pub fn parse_name(name: &str) -> Option<RecordingName> {
    let b = name.as_bytes();
    // 20 bytes of time stamp, '_', at least one character, then ".mkv" or ".mp4".
    if b.len() < 20 + 1 + 1 + 4 || name.contains("..") {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b'-'),
        (16, b'-'),
        (19, b'Z'),
    ];
    if separators.iter().any(|&(i, c)| b[i] != c) || b[20] != b'_' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Not `split_at`: a multi-byte character may straddle the cut.
    let (stem, extension) = name.split_at_checked(name.len() - 4)?;
    let content_type = match extension {
        ".mkv" => "video/x-matroska",
        ".mp4" => "video/mp4",
        _ => return None,
    };
    let label = &stem.as_bytes()[21..];
    if label.is_empty()
        || !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return None;
    }
    let start = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second);
    Some(RecordingName {
        start,
        start_iso: format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"),
        content_type,
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// One entry of `GET /api/recordings`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recording {
    pub name: String,
    pub start: String,
    pub duration_seconds: f64,
    pub size: u64,
    pub in_progress: bool,
    #[serde(skip)]
    start_epoch: i64,
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Lists the recordings directly in `dir`, newest first. `current` is the segment being
/// written (its duration runs up to `now`). Only regular files are listed, never symlinks.
pub fn scan(dir: &Path, current: Option<&str>, now: SystemTime) -> std::io::Result<Vec<Recording>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Nothing recorded yet: the application creates the folder when it starts recording.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let now = seconds_since_epoch(now);
    let mut list = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let Some(parsed) = parse_name(name) else {
            continue;
        };
        // DirEntry::metadata does not follow symlinks.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let in_progress = current == Some(name);
        let end = if in_progress {
            now
        } else {
            meta.modified().map(seconds_since_epoch).unwrap_or(now)
        };
        let duration = (end - parsed.start as f64).max(0.0);
        list.push(Recording {
            name: name.to_string(),
            start: parsed.start_iso,
            duration_seconds: (duration * 1000.0).round() / 1000.0,
            size: meta.len(),
            in_progress,
            start_epoch: parsed.start,
        });
    }
    list.sort_by(|a, b| {
        b.start_epoch
            .cmp(&a.start_epoch)
            .then_with(|| b.name.cmp(&a.name))
    });
    Ok(list)
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range, or one this server ignores (several ranges, another unit, malformed).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Starts past the end: 416.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(value) = header.map(str::trim) else {
        return ByteRange::Whole;
    };
    let Some((unit, spec)) = value.split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // All digits: too many of them means "more than any file".
        Some(s.parse().unwrap_or(u64::MAX))
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            None => ByteRange::Whole,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part {
                start: size - n.min(size),
                end: size - 1,
            },
        },
        // bytes=A- and bytes=A-B
        (false, open) => {
            let Some(start) = number(first) else {
                return ByteRange::Whole;
            };
            let end = if open {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return ByteRange::Whole,
                }
            };
            if start >= size {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part {
                    start,
                    end: end.min(size - 1),
                }
            }
        }
        (true, true) => ByteRange::Whole,
    }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    let mut r = warp::reply::json(&value).into_response();
    *r.status_mut() = status;
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "error": message }))
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut r = http::Response::new(Bytes::from_static(body.as_bytes())).into_response();
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET /api/recordings`.
pub async fn list(ctx: Arc<ServerContext>) -> Result<Response, Rejection> {
    let Some(dir) = ctx.config().recording_dir else {
        return Err(warp::reject::not_found());
    };
    // The segment being written: only while recording. The application may report a path;
    // the listing compares names.
    let current = ctx
        .hub
        .recording_status()
        .filter(|s| s.active)
        .and_then(|s| {
            s.file.and_then(|f| {
                Path::new(&f)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
            })
        });
    let scanned = tokio::task::spawn_blocking(move || {
        scan(&dir, current.as_deref(), SystemTime::now()).map_err(|e| (dir, e))
    })
    .await;
    Ok(match scanned {
        Ok(Ok(recordings)) => json_response(StatusCode::OK, json!({ "recordings": recordings })),
        Ok(Err((dir, err))) => {
            gst::warning!(CAT, "Cannot list recordings in {}: {}", dir.display(), err);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read the recording folder: {err}"),
            )
        }
        Err(err) => {
            gst::warning!(CAT, "Listing recordings failed: {}", err);
            error(StatusCode::INTERNAL_SERVER_ERROR, "listing failed")
        }
    })
}

/// A recording's name as requested, if it is one this server may serve at all.
pub fn requested_name(raw: &str) -> Option<(String, RecordingName)> {
    let name = super::files::percent_decode(raw)?;
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return None;
    }
    let parsed = parse_name(&name)?;
    Some((name, parsed))
}

enum Opened {
    File(File, u64),
    NotFound,
    Outside,
}

/// Opens `name` in `dir`, following symlinks only while they stay inside `dir`.
fn open_inside(dir: &Path, name: &str) -> std::io::Result<Opened> {
    let root = dir.canonicalize()?;
    let resolved = match root.join(name).canonicalize() {
        Ok(path) => path,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Opened::NotFound),
        Err(e) => return Err(e),
    };
    if !resolved.starts_with(&root) {
        return Ok(Opened::Outside);
    }
    let file = File::open(&resolved)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Opened::NotFound);
    }
    Ok(Opened::File(file, meta.len()))
}

/// `GET`/`HEAD /recordings/NAME`.
pub async fn download(
    ctx: Arc<ServerContext>,
    raw_name: String,
    method: Method,
    headers: HeaderMap,
    peer: Peer,
) -> Result<Response, Rejection> {
    let Some(dir) = ctx.config().recording_dir else {
        return Err(warp::reject::not_found());
    };
    if raw_name.is_empty() {
        return Err(warp::reject::not_found());
    }
    let Some((name, parsed)) = requested_name(&raw_name) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "Bad request: not a recording name\n",
        ));
    };
    let lookup = name.clone();
    let opened =
        tokio::task::spawn_blocking(move || open_inside(&dir, &lookup).map_err(|e| (dir, e))).await;
    let (file, size) = match opened {
        Ok(Ok(Opened::File(file, size))) => (file, size),
        Ok(Ok(Opened::NotFound)) => return Ok(plain(StatusCode::NOT_FOUND, "Not found\n")),
        Ok(Ok(Opened::Outside)) => {
            gst::warning!(
                CAT,
                "Refused {} to {}: it links outside the recording folder",
                name,
                peer.addr
            );
            return Ok(plain(StatusCode::NOT_FOUND, "Not found\n"));
        }
        Ok(Err((_, err))) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(plain(StatusCode::NOT_FOUND, "Not found\n"));
        }
        Ok(Err((dir, err))) => {
            gst::warning!(CAT, "Cannot open {} in {}: {}", name, dir.display(), err);
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot read the recording\n",
            ));
        }
        Err(err) => {
            gst::warning!(CAT, "Opening a recording failed: {}", err);
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot read the recording\n",
            ));
        }
    };

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (status, start, len) = match parse_range(range.as_deref(), size) {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable\n");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(r);
        }
    };
    gst::debug!(
        CAT,
        "Sending {} bytes {}+{} of {} to {}",
        name,
        start,
        len,
        size,
        peer.addr
    );

    let mut response = if method == Method::HEAD || len == 0 {
        http::Response::new(Bytes::new()).into_response()
    } else {
        warp::reply::stream(files::stream(&ctx, file, start, len)).into_response()
    };
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(parsed.content_type),
    );
    // The name is checked to be plain ASCII without quotes.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{}", start, start + len - 1, size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// `POST /api/record/start` and `/api/record/stop` (any other method: 405).
pub async fn control(
    ctx: Arc<ServerContext>,
    action: &'static str,
    method: Method,
    headers: HeaderMap,
    peer: Peer,
) -> Response {
    if method != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    // A form or script on another site must not start or stop a recording.
    let scheme = request_scheme(peer.secure, &headers);
    if !origin_allowed(&ctx.config().allowed_origins, &headers, scheme) {
        gst::info!(
            CAT,
            "Refused recording {} from {} with a foreign Origin",
            action,
            peer.addr
        );
        return error(StatusCode::FORBIDDEN, "Origin not allowed");
    }
    let Some(handler) = ctx.hub.recording_control() else {
        return not_available();
    };
    let call = tokio::task::spawn_blocking(move || handler(action));
    match tokio::time::timeout(CONTROL_TIMEOUT, call).await {
        Ok(Ok(true)) => {
            gst::info!(CAT, "Recording {} requested by {}", action, peer.addr);
            json_response(StatusCode::ACCEPTED, json!({ "ok": true }))
        }
        Ok(Ok(false)) => not_available(),
        Ok(Err(err)) => {
            gst::warning!(CAT, "The recording-control handler failed: {}", err);
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "recording control failed",
            )
        }
        Err(_) => {
            gst::warning!(
                CAT,
                "The recording-control handler did not return within {:?}",
                CONTROL_TIMEOUT
            );
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "recording control did not answer",
            )
        }
    }
}

fn not_available() -> Response {
    error(StatusCode::CONFLICT, "recording control is not available")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = parse_name("2026-11-25T03-12-00Z_cam0.mkv").unwrap();
        assert_eq!(n.start_iso, "2026-11-25T03:12:00Z");
        assert_eq!(n.start, 1_795_576_320);
        assert_eq!(n.content_type, "video/x-matroska");
        assert_eq!(parse_name("1970-01-01T00-00-00Z_a.mp4").unwrap().start, 0);
        assert_eq!(
            parse_name("2000-02-29T23-59-59Z_x.y-z_1.mp4")
                .unwrap()
                .content_type,
            "video/mp4"
        );
        for bad in [
            "",
            "2026-11-25T03-12-00Z_.mkv",
            "2026-11-25T03-12-00Z_cam0.avi",
            "2026-11-25T03-12-00Z_cam0.MKV",
            "2026-11-25T03-12-00Zcam0.mkv",
            "2026-11-25T03:12:00Z_cam0.mkv",
            "2026-13-25T03-12-00Z_cam0.mkv",
            "2026-02-29T03-12-00Z_cam0.mkv",
            "2026-11-25T24-12-00Z_cam0.mkv",
            "2026-11-25T03-12-00Z_ca m0.mkv",
            "2026-11-25T03-12-00Z_a/b.mkv",
            "2026-11-25T03-12-00Z_a\\b.mkv",
            "2026-11-25T03-12-00Z_a..b.mkv",
            "2026-11-25T03-12-00Z_é.mkv",
            "x2026-11-25T03-12-00Z_cam0.mkv",
            "２026-11-25T03-12-00Z_cam0.mkv",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn requested_names() {
        assert!(requested_name("2026-11-25T03-12-00Z_cam0.mkv").is_some());
        assert!(requested_name("2026-11-25T03-12-00Z_cam%30.mkv").is_some());
        for bad in [
            "..",
            "../2026-11-25T03-12-00Z_cam0.mkv",
            "%2e%2e%2f2026-11-25T03-12-00Z_cam0.mkv",
            "2026-11-25T03-12-00Z_cam0.mkv%00",
            ".2026-11-25T03-12-00Z_cam0.mkv",
            "2026-11-25T03-12-00Z_cam0.mkv%2f",
            "%zz",
        ] {
            assert!(requested_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-500"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-1000"), 100),
            Part { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range(Some("BYTES = 5-5"), 100),
            Part { start: 5, end: 5 }
        );
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=-"), 100), Whole);
        assert_eq!(parse_range(Some("bytes"), 100), Whole);
    }

    #[test]
    fn scans_only_recordings() {
        let dir = std::env::temp_dir().join(format!("wsjpeg-rec-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("2026-11-25T03-14-00Z_sub.mkv")).unwrap();
        std::fs::write(dir.join("2026-11-25T03-12-00Z_cam0.mkv"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("2026-11-25T03-13-00Z_cam0.mkv"), [0u8; 20]).unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            dir.join("notes.txt"),
            dir.join("2026-11-25T03-15-00Z_link.mkv"),
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_795_576_320 + 100);
        let list = scan(&dir, Some("2026-11-25T03-13-00Z_cam0.mkv"), now).unwrap();
        let names: Vec<_> = list.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "2026-11-25T03-13-00Z_cam0.mkv",
                "2026-11-25T03-12-00Z_cam0.mkv"
            ]
        );
        assert!(list[0].in_progress);
        assert_eq!(list[0].duration_seconds, 40.0);
        assert_eq!(list[0].size, 20);
        assert!(!list[1].in_progress);
        assert_eq!(
            scan(&dir.join("missing"), None, now).unwrap(),
            Vec::<Recording>::new()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
