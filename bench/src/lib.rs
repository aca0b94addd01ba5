//! Load tool and micro-benchmark support for wsjpeg.
//!
//! The binary `wsjpeg-bench` is a thin CLI over these modules:
//! - [`load`] opens many WebSocket and MJPEG viewers against any server speaking the wsjpeg
//!   protocol (README, "HTTP and WebSocket interface") and measures what they receive;
//! - [`serve`] runs an in-process `wsjpegsink` fed with real JPEG frames at a fixed rate;
//! - [`relay`] is a minimal relay (reference B of the benchmark notes) for same-run comparison;
//! - [`procfs`] samples a process's CPU time and memory from `/proc`;
//! - [`hls_edge`] runs low-latency HLS players through an nginx edge in front of the origin
//!   (with the players and edge configuration of the server's tests, [`hls_clients`]);
//! - [`rtsp`] puts RTSP clients next to WebSocket H.264 viewers of one `wsjpeg-launcher`.

pub mod hls_clients;
pub mod hls_edge;
pub mod load;
pub mod mjpeg;
pub mod procfs;
pub mod relay;
pub mod report;
pub mod rtsp;
pub mod serve;
pub mod util;
pub mod ws;
