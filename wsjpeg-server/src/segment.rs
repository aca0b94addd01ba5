// SPDX-License-Identifier: MIT
//! The names of recording segments: `2026-11-25T03-12-00Z_cam0.mkv`, the UTC start time and a
//! label, and of the detections kept beside a segment, `2026-11-25T03-12-00Z_cam0.detections.jsonl`.
//! One grammar for the application that writes them (the launcher names and deletes segments
//! by it) and the server that lists and serves them.

use std::time::{SystemTime, UNIX_EPOCH};

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
        kind: Kind::Segment,
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

/// The name of a segment that starts at `start` (UTC, whole seconds): `label` is `cam0`,
/// `cam0-1` …, `extension` `mkv` or `mp4`.
pub fn segment_name(start: SystemTime, label: &str, extension: &str) -> String {
    let seconds = match start.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, time) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z_{label}.{extension}",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// The date of a day counted from 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
