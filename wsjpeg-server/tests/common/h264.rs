// SPDX-License-Identifier: MIT
//! A server of this crate with a live H.264 track and no GStreamer: x264's access units from
//! the committed fixture (`tests/fixtures/ball-320x240-30.h264`, 30 frames of 320x240, a
//! keyframe every 10) published over and over at 30 fps, captured now. A stand-in for the
//! encoder element is attached as the track's producer and counts what the server asks of it.
//!
//! ```ignore
//! let live = H264Live::start(Settings::default());
//! let playlist = http_get(live.port, "/hls/index.m3u8", &[], usize::MAX).await;
//! assert!(live.producer.followers() > 0);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use wsjpeg_server::media::access_units;
use wsjpeg_server::protocol::unix_time_us;
use wsjpeg_server::{Config, NoEvents, Producer, Server, Settings, VideoTrack};

use super::{Feeder, fixture, get_blocking, watch_process};

/// Frames a second the fixture is published at.
pub const H264_FPS: u32 = 30;
/// How long each access unit lasts, µs.
pub const H264_FRAME_US: u32 = 33_333;

/// Stands in for the encoder element (`wsh264sink`): it cannot make a keyframe when asked (the
/// fixture has one every 10 frames anyway), so it counts the requests, and it keeps the number
/// of followers the track told it last.
#[derive(Debug, Default)]
pub struct FixtureProducer {
    keyframe_requests: AtomicU64,
    followers: AtomicU32,
}

impl FixtureProducer {
    /// Keyframes the server asked for so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Followers of the track, as the track last told its producer.
    pub fn followers(&self) -> u32 {
        self.followers.load(Ordering::Relaxed)
    }
}

impl Producer for FixtureProducer {
    fn request_keyframe(&self) {
        self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
    }

    fn followers_changed(&self, n: u32) {
        self.followers.store(n, Ordering::Relaxed);
    }
}

/// The fixture's access units, in order (a keyframe first).
pub fn fixture_access_units() -> Vec<Bytes> {
    access_units(&fixture("ball-320x240-30.h264"))
}

/// A server on 127.0.0.1 whose H.264 track is fed the fixture at 30 fps from a thread of its
/// own until dropped. The JPEG side is left alone (nothing announced, no frame).
pub struct H264Live {
    /// Stopped before the server goes.
    _feeder: Feeder,
    pub server: Arc<Server>,
    pub port: u16,
    pub track: Arc<VideoTrack>,
    pub producer: Arc<FixtureProducer>,
}

impl H264Live {
    /// Listening on a free port of 127.0.0.1, the track attached and fed from now on.
    pub fn start(settings: Settings) -> H264Live {
        watch_process();
        let track = VideoTrack::new();
        let producer = Arc::new(FixtureProducer::default());
        track
            .attach(producer.clone())
            .expect("a fresh track has no producer");
        let config = Config {
            address: "127.0.0.1".into(),
            port: 0,
            tls: None,
            settings,
            h264: Some(track.clone()),
        };
        let server = Server::start(config, Arc::new(NoEvents)).expect("the server starts");
        let port = server.local_addr().port();
        let units = fixture_access_units();
        assert!(!units.is_empty(), "the fixture holds access units");
        let fed = track.clone();
        let mut next = 0;
        let feeder = Feeder::spawn(H264_FPS, move || {
            fed.publish_timed(units[next].clone(), unix_time_us(), Some(H264_FRAME_US));
            next = (next + 1) % units.len();
            true
        });
        H264Live {
            _feeder: feeder,
            server: Arc::new(server),
            port,
            track,
            producer,
        }
    }

    /// The server's `/metrics`, as text (empty when no answer came).
    pub fn metrics(&self) -> String {
        let (_, body) = get_blocking(self.port, "/metrics");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// One figure of `/metrics` by its full name, such as
    /// `wsjpeg_hls_media_requests_total`; `None` when the server does not report it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.metrics(), name)
    }
}

/// The value of the unlabelled metric `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
}
