// SPDX-License-Identifier: MIT
//! Reading H.264 in Annex B (the byte stream with start codes): its NAL units, whether an
//! access unit is a keyframe, and the codec string browsers want.

/// The NAL units of an Annex B byte stream: each unit's bytes after its start code.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&next| {
            // The zero before a 4-byte start code belongs to it, not to the unit before.
            let end = next - 3;
            if end > 0 && data[end - 1] == 0 {
                end - 1
            } else {
                end
            }
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(start, end)| start < end)
        .map(move |(start, end)| &data[start..end])
}

pub(super) fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1F)
}

/// Whether an access unit holds an IDR picture (a decoder can start at it).
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|unit| nal_type(unit) == Some(5))
}

/// An Annex B elementary stream (a `.h264` file) cut into access units, each with 4-byte
/// start codes: a unit ends where a NAL unit that is not a slice, or the first slice of a
/// picture (`first_mb_in_slice` 0: its first bit set), follows a slice.
pub fn access_units(stream: &[u8]) -> Vec<bytes::Bytes> {
    let mut units = Vec::new();
    let mut pending = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(stream) {
        let slice = matches!(nal_type(nal), Some(1 | 5));
        let starts_picture = slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        if has_slice && (!slice || starts_picture) {
            units.push(bytes::Bytes::from(std::mem::take(&mut pending)));
            has_slice = false;
        }
        pending.extend_from_slice(&[0, 0, 0, 1]);
        pending.extend_from_slice(nal);
        has_slice |= slice;
    }
    if has_slice {
        units.push(bytes::Bytes::from(pending));
    }
    units
}

/// The codec string browsers want (`avc1.PPCCLL`: profile, constraint flags and level of the
/// sequence parameter set), if the access unit carries an SPS.
pub fn codec_string(access_unit: &[u8]) -> Option<String> {
    let sps = nal_units(access_unit).find(|unit| nal_type(unit) == Some(7))?;
    let (profile, constraints, level) = (sps.get(1)?, sps.get(2)?, sps.get(3)?);
    Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x1F, 0xDA];
    pub const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    /// An IDR access unit with its parameter sets, or an inter frame.
    pub fn access_unit(keyframe: bool) -> bytes::Bytes {
        let mut data = Vec::new();
        if keyframe {
            for unit in [SPS, PPS, &[0x65, 0x88, 0x84][..]] {
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(unit);
            }
        } else {
            data.extend_from_slice(&[0, 0, 1, 0x41, 0x9A, 0x02]);
        }
        bytes::Bytes::from(data)
    }

    #[test]
    fn annex_b_is_split_at_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let units: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        assert!(is_keyframe(&data));
        assert!(!is_keyframe(&access_unit(false)));
        assert_eq!(nal_units(b"no start code").count(), 0);
    }

    #[test]
    fn the_codec_string_is_read_from_the_sps() {
        assert_eq!(
            codec_string(&access_unit(true)).as_deref(),
            Some("avc1.42C01F")
        );
        assert_eq!(codec_string(&access_unit(false)), None);
        assert_eq!(codec_string(&[0, 0, 1, 0x67, 0x42]), None, "a cut SPS");
    }
}
