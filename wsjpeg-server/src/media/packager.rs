// SPDX-License-Identifier: MIT
//! Packagers: what each transport sends for an access unit. A unit's packet for a format is
//! built the first time a viewer of that format needs it and then shared by all of them, so a
//! format nobody watches costs nothing and one watched by a thousand costs one packet per unit.

use std::ops::Deref;
use std::sync::OnceLock;

use super::packet::Packet;
use super::unit::AccessUnit;
use super::{fmp4, wsj};

/// The transports' formats of an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// wsjpeg's WebSocket message: a 32-byte header (sequence, capture time, keyframe flag)
    /// and the access unit in Annex B.
    Wsj,
    /// A fragment of fragmented MP4: `moof` + `mdat`.
    Fmp4,
    /// The fragmented MP4 initialisation segment a keyframe's parameter sets make (empty for
    /// other units); a player needs it before the keyframe's fragment when it starts or when
    /// the parameter sets change.
    Fmp4Init,
}

impl Format {
    const ALL: [Format; 3] = [Format::Wsj, Format::Fmp4, Format::Fmp4Init];

    fn package(self, unit: &AccessUnit) -> Packet {
        match self {
            Format::Wsj => wsj::package(unit),
            Format::Fmp4 => fmp4::fragment(unit),
            Format::Fmp4Init => fmp4::init_packet(unit),
        }
    }
}

/// An access unit with its packets, one slot per format, each filled on first use.
#[derive(Debug)]
pub struct PackagedUnit {
    unit: AccessUnit,
    packets: [OnceLock<Packet>; Format::ALL.len()],
}

impl PackagedUnit {
    pub(super) fn new(unit: AccessUnit) -> Self {
        PackagedUnit {
            unit,
            packets: Default::default(),
        }
    }

    /// What a transport of `format` sends for this unit; built once, by the first that asks.
    pub fn packet(&self, format: Format) -> &Packet {
        self.packets[format as usize].get_or_init(|| format.package(&self.unit))
    }
}

impl Deref for PackagedUnit {
    type Target = AccessUnit;

    fn deref(&self) -> &AccessUnit {
        &self.unit
    }
}
