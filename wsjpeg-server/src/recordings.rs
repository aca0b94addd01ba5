// SPDX-License-Identifier: MIT
//! Recordings the application writes into `recording-dir`: the listing (`GET /api/recordings`),
//! downloads with HTTP ranges (`GET /recordings/NAME`) and start/stop requests
//! (`POST /api/record/start|stop`, answered by the `recording-control` signal).
//!
//! Every disk access runs on a blocking thread of the server's runtime, never on the streaming
//! thread, and a download is read in small chunks only as fast as the client takes them.

use std::fs::File;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use headers::{HeaderMapExt, Range};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;
use warp::Rejection;
use warp::reply::{Reply, Response};

use crate::access::{origin_allowed, request_scheme};
use crate::context::{Peer, ServerContext};
use crate::events::{RecordAction, log};
use crate::segment::{Kind, RecordingName, detections_name, parse_name};
use crate::{files, reply};

/// The application's `recording-control` handler must answer within this.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// One entry of `GET /api/recordings`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recording {
    pub name: String,
    pub start: String,
    pub duration_seconds: f64,
    pub size: u64,
    pub in_progress: bool,
    /// The file that keeps the detections taken while this segment was written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<String>,
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
        let Some(parsed) = parse_name(name).filter(|p| p.kind == Kind::Segment) else {
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
        let detections = detections_name(name).filter(|d| {
            std::fs::symlink_metadata(dir.join(d)).is_ok_and(|m| m.file_type().is_file())
        });
        list.push(Recording {
            name: name.to_string(),
            detections,
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

/// The part of a file of `size` bytes that `headers` ask for. One range is served; several
/// get the whole file, as RFC 9110 allows.
pub fn requested_bytes(headers: &HeaderMap, size: u64) -> ByteRange {
    let Some(range) = headers.typed_get::<Range>() else {
        return ByteRange::Whole;
    };
    // Asked of a file longer than any, `satisfiable_ranges` keeps every well-formed range;
    // asked of this file, it drops a suffix longer than the file, which is the whole file.
    if range.satisfiable_ranges(u64::MAX).count() != 1 {
        return ByteRange::Whole;
    }
    let spec = range
        .satisfiable_ranges(size)
        .next()
        .unwrap_or((Bound::Included(0), Bound::Unbounded));
    let (start, end) = match spec {
        (Bound::Included(start), Bound::Unbounded) => (start, u64::MAX),
        (Bound::Included(start), Bound::Included(end)) if start <= end => (start, end),
        _ => return ByteRange::Whole,
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
        Ok(Ok(recordings)) => reply::json(StatusCode::OK, &json!({ "recordings": recordings })),
        Ok(Err((dir, err))) => {
            log!(
                ctx.hub.events,
                Warning,
                "Cannot list recordings in {}: {}",
                dir.display(),
                err
            );
            reply::json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read the recording folder: {err}"),
            )
        }
        Err(err) => {
            log!(
                ctx.hub.events,
                Warning,
                "Listing recordings failed: {}",
                err
            );
            reply::json_error(StatusCode::INTERNAL_SERVER_ERROR, "listing failed")
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
        return Ok(reply::text(
            StatusCode::BAD_REQUEST,
            "Bad request: not a recording name\n",
        ));
    };
    let lookup = name.clone();
    let opened =
        tokio::task::spawn_blocking(move || open_inside(&dir, &lookup).map_err(|e| (dir, e))).await;
    let (file, size) = match opened {
        Ok(Ok(Opened::File(file, size))) => (file, size),
        Ok(Ok(Opened::NotFound)) => return Ok(reply::text(StatusCode::NOT_FOUND, "Not found\n")),
        Ok(Ok(Opened::Outside)) => {
            log!(
                ctx.hub.events,
                Warning,
                "Refused {} to {}: it links outside the recording folder",
                name,
                peer.addr
            );
            return Ok(reply::text(StatusCode::NOT_FOUND, "Not found\n"));
        }
        Ok(Err((_, err))) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(reply::text(StatusCode::NOT_FOUND, "Not found\n"));
        }
        Ok(Err((dir, err))) => {
            log!(
                ctx.hub.events,
                Warning,
                "Cannot open {} in {}: {}",
                name,
                dir.display(),
                err
            );
            return Ok(reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot read the recording\n",
            ));
        }
        Err(err) => {
            log!(
                ctx.hub.events,
                Warning,
                "Opening a recording failed: {}",
                err
            );
            return Ok(reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot read the recording\n",
            ));
        }
    };

    let (status, start, len) = match requested_bytes(&headers, size) {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut r = reply::text(StatusCode::RANGE_NOT_SATISFIABLE, "Range not satisfiable\n");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(r);
        }
    };
    log!(
        ctx.hub.events,
        Debug,
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
    action: RecordAction,
    method: Method,
    headers: HeaderMap,
    peer: Peer,
) -> Response {
    if method != Method::POST {
        let mut r = reply::json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    // A form or script on another site must not start or stop a recording.
    let scheme = request_scheme(peer.secure, &headers);
    if !origin_allowed(&ctx.config().allowed_origins, &headers, scheme) {
        log!(
            ctx.hub.events,
            Info,
            "Refused recording {} from {} with a foreign Origin",
            action.as_str(),
            peer.addr
        );
        return reply::json_error(StatusCode::FORBIDDEN, "Origin not allowed");
    }
    let events = ctx.hub.events.clone();
    let call = tokio::task::spawn_blocking(move || events.recording_control(action));
    match tokio::time::timeout(CONTROL_TIMEOUT, call).await {
        Ok(Ok(true)) => {
            log!(
                ctx.hub.events,
                Info,
                "Recording {} requested by {}",
                action.as_str(),
                peer.addr
            );
            reply::json(StatusCode::ACCEPTED, &json!({ "ok": true }))
        }
        Ok(Ok(false)) => not_available(),
        Ok(Err(err)) => {
            log!(
                ctx.hub.events,
                Warning,
                "The recording-control handler failed: {}",
                err
            );
            reply::json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "recording control failed",
            )
        }
        Err(_) => {
            log!(
                ctx.hub.events,
                Warning,
                "The recording-control handler did not return within {:?}",
                CONTROL_TIMEOUT
            );
            reply::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "recording control did not answer",
            )
        }
    }
}

fn not_available() -> Response {
    reply::json_error(StatusCode::CONFLICT, "recording control is not available")
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

    fn asked(range: &str, size: u64) -> ByteRange {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(range) {
            headers.insert(header::RANGE, value);
        }
        requested_bytes(&headers, size)
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(requested_bytes(&HeaderMap::new(), 100), Whole);
        assert_eq!(asked("bytes=0-9", 100), Part { start: 0, end: 9 });
        assert_eq!(asked("bytes=90-", 100), Part { start: 90, end: 99 });
        assert_eq!(asked("bytes=90-500", 100), Part { start: 90, end: 99 });
        assert_eq!(asked("bytes=-10", 100), Part { start: 90, end: 99 });
        assert_eq!(asked("bytes=-1000", 100), Part { start: 0, end: 99 });
        assert_eq!(asked("bytes= 5-5", 100), Part { start: 5, end: 5 });
        assert_eq!(asked("bytes=100-", 100), Unsatisfiable);
        assert_eq!(asked("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(asked("bytes=-0", 100), Unsatisfiable);
        assert_eq!(asked("bytes=0-", 0), Unsatisfiable);
        assert_eq!(asked("bytes=-5", 0), Unsatisfiable);
        assert_eq!(asked("bytes=9-1", 100), Whole);
        assert_eq!(asked("bytes=0-1,5-6", 100), Whole);
        assert_eq!(asked("bytes=0-1,-1000", 100), Whole);
        assert_eq!(asked("items=0-1", 100), Whole);
        assert_eq!(asked("bytes=a-b", 100), Whole);
        assert_eq!(asked("bytes=99999999999999999999999-", 100), Whole);
        assert_eq!(asked("bytes=-", 100), Whole);
        assert_eq!(asked("bytes", 100), Whole);
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

#[cfg(test)]
mod fuzz {
    //! Properties of range and name parsing (the fuzz target reaches them only through a server).

    use proptest::prelude::*;

    use super::*;
    use crate::test_support::config;

    fn range_header() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            "(bytes|BYTES|items| bytes )=[0-9]{0,25}-[0-9]{0,25}",
            "bytes=-[0-9]{0,25}",
            "bytes=[0-9 ,-]{0,30}",
            "[ -~]{0,40}",
        ])
    }

    fn asked_of(range: Option<&str>, size: u64) -> ByteRange {
        let mut headers = HeaderMap::new();
        if let Some(value) = range.and_then(|r| HeaderValue::from_str(r).ok()) {
            headers.insert(header::RANGE, value);
        }
        requested_bytes(&headers, size)
    }

    /// A name as the recorder writes them, with a valid date and time.
    fn recording_name() -> impl Strategy<Value = (String, String)> {
        (
            1970u32..2200,
            1u32..=12,
            1u32..=28,
            0u32..24,
            0u32..60,
            0u32..60,
            "[A-Za-z0-9._-]{1,16}",
            prop_oneof![Just("mkv"), Just("mp4")],
        )
            .prop_map(|(y, mo, d, h, mi, s, label, ext)| {
                (
                    format!("{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z_{label}.{ext}"),
                    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
                )
            })
            .prop_filter("no '..' in a name", |(name, _)| !name.contains(".."))
    }

    /// Names close to valid ones: a valid name with a few bytes replaced, inserted or cut.
    fn near_recording_name() -> impl Strategy<Value = String> {
        (
            recording_name(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..3),
            any::<prop::sample::Index>(),
        )
            .prop_map(|((name, _), edits, cut)| {
                let mut chars: Vec<char> = name.chars().collect();
                for (at, c) in edits {
                    let i = at.index(chars.len());
                    chars[i] = c;
                }
                let keep = cut.index(chars.len() + 8).min(chars.len());
                chars.truncate(keep.max(chars.len() - 6));
                chars.into_iter().collect()
            })
    }

    proptest! {
        #![proptest_config(config(2000))]

        #[test]
        fn range_parsing_never_panics_and_stays_in_the_file(header in range_header(), size in prop_oneof![0u64..1000, any::<u64>()]) {
            match asked_of(header.as_deref(), size) {
                ByteRange::Whole => {}
                ByteRange::Unsatisfiable => {}
                ByteRange::Part { start, end } => {
                    prop_assert!(start <= end, "{:?}", header);
                    prop_assert!(end < size, "{:?} of {}", header, size);
                }
            }
        }

        #[test]
        fn well_formed_ranges_mean_what_they_say(size in 1u64..1_000_000, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(), n in 1u64..2_000_000) {
            let (a, b) = (a.index(size as usize) as u64, b.index(size as usize) as u64);
            let (first, last) = (a.min(b), a.max(b));
            prop_assert_eq!(
                asked_of(Some(&format!("bytes={first}-{last}")), size),
                ByteRange::Part { start: first, end: last }
            );
            prop_assert_eq!(
                asked_of(Some(&format!("bytes={first}-")), size),
                ByteRange::Part { start: first, end: size - 1 }
            );
            prop_assert_eq!(
                asked_of(Some(&format!("bytes=-{n}")), size),
                ByteRange::Part { start: size - n.min(size), end: size - 1 }
            );
            prop_assert_eq!(
                asked_of(Some(&format!("bytes={}-", size + first)), size),
                ByteRange::Unsatisfiable
            );
        }

        #[test]
        fn recording_names_parse_back((name, iso) in recording_name()) {
            let parsed = parse_name(&name).expect("a valid name");
            prop_assert_eq!(&parsed.start_iso, &iso);
            let (requested, again) = requested_name(&name).expect("servable");
            prop_assert_eq!(requested, name);
            prop_assert_eq!(again, parsed);
        }

        #[test]
        fn ascii_recording_names_never_panic(name in prop_oneof!["[ -~]{0,40}".boxed(), near_recording_name().prop_filter("ASCII", |n| n.is_ascii()).boxed()]) {
            check_requested_name(&name)?;
        }
    }

    fn check_requested_name(name: &str) -> Result<(), TestCaseError> {
        let _ = parse_name(name);
        if let Some((decoded, _)) = requested_name(name) {
            prop_assert!(!decoded.contains(['/', '\\', '\0']), "{:?}", decoded);
            prop_assert!(
                !decoded.starts_with('.') && !decoded.contains(".."),
                "{:?}",
                decoded
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(2000))]

        /// A name whose last four bytes start inside a multi-byte character
        /// (`/recordings/2026-11-25T03-12-00Z_a%E2%82%ACkv`) once panicked in `parse_name`.
        #[test]
        fn any_recording_name_never_panics(name in prop_oneof![any::<String>().boxed(), near_recording_name().boxed()]) {
            check_requested_name(&name)?;
        }
    }

    #[test]
    fn a_multibyte_character_before_the_extension_is_refused() {
        assert_eq!(requested_name("2026-11-25T03-12-00Z_a%E2%82%ACkv"), None);
    }
}
