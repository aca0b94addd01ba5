// SPDX-License-Identifier: MIT
//! The viewer page built into the server: the files of `web/` as they are, the page at `/` and
//! everything it loads under `assets/VERSION/`, where VERSION is a hash of all the files.
//!
//! One version for all files, as a folder, rather than a hash per file: the modules import each
//! other by relative URL (`./status.js`), which then resolve inside the same version with the
//! modules served unchanged and no import map (an inline script). A change to any file changes
//! every URL; the viewer is small, so a new version is fetched whole.

use std::sync::LazyLock;

use bytes::Bytes;
use http::HeaderValue;
use sha1::{Digest, Sha1};

use crate::files;

/// `web/`'s files by name (`index.html`, `viewer.css`, `js/main.js`…), listed by build.rs.
static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/viewer_files.rs"));

const PAGE: &str = "index.html";

/// Where a file of the page is served from, relative to the page: a page behind a proxy
/// under a path prefix finds them there too.
const ASSETS: &str = "assets";

/// Cached for a year and never asked again: a URL names one content only.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Built {
    version: String,
    page: Bytes,
}

static BUILT: LazyLock<Built> = LazyLock::new(|| {
    let version = version_of(FILES);
    let html = FILES
        .iter()
        .find(|(name, _)| *name == PAGE)
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    let page = Bytes::from(point_to_assets(&html, &version, FILES));
    Built { version, page }
});

/// The page: `web/index.html` with its stylesheet and module pointing to their version.
pub fn page() -> Bytes {
    BUILT.page.clone()
}

/// A file of the page, with its content type, if `version` is this build's.
pub fn asset(version: &str, name: &str) -> Option<(Bytes, HeaderValue)> {
    if version != BUILT.version || name == PAGE {
        return None;
    }
    let (_, bytes) = FILES.iter().find(|(n, _)| *n == name)?;
    Some((
        Bytes::from_static(bytes),
        files::content_type(std::path::Path::new(name)),
    ))
}

/// 16 hex digits of a SHA-1 over every file's name and content: for telling versions apart,
/// not for security.
fn version_of(files: &[(&str, &[u8])]) -> String {
    let mut hash = Sha1::new();
    for (name, bytes) in files {
        for part in [name.as_bytes(), bytes] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rewrites each `="NAME"` attribute of `html` that names another file of the page
/// (`href="viewer.css"`, `src="js/main.js"`) to that file under its version.
fn point_to_assets(html: &str, version: &str, files: &[(&str, &[u8])]) -> String {
    let mut page = html.to_string();
    for (name, _) in files.iter().filter(|(name, _)| *name != PAGE) {
        page = page.replace(
            &format!("=\"{name}\""),
            &format!("=\"{ASSETS}/{version}/{name}\""),
        );
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_points_to_this_versions_files() {
        let page = String::from_utf8(page().to_vec()).unwrap();
        let version = &BUILT.version;
        assert!(page.contains(&format!(r#"href="assets/{version}/viewer.css""#)));
        assert!(page.contains(&format!(r#"src="assets/{version}/js/main.js""#)));
        assert!(!page.contains(r#"src="js/"#));
        assert!(!page.contains(r#"href="viewer.css""#));
    }

    #[test]
    fn every_module_is_there_in_this_version_only() {
        let version = &BUILT.version;
        let (js, js_type) = asset(version, "js/main.js").unwrap();
        assert!(!js.is_empty());
        assert_eq!(js_type, "text/javascript; charset=utf-8");
        assert_eq!(
            asset(version, "viewer.css").unwrap().1,
            "text/css; charset=utf-8"
        );
        assert!(FILES.iter().any(|(name, _)| *name == "js/status.js"));
        assert_eq!(asset("0000000000000000", "js/main.js"), None);
        assert_eq!(asset(version, "js/missing.js"), None);
        assert_eq!(asset(version, "index.html"), None);
    }

    #[test]
    fn a_changed_file_is_a_new_version() {
        let files: &[(&str, &[u8])] = &[("index.html", b"<html>"), ("js/a.js", b"let a = 1;")];
        let changed: &[(&str, &[u8])] = &[("index.html", b"<html>"), ("js/a.js", b"let a = 2;")];
        let renamed: &[(&str, &[u8])] = &[("index.html", b"<html>"), ("js/b.js", b"let a = 1;")];
        let moved: &[(&str, &[u8])] = &[("index.html", b"<html>js/a.js"), ("", b"let a = 1;")];
        let version = version_of(files);
        assert_eq!(version.len(), 16);
        assert!(version.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(version, version_of(files));
        for other in [changed, renamed, moved] {
            assert_ne!(version, version_of(other));
        }
    }

    #[test]
    fn only_attributes_naming_a_file_are_rewritten() {
        let files: &[(&str, &[u8])] = &[("index.html", b""), ("a.css", b""), ("js/m.js", b"")];
        let html = r#"<link href="a.css"><script src="js/m.js"></script><a href="b.css">a.css</a>"#;
        assert_eq!(
            point_to_assets(html, "v1", files),
            r#"<link href="assets/v1/a.css"><script src="assets/v1/js/m.js"></script><a href="b.css">a.css</a>"#
        );
    }
}
