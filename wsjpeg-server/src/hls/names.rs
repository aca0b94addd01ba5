// SPDX-License-Identifier: MIT
//! The names of the objects under `/hls/`. Every name carries its run (one per start of the
//! stream's origin, from the clock) and a number that only grows, so no name is ever used for
//! two different objects and a cache may keep each one as long as it likes.

use std::fmt;

/// One object of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// An initialisation segment, by number.
    Init(u64),
    /// A segment, by media sequence number.
    Segment(u64),
    /// A partial segment, by part number (counted across segments).
    Part(u64),
}

/// A run's name: the milliseconds of its start, base 36, and a count of runs that started
/// within that millisecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run(String);

impl Run {
    pub fn new(unix_ms: u64, count: u64) -> Run {
        Run(format!("{}_{}", base36(unix_ms), base36(count)))
    }

    /// The file name of `object` in this run.
    pub fn name(&self, object: Object) -> String {
        match object {
            Object::Init(n) => format!("init-{}-{n}.mp4", self.0),
            Object::Segment(msn) => format!("seg-{}-{msn}.m4s", self.0),
            Object::Part(n) => format!("part-{}-{n}.m4s", self.0),
        }
    }

    /// The object `name` is in this run; `None` for any other name (another run's included).
    pub fn parse(&self, name: &str) -> Option<Object> {
        let (kind, rest) = name.split_once('-')?;
        let (run, rest) = rest.split_once('-')?;
        if run != self.0 {
            return None;
        }
        let (number, extension) = rest.split_once('.')?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: u64 = number.parse().ok()?;
        match (kind, extension) {
            ("init", "mp4") => Some(Object::Init(number)),
            ("seg", "m4s") => Some(Object::Segment(number)),
            ("part", "m4s") => Some(Object::Part(number)),
            _ => None,
        }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_never_match_another_run() {
        let run = Run::new(1_780_000_000_000, 0);
        let other = Run::new(1_780_000_000_001, 0);
        for object in [Object::Init(0), Object::Segment(41), Object::Part(203)] {
            let name = run.name(object);
            assert_eq!(run.parse(&name), Some(object), "{name}");
            assert_eq!(other.parse(&name), None, "{name} is not of the other run");
        }
        assert_ne!(Run::new(5, 0), Run::new(5, 1));
        for bad in [
            "",
            "seg",
            "seg-x-1.m4s",
            "index.m3u8",
            "../seg-1.m4s",
            "seg--1.m4s",
            "seg-{run}-.m4s",
            "seg-{run}-1.mp4",
            "part-{run}-99999999999999999999999.m4s",
            "seg-{run}-+1.m4s",
        ] {
            let bad = bad.replace("{run}", &run.to_string());
            assert_eq!(run.parse(&bad), None, "{bad}");
        }
    }
}
