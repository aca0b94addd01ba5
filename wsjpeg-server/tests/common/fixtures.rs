// SPDX-License-Identifier: MIT
//! Real JPEG frames without an encoder: files GStreamer's `jpegenc` made (quality 75), and
//! big frames grown from them.

use std::path::PathBuf;

/// The bytes of `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `videotestsrc pattern=PATTERN` at `width`×`height`, as a JPEG.
pub fn picture(pattern: &str, width: u32, height: u32) -> Vec<u8> {
    fixture(&format!("{pattern}-{width}x{height}.jpg"))
}

/// A whole JPEG of at least `len` bytes: the 320×240 snow picture with
/// comment segments after its start marker. For tests where the size of a frame is what
/// counts, such as a busy 720p camera's 250 KB.
pub fn big_frame(len: usize) -> Vec<u8> {
    const COM: u8 = 0xFE;
    const MAX_SEGMENT: usize = 0xFFFF;
    let picture = picture("snow", 320, 240);
    let mut missing = len.saturating_sub(picture.len());
    let mut frame = picture[..2].to_vec();
    while missing > 0 {
        // A segment is its marker (2 bytes) and a length that counts itself (2 bytes).
        let segment = missing.clamp(4, MAX_SEGMENT + 2);
        let payload = segment - 4;
        frame.extend_from_slice(&[0xFF, COM]);
        frame.extend_from_slice(&((payload + 2) as u16).to_be_bytes());
        frame.resize(frame.len() + payload, b'.');
        missing -= segment.min(missing);
    }
    frame.extend_from_slice(&picture[2..]);
    frame
}
