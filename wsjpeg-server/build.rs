// SPDX-License-Identifier: MIT
//! Lists the files of the viewer page (`web/`: `index.html`, `viewer.css` and the ES modules of
//! `web/js/`) for the server to embed as they are: `$OUT_DIR/viewer_files.rs` is a table of
//! their names and `include_bytes!` of each.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("viewer_files.rs");
    let web = manifest_dir.join("../web");
    // The folders too, so that a new file is noticed.
    println!("cargo:rerun-if-changed={}", web.display());

    if !web.is_dir() {
        // Docker's dependency layer (packaging/docker/recipe.sh) has the manifests and build
        // scripts but no sources, and compiles nothing that includes the page. A real build
        // without web/ fails at the include! of viewer_files.rs, after this warning.
        println!(
            "cargo:warning=no {} folder: the viewer page is not built in",
            web.display()
        );
        return;
    }
    let js = web.join("js");
    println!("cargo:rerun-if-changed={}", js.display());

    let mut files = files_in(&web, "", |_| true);
    files.extend(files_in(&js, "js/", |ext| ext == "js"));
    let mut table = String::from("&[\n");
    for (name, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let path = path
            .to_str()
            .unwrap_or_else(|| panic!("{}: not a UTF-8 path", path.display()));
        writeln!(table, "    ({name:?}, include_bytes!({path:?})),").expect("writes to a String");
    }
    table.push_str("]\n");
    fs::write(&out, table).unwrap_or_else(|err| panic!("cannot write {}: {err}", out.display()));
}

/// The files directly in `dir` whose extension `keep` accepts, as (`prefix` + name, path),
/// by name.
fn files_in(dir: &Path, prefix: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, PathBuf)> {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list the viewer's files in {}: {err}", dir.display()));
    let mut files: Vec<(String, PathBuf)> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .filter(|path| keep(path.extension().and_then(|e| e.to_str()).unwrap_or("")))
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_else(|| panic!("{}: not a UTF-8 file name", path.display()));
            (format!("{prefix}{name}"), path.clone())
        })
        .filter(|(name, _)| !name.starts_with('.') && !name.contains("/."))
        .collect();
    files.sort();
    files
}
