// SPDX-License-Identifier: MIT
//! Packagers: what each transport sends for an access unit. A unit's packet for a format is
//! built the first time a viewer of that format needs it and then shared by all of them, so a
//! format nobody watches costs nothing and one watched by a thousand costs one packet per unit.

use std::sync::OnceLock;

use bytes::Bytes;

use super::track::AccessUnit;
use super::wsj;

/// The transports' formats of an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// wsjpeg's WebSocket message: a 32-byte header (sequence, capture time, keyframe flag)
    /// and the access unit in Annex B.
    Wsj,
}

impl Format {
    const ALL: [Format; 1] = [Format::Wsj];

    fn index(self) -> usize {
        self as usize
    }

    fn package(self, unit: &AccessUnit) -> Packet {
        match self {
            Format::Wsj => wsj::package(unit),
        }
    }
}

/// What a transport sends for one access unit, as parts written one after the other (so that
/// the unit's bytes are shared, not copied behind a header).
#[derive(Debug, Clone)]
pub struct Packet {
    parts: Vec<Bytes>,
}

impl Packet {
    pub fn new(parts: Vec<Bytes>) -> Self {
        Packet { parts }
    }

    pub fn parts(&self) -> Vec<&[u8]> {
        self.parts.iter().map(|part| &part[..]).collect()
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The packets of one access unit, one slot per format, each filled on first use.
#[derive(Debug, Default)]
pub(super) struct Packets([OnceLock<Packet>; Format::ALL.len()]);

impl Packets {
    pub(super) fn get(&self, format: Format, unit: &AccessUnit) -> &Packet {
        self.0[format.index()].get_or_init(|| format.package(unit))
    }
}
