// SPDX-License-Identifier: MIT
//! Where a `wsh264sink` and a `wsjpegsink` meet: every `wsjpegsink` of the process has an H.264
//! track that its server carries, found here by the element's name (so the two may sit in
//! different pipelines, as `intersink` and `intersrc` meet by channel name) or, without a
//! name, as the only one of the `wsh264sink`'s pipeline. Neither element calls the other: the
//! `wsh264sink` feeds the track and the server serves it.

use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use wsjpeg_server::VideoTrack;
use wsjpeg_server::sync::lock;

struct Entry {
    sink: glib::WeakRef<gst::Element>,
    track: Arc<VideoTrack>,
}

/// Every `wsjpegsink` of the process, with its track.
static JPEG_SINKS: LazyLock<Mutex<Vec<Entry>>> = LazyLock::new(Default::default);

/// A `wsjpegsink` was made: its track, for its server to carry and a `wsh264sink` to feed.
pub fn add_jpeg_sink(sink: &gst::Element) -> Arc<VideoTrack> {
    let track = VideoTrack::new();
    let mut sinks = lock(&JPEG_SINKS);
    sinks.retain(|entry| entry.sink.upgrade().is_some());
    sinks.push(Entry {
        sink: sink.downgrade(),
        track: track.clone(),
    });
    track
}

/// The `wsjpegsink`s a `wsh264sink` may serve on, with their tracks: those named `name`
/// anywhere in the process, or, without a name, those of the same pipeline as `beside`.
pub fn jpeg_sinks(name: Option<&str>, beside: &gst::Element) -> Vec<(String, Arc<VideoTrack>)> {
    let sinks: Vec<(gst::Element, Arc<VideoTrack>)> = lock(&JPEG_SINKS)
        .iter()
        .filter_map(|entry| Some((entry.sink.upgrade()?, entry.track.clone())))
        .collect();
    let pipeline = top_level(beside);
    sinks
        .into_iter()
        .filter(|(sink, _)| match name {
            Some(name) => sink.name() == name,
            None => top_level(sink) == pipeline,
        })
        .map(|(sink, track)| (sink.name().to_string(), track))
        .collect()
}

fn top_level(element: &gst::Element) -> gst::Object {
    let mut top: gst::Object = element.clone().upcast();
    while let Some(parent) = top.parent() {
        top = parent;
    }
    top
}
