// SPDX-License-Identifier: MIT
//! What a transport sends for one access unit.

use bytes::Bytes;

/// Parts written one after the other (so that the unit's bytes are shared, not copied behind
/// a header).
#[derive(Debug, Clone)]
pub struct Packet {
    parts: Vec<Bytes>,
}

impl Packet {
    pub fn new(parts: Vec<Bytes>) -> Self {
        Packet { parts }
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
