// SPDX-License-Identifier: MIT
//! WebSocket viewers (RFC 6455), written directly on the upgraded socket: the wire format
//! (`codec`), one viewer's connection (`connection`), its reading half (`reader`), its sending
//! half (`writer`) and what its session does (`viewer`).

pub mod codec;
mod connection;
mod container;
mod h264_viewer;
mod reader;
mod viewer;
mod writer;

pub(crate) use connection::serve_upgraded;
pub(crate) use container::Container;
pub(crate) use viewer::{Codec, ViewerOptions};
