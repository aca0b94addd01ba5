// SPDX-License-Identifier: MIT
//! wsjpeg's own WebSocket packaging of H.264 (`/stream?codec=h264`): each access unit is one
//! binary message, a 32-byte header and the unit in Annex B as the encoder made it.
//!
//! The header: `WSJ1`, u32 header length (32), u64 sequence number, u64 capture time (Unix
//! µs), u8 flags (bit 0: keyframe), 7 bytes reserved (zero); big-endian.

use bytes::Bytes;

use super::packet::Packet;
use super::unit::AccessUnit;
use crate::protocol::META_MAGIC;

pub const WSJ_HEADER_LEN: usize = 32;
/// Flag of a keyframe (an IDR access unit with its SPS and PPS) in the header.
pub const KEYFRAME: u8 = 1;

pub(super) fn package(unit: &AccessUnit) -> Packet {
    let header = header(unit.sequence, unit.capture_time_us, unit.keyframe);
    Packet::new(vec![Bytes::copy_from_slice(&header), unit.data.clone()])
}

fn header(sequence: u64, capture_time_us: u64, keyframe: bool) -> [u8; WSJ_HEADER_LEN] {
    let mut h = [0u8; WSJ_HEADER_LEN];
    h[0..4].copy_from_slice(META_MAGIC);
    h[4..8].copy_from_slice(&(WSJ_HEADER_LEN as u32).to_be_bytes());
    h[8..16].copy_from_slice(&sequence.to_be_bytes());
    h[16..24].copy_from_slice(&capture_time_us.to_be_bytes());
    h[24] = if keyframe { KEYFRAME } else { 0 };
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_has_the_documented_layout() {
        let header = header(7, 1_700_000_000_000_000, true);
        assert_eq!(&header[0..4], b"WSJ1");
        assert_eq!(u32::from_be_bytes(header[4..8].try_into().unwrap()), 32);
        assert_eq!(u64::from_be_bytes(header[8..16].try_into().unwrap()), 7);
        assert_eq!(
            u64::from_be_bytes(header[16..24].try_into().unwrap()),
            1_700_000_000_000_000
        );
        assert_eq!(header[24], KEYFRAME);
        assert!(header[25..].iter().all(|b| *b == 0));
        let parsed = crate::protocol::parse_meta_header(&header).expect("a header");
        assert!(parsed.keyframe);
        assert_eq!(parsed.len, WSJ_HEADER_LEN);
        assert!(
            !crate::protocol::parse_meta_header(&super::header(8, 0, false))
                .unwrap()
                .keyframe
        );
    }
}
