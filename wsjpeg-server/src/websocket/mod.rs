// SPDX-License-Identifier: MIT
//! WebSocket viewers (RFC 6455), written directly on the upgraded socket: the wire format
//! (`codec`), one viewer's connection (`connection`) and what its session does (`viewer`).

pub mod codec;
mod connection;
mod viewer;

pub(crate) use connection::{ViewerOptions, serve_upgraded};
