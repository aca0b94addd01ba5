// SPDX-License-Identifier: MIT
//! `gst-inspect-1.0` loads the built plugin library and documents every property and signal
//! of both elements. The lists come from the elements themselves (their param specs and
//! signals), so a new property or signal without a description fails here.

mod common;

use gst::glib;
use gst::prelude::*;

/// What gst-inspect says of `element`, and the element as this process registered it.
fn inspect(element: &str) -> (String, gst::Element) {
    common::init();
    let output = common::gst_tool("gst-inspect-1.0")
        .arg(element)
        .output()
        .expect("gst-inspect-1.0 runs (package gstreamer1.0-tools)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "gst-inspect failed: {text}");
    let made = gst::ElementFactory::make(element)
        .build()
        .expect("the element is registered");
    (text, made)
}

/// Every property the element defines itself (not its base classes') is listed with a
/// description.
fn assert_properties_described(element: &str, text: &str, made: &gst::Element) {
    let own: Vec<glib::ParamSpec> = made
        .list_properties()
        .iter()
        .filter(|p| p.owner_type() == made.type_())
        .cloned()
        .collect();
    assert!(own.len() >= 2, "{element} defines its properties");
    for pspec in own {
        let name = pspec.name();
        let blurb = pspec.blurb().unwrap_or_default();
        assert!(
            blurb.len() > 15,
            "{element}'s {name} has a description: {blurb:?}"
        );
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("gst-inspect lists {element}'s {name}:\n{text}"));
        let described = line.split_once(':').map(|(_, d)| d.trim()).unwrap_or("");
        assert!(!described.is_empty(), "{name} is described: {line}");
    }
}

/// Every signal and action signal the element defines itself is listed.
fn assert_signals_listed(element: &str, text: &str, made: &gst::Element, expected: &[&str]) {
    let names = signal_names(made.type_());
    for name in expected {
        assert!(
            names.iter().any(|n| n == name),
            "{element} has signal {name}"
        );
    }
    for name in &names {
        assert!(
            text.contains(name.as_str()),
            "gst-inspect lists {element}'s signal {name}"
        );
    }
}

/// The names of the signals `type_` itself defines (GObject has no safe listing of them).
fn signal_names(type_: glib::Type) -> Vec<String> {
    use glib::translate::IntoGlib;
    let mut n = 0u32;
    // SAFETY: g_signal_list_ids returns a newly allocated array of n signal ids of a
    // registered type, freed below; g_signal_name returns a static string for each.
    unsafe {
        let ids = glib::gobject_ffi::g_signal_list_ids(type_.into_glib(), &mut n);
        let names = (0..n as usize)
            .map(|i| {
                let name = glib::gobject_ffi::g_signal_name(*ids.add(i));
                std::ffi::CStr::from_ptr(name)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        glib::ffi::g_free(ids.cast());
        names
    }
}

#[test]
fn gst_inspect_documents_every_property_and_signal_of_wsjpegsink() {
    let (text, made) = inspect("wsjpegsink");
    assert!(text.contains("Sink/Network"));
    assert!(text.contains("image/jpeg"));
    assert_properties_described("wsjpegsink", &text, &made);
    assert_signals_listed(
        "wsjpegsink",
        &text,
        &made,
        &[
            "client-connected",
            "client-disconnected",
            "recording-control",
            "push-detections",
            "detections",
        ],
    );
}

#[test]
fn gst_inspect_documents_every_property_of_wsh264sink() {
    let (text, made) = inspect("wsh264sink");
    assert!(text.contains("Sink/Network"));
    assert!(text.contains("video/x-h264"));
    assert_properties_described("wsh264sink", &text, &made);
    assert_signals_listed("wsh264sink", &text, &made, &[]);
}

#[test]
fn each_element_logs_under_a_debug_category_of_its_own() {
    common::init();
    // Made with the elements, as GStreamer's own plugins do.
    for element in ["wsjpegsink", "wsh264sink"] {
        let _made = gst::ElementFactory::make(element).build().expect(element);
        assert!(
            gst::DebugCategory::get(element).is_some(),
            "{element} has its debug category (GST_DEBUG={element}:5)"
        );
    }
}
