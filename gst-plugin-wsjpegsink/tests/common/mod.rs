// SPDX-License-Identifier: MIT
//! Helpers shared by the element's tests: real pipelines ending in a `wsjpegsink`, their hosts,
//! and (from the server's tests, without GStreamer) the clients and the process watch.
#![allow(dead_code)]

#[path = "../../../wsjpeg-server/tests/common/clients.rs"]
mod clients;
#[path = "../../../wsjpeg-server/tests/common/feeder.rs"]
mod feeder;
mod host;
#[path = "../../../wsjpeg-server/tests/common/players.rs"]
mod players;
#[path = "../../../wsjpeg-server/tests/common/process.rs"]
mod process;
#[allow(unused_imports)]
pub use clients::*;
#[allow(unused_imports)]
pub use feeder::Feeder;
#[allow(unused_imports)]
pub use host::*;
#[allow(unused_imports)]
pub use players::*;
#[allow(unused_imports)]
pub use process::*;

use std::sync::Once;

use gst::prelude::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        watch_process();
        gst::init().expect("GStreamer initialises");
        gstwsjpeg::plugin_register_static().expect("wsjpeg plugin registers");
    });
}

/// Encodes one JPEG with GStreamer's own encoder.
pub fn encode_jpeg(width: u32, height: u32, pattern: &str, quality: u32) -> Vec<u8> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern={pattern} ! video/x-raw,width={width},height={height} \
         ! jpegenc quality={quality} ! appsink name=out"
    ))
    .expect("encode pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let appsink = pipeline
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("plays");
    let sample = appsink.pull_sample().expect("one sample");
    let jpeg = sample
        .buffer()
        .expect("a buffer")
        .map_readable()
        .expect("readable")
        .to_vec();
    pipeline.set_state(gst::State::Null).expect("stops");
    jpeg
}

/// A running pipeline that ends in a `wsjpegsink` named `sink`.
pub struct Server {
    pub pipeline: gst::Pipeline,
    pub sink: gst::Element,
    pub port: u16,
}

impl Server {
    /// `description` must contain `wsjpegsink name=sink port=0`.
    pub fn launch(description: &str) -> Server {
        let server = Server::build(description);
        server
            .pipeline
            .set_state(gst::State::Playing)
            .expect("pipeline plays");
        server
    }

    /// Builds the pipeline and brings it to READY, so the server listens but nothing streams.
    pub fn build(description: &str) -> Server {
        init();
        let pipeline = gst::parse::launch(description)
            .expect("pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let sink = pipeline.by_name("sink").expect("an element named sink");
        pipeline
            .set_state(gst::State::Ready)
            .expect("server starts in READY");
        let port = sink.property::<u32>("bound-port") as u16;
        assert_ne!(port, 0, "bound-port is known once READY");
        Server {
            pipeline,
            sink,
            port,
        }
    }

    /// A live test pattern at `fps`, `width`×`height`.
    pub fn test_pattern(width: u32, height: u32, fps: u32, sink_props: &str) -> Server {
        Server::launch(&format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 \
             ! jpegenc quality=80 ! wsjpegsink name=sink port=0 address=127.0.0.1 {sink_props}"
        ))
    }

    /// A pipeline fed by the test through `appsrc`; frames are pushed with [`Server::push`].
    pub fn fed(sink_props: &str) -> Server {
        Server::launch(&format!(
            "appsrc name=src is-live=true format=time do-timestamp=true \
             caps=image/jpeg,width=320,height=240,framerate=30/1 \
             ! wsjpegsink name=sink port=0 address=127.0.0.1 {sink_props}"
        ))
    }

    /// Pushes a buffer as it is (with whatever metas it carries).
    pub fn push_buffer(&self, buffer: gst::Buffer) {
        let src = self
            .pipeline
            .by_name("src")
            .expect("an appsrc named src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        src.push_buffer(buffer).expect("appsrc accepts the buffer");
    }

    pub fn push(&self, jpeg: &[u8]) {
        let src = self
            .pipeline
            .by_name("src")
            .expect("an appsrc named src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        src.push_buffer(gst::Buffer::from_slice(jpeg.to_vec()))
            .expect("appsrc accepts the buffer");
    }

    /// Pushes `jpeg` at `fps` from a thread of its own until the feeder is dropped.
    pub fn feed(&self, jpeg: Vec<u8>, fps: u32) -> Feeder {
        let src = self
            .pipeline
            .by_name("src")
            .expect("an appsrc named src")
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        let buffer = gst::Buffer::from_slice(jpeg);
        Feeder::spawn(fps, move || src.push_buffer(buffer.copy()).is_ok())
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }

    pub fn stats(&self) -> gst::Structure {
        self.sink.property::<gst::Structure>("stats")
    }

    pub fn n_clients(&self) -> u32 {
        self.sink.property::<u32>("n-clients")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
