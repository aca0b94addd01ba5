// SPDX-License-Identifier: MIT
//! Rates of things counted (frames in, frames sent, detections), measured between reads.

use std::time::{Duration, Instant};

/// Events per second measured between two reads of a counter, at least a second apart.
#[derive(Debug)]
pub struct RateWindow {
    since: Instant,
    count_then: u64,
    last_rate: f64,
}

impl RateWindow {
    pub fn new() -> Self {
        RateWindow {
            since: Instant::now(),
            count_then: 0,
            last_rate: 0.0,
        }
    }

    pub fn rate(&mut self, count_now: u64) -> f64 {
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.last_rate =
                count_now.saturating_sub(self.count_then) as f64 / elapsed.as_secs_f64();
            self.since = Instant::now();
            self.count_then = count_now;
        } else if self.last_rate == 0.0 && elapsed >= Duration::from_millis(200) {
            // First read shortly after start: give an estimate rather than 0.
            return count_now.saturating_sub(self.count_then) as f64 / elapsed.as_secs_f64();
        }
        self.last_rate
    }
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow::new()
    }
}
