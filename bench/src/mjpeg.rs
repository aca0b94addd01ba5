//! A lean `multipart/x-mixed-replace` (MJPEG over HTTP) reader for load generation.
//!
//! Parts are found through their `Content-Length` header and skipped without being copied.
//! Chunked transfer encoding (what HTTP/1.1 servers use for endless bodies) is undone on the
//! fly. Servers that send `X-Timestamp: <seconds>.<micros>` (wsjpegsink does) give latency.

use anyhow::{Result, bail};

/// Longest part header block kept.
const MAX_PART_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub len: u64,
    /// Capture time from `X-Timestamp`, Unix µs.
    pub capture_us: Option<u64>,
}

#[derive(Debug)]
enum Chunked {
    /// Reading the chunk-size line.
    Size(Vec<u8>),
    Data(u64),
    /// The CRLF after a chunk's data; the count is how many of its bytes are still due.
    DataEnd(u8),
    Done,
}

#[derive(Debug)]
enum Multipart {
    Head,
    Body(u64),
}

/// Incremental reader of an MJPEG response body (after the HTTP head).
#[derive(Debug)]
pub struct Reader {
    chunked: Option<Chunked>,
    multipart: Multipart,
    head: Vec<u8>,
    part_len: u64,
    part_ts: Option<u64>,
}

impl Reader {
    pub fn new(chunked: bool) -> Self {
        Reader {
            chunked: chunked.then(|| Chunked::Size(Vec::new())),
            multipart: Multipart::Head,
            head: Vec::with_capacity(256),
            part_len: 0,
            part_ts: None,
        }
    }

    /// Feeds body bytes; `on_part` is called when a whole part (a JPEG) has been received.
    pub fn feed(&mut self, mut data: &[u8], mut on_part: impl FnMut(Part)) -> Result<()> {
        let Some(mut chunked) = self.chunked.take() else {
            return self.feed_body(data, &mut on_part);
        };
        let result = (|| {
            while !data.is_empty() {
                match &mut chunked {
                    Chunked::Size(line) => {
                        let end = data.iter().position(|&b| b == b'\n');
                        let take = end.map(|i| i + 1).unwrap_or(data.len());
                        line.extend_from_slice(&data[..take]);
                        data = &data[take..];
                        if line.len() > 1024 {
                            bail!("chunk-size line too long");
                        }
                        if end.is_some() {
                            let text = String::from_utf8_lossy(line);
                            let hex = text.trim().split(';').next().unwrap_or("").trim();
                            let size = u64::from_str_radix(hex, 16)
                                .map_err(|_| anyhow::anyhow!("bad chunk size '{hex}'"))?;
                            chunked = if size == 0 {
                                Chunked::Done
                            } else {
                                Chunked::Data(size)
                            };
                        }
                    }
                    Chunked::Data(remaining) => {
                        let take = (*remaining).min(data.len() as u64) as usize;
                        self.feed_body(&data[..take], &mut on_part)?;
                        data = &data[take..];
                        *remaining -= take as u64;
                        if *remaining == 0 {
                            chunked = Chunked::DataEnd(2);
                        }
                    }
                    Chunked::DataEnd(due) => {
                        let take = (*due as usize).min(data.len());
                        data = &data[take..];
                        *due -= take as u8;
                        if *due == 0 {
                            chunked = Chunked::Size(Vec::new());
                        }
                    }
                    Chunked::Done => return Ok(()),
                }
            }
            Ok(())
        })();
        self.chunked = Some(chunked);
        result
    }

    fn feed_body(&mut self, mut data: &[u8], on_part: &mut impl FnMut(Part)) -> Result<()> {
        while !data.is_empty() {
            match self.multipart {
                Multipart::Head => {
                    // Accumulate until the blank line that ends a part's headers.
                    let before = self.head.len();
                    let window_start = before.saturating_sub(3);
                    let take = data
                        .len()
                        .min(MAX_PART_HEAD + 4 - before.min(MAX_PART_HEAD));
                    self.head.extend_from_slice(&data[..take]);
                    match crate::ws::find(&self.head[window_start..], b"\r\n\r\n") {
                        Some(pos) => {
                            let end = window_start + pos + 4;
                            let used = end - before;
                            data = &data[used..];
                            let block = std::mem::take(&mut self.head);
                            if self.part_headers(&block[..end]) {
                                self.multipart = Multipart::Body(self.part_len);
                                if self.part_len == 0 {
                                    self.finish_part(on_part);
                                }
                            }
                        }
                        None => {
                            data = &data[take..];
                            if self.head.len() > MAX_PART_HEAD {
                                bail!("part headers larger than {MAX_PART_HEAD} bytes");
                            }
                        }
                    }
                }
                Multipart::Body(remaining) => {
                    let take = remaining.min(data.len() as u64);
                    data = &data[take as usize..];
                    let remaining = remaining - take;
                    self.multipart = Multipart::Body(remaining);
                    if remaining == 0 {
                        self.finish_part(on_part);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads Content-Length and X-Timestamp from a header block; false when it has no length
    /// (a bare boundary line, say), so the next block is read.
    fn part_headers(&mut self, block: &[u8]) -> bool {
        let text = String::from_utf8_lossy(block);
        let mut len = None;
        let mut ts = None;
        for line in text.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("x-timestamp") {
                ts = parse_timestamp(value.trim());
            }
        }
        match len {
            Some(len) => {
                self.part_len = len;
                self.part_ts = ts;
                true
            }
            None => false,
        }
    }

    fn finish_part(&mut self, on_part: &mut impl FnMut(Part)) {
        on_part(Part {
            len: self.part_len,
            capture_us: self.part_ts,
        });
        self.multipart = Multipart::Head;
    }
}

/// Parses `seconds.fraction` into Unix µs without going through a float.
pub fn parse_timestamp(value: &str) -> Option<u64> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut micros = 0u64;
    let mut digits = 0;
    for c in frac.chars().take(6) {
        micros = micros * 10 + c.to_digit(10)? as u64;
        digits += 1;
    }
    for _ in digits..6 {
        micros *= 10;
    }
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(usize, &str)]) -> Vec<u8> {
        let mut v = b"--b\r\n".to_vec();
        for (len, ts) in parts {
            v.extend_from_slice(
                format!(
                    "Content-Type: image/jpeg\r\nContent-Length: {len}\r\nX-Timestamp: {ts}\r\n\r\n"
                )
                .as_bytes(),
            );
            v.extend(std::iter::repeat_n(b'\r', *len));
            v.extend_from_slice(b"\r\n--b\r\n");
        }
        v
    }

    fn chunk(data: &[u8], size: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for c in data.chunks(size) {
            v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            v.extend_from_slice(c);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn reads_parts_plain_and_chunked() {
        let data = body(&[(1000, "1700000000.000123"), (5, "1.5"), (70_000, "2")]);
        let expected = vec![
            Part {
                len: 1000,
                capture_us: Some(1_700_000_000_000_123),
            },
            Part {
                len: 5,
                capture_us: Some(1_500_000),
            },
            Part {
                len: 70_000,
                capture_us: Some(2_000_000),
            },
        ];
        for step in [1, 2, 5, 4096, 1 << 20] {
            let mut r = Reader::new(false);
            let mut got = Vec::new();
            for c in data.chunks(step) {
                r.feed(c, |p| got.push(p)).unwrap();
            }
            assert_eq!(got, expected, "plain, step {step}");
            let chunked = chunk(&data, 777);
            let mut r = Reader::new(true);
            let mut got = Vec::new();
            for c in chunked.chunks(step) {
                r.feed(c, |p| got.push(p)).unwrap();
            }
            assert_eq!(got, expected, "chunked, step {step}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("12.5"), Some(12_500_000));
        assert_eq!(parse_timestamp("12"), Some(12_000_000));
        assert_eq!(parse_timestamp("x"), None);
    }
}
