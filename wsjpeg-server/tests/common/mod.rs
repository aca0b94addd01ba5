// SPDX-License-Identifier: MIT
//! Helpers shared by the server's integration tests: servers of this crate on 127.0.0.1 fed
//! real JPEGs or H.264 at a camera's pace, real clients (LL-HLS players among them), and
//! nginx in front. No GStreamer: the frames are files that GStreamer's `jpegenc` and x264 made
//! once (`tests/fixtures`).
#![allow(dead_code)]

mod certificate;
mod clients;
pub mod edge;
mod feeder;
mod fixtures;
mod h264;
pub mod keepalive;
mod live;
pub mod llhls;
mod nginx;
mod players;
mod process;

#[allow(unused_imports)]
pub use certificate::*;
#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use feeder::Feeder;
#[allow(unused_imports)]
pub use fixtures::*;
#[allow(unused_imports)]
pub use h264::*;
#[allow(unused_imports)]
pub use live::*;
#[allow(unused_imports)]
pub use nginx::*;
#[allow(unused_imports)]
pub use players::*;
#[allow(unused_imports)]
pub use process::*;
