//! Files from `document-root`, confined to that folder.

use std::path::{Component, Path, PathBuf};

/// Maps a request path to a file inside `root`. Refuses `..`, absolute components and any
/// symlink that resolves outside the root.
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
            Component::Normal(part) => candidate.push(part),
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
