// SPDX-License-Identifier: MIT
//! Fragmented MP4 (ISO/IEC 14496-12, as CMAF and Media Source Extensions want it) of the H.264
//! track: an initialisation segment made from a keyframe's parameter sets, and one fragment
//! (`moof` + `mdat`) per access unit.
//!
//! Times are in microseconds (the media timescale is 1,000,000) and a fragment's decode time
//! is its picture's capture time (Unix µs), so a player can tell how old each picture is from
//! the fragment alone. Pictures are presented in decode order (encoders for live viewers make
//! no B-frames), so there are no composition offsets.

use bytes::{BufMut, Bytes, BytesMut};

use super::annexb::{nal_type, nal_units};
use super::packet::Packet;
use super::sps::picture_size;
use super::unit::AccessUnit;

pub const TIMESCALE: u32 = 1_000_000;
const TRACK_ID: u32 = 1;

/// NAL unit types that stay out of the samples: the parameter sets live in the
/// initialisation segment (`avc1`), and access unit delimiters carry nothing a decoder needs.
const SPS: u8 = 7;
const PPS: u8 = 8;
const DELIMITER: u8 = 9;

/// Writes boxes: each is begun with its type, its contents written, and ended, which fills in
/// its size.
struct Boxes {
    out: BytesMut,
    open: Vec<usize>,
}

impl Boxes {
    fn new() -> Self {
        Boxes {
            out: BytesMut::with_capacity(1024),
            open: Vec::new(),
        }
    }

    fn begin(&mut self, kind: &[u8; 4]) -> &mut Self {
        self.open.push(self.out.len());
        self.out.put_u32(0);
        self.out.put_slice(kind);
        self
    }

    /// A full box: its version and flags after the type.
    fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> &mut Self {
        self.begin(kind);
        self.out
            .put_u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        self
    }

    fn end(&mut self) -> &mut Self {
        if let Some(start) = self.open.pop() {
            let size = (self.out.len() - start) as u32;
            self.out[start..start + 4].copy_from_slice(&size.to_be_bytes());
        }
        self
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.out.put_u8(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.out.put_u16(v);
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.out.put_u32(v);
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.out.put_u64(v);
        self
    }

    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.out.put_slice(v);
        self
    }

    fn zeros(&mut self, n: usize) -> &mut Self {
        self.out.put_bytes(0, n);
        self
    }

    fn len(&self) -> usize {
        self.out.len()
    }
}

/// The identity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The parameter sets of a keyframe, which its initialisation segment is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
}

impl ParameterSets {
    /// The first SPS and PPS of an access unit (a keyframe carries them in band).
    pub fn of(access_unit: &[u8]) -> Option<ParameterSets> {
        let sps = nal_units(access_unit).find(|u| nal_type(u) == Some(SPS))?;
        let pps = nal_units(access_unit).find(|u| nal_type(u) == Some(PPS))?;
        (sps.len() >= 4).then(|| ParameterSets {
            sps: sps.to_vec(),
            pps: pps.to_vec(),
        })
    }
}

/// The initialisation segment for a keyframe, empty for any other unit or a keyframe
/// without parameter sets that say the picture size.
pub(super) fn init_packet(unit: &AccessUnit) -> Packet {
    let segment = unit
        .keyframe
        .then(|| ParameterSets::of(&unit.data))
        .flatten()
        .and_then(|sets| init_segment(&sets));
    Packet::new(segment.into_iter().collect())
}

/// `ftyp` and `moov` for one H.264 track with these parameter sets; `None` if the SPS does
/// not say the picture size.
pub fn init_segment(sets: &ParameterSets) -> Option<Bytes> {
    let (width, height) = picture_size(&sets.sps)?;
    let (width16, height16) = (u16::try_from(width).ok()?, u16::try_from(height).ok()?);
    let mut b = Boxes::new();
    b.begin(b"ftyp").bytes(b"iso6").u32(0);
    for brand in [b"iso6", b"cmfc", b"avc1", b"mp41"] {
        b.bytes(brand);
    }
    b.end();
    b.begin(b"moov");
    b.begin_full(b"mvhd", 0, 0)
        .u32(0) // creation time
        .u32(0) // modification time
        .u32(TIMESCALE)
        .u32(0) // duration: unknown, live
        .u32(0x0001_0000) // rate 1.0
        .u16(0x0100) // volume 1.0
        .zeros(10);
    for v in MATRIX {
        b.u32(v);
    }
    b.zeros(24).u32(TRACK_ID + 1).end();
    b.begin(b"trak");
    b.begin_full(b"tkhd", 0, 0x3) // enabled, in the movie
        .u32(0)
        .u32(0)
        .u32(TRACK_ID)
        .u32(0)
        .u32(0) // duration
        .zeros(8)
        .u16(0) // layer
        .u16(0) // alternate group
        .u16(0) // volume: video
        .u16(0);
    for v in MATRIX {
        b.u32(v);
    }
    b.u32(width << 16).u32(height << 16).end();
    b.begin(b"mdia");
    b.begin_full(b"mdhd", 0, 0)
        .u32(0)
        .u32(0)
        .u32(TIMESCALE)
        .u32(0)
        .u16(0x55C4) // language "und"
        .u16(0)
        .end();
    b.begin_full(b"hdlr", 0, 0)
        .u32(0)
        .bytes(b"vide")
        .zeros(12)
        .bytes(b"wsjpeg video\0")
        .end();
    b.begin(b"minf");
    b.begin_full(b"vmhd", 0, 1).zeros(8).end();
    b.begin(b"dinf");
    b.begin_full(b"dref", 0, 0).u32(1);
    b.begin_full(b"url ", 0, 1).end(); // the media is in this file
    b.end().end();
    b.begin(b"stbl");
    b.begin_full(b"stsd", 0, 0).u32(1);
    b.begin(b"avc1")
        .zeros(6)
        .u16(1) // data reference index
        .zeros(16)
        .u16(width16)
        .u16(height16)
        .u32(0x0048_0000) // 72 dpi
        .u32(0x0048_0000)
        .u32(0)
        .u16(1) // one frame per sample
        .zeros(32) // compressor name
        .u16(0x0018) // depth
        .u16(0xFFFF); // no colour table
    b.begin(b"avcC")
        .u8(1)
        .u8(sets.sps[1]) // profile
        .u8(sets.sps[2]) // constraints
        .u8(sets.sps[3]) // level
        .u8(0xFC | 3) // 4-byte NAL unit lengths
        .u8(0xE0 | 1)
        .u16(sets.sps.len() as u16)
        .bytes(&sets.sps)
        .u8(1)
        .u16(sets.pps.len() as u16)
        .bytes(&sets.pps)
        .end();
    b.end(); // avc1
    b.end(); // stsd
    for kind in [b"stts", b"stsc", b"stco"] {
        b.begin_full(kind, 0, 0).u32(0).end();
    }
    b.begin_full(b"stsz", 0, 0).u32(0).u32(0).end();
    b.end().end().end().end(); // stbl, minf, mdia, trak
    b.begin(b"mvex");
    b.begin_full(b"trex", 0, 0)
        .u32(TRACK_ID)
        .u32(1) // sample description
        .u32(0)
        .u32(0)
        .u32(0)
        .end();
    b.end().end(); // mvex, moov
    Some(b.out.freeze())
}

/// Sample flags (§8.8.3.1): a sync sample depends on no other; any other does.
fn sample_flags(keyframe: bool) -> u32 {
    if keyframe { 0x0200_0000 } else { 0x0101_0000 }
}

/// The `moof` and `mdat` of one access unit; its NAL units (but parameter sets and
/// delimiters) behind 4-byte lengths. The fragment's sequence number is the unit's, cut to 32
/// bits.
pub fn fragment(unit: &AccessUnit) -> Packet {
    let nals: Vec<&[u8]> = nal_units(&unit.data)
        .filter(|u| !matches!(nal_type(u), Some(SPS | PPS | DELIMITER)))
        .collect();
    let sample_size: usize = nals.iter().map(|n| 4 + n.len()).sum();
    let mut b = Boxes::new();
    b.begin(b"moof");
    b.begin_full(b"mfhd", 0, 0).u32(unit.sequence as u32).end();
    b.begin(b"traf");
    // default-base-is-moof: data offsets count from the moof's first byte.
    b.begin_full(b"tfhd", 0, 0x02_0000).u32(TRACK_ID).end();
    b.begin_full(b"tfdt", 1, 0).u64(unit.capture_time_us).end();
    // data offset, sample duration, size and flags present.
    b.begin_full(b"trun", 0, 0x0000_0701).u32(1);
    let offset_at = b.len();
    b.u32(0)
        .u32(unit.duration_us)
        .u32(sample_size as u32)
        .u32(sample_flags(unit.keyframe))
        .end();
    b.end().end(); // traf, moof
    let data_offset = (b.len() + 8) as u32;
    b.out[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    b.out.reserve(8 + sample_size);
    b.out.put_u32((8 + sample_size) as u32);
    b.out.put_slice(b"mdat");
    for nal in nals {
        b.out.put_u32(nal.len() as u32);
        b.out.put_slice(nal);
    }
    Packet::new(vec![b.out.freeze()])
}

/// The children of the box whose contents are `data`: each box's type and contents, as far
/// as `data` holds them (a box cut short gives what there is of it).
fn children(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let kind = rest.get(4..8)?;
        let end = size.clamp(8, rest.len());
        let contents = &rest[8..end];
        rest = &rest[end..];
        Some((kind, contents))
    })
}

/// What a reader of the stream needs of a fragment without reading it all: its sequence
/// number and decode time (the capture time, Unix µs), from the first bytes of a `moof`.
/// `None` for anything else (an initialisation segment, a cut or foreign box).
pub fn fragment_times(data: &[u8]) -> Option<(u32, u64)> {
    let (kind, moof) = children(data).next()?;
    if kind != b"moof" {
        return None;
    }
    let mut sequence = None;
    let mut decode_time = None;
    for (kind, contents) in children(moof) {
        match kind {
            b"mfhd" => sequence = Some(u32::from_be_bytes(contents.get(4..8)?.try_into().ok()?)),
            b"traf" => {
                for (kind, contents) in children(contents) {
                    if kind == b"tfdt" {
                        decode_time = Some(match contents.first()? {
                            1 => u64::from_be_bytes(contents.get(4..12)?.try_into().ok()?),
                            _ => {
                                u64::from(u32::from_be_bytes(contents.get(4..8)?.try_into().ok()?))
                            }
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Some((sequence?, decode_time?))
}

#[cfg(test)]
mod tests {
    use super::super::annexb::tests::access_unit;
    use super::*;

    fn boxes_of(data: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            out.push((
                String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned(),
                size,
            ));
            assert!(size >= 8, "a box has its header");
            at += size;
        }
        assert_eq!(at, data.len(), "boxes fill the data exactly");
        out
    }

    #[test]
    fn a_fragment_is_a_moof_and_an_mdat_that_the_offset_points_into() {
        let unit = AccessUnit {
            sequence: 5,
            keyframe: true,
            capture_time_us: 1_700_000_000_123_456,
            duration_us: 33_333,
            data: access_unit(true),
        };
        let packet = fragment(&unit);
        let data = &packet.parts()[0];
        let kinds: Vec<String> = boxes_of(data).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ["moof", "mdat"]);
        let moof_len = boxes_of(data)[0].1;
        // The IDR slice alone, behind its length: parameter sets are in the init segment.
        assert_eq!(&data[moof_len + 8..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let find = |kind: &[u8]| data.windows(4).position(|w| w == kind).unwrap();
        let tfdt = find(b"tfdt");
        assert_eq!(
            u64::from_be_bytes(data[tfdt + 8..tfdt + 16].try_into().unwrap()),
            1_700_000_000_123_456
        );
        let trun = find(b"trun");
        let offset = u32::from_be_bytes(data[trun + 12..trun + 16].try_into().unwrap());
        assert_eq!(
            offset as usize,
            moof_len + 8,
            "the sample starts the mdat's payload"
        );
    }

    #[test]
    fn an_init_segment_needs_a_size_from_the_sps() {
        let sets = ParameterSets::of(&access_unit(true)).expect("sets");
        assert_eq!(init_segment(&sets), None, "a cut SPS has no size");
        assert_eq!(ParameterSets::of(&access_unit(false)), None);
    }
}
