//! Cheap structural checks on JPEG frames.
//!
//! The sink sees every frame, so this only looks at the frame's ends and walks the marker
//! segments up to the start of scan: a few dozen byte reads, never the entropy-coded data.

/// Anything shorter cannot be a picture; cameras emit such stubs after a USB hiccup.
pub const MIN_JPEG_SIZE: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegError {
    TooShort(usize),
    NoStartOfImage,
    NoEndOfImage,
}

impl std::fmt::Display for JpegError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JpegError::TooShort(len) => write!(f, "frame of {len} bytes is too short to be a JPEG"),
            JpegError::NoStartOfImage => write!(f, "frame does not start with a JPEG SOI marker"),
            JpegError::NoEndOfImage => {
                write!(f, "frame does not end with a JPEG EOI marker (truncated?)")
            }
        }
    }
}

/// Checks that `data` is a complete JPEG and returns the length to send: some UVC cameras pad
/// frames with zero bytes after the EOI marker, which are cut off.
pub fn validate(data: &[u8]) -> Result<usize, JpegError> {
    if data.len() < MIN_JPEG_SIZE {
        return Err(JpegError::TooShort(data.len()));
    }
    if data[0] != 0xFF || data[1] != 0xD8 {
        return Err(JpegError::NoStartOfImage);
    }
    // Tolerate a little zero padding after EOI, but do not scan a whole garbage frame.
    let tail_start = data.len().saturating_sub(1024).max(2);
    let mut end = data.len();
    while end > tail_start && data[end - 1] == 0 {
        end -= 1;
    }
    if end < 4 || data[end - 2] != 0xFF || data[end - 1] != 0xD9 {
        return Err(JpegError::NoEndOfImage);
    }
    Ok(end)
}

/// Reads the frame size from the first start-of-frame segment, if it comes before the scan.
pub fn dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let mut pos = 2;
    while pos + 4 <= data.len() {
        if data[pos] != 0xFF {
            return None;
        }
        let marker = data[pos + 1];
        if marker == 0xFF {
            // Fill byte.
            pos += 1;
            continue;
        }
        let len = u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
        match marker {
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let seg = data.get(pos + 4..pos + 9)?;
                let height = u16::from_be_bytes([seg[1], seg[2]]) as u32;
                let width = u16::from_be_bytes([seg[3], seg[4]]) as u32;
                return Some((width, height));
            }
            0xDA | 0xD9 => return None,
            _ => {}
        }
        if len < 2 {
            return None;
        }
        pos += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_jpeg(payload: usize) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        // SOF0: len 17, precision 8, height 480, width 640.
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80]);
        v.extend(std::iter::repeat_n(0u8, 12));
        v.extend(std::iter::repeat_n(0x55u8, payload));
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn accepts_complete_frames_and_reads_size() {
        let f = fake_jpeg(200);
        assert_eq!(validate(&f), Ok(f.len()));
        assert_eq!(dimensions(&f), Some((640, 480)));
    }

    #[test]
    fn strips_zero_padding() {
        let mut f = fake_jpeg(200);
        let len = f.len();
        f.extend_from_slice(&[0; 16]);
        assert_eq!(validate(&f), Ok(len));
    }

    #[test]
    fn rejects_broken_frames() {
        let f = fake_jpeg(200);
        assert_eq!(validate(&f[..50]), Err(JpegError::TooShort(50)));
        assert_eq!(validate(&f[..f.len() - 10]), Err(JpegError::NoEndOfImage));
        let mut g = f.clone();
        g[1] = 0;
        assert_eq!(validate(&g), Err(JpegError::NoStartOfImage));
        assert_eq!(validate(&vec![0u8; 4096]), Err(JpegError::NoStartOfImage));
    }

    #[test]
    fn dimensions_survive_garbage() {
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF]), None);
        assert_eq!(dimensions(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00]), None);
        assert_eq!(
            dimensions(&[0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08]),
            None
        );
    }
}
