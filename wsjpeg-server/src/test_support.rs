// SPDX-License-Identifier: MIT
//! For the crate's own property tests: how many cases (`WSJPEG_FUZZ_CASES` scales them, as it
//! does for `tests/fuzz.rs`).

use proptest::test_runner::{Config, FileFailurePersistence};

pub fn config(default_cases: u32) -> Config {
    let cases = match std::env::var("WSJPEG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) => (u64::from(n) * u64::from(default_cases) / 2000).max(1) as u32,
        None => default_cases,
    };
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}
