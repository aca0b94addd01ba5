// SPDX-License-Identifier: MIT
//! The names of recording segments: `2026-11-25T03-12-00Z_cam0.mkv`, the UTC start time and a
//! label, and of the detections kept beside a segment, `2026-11-25T03-12-00Z_cam0.detections.jsonl`.
//! One grammar for the application that writes them (the launcher names and deletes segments
//! by it) and the server that lists and serves them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A recording's name, checked and parsed:
/// `^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z_[A-Za-z0-9._-]+\.(mkv|mp4|detections\.jsonl)$`, no
/// `..`, and a real date and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingName {
    /// Start time, seconds since the Unix epoch.
    pub start: i64,
    /// Start time as UTC ISO-8601, e.g. `2026-11-25T03:12:00Z`.
    pub start_iso: String,
    pub content_type: &'static str,
    pub kind: Kind,
}

/// What a recording file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Video.
    Segment,
    /// The detections taken while the segment of the same name was written, one `detections`
    /// message (JSON) per line.
    Detections,
}

/// Ends the name of the detections kept beside a segment.
const DETECTIONS_SUFFIX: &str = ".detections.jsonl";

/// The name of the file that keeps the detections of `segment`; `None` for a name that is not
/// a segment's.
pub fn detections_name(segment: &str) -> Option<String> {
    let parsed = parse_name(segment)?;
    let stem = segment.get(..segment.len() - 4)?;
    (parsed.kind == Kind::Segment).then(|| format!("{stem}{DETECTIONS_SUFFIX}"))
}

pub fn parse_name(name: &str) -> Option<RecordingName> {
    if let Some(stem) = name.strip_suffix(DETECTIONS_SUFFIX) {
        // Checked as the segment it belongs to would be (its extension does not matter).
        let segment = parse_name(&format!("{stem}.mkv"))?;
        return Some(RecordingName {
            content_type: "application/x-ndjson",
            kind: Kind::Detections,
            ..segment
        });
    }
    let b = name.as_bytes();
    // 20 bytes of time stamp, '_', at least one character, then ".mkv" or ".mp4".
    if b.len() < 20 + 1 + 1 + 4 || name.contains("..") || b[20] != b'_' {
        return None;
    }
    let (start, start_iso) = start_time(&b[..20])?;
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
    Some(RecordingName {
        start,
        start_iso,
        content_type,
        kind: Kind::Segment,
    })
}

/// The time of a name's stamp, `2026-11-25T03-12-00Z` (RFC 3339 with dashes for colons, which
/// file systems and URLs take as they are), in seconds since the epoch and in RFC 3339. Only a
/// real date and time, written as the recorder writes it, from 1970 to 9999.
fn start_time(stamp: &[u8]) -> Option<(i64, String)> {
    if stamp.get(13) != Some(&b'-') || stamp.get(16) != Some(&b'-') {
        return None;
    }
    let mut rfc3339 = stamp.to_vec();
    rfc3339[13] = b':';
    rfc3339[16] = b':';
    let rfc3339 = String::from_utf8(rfc3339).ok()?;
    let time = humantime::parse_rfc3339(&rfc3339).ok()?;
    // Written back, the time must read as the stamp did: this refuses a leap second (`:60`),
    // fractions and offsets.
    if humantime::format_rfc3339_seconds(time).to_string() != rfc3339 {
        return None;
    }
    let seconds = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some((i64::try_from(seconds).ok()?, rfc3339))
}

/// The latest start a name can hold: the last second of the year 9999.
const LATEST_START: Duration = Duration::from_secs(253_402_300_799);

/// The name of a segment that starts at `start` (UTC, whole seconds, from 1970 to 9999):
/// `label` is `cam0`, `cam0-1` …, `extension` `mkv` or `mp4`.
pub fn segment_name(start: SystemTime, label: &str, extension: &str) -> String {
    let start = start.clamp(UNIX_EPOCH, UNIX_EPOCH + LATEST_START);
    let stamp = humantime::format_rfc3339_seconds(start)
        .to_string()
        .replace(':', "-");
    format!("{stamp}_{label}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_written_parse_back_to_their_start() {
        for seconds in [0u64, 951_782_400, 1_795_000_000, 4_102_444_799] {
            let start = UNIX_EPOCH + Duration::from_secs(seconds);
            let name = segment_name(start, "cam0-1", "mkv");
            let parsed = parse_name(&name).unwrap_or_else(|| panic!("{name} parses"));
            assert_eq!(parsed.start, seconds as i64, "{name}");
        }
        assert_eq!(
            segment_name(
                UNIX_EPOCH + Duration::from_secs(1_795_000_000),
                "cam0",
                "mkv"
            ),
            "2026-11-18T11-06-40Z_cam0.mkv"
        );
    }

    #[test]
    fn only_real_times_from_1970_to_9999_are_names() {
        let start = |name: &str| parse_name(name).map(|n| n.start);
        assert_eq!(start("2024-02-29T00-00-00Z_a.mkv"), Some(1_709_164_800));
        assert_eq!(start("2000-02-29T00-00-00Z_a.mkv"), Some(951_782_400));
        assert_eq!(start("9999-12-31T23-59-59Z_a.mkv"), Some(253_402_300_799));
        for bad in [
            "2023-02-29T00-00-00Z_a.mkv",
            "1900-02-29T00-00-00Z_a.mkv",
            "2026-04-31T00-00-00Z_a.mkv",
            "2026-00-10T00-00-00Z_a.mkv",
            "2026-01-00T00-00-00Z_a.mkv",
            "2026-01-01T00-60-00Z_a.mkv",
            "2026-12-31T23-59-60Z_a.mkv",
            "1969-12-31T23-59-59Z_a.mkv",
            "2026-01-01T00-00-0+Z_a.mkv",
        ] {
            assert_eq!(start(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_clock_out_of_range_still_names_a_segment() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(
            segment_name(before, "a", "mkv"),
            "1970-01-01T00-00-00Z_a.mkv"
        );
        let after = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(
            segment_name(after, "a", "mp4"),
            "9999-12-31T23-59-59Z_a.mp4"
        );
    }

    #[test]
    fn detections_are_kept_beside_their_segment() {
        let name = detections_name("2026-11-18T11-06-40Z_cam0.mp4").unwrap();
        assert_eq!(name, "2026-11-18T11-06-40Z_cam0.detections.jsonl");
        let parsed = parse_name(&name).unwrap();
        assert_eq!(parsed.kind, Kind::Detections);
        assert_eq!(parsed.start_iso, "2026-11-18T11:06:40Z");
        assert_eq!(detections_name(&name), None, "detections of detections");
        for bad in [
            "2026-13-18T11-06-40Z_cam0.detections.jsonl",
            "2026-11-18T11-06-40Z_.detections.jsonl",
            "../2026-11-18T11-06-40Z_cam0.detections.jsonl",
            "2026-11-18T11-06-40Z_cam0.jsonl",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }
}
