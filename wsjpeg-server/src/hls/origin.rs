// SPDX-License-Identifier: MIT
//! The LL-HLS origin of one server: a window of the H.264 track that runs only while players
//! ask for it.
//!
//! HLS players hold no connection, so the origin counts as one viewer (which wakes the camera)
//! and one follower of the track (which starts the encoder) from the first playlist request
//! until no request came for [`IDLE_AFTER`]. Each such stretch is a run, with names of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::names::Run;
use super::window::{Progress, Window};
use crate::media::{Following, Next, VideoTrack};
use crate::sync::lock;
use crate::viewers::ClientGuard;

/// A run ends when no request came for this long (players ask at least once a target duration).
pub const IDLE_AFTER: Duration = Duration::from_secs(6);
/// How often a run checks whether it is still wanted.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Requests and bytes the origin served, for `/metrics` (how much a cache in front saves).
#[derive(Debug, Default)]
pub struct HlsCounters {
    pub playlists: AtomicU64,
    pub blocked_playlists: AtomicU64,
    pub media: AtomicU64,
    pub media_bytes: AtomicU64,
    pub refused: AtomicU64,
    pub runs: AtomicU64,
}

/// The origin's figures at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct HlsFigures {
    /// A run is on (players asked within the idle time).
    pub running: bool,
    pub runs: u64,
    pub playlists: u64,
    pub blocked_playlists: u64,
    pub media: u64,
    pub media_bytes: u64,
    pub refused: u64,
}

/// One run: its window, and what blocked requests wait on.
#[derive(Debug)]
pub struct Session {
    pub run: Run,
    pub window: Mutex<Window>,
    progress: watch::Sender<Progress>,
    last_request: Mutex<Instant>,
    /// Fires when the run ends; blocked requests give up.
    pub ended: CancellationToken,
}

impl Session {
    pub fn touch(&self) {
        *lock(&self.last_request) = Instant::now();
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until `ready` holds for the window's progress, the run ends (`None`) or
    /// `timeout` passes (`None`).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Progress) -> bool,
    ) -> Option<Progress> {
        let mut progress = self.progress.subscribe();
        let wait = async {
            loop {
                {
                    let now = progress.borrow_and_update();
                    if ready(&now) {
                        return Some(*now);
                    }
                }
                progress.changed().await.ok()?;
            }
        };
        tokio::select! {
            found = tokio::time::timeout(timeout, wait) => found.ok().flatten(),
            _ = self.ended.cancelled() => None,
        }
    }

    /// Follows the track into the window until the run is idle or the server stops.
    async fn run(
        self: Arc<Self>,
        mut following: Following,
        viewer: ClientGuard,
        shutdown: CancellationToken,
    ) {
        let track = following.track().clone();
        let mut cursor = None;
        let mut waiting = false;
        let mut asked_in = None;
        let mut check = tokio::time::interval(IDLE_CHECK);
        loop {
            tokio::select! {
                _ = following.changed() => {}
                _ = check.tick() => {
                    if lock(&self.last_request).elapsed() > IDLE_AFTER {
                        break;
                    }
                    continue;
                }
                _ = shutdown.cancelled() => break,
            }
            following.mark_seen();
            match track.next_units(cursor) {
                Next::WaitForKeyframe => {
                    if !waiting {
                        waiting = true;
                        track.request_keyframe();
                    }
                }
                Next::Units(units) => {
                    waiting = false;
                    let mut window = lock(&self.window);
                    let mut changed = false;
                    for unit in &units {
                        if let Some(last) = cursor
                            && unit.sequence != last + 1
                        {
                            viewer.record_skipped(unit.sequence - last - 1);
                        }
                        cursor = Some(unit.sequence);
                        let pushed = window.push(unit);
                        changed |= pushed.changed;
                        let open = window.progress().open_msn;
                        if pushed.keyframe_wanted && asked_in != Some(open) {
                            asked_in = Some(open);
                            track.request_keyframe();
                        }
                    }
                    if changed {
                        let now = window.progress();
                        self.progress.send_replace(now);
                    }
                }
            }
        }
        self.ended.cancel();
        drop(viewer);
    }
}

/// The origin of one server.
#[derive(Debug)]
pub struct Origin {
    track: Arc<VideoTrack>,
    session: Mutex<Option<Arc<Session>>>,
    pub counters: HlsCounters,
}

/// Why no run could start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRefused {
    /// No H.264 producer feeds the track.
    NoStream,
    /// `max-clients` viewers are connected.
    TooManyViewers,
}

impl Origin {
    pub fn new(track: Arc<VideoTrack>) -> Self {
        Origin {
            track,
            session: Mutex::new(None),
            counters: HlsCounters::default(),
        }
    }

    /// The running session, if any (object requests never start one).
    pub fn current(&self) -> Option<Arc<Session>> {
        lock(&self.session)
            .clone()
            .filter(|s| !s.ended.is_cancelled())
    }

    /// The running session, or a new one started with `register` (which counts it as a
    /// viewer) and `spawn`.
    pub fn session(
        &self,
        register: impl FnOnce() -> Option<ClientGuard>,
        spawn: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
        shutdown: CancellationToken,
    ) -> Result<Arc<Session>, StartRefused> {
        if !self.track.has_producer() {
            return Err(StartRefused::NoStream);
        }
        let mut current = lock(&self.session);
        if let Some(session) = current.as_ref().filter(|s| !s.ended.is_cancelled()) {
            session.touch();
            return Ok(session.clone());
        }
        let Some(viewer) = register() else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(StartRefused::TooManyViewers);
        };
        // Numbers carry on from the run before, so that they never go back for a player
        // that saw it. The first segment is 1, not 0: hls.js makes no blocking reloads while
        // the newest segment's number is 0, and falls behind at the start.
        let (msn, part, init) = current
            .as_ref()
            .map_or((1, 0, 0), |s| lock(&s.window).next_numbers());
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let runs = self.counters.runs.fetch_add(1, Ordering::Relaxed);
        let window = Window::new(msn, part, init);
        let session = Arc::new(Session {
            run: Run::new(unix_ms, runs),
            progress: watch::Sender::new(window.progress()),
            window: Mutex::new(window),
            last_request: Mutex::new(Instant::now()),
            ended: CancellationToken::new(),
        });
        *current = Some(session.clone());
        spawn(Box::pin(session.clone().run(
            self.track.follow(),
            viewer,
            shutdown,
        )));
        Ok(session)
    }

    pub fn figures(&self) -> HlsFigures {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HlsFigures {
            running: self.current().is_some(),
            runs: load(&c.runs),
            playlists: load(&c.playlists),
            blocked_playlists: load(&c.blocked_playlists),
            media: load(&c.media),
            media_bytes: load(&c.media_bytes),
            refused: load(&c.refused),
        }
    }

    /// Counts a media object served.
    pub fn served(&self, bytes: &Bytes) {
        self.counters.media.fetch_add(1, Ordering::Relaxed);
        self.counters
            .media_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}
