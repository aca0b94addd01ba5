//! Files from `document-root`, confined to that folder, and file bodies sent in chunks read
//! only as fast as the client takes them (document-root files and recordings alike).

use std::fs::File;
use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::context::ServerContext;
use crate::events::log;

/// Bytes read from disk per step of a download.
const CHUNK: usize = 64 * 1024;

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

/// Decodes `%XX` escapes; `None` for invalid UTF-8 or a NUL, which no file name here has.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    (!decoded.contains('\0')).then(|| decoded.into_owned())
}

/// Streams `len` bytes of `file` from `start`. The body is read only as fast as the client
/// takes it and ends when the server shuts down. A read error or a file that shrank leaves
/// the body short of its `Content-Length`, so the client sees a broken download rather than
/// a complete-looking one.
pub fn stream(
    ctx: &ServerContext,
    file: File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static {
    let events = ctx.hub.events.clone();
    let mut file = tokio::fs::File::from_std(file);
    let body = futures_util::stream::once(async move {
        file.seek(SeekFrom::Start(start)).await?;
        std::io::Result::Ok(ReaderStream::with_capacity(file.take(len), CHUNK))
    })
    .try_flatten();
    body.inspect_err(move |err| log!(events, Warning, "Reading a file to send failed: {}", err))
        .take_until(ctx.hub.shutdown.clone().cancelled_owned())
}

/// The content type of a file served from `document-root`. JavaScript is named explicitly:
/// module scripts need a JavaScript type, and `.mjs` is guessed otherwise.
pub fn content_type(path: &Path) -> HeaderValue {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if extension.eq_ignore_ascii_case("js") || extension.eq_ignore_ascii_case("mjs") {
        return HeaderValue::from_static(JAVASCRIPT);
    }
    let guess = mime_guess::from_ext(extension).first_or_octet_stream();
    let value = if guess.type_() == "text" && guess.get_param("charset").is_none() {
        format!("{guess}; charset=utf-8")
    } else {
        guess.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// The content type of JavaScript, classic or module.
pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

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

    #[test]
    fn content_types() {
        let of = |name: &str| content_type(Path::new(name));
        assert_eq!(of("main.js"), "text/javascript; charset=utf-8");
        assert_eq!(of("MAIN.MJS"), "text/javascript; charset=utf-8");
        assert_eq!(of("index.html"), "text/html; charset=utf-8");
        assert_eq!(of("viewer.css"), "text/css; charset=utf-8");
        assert_eq!(of("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(of("status.json"), "application/json");
        assert_eq!(of("logo.svg"), "image/svg+xml");
        assert_eq!(of("photo.JPG"), "image/jpeg");
        assert_eq!(of("README"), "application/octet-stream");
        assert_eq!(of("x.unknown-extension"), "application/octet-stream");
    }
}
