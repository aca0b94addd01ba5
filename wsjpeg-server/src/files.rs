//! Files from `document-root`, confined to that folder, and file bodies sent in chunks read
//! only as fast as the client takes them (document-root files and recordings alike).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::context::ServerContext;
use crate::events::log;

/// Bytes read from disk per step of a download.
const CHUNK: usize = 64 * 1024;
/// Chunks queued ahead of the connection: with the one being read, at most 3 × 64 KiB in memory.
const CHUNKS_AHEAD: usize = 2;

/// Maps a request path to a file inside `root`. Refuses `..`, absolute components, hidden
/// names (any component starting with `.`, such as `.git` or `.htpasswd`) and any symlink that
/// resolves outside the root.
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(request_path)?;
    let relative = decoded.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_string()
    };
    let mut candidate = root.to_path_buf();
    for component in Path::new(&relative).components() {
        match component {
            Component::Normal(part) if !part.as_encoded_bytes().starts_with(b".") => {
                candidate.push(part)
            }
            _ => return None,
        }
    }
    let root = root.canonicalize().ok()?;
    let resolved = candidate.canonicalize().ok()?;
    (resolved.starts_with(&root) && resolved.is_file()).then_some(resolved)
}

/// Decodes `%XX` escapes; `None` for a broken escape, invalid UTF-8 or a NUL.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.contains('\0')).then_some(s)
}

/// Streams `len` bytes of `file` from `start`, reading a chunk only when the connection has
/// room for it. A read error or a file that shrank ends the response with an error, so the
/// client sees a broken download rather than a short one.
pub fn stream(
    ctx: &ServerContext,
    file: File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_AHEAD);
    let shutdown = ctx.hub.shutdown.clone();
    let events = ctx.hub.events.clone();
    ctx.spawn(async move {
        let mut file = Some(file);
        let mut offset = start;
        let mut left = len;
        while left > 0 {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return,
                permit = tx.reserve() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return, // the client went away
                },
            };
            let Some(mut f) = file.take() else { return };
            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            let read = tokio::task::spawn_blocking(move || {
                let chunk = read_chunk(&mut f, offset, want);
                (f, chunk)
            })
            .await;
            match read {
                Ok((f, Ok(chunk))) if !chunk.is_empty() => {
                    file = Some(f);
                    offset += chunk.len() as u64;
                    left -= chunk.len() as u64;
                    permit.send(Ok(chunk));
                }
                Ok((_, Ok(_))) => {
                    permit.send(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was sent",
                    )));
                    return;
                }
                Ok((_, Err(err))) => {
                    log!(events, Warning, "Reading a file to send failed: {}", err);
                    permit.send(Err(err));
                    return;
                }
                Err(err) => {
                    permit.send(Err(std::io::Error::other(err.to_string())));
                    return;
                }
            }
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn read_chunk(file: &mut File, offset: u64, want: usize) -> std::io::Result<Bytes> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("html") | Some("htm") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("ico") => "image/x-icon",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_root() {
        let dir = std::env::temp_dir().join(format!("wsjpeg-files-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "hi").unwrap();
        std::fs::write(root.join("sub/a.js"), "x").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link.txt"));

        assert!(resolve(&root, "/").unwrap().ends_with("index.html"));
        assert!(resolve(&root, "/sub/a.js").is_some());
        assert!(resolve(&root, "/../secret.txt").is_none());
        assert!(resolve(&root, "/%2e%2e/secret.txt").is_none());
        assert!(resolve(&root, "/sub/%2e%2e/%2e%2e/secret.txt").is_none());
        assert!(resolve(&root, "/link.txt").is_none());
        assert!(resolve(&root, "/missing").is_none());
        assert!(resolve(&root, "/%zz").is_none());
        assert!(resolve(&root, "/a%00b").is_none());
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "secret").unwrap();
        std::fs::write(root.join(".hidden"), "secret").unwrap();
        std::fs::write(root.join("sub/.env"), "secret").unwrap();
        assert!(resolve(&root, "/.hidden").is_none());
        assert!(resolve(&root, "/.git/config").is_none());
        assert!(resolve(&root, "/.git/").is_none());
        assert!(resolve(&root, "/sub/.env").is_none());
        assert!(resolve(&root, "/%2egit/config").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
