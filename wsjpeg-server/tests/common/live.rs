// SPDX-License-Identifier: MIT
//! A server of this crate on a free port, driven as its owner drives it: told the size and
//! rate of the frames to come, then handed real JPEGs at a camera's pace.

use std::sync::Arc;

use wsjpeg_server::protocol::unix_time_us;
use wsjpeg_server::{CameraState, Config, NoEvents, Server, Settings, Snapshot, VideoInfo};

use super::{Feeder, picture, watch_process};

/// A running server and, for a test pattern, the thread that feeds it.
pub struct Live {
    /// Stopped before the server goes.
    feeder: Option<Feeder>,
    pub server: Arc<Server>,
    pub port: u16,
}

impl Live {
    /// Listening on `address`, nothing announced and nothing streaming (an owner that has not
    /// started its camera).
    pub fn start_on(address: &str, settings: Settings) -> Live {
        watch_process();
        let config = Config {
            address: address.into(),
            port: 0,
            tls: None,
            settings,
            h264: None,
        };
        Live::with_config(config)
    }

    pub fn with_config(config: Config) -> Live {
        watch_process();
        let server = Server::start(config, Arc::new(NoEvents)).expect("the server starts");
        let port = server.local_addr().port();
        Live {
            feeder: None,
            server: Arc::new(server),
            port,
        }
    }

    /// [`Live::start_on`] 127.0.0.1.
    pub fn idle(settings: Settings) -> Live {
        Live::start_on("127.0.0.1", settings)
    }

    /// Waiting for 320×240 frames at 30 fps, which the test hands it with [`Live::push`] or
    /// [`Live::feed`]: its camera is starting.
    pub fn fed(settings: Settings) -> Live {
        let live = Live::idle(settings);
        live.announce(320, 240, 30);
        live
    }

    /// A live picture of `width`×`height` at `fps`, from now until the server is dropped.
    pub fn test_pattern(width: u32, height: u32, fps: u32, settings: Settings) -> Live {
        Live::test_pattern_on("127.0.0.1", width, height, fps, settings)
    }

    pub fn test_pattern_on(
        address: &str,
        width: u32,
        height: u32,
        fps: u32,
        settings: Settings,
    ) -> Live {
        Live::start_on(address, settings).start_pattern(width, height, fps)
    }

    /// Feeds the server a picture of `width`×`height` at `fps` until it is dropped.
    pub fn start_pattern(mut self, width: u32, height: u32, fps: u32) -> Live {
        self.announce(width, height, fps);
        self.feeder = Some(self.feed(picture("smpte", width, height), fps));
        self
    }

    /// What the owner knows before the first frame: its size and rate, and that the camera
    /// is starting.
    pub fn announce(&self, width: u32, height: u32, fps: u32) {
        self.server.set_video_info(VideoInfo {
            width: Some(width),
            height: Some(height),
            framerate: Some(fps.into()),
        });
        self.server.set_camera_state(CameraState::Starting);
    }

    /// Hands one frame over, captured now.
    pub fn push(&self, jpeg: &[u8]) {
        self.server
            .publish(jpeg, unix_time_us())
            .expect("a whole JPEG");
    }

    /// Hands `jpeg` over at `fps` from a thread of its own until the feeder is dropped.
    pub fn feed(&self, jpeg: Vec<u8>, fps: u32) -> Feeder {
        let server = self.server.clone();
        Feeder::spawn(fps, move || server.publish(&jpeg, unix_time_us()).is_ok())
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }

    pub fn stats(&self) -> Snapshot {
        self.server.snapshot()
    }

    pub fn frames_in(&self) -> u64 {
        self.stats().frames_in
    }

    pub fn n_clients(&self) -> u32 {
        self.server.n_clients()
    }
}
