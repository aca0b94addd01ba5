// SPDX-License-Identifier: MIT
//! Warnings about an event that comes in bursts (refused viewers, broken frames, a full file
//! table): the first one is reported, the rest of the burst only counted and reported with the
//! next one due.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Burst {
    interval: Duration,
    last_report: Option<Instant>,
    unreported: u64,
}

impl Burst {
    pub const fn new(interval: Duration) -> Self {
        Burst {
            interval,
            last_report: None,
            unreported: 0,
        }
    }

    /// Counts one occurrence. When a report is due, returns how many occurrences it stands for
    /// (this one and those not reported since the last report).
    pub fn note(&mut self) -> Option<u64> {
        self.unreported += 1;
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= self.interval);
        if !due {
            return None;
        }
        self.last_report = Some(Instant::now());
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_and_counts_the_rest() {
        let mut burst = Burst::new(Duration::from_millis(50));
        assert_eq!(burst.note(), Some(1));
        assert_eq!(burst.note(), None);
        assert_eq!(burst.note(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(burst.note(), Some(3));
    }
}
