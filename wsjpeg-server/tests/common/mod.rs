// SPDX-License-Identifier: MIT
//! Helpers shared by the server's integration tests: servers of this crate on 127.0.0.1 fed
//! real JPEGs at a camera's pace, and real clients. No GStreamer: the frames are files that
//! GStreamer's `jpegenc` made once (`tests/fixtures`).
#![allow(dead_code)]

mod certificate;
mod clients;
mod feeder;
mod fixtures;
mod live;
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
pub use live::*;
#[allow(unused_imports)]
pub use process::*;
