//! `multipart/x-mixed-replace` streams for `<img>`, VLC, ffmpeg and Home Assistant.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::hub::Hub;
use crate::viewers::ClientGuard;

pub const BOUNDARY: &str = "wsjpegframe";

/// Each part is followed at once by the next boundary: Chromium shows a part only when it sees
/// the boundary after it, so sending it late would delay every frame by one.
fn part_header(frame_len: usize, capture_time_us: u64) -> Bytes {
    Bytes::from(format!(
        "Content-Type: image/jpeg\r\nContent-Length: {frame_len}\r\nX-Timestamp: {}.{:06}\r\n\r\n",
        capture_time_us / 1_000_000,
        capture_time_us % 1_000_000
    ))
}

/// Starts the task feeding one viewer and returns the body stream for the response.
///
/// The channel holds the three chunks of a single frame, so a slow viewer holds at most one
/// frame here (plus what hyper and the kernel are writing) and always gets the newest next.
pub fn stream(
    hub: Arc<Hub>,
    guard: ClientGuard,
    spawn: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + Sync + 'static
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(3);
    spawn(Box::pin(feed(hub, guard, tx)));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|chunk| chunk.map(Ok)))
}

async fn feed(hub: Arc<Hub>, guard: ClientGuard, tx: mpsc::Sender<Bytes>) {
    let mut feed = hub.subscribe();
    let boundary = Bytes::from(format!("--{BOUNDARY}\r\n"));
    let trailer = Bytes::from(format!("\r\n--{BOUNDARY}\r\n"));
    if tx.send(boundary).await.is_err() {
        return;
    }
    let mut last_seen = 0u64;
    let mut pending = feed
        .borrow_and_update()
        .frame
        .clone()
        .filter(|f| f.is_fresh());
    loop {
        if pending.is_none() {
            tokio::select! {
                _ = tx.closed() => return,
                changed = feed.changed() => {
                    let feed = feed.borrow_and_update();
                    if changed.is_err() || feed.stopping {
                        return;
                    }
                    pending = feed.frame.clone();
                    continue;
                }
            }
        }
        // Biased: a viewer with room is served without registering for the shutdown.
        let permit = tokio::select! {
            biased;
            permit = tx.reserve_many(3) => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = hub.shutdown.cancelled() => return,
        };
        // The viewer is ready for more: take the newest frame, not the one that woke us.
        if feed.has_changed().unwrap_or(false) {
            let feed = feed.borrow_and_update();
            if feed.stopping {
                return;
            }
            pending = feed.frame.clone();
        }
        let Some(frame) = pending.take() else {
            continue;
        };
        if frame.sequence <= last_seen {
            continue;
        }
        if last_seen > 0 {
            guard.record_skipped(frame.sequence - last_seen - 1);
        }
        last_seen = frame.sequence;
        let header = part_header(frame.jpeg.len(), frame.capture_time_us);
        let bytes = header.len() + frame.jpeg.len() + trailer.len();
        let mut permit = permit;
        for chunk in [header, frame.jpeg.clone(), trailer.clone()] {
            if let Some(p) = permit.next() {
                p.send(chunk);
            }
        }
        guard.record_sent(bytes);
    }
}
