// SPDX-License-Identifier: MIT
//! The media playlist of the window, as the HLS specification's low-latency rules write it.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::names::{Object, Run};
use super::window::{PART_TARGET_US, SEGMENTS_WITH_PARTS, Segment, TARGET_DURATION_S, Window};

/// Players without low-latency support start this far behind the live edge (at least three
/// target durations).
const HOLD_BACK_S: f64 = 3.0 * TARGET_DURATION_S as f64;
/// Low-latency players start this far behind (at least two part targets; three is usual).
const PART_HOLD_BACK_S: f64 = 3.0 * PART_TARGET_US as f64 / 1e6;

/// The playlist of `window` in `run`; `query` (`token=…`, or empty) goes on every URI so that a
/// player handed one URL with a token can fetch everything it names.
pub fn render(window: &Window, run: &Run, query: &str) -> String {
    let (complete, open) = window.listed();
    let uri = |object| {
        let name = run.name(object);
        if query.is_empty() {
            name
        } else {
            format!("{name}?{query}")
        }
    };
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "#EXTM3U\n\
         #EXT-X-VERSION:6\n\
         #EXT-X-TARGETDURATION:{TARGET_DURATION_S}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={PART_HOLD_BACK_S:.3},HOLD-BACK={HOLD_BACK_S:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={:.3}\n",
        PART_TARGET_US as f64 / 1e6
    );
    let first_msn = complete
        .first()
        .map(|s| s.msn)
        .or(open.map(|s| s.msn))
        .unwrap_or(0);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    let discontinuities = window.discontinuity_sequence();
    if discontinuities > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}");
    }
    let with_parts_from = complete.len().saturating_sub(SEGMENTS_WITH_PARTS);
    let mut map = None;
    let segments = complete
        .iter()
        .map(|s| &**s)
        .enumerate()
        .map(|(i, s)| (s, i >= with_parts_from, true))
        .chain(
            open.filter(|s| !s.parts.is_empty())
                .map(|s| (s, true, false)),
        );
    for (segment, with_parts, finished) in segments {
        if segment.discontinuity && segment.msn != first_msn {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if map != Some(segment.init) {
            map = Some(segment.init);
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"{}\"",
                uri(Object::Init(segment.init))
            );
        }
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            date_time(segment.start_us)
        );
        if with_parts {
            write_parts(&mut out, segment, &uri);
        }
        if finished {
            let _ = write!(
                out,
                "#EXTINF:{:.5},\n{}\n",
                segment.duration_us() as f64 / 1e6,
                uri(Object::Segment(segment.msn))
            );
        }
    }
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
        uri(Object::Part(window.progress().next_part))
    );
    out
}

fn write_parts(out: &mut String, segment: &Segment, uri: &impl Fn(Object) -> String) {
    for part in &segment.parts {
        let _ = writeln!(
            out,
            "#EXT-X-PART:DURATION={:.5},URI=\"{}\"{}",
            part.duration_us as f64 / 1e6,
            uri(Object::Part(part.number)),
            if part.independent {
                ",INDEPENDENT=YES"
            } else {
                ""
            }
        );
    }
}

/// ISO 8601 with milliseconds, UTC.
fn date_time(unix_us: u64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(unix_us);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::test_units::units;
    use super::super::window::PLAYLIST_SEGMENTS;
    use super::*;

    fn lines_starting<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(tag)).collect()
    }

    #[test]
    fn the_playlist_follows_the_low_latency_rules() {
        let mut window = Window::new(0, 0, 0);
        for unit in &units(400, None)[10..] {
            window.push(unit);
        }
        let run = Run::new(1_780_000_000_000, 0);
        let text = render(&window, &run, "");
        assert!(
            text.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n"),
            "{text}"
        );
        assert!(text.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.630,HOLD-BACK=3.000\n"
        ));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.210\n"));
        let (complete, open) = window.listed();
        assert_eq!(complete.len(), PLAYLIST_SEGMENTS);
        assert_eq!(
            lines_starting(&text, "#EXT-X-MEDIA-SEQUENCE:"),
            [format!("#EXT-X-MEDIA-SEQUENCE:{}", complete[0].msn)]
        );
        assert_eq!(lines_starting(&text, "#EXTINF:").len(), PLAYLIST_SEGMENTS);
        assert_eq!(
            lines_starting(&text, "#EXT-X-MAP:"),
            [format!("#EXT-X-MAP:URI=\"init-{run}-0.mp4\"")],
            "one initialisation segment, named once before the first segment"
        );
        let map_at = text.find("#EXT-X-MAP").unwrap_or(usize::MAX);
        assert!(map_at < text.find("#EXTINF").unwrap_or(0));
        // Parts for the newest three complete segments and the open one, and only for them.
        let open_parts = open.map_or(0, |s| s.parts.len());
        let listed_parts: usize = complete[PLAYLIST_SEGMENTS - SEGMENTS_WITH_PARTS..]
            .iter()
            .map(|s| s.parts.len())
            .sum::<usize>()
            + open_parts;
        let parts = lines_starting(&text, "#EXT-X-PART:");
        assert_eq!(parts.len(), listed_parts);
        assert!(
            parts
                .iter()
                .all(|p| p.contains(&format!("URI=\"part-{run}-")))
        );
        assert!(parts.iter().any(|p| p.ends_with(",INDEPENDENT=YES")));
        assert_eq!(
            lines_starting(&text, "#EXT-X-PROGRAM-DATE-TIME:").len(),
            PLAYLIST_SEGMENTS + usize::from(open_parts > 0)
        );
        assert!(
            text.contains("#EXT-X-PROGRAM-DATE-TIME:2025-12-06T"),
            "{text}"
        );
        let hint = format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-{run}-{}.m4s\"\n",
            window.progress().next_part
        );
        assert!(text.ends_with(&hint), "{text}");
        assert!(!text.contains("DISCONTINUITY"));

        let with_token = render(&window, &run, "token=a%20b");
        assert!(with_token.contains(&format!("#EXT-X-MAP:URI=\"init-{run}-0.mp4?token=a%20b\"")));
        assert!(with_token.contains(".m4s?token=a%20b\n"));
        assert!(with_token.ends_with(".m4s?token=a%20b\"\n"));
    }
}
