//! Load tool and micro-benchmark support for wsjpeg.
//!
//! The binary `wsjpeg-bench` is a thin CLI over these modules:
//! - [`load`] opens many WebSocket and MJPEG viewers against any server speaking the wsjpeg
//!   protocol (README, "HTTP and WebSocket interface") and measures what they receive;
//! - [`serve`] runs an in-process `wsjpegsink` fed with real JPEG frames at a fixed rate;
//! - [`relay`] is a minimal relay (reference B of the benchmark notes) for same-run comparison;
//! - [`procfs`] samples a process's CPU time and memory from `/proc`.

pub mod load;
pub mod mjpeg;
pub mod procfs;
pub mod relay;
pub mod report;
pub mod serve;
pub mod util;
pub mod ws;
