// SPDX-License-Identifier: MIT
//! `gst-inspect-1.0` loads the built plugin library and documents every property.

mod common;

#[test]
fn gst_inspect_lists_every_property_with_its_description() {
    let output = common::gst_tool("gst-inspect-1.0")
        .arg("wsjpegsink")
        .output()
        .expect("gst-inspect-1.0 runs (package gstreamer1.0-tools)");
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
        "max-connections",
        "document-root",
        "keepalive",
        "write-timeout",
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
