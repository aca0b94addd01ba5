// SPDX-License-Identifier: MIT
//! Delivery directives of a playlist request (`_HLS_msn`, `_HLS_part`, `_HLS_skip`), and when
//! a blocking request is answered.

use super::window::{PART_TARGET_US, Progress};

/// How far past the newest part a request may ask (the specification's Advance Part Limit:
/// three seconds of parts when parts are shorter than a second).
pub const ADVANCE_PART_LIMIT: u64 = 3_000_000 / PART_TARGET_US;

/// What a playlist request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// The playlist as it is.
    Now,
    /// The playlist once segment `msn` is complete, or (with `part`) once that part of it
    /// exists.
    Block { msn: u64, part: Option<u64> },
}

impl Directive {
    /// Reads the directives of `query`; `Err` says what is wrong with them.
    pub fn parse(query: &str) -> Result<Directive, String> {
        let mut msn = None;
        let mut part = None;
        for (key, value) in form_urlencoded_pairs(query) {
            let number = || {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("{key} must be a whole number, not {value:?}"))
            };
            match key.as_str() {
                "_HLS_msn" => msn = Some(number()?),
                "_HLS_part" => part = Some(number()?),
                // Delta updates are not offered (no CAN-SKIP-UNTIL): a client asking for one
                // gets the whole playlist, as the specification allows.
                "_HLS_skip" if value == "YES" || value == "v2" => {}
                "_HLS_skip" => return Err(format!("_HLS_skip must be YES or v2, not {value:?}")),
                key if key.starts_with("_HLS_") => {
                    return Err(format!("unknown delivery directive {key}"));
                }
                _ => {}
            }
        }
        match (msn, part) {
            (None, None) => Ok(Directive::Now),
            (None, Some(_)) => Err("_HLS_part needs _HLS_msn".to_string()),
            (Some(msn), part) => Ok(Directive::Block { msn, part }),
        }
    }

    /// Whether the playlist at `progress` answers the request.
    pub fn satisfied(self, progress: &Progress) -> bool {
        match self {
            Directive::Now => true,
            Directive::Block { msn, part } => {
                msn < progress.open_msn
                    || (msn == progress.open_msn
                        && part.is_some_and(|p| p < progress.open_parts as u64))
            }
        }
    }

    /// Whether the request asks so far ahead that it is refused at once: a segment more than
    /// two past the newest, or a part more than the advance limit past the newest part.
    pub fn too_far(self, progress: &Progress, parts_per_segment: u64) -> bool {
        let Directive::Block { msn, part } = self else {
            return false;
        };
        if msn > progress.open_msn + 2 {
            return true;
        }
        let Some(part) = part.filter(|_| msn >= progress.open_msn) else {
            return false;
        };
        let wanted = (msn - progress.open_msn) * parts_per_segment.max(1) + part;
        let have = progress.open_parts as u64;
        wanted > have + ADVANCE_PART_LIMIT
    }
}

/// `key=value` pairs of a query, percent-decoded.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(open_msn: u64, open_parts: usize) -> Progress {
        Progress {
            open_msn,
            open_parts,
            next_part: 100,
            started: true,
            complete: true,
        }
    }

    #[test]
    fn directives_parse_and_bad_ones_are_named() {
        assert_eq!(Directive::parse(""), Ok(Directive::Now));
        assert_eq!(Directive::parse("token=abc"), Ok(Directive::Now));
        assert_eq!(
            Directive::parse("_HLS_msn=12&_HLS_part=3&token=x"),
            Ok(Directive::Block {
                msn: 12,
                part: Some(3)
            })
        );
        assert_eq!(
            Directive::parse("_HLS_msn=12&_HLS_skip=YES"),
            Ok(Directive::Block {
                msn: 12,
                part: None
            })
        );
        for (query, why) in [
            ("_HLS_part=1", "needs _HLS_msn"),
            ("_HLS_msn=-1", "whole number"),
            ("_HLS_msn=99999999999999999999999", "whole number"),
            ("_HLS_msn=1&_HLS_part=x", "whole number"),
            ("_HLS_msn=+1", "whole number"),
            ("_HLS_foo=1", "unknown delivery directive _HLS_foo"),
            ("_HLS_skip=maybe", "_HLS_skip must be"),
        ] {
            let err = Directive::parse(query).expect_err(query);
            assert!(err.contains(why), "{query}: {err}");
        }
    }

    #[test]
    fn a_blocking_request_is_answered_once_its_part_or_segment_exists() {
        let now = progress(10, 2);
        let block = |msn, part| Directive::Block { msn, part };
        assert!(block(9, None).satisfied(&now), "segment 9 is complete");
        assert!(block(9, Some(7)).satisfied(&now), "and any part of it");
        assert!(block(10, Some(1)).satisfied(&now));
        assert!(!block(10, Some(2)).satisfied(&now), "the part being filled");
        assert!(!block(10, None).satisfied(&now), "the segment being filled");
        assert!(!block(11, Some(0)).satisfied(&now));
        assert!(Directive::Now.satisfied(&now));
    }

    #[test]
    fn a_request_far_ahead_is_refused() {
        let now = progress(10, 2);
        let block = |msn, part| Directive::Block { msn, part };
        assert!(!block(12, None).too_far(&now, 5));
        assert!(block(13, None).too_far(&now, 5));
        assert!(!block(10, Some(2 + ADVANCE_PART_LIMIT)).too_far(&now, 5));
        assert!(block(10, Some(3 + ADVANCE_PART_LIMIT)).too_far(&now, 5));
        assert!(
            block(12, Some(0)).too_far(&now, 10),
            "two segments of ten parts ahead"
        );
        assert!(
            !block(3, Some(1_000)).too_far(&now, 5),
            "old parts are not ahead"
        );
        assert!(!Directive::Now.too_far(&now, 5));
    }
}
