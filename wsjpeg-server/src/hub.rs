//! The broadcast hub: what every viewer shares — the newest frame, the camera and recording
//! state, the detections, the H.264 track, the viewers and the counters.
//!
//! `publish()` is what the streaming thread calls. It stores the frame in a mailbox and wakes a
//! single dispatcher task, so its cost does not depend on how many viewers are connected. The
//! dispatcher moves the frame into the [`Feed`], a `watch` channel that every viewer task
//! follows; a viewer that is busy writing simply sees the newest frame when it gets back
//! (latest frame wins).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::detections::{DetectedObject, DetectionBoard, DetectionError, DetectionSet, FrameRef};
use crate::events::Events;
use crate::hls;
use crate::media::VideoTrack;
use crate::protocol::{self, CameraState, CameraStatus, META_HEADER_LEN, RecordingStatus};
use crate::rate::RateWindow;
use crate::sync::lock;
use crate::viewers::Viewers;

/// One JPEG as it is handed to viewers.
#[derive(Debug)]
pub struct Frame {
    /// Increases by one for every frame published while the server runs.
    pub sequence: u64,
    /// Unix epoch µs at which the frame was captured.
    pub capture_time_us: u64,
    /// When the sink published it; decides whether a frame is still fresh.
    pub published: Instant,
    pub jpeg: Bytes,
    /// The `?meta=1` header, the same for every viewer: built once here.
    pub meta: [u8; META_HEADER_LEN],
}

/// A frame younger than this is shown to a new viewer or snapshot at once.
pub const FRESH_FRAME_AGE: Duration = Duration::from_secs(1);

impl Frame {
    pub fn is_fresh(&self) -> bool {
        self.published.elapsed() <= FRESH_FRAME_AGE
    }
}

pub type FrameSlot = Option<Arc<Frame>>;

/// A frame waiting for the dispatcher, with the detections that go out before it.
struct Pending {
    frame: Arc<Frame>,
    detections: Option<Arc<DetectionSet>>,
}

/// What every viewer task follows, in one channel so that a viewer waits on one thing: the
/// newest frame, a count of the changes of everything else it is told about (camera state,
/// recording), and whether the server is stopping.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    pub frame: FrameSlot,
    /// Grows with every change of the camera status or the recording.
    pub notices: u64,
    pub stopping: bool,
}

/// Counters of the whole server.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_in: AtomicU64,
    pub frames_invalid: AtomicU64,
}

/// Width, height and framerate as far as they are known (caps, else the JPEG header).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VideoInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<f64>,
}

pub struct Hub {
    /// The newest frame not yet handed to the viewers.
    mailbox: Mutex<Option<Pending>>,
    mailbox_ready: Notify,
    /// Counts `clear_frame` calls.
    epoch: AtomicU64,
    feed: watch::Sender<Feed>,
    camera: watch::Sender<CameraStatus>,
    /// `None` while the application reports no recording (`recording-state` unset).
    recording: watch::Sender<Option<RecordingStatus>>,
    video: Mutex<VideoInfo>,
    next_sequence: AtomicU64,
    pub counters: Counters,
    rate_in: Mutex<RateWindow>,
    pub events: Arc<dyn Events>,
    pub viewers: Arc<Viewers>,
    pub started: Instant,
    pub detections: DetectionBoard,
    /// The H.264 stream viewers may ask for, offered while a producer feeds it.
    pub h264: Arc<VideoTrack>,
    /// The LL-HLS origin of that stream.
    pub hls: hls::Origin,
    /// Fires when the server stops; every viewer task ends with close code 1001.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("viewers", &self.viewers)
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new(events: Arc<dyn Events>, h264: Arc<VideoTrack>) -> Arc<Self> {
        Arc::new(Hub {
            mailbox: Mutex::new(None),
            mailbox_ready: Notify::new(),
            epoch: AtomicU64::new(0),
            feed: watch::Sender::new(Feed::default()),
            camera: watch::Sender::new(CameraStatus::default()),
            recording: watch::Sender::new(None),
            video: Mutex::new(VideoInfo::default()),
            next_sequence: AtomicU64::new(1),
            counters: Counters::default(),
            rate_in: Mutex::new(RateWindow::new()),
            viewers: Viewers::new(events.clone()),
            events,
            started: Instant::now(),
            detections: DetectionBoard::default(),
            hls: hls::Origin::new(h264.clone()),
            h264,
            shutdown: CancellationToken::new(),
        })
    }

    /// Moves published frames to the viewers. Runs on the server's runtime until shutdown.
    pub async fn dispatch(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = self.mailbox_ready.notified() => {}
            }
            let (next, epoch) = {
                let mut mailbox = lock(&self.mailbox);
                (mailbox.take(), self.epoch.load(Ordering::Acquire))
            };
            if let Some(Pending { frame, detections }) = next {
                // Detections go first, so that a viewer sends them before their frame.
                if let Some(set) = detections {
                    self.detections.show(set);
                }
                // A frame taken before the last `clear_frame` stays forgotten: the check and the
                // store happen under the channel's lock, which `clear_frame` takes too.
                self.feed.send_if_modified(|feed| {
                    let current = self.epoch.load(Ordering::Acquire) == epoch;
                    if current {
                        feed.frame = Some(frame);
                    }
                    current
                });
            }
        }
    }

    /// Hands a frame to all viewers, with the objects a detector found in it when it says.
    /// O(1) in the number of viewers; never blocks on them.
    pub fn publish(
        &self,
        jpeg: Bytes,
        capture_time_us: u64,
        objects: Option<Vec<DetectedObject>>,
    ) -> u64 {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let frame = Arc::new(Frame {
            sequence,
            capture_time_us,
            published: Instant::now(),
            jpeg,
            meta: protocol::meta_header(sequence, capture_time_us),
        });
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        // Before the frame is out: once a viewer has it, the owner may already report a newer
        // state (an error), which must not be overwritten by this frame's "streaming".
        self.frame_arrived();
        let early = self.detections.note_frame(sequence, capture_time_us);
        // Boxes found in this frame win; else those a detector sent ahead of it.
        let objects = match (objects, early) {
            (Some(objects), _) if !objects.is_empty() => Some(objects),
            (objects, None) => objects,
            (_, early) => early,
        };
        let detections = objects.and_then(|objects| {
            let set = self.detections.with_frame(
                sequence,
                capture_time_us,
                self.frame_size(),
                objects,
            )?;
            self.events.detections(&set.message);
            Some(set)
        });
        let replaced = {
            let mut mailbox = lock(&self.mailbox);
            // Detections of a frame that was never handed out still stand until newer ones.
            let detections =
                detections.or_else(|| mailbox.as_mut().and_then(|p| p.detections.take()));
            mailbox.replace(Pending { frame, detections })
        };
        self.mailbox_ready.notify_one();
        drop(replaced);
        sequence
    }

    /// Detections that come after their frame: shown at once, tied to that frame.
    pub fn push_detections(
        &self,
        at: FrameRef,
        objects: Vec<DetectedObject>,
    ) -> Result<Option<u64>, DetectionError> {
        let set = self.detections.push(at, self.frame_size(), objects)?;
        Ok(set.map(|set| {
            self.events.detections(&set.message);
            set.frame
        }))
    }

    fn frame_size(&self) -> (Option<u32>, Option<u32>) {
        let video = self.video_info();
        (video.width, video.height)
    }

    /// Forgets the last frame so nobody is shown a stale picture as live. Takes effect before
    /// it returns: a viewer or snapshot that comes after sees no frame, even one the dispatcher
    /// was still handing out.
    pub fn clear_frame(&self) {
        let _pending = {
            let mut mailbox = lock(&self.mailbox);
            self.epoch.fetch_add(1, Ordering::AcqRel);
            mailbox.take()
        };
        self.detections.forget_frames();
        self.feed
            .send_if_modified(|feed| feed.frame.take().is_some());
    }

    /// Tells every viewer task to say goodbye, and every other task to end.
    pub fn stop(&self) {
        self.shutdown.cancel();
        self.feed.send_modify(|feed| feed.stopping = true);
    }

    pub fn record_invalid_frame(&self) {
        self.counters.frames_invalid.fetch_add(1, Ordering::Relaxed);
    }

    pub fn subscribe(&self) -> watch::Receiver<Feed> {
        self.feed.subscribe()
    }

    pub fn latest_frame(&self) -> FrameSlot {
        self.feed.borrow().frame.clone()
    }

    pub fn camera_status(&self) -> CameraStatus {
        self.camera.borrow().clone()
    }

    /// The camera failed: viewers are told why, `/healthz` answers 503, until a frame arrives
    /// or [`Hub::clear_camera_error`].
    pub fn report_camera_error(&self, message: String) {
        self.replace_camera_status(CameraStatus {
            state: CameraState::Error,
            message: Some(message),
        });
    }

    /// Ends an error reported with [`Hub::report_camera_error`], moving to `state`; nothing
    /// happens while there is no error.
    pub fn clear_camera_error(&self, state: CameraState) {
        if self.camera.borrow().state == CameraState::Error {
            self.replace_camera_status(CameraStatus {
                state,
                message: None,
            });
        }
    }

    /// Moves to `state` (idle, starting), except out of an error: that ends only with a frame
    /// or [`Hub::clear_camera_error`].
    pub fn set_camera_state(&self, state: CameraState) {
        let changed = self.camera.send_if_modified(|current| {
            if current.state == state || current.state == CameraState::Error {
                false
            } else {
                *current = CameraStatus {
                    state,
                    message: None,
                };
                true
            }
        });
        if changed {
            self.notify_viewers();
        }
    }

    /// A frame arrived: the camera streams, whatever it said before. Cheap when nothing
    /// changes, which is the case for every frame but the first.
    fn frame_arrived(&self) {
        if self.camera.borrow().state != CameraState::Streaming {
            self.replace_camera_status(CameraStatus {
                state: CameraState::Streaming,
                message: None,
            });
        }
    }

    /// Viewers get a `status` message only when the status really changed.
    fn replace_camera_status(&self, status: CameraStatus) {
        let changed = self.camera.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
        if changed {
            self.notify_viewers();
        }
    }

    fn notify_viewers(&self) {
        self.feed.send_modify(|feed| feed.notices += 1);
    }

    pub fn recording_status(&self) -> Option<RecordingStatus> {
        self.recording.borrow().clone()
    }

    /// Updates the recording state; viewers are told only when it really changed.
    pub fn set_recording_status(&self, status: Option<RecordingStatus>) {
        let changed = self.recording.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
        if changed {
            self.notify_viewers();
        }
    }

    pub fn video_info(&self) -> VideoInfo {
        *lock(&self.video)
    }

    pub fn set_video_info(&self, info: VideoInfo) {
        *lock(&self.video) = info;
    }

    /// Fills in a size read from a JPEG header when the caps did not give one.
    pub fn learn_dimensions(&self, width: u32, height: u32) {
        let mut video = lock(&self.video);
        if video.width.is_none() {
            video.width = Some(width);
            video.height = Some(height);
        }
    }

    pub fn fps_in(&self) -> f64 {
        lock(&self.rate_in).rate(self.counters.frames_in.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NoEvents;

    #[test]
    fn an_error_ends_only_with_a_frame_or_when_cleared() {
        let hub = Hub::new(Arc::new(NoEvents), VideoTrack::new());
        hub.set_camera_state(CameraState::Starting);
        assert_eq!(hub.camera_status().state, CameraState::Starting);
        hub.report_camera_error("unplugged".into());
        hub.set_camera_state(CameraState::Idle);
        assert_eq!(hub.camera_status().state, CameraState::Error, "sticky");
        hub.publish(Bytes::from_static(b"x"), 0, None);
        assert_eq!(
            hub.camera_status().state,
            CameraState::Streaming,
            "a frame ends it"
        );
        hub.report_camera_error("again".into());
        hub.clear_camera_error(CameraState::Idle);
        assert_eq!(
            hub.camera_status(),
            CameraStatus {
                state: CameraState::Idle,
                message: None
            }
        );
        hub.clear_camera_error(CameraState::Starting);
        assert_eq!(
            hub.camera_status().state,
            CameraState::Idle,
            "no error, nothing to clear"
        );
    }

    #[tokio::test]
    async fn dispatcher_delivers_latest_frame() {
        let hub = Hub::new(Arc::new(NoEvents), VideoTrack::new());
        let mut rx = hub.subscribe();
        tokio::spawn(hub.clone().dispatch());
        for _ in 0..5 {
            hub.publish(Bytes::from_static(b"x"), 0, None);
        }
        // The dispatcher may wake between publishes: wait until it has moved the newest.
        let newest = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                rx.changed().await.unwrap();
                if rx.borrow_and_update().frame.as_ref().map(|f| f.sequence) == Some(5) {
                    break;
                }
            }
        })
        .await;
        assert!(newest.is_ok(), "the newest frame reaches the viewers");
        hub.clear_frame();
        assert!(rx.borrow().frame.is_none(), "forgotten at once");
        assert!(hub.latest_frame().is_none());
        hub.stop();
        assert!(rx.borrow().stopping);
    }
}
