//! Micro-benchmarks of wsjpegsink's hot path. Run with `cargo bench -p wsjpeg-bench`.
//!
//! - `publish/N`: `wsjpeg_server::Server::publish` (validate, one copy, hand over) with N real
//!   WebSocket viewers connected over loopback and reading. The caller's cost must not grow
//!   with N: the fan-out runs on the server's threads (the load tool measures it end to end).
//! - `render/N`: the same through a real `wsjpegsink` (`render()` through its sink pad: map,
//!   capture time, publish).
//! - `jpeg_validate` and `jpeg_dimensions` on a 1280×720 q85 frame; `meta_header`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gst::prelude::*;
use wsjpeg_bench::serve::{FrameSpec, encode_frames};
use wsjpeg_bench::util::{Target, XorShift};
use wsjpeg_bench::ws;
use wsjpeg_server::{Config, NoEvents, Server, Settings, jpeg, protocol};

const VIEWER_COUNTS: [usize; 3] = [0, 10, 1000];

fn frame() -> Bytes {
    match encode_frames(&FrameSpec::default()) {
        Ok(mut frames) if !frames.is_empty() => frames.swap_remove(0),
        Ok(_) => panic!("no frame encoded"),
        Err(e) => panic!("cannot encode a test frame: {e:#}"),
    }
}

fn small_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn bench_publish(c: &mut Criterion) {
    wsjpeg_bench::util::raise_fd_limit();
    let jpeg = frame();
    let mut group = c.benchmark_group("publish");
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(30);
    for n in VIEWER_COUNTS {
        let config = Config {
            address: "127.0.0.1".into(),
            port: 0,
            tls: None,
            settings: Settings {
                max_clients: 4000,
                ..Settings::default()
            },
            h264: None,
        };
        let server = Server::start(config, Arc::new(NoEvents)).expect("the server starts");
        let clients = small_runtime(1);
        let connected = connect_viewers(&clients, server.local_addr().port(), n);
        assert_eq!(connected, n, "all viewers connect");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| server.publish(black_box(&jpeg), black_box(1_700_000_000_000_000)))
        });
        server.stop();
        clients.shutdown_timeout(Duration::from_secs(2));
    }
    group.finish();
}

/// A `wsjpegsink` in PLAYING whose sink pad the benchmark drives directly.
struct Sink {
    element: gst::Element,
    pad: gst::Pad,
    port: u16,
}

impl Sink {
    fn start() -> Sink {
        wsjpeg_bench::serve::init_gstreamer().expect("GStreamer");
        let element = gst::ElementFactory::make("wsjpegsink")
            .property("address", "127.0.0.1")
            .property("port", 0u32)
            .property("max-clients", 4000u32)
            .build()
            .expect("wsjpegsink");
        let pad = element.static_pad("sink").expect("sink pad");
        let _ = element.set_state(gst::State::Playing);
        let port = element.property::<u32>("bound-port") as u16;
        assert_ne!(port, 0, "server listens");
        assert!(pad.send_event(gst::event::StreamStart::new("bench")));
        let caps = gst::Caps::builder("image/jpeg")
            .field("width", 1280i32)
            .field("height", 720i32)
            .field("framerate", gst::Fraction::new(30, 1))
            .build();
        assert!(pad.send_event(gst::event::Caps::new(&caps)));
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        assert!(pad.send_event(gst::event::Segment::new(&segment)));
        Sink { element, pad, port }
    }

    fn render(&self, jpeg: &Bytes) {
        let _ = black_box(self.pad.chain(gst::Buffer::from_slice(jpeg.clone())));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.element.set_state(gst::State::Null);
    }
}

/// Opens `n` WebSocket viewers that read and discard everything until the runtime stops.
fn connect_viewers(rt: &tokio::runtime::Runtime, port: u16, n: usize) -> usize {
    let target = match Target::parse(&format!("ws://127.0.0.1:{port}/stream")) {
        Ok(t) => t,
        Err(e) => panic!("{e:#}"),
    };
    let connected = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let target = target.clone();
        let connected = connected.clone();
        rt.spawn(async move {
            let mut rng = XorShift::new(i as u64 + 1);
            let Ok((stream, _)) =
                ws::connect(&target, None, &mut rng, Duration::from_secs(10)).await
            else {
                return;
            };
            connected.fetch_add(1, Ordering::Relaxed);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    connected.load(Ordering::Relaxed)
}

fn bench_render(c: &mut Criterion) {
    wsjpeg_bench::util::raise_fd_limit();
    let jpeg = frame();
    let mut group = c.benchmark_group("render");
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(30);
    for n in VIEWER_COUNTS {
        let sink = Sink::start();
        let clients = small_runtime(1);
        let connected = connect_viewers(&clients, sink.port, n);
        assert_eq!(connected, n, "all viewers connect");
        // A first frame so every viewer is in its steady state.
        sink.render(&jpeg);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| sink.render(&jpeg))
        });
        drop(sink);
        clients.shutdown_timeout(Duration::from_secs(2));
    }
    group.finish();
}

fn bench_small(c: &mut Criterion) {
    let jpeg = frame();
    c.bench_function("jpeg_validate", |b| {
        b.iter(|| jpeg::validate(black_box(&jpeg)))
    });
    c.bench_function("jpeg_dimensions", |b| {
        b.iter(|| jpeg::dimensions(black_box(&jpeg)))
    });
    c.bench_function("meta_header", |b| {
        b.iter(|| protocol::meta_header(black_box(123_456), black_box(1_700_000_000_000_000)))
    });
}

criterion_group!(benches, bench_small, bench_publish, bench_render);
criterion_main!(benches);
