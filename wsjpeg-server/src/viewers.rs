// SPDX-License-Identifier: MIT
//! The viewer registry: who is connected, each viewer's live figures, and what those who left
//! delivered. A viewer counts from [`Viewers::register`] until its [`ClientGuard`] is dropped;
//! the owner hears of every change, in order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::burst::Burst;
use crate::events::{Events, ViewerChange, log};
use crate::rate::RateWindow;
use crate::sync::lock;

/// Refused viewers are warned about at most this often.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    WebSocket,
    Mjpeg,
    /// A snapshot request waiting for a frame: it counts as a viewer so the camera is woken.
    Snapshot,
    /// A WebSocket viewer of the H.264 stream.
    H264,
    /// The LL-HLS origin while players ask for it: one for all of them.
    Hls,
    /// An RTSP client of the application's own RTSP server (the launcher's), registered
    /// through [`crate::Server::register_viewer`].
    Rtsp,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::WebSocket => "websocket",
            ClientKind::Mjpeg => "mjpeg",
            ClientKind::Snapshot => "snapshot",
            ClientKind::H264 => "h264",
            ClientKind::Hls => "hls",
            ClientKind::Rtsp => "rtsp",
        }
    }
}

/// Live figures of one viewer, updated by its own task only.
#[derive(Debug)]
pub struct ClientStats {
    pub id: u64,
    pub kind: ClientKind,
    pub address: SocketAddr,
    pub connected: Instant,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Frames this viewer never saw because it was still writing an older one.
    pub frames_skipped: AtomicU64,
    pub paused: AtomicBool,
    /// Per-viewer rate cap in frames per second as `f32` bits; 0 means none.
    pub max_fps_bits: AtomicU32,
    rate: Mutex<RateWindow>,
}

impl ClientStats {
    pub fn record_sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn max_fps(&self) -> f32 {
        f32::from_bits(self.max_fps_bits.load(Ordering::Relaxed))
    }

    pub fn fps(&self) -> f64 {
        lock(&self.rate).rate(self.frames_sent.load(Ordering::Relaxed))
    }
}

/// What viewers delivered, summed. Each viewer counts in its own [`ClientStats`] (no counter
/// shared by the two workers is touched per frame); a viewer's figures move here when it
/// leaves.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_skipped: u64,
}

impl Delivered {
    fn add(&mut self, stats: &ClientStats) {
        self.frames_sent += stats.frames_sent.load(Ordering::Relaxed);
        self.bytes_sent += stats.bytes_sent.load(Ordering::Relaxed);
        self.frames_skipped += stats.frames_skipped.load(Ordering::Relaxed);
    }
}

/// The viewer registry: who is connected, and what those who left delivered.
#[derive(Debug, Default)]
struct Registry {
    clients: BTreeMap<u64, Arc<ClientStats>>,
    departed: Delivered,
}

/// Every viewer of a server.
pub struct Viewers {
    registry: Mutex<Registry>,
    next_client_id: AtomicU64,
    /// Viewers turned away because `max_clients` were connected.
    refused: AtomicU64,
    refusals: Mutex<Burst>,
    events: Arc<dyn Events>,
}

impl std::fmt::Debug for Viewers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewers")
            .field("n_clients", &self.n_clients())
            .finish_non_exhaustive()
    }
}

impl Viewers {
    pub fn new(events: Arc<dyn Events>) -> Arc<Self> {
        Arc::new(Viewers {
            registry: Mutex::new(Registry::default()),
            next_client_id: AtomicU64::new(1),
            refused: AtomicU64::new(0),
            refusals: Mutex::new(Burst::new(REFUSAL_WARNING_INTERVAL)),
            events,
        })
    }

    pub fn n_clients(&self) -> u32 {
        lock(&self.registry).clients.len() as u32
    }

    pub fn clients(&self) -> Vec<Arc<ClientStats>> {
        lock(&self.registry).clients.values().cloned().collect()
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Everything delivered so far, by viewers still here and viewers gone.
    pub fn delivered(&self) -> Delivered {
        let registry = lock(&self.registry);
        let mut total = registry.departed;
        for stats in registry.clients.values() {
            total.add(stats);
        }
        total
    }

    /// Registers a viewer, unless `max_clients` are already connected. The viewer stays counted
    /// until the returned guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        kind: ClientKind,
        address: SocketAddr,
        max_clients: u32,
    ) -> Option<ClientGuard> {
        let stats = {
            let mut registry = lock(&self.registry);
            let clients = &mut registry.clients;
            if clients.len() >= max_clients as usize {
                drop(registry);
                self.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(count) = lock(&self.refusals).note() {
                    log!(
                        self.events,
                        Warning,
                        "Refused {} viewer(s), the last from {}: max-clients ({}) reached; raise \
                         the max-clients property (launcher: --max-clients)",
                        count,
                        address,
                        max_clients
                    );
                }
                return None;
            }
            let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
            let stats = Arc::new(ClientStats {
                id,
                kind,
                address,
                connected: Instant::now(),
                frames_sent: AtomicU64::new(0),
                bytes_sent: AtomicU64::new(0),
                frames_skipped: AtomicU64::new(0),
                paused: AtomicBool::new(false),
                max_fps_bits: AtomicU32::new(0),
                rate: Mutex::new(RateWindow::new()),
            });
            clients.insert(id, stats.clone());
            let n_clients = clients.len() as u32;
            // Reported under the lock so that observers see counts in order.
            self.events
                .viewers_changed(ViewerChange::Connected { address, n_clients });
            stats
        };
        Some(ClientGuard {
            viewers: self.clone(),
            stats,
        })
    }
}

/// Keeps a viewer registered; dropping it unregisters the viewer and folds its counters
/// into the server's totals.
pub struct ClientGuard {
    viewers: Arc<Viewers>,
    pub stats: Arc<ClientStats>,
}

impl ClientGuard {
    pub fn record_sent(&self, bytes: usize) {
        self.stats.record_sent(bytes);
    }

    pub fn record_skipped(&self, frames: u64) {
        if frames > 0 {
            self.stats
                .frames_skipped
                .fetch_add(frames, Ordering::Relaxed);
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut registry = lock(&self.viewers.registry);
        registry.clients.remove(&self.stats.id);
        registry.departed.add(&self.stats);
        let n_clients = registry.clients.len() as u32;
        self.viewers
            .events
            .viewers_changed(ViewerChange::Disconnected {
                address: self.stats.address,
                n_clients,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[derive(Default)]
    struct Counts(Mutex<Vec<u32>>);

    impl Events for Counts {
        fn viewers_changed(&self, change: ViewerChange) {
            let (ViewerChange::Connected { n_clients, .. }
            | ViewerChange::Disconnected { n_clients, .. }) = change;
            lock(&self.0).push(n_clients);
        }
    }

    #[test]
    fn register_respects_max_and_reports_counts() {
        let seen = Arc::new(Counts::default());
        let viewers = Viewers::new(seen.clone());
        let a = viewers.register(ClientKind::WebSocket, addr(), 2).unwrap();
        let b = viewers.register(ClientKind::Mjpeg, addr(), 2).unwrap();
        assert!(viewers.register(ClientKind::WebSocket, addr(), 2).is_none());
        assert_eq!(viewers.n_clients(), 2);
        a.record_sent(10);
        drop(a);
        drop(b);
        assert_eq!(viewers.n_clients(), 0);
        assert_eq!(*lock(&seen.0), vec![1, 2, 1, 0]);
        assert_eq!(viewers.refused(), 1);
        assert_eq!(
            viewers.delivered().bytes_sent,
            10,
            "the departed still count"
        );
    }
}
