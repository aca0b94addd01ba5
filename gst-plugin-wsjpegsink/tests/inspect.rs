// SPDX-License-Identifier: MIT
//! `gst-inspect-1.0` loads the built plugin library and documents every property.

use std::path::PathBuf;
use std::process::Command;

/// A folder holding only the plugin library cargo built for this test run. `cargo test` leaves
/// it in target/<profile>/deps (next to the test binary) and only `cargo build` copies it up
/// one level; the deps folder also holds proc-macro libraries GStreamer should not try to load.
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [
        deps.join("libgstwsjpeg.so"),
        deps.parent()
            .expect("target/<profile>")
            .join("libgstwsjpeg.so"),
    ];
    let library = candidates
        .iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no built plugin in {candidates:?}"));
    let dir = std::env::temp_dir().join(format!("wsjpeg-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(library, dir.join("libgstwsjpeg.so")).expect("plugin copied");
    dir
}

#[test]
fn gst_inspect_lists_every_property_with_its_description() {
    let dir = plugin_dir();
    let registry = std::env::temp_dir().join(format!("wsjpeg-registry-{}.bin", std::process::id()));
    let output = Command::new("gst-inspect-1.0")
        .arg("wsjpegsink")
        .env("GST_PLUGIN_PATH", &dir)
        .env("GST_REGISTRY", &registry)
        .output()
        .expect("gst-inspect-1.0 runs (package gstreamer1.0-tools)");
    let _ = std::fs::remove_file(&registry);
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "gst-inspect failed: {text}");
    assert!(text.contains("Sink/Network"));
    assert!(text.contains("image/jpeg"));
    for property in [
        "address",
        "port",
        "bound-port",
        "n-clients",
        "max-clients",
        "document-root",
        "keepalive",
        "allowed-origins",
        "auth-token",
        "snapshot-timeout",
        "camera-error",
        "source-info",
        "tls-certificate",
        "tls-key",
        "recording-dir",
        "recording-state",
        "stats",
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{property} ")))
            .unwrap_or_else(|| panic!("gst-inspect lists {property}:\n{text}"));
        let description = line.split_once(':').map(|(_, d)| d.trim()).unwrap_or("");
        assert!(description.len() > 15, "{property} is described: {line}");
    }
    for signal in [
        "client-connected",
        "client-disconnected",
        "recording-control",
    ] {
        assert!(text.contains(signal), "gst-inspect lists signal {signal}");
    }
}
