// SPDX-License-Identifier: MIT
//! Camera loss: retries back off while someone watches and stop when nobody does, a camera that
//! stalls is restarted, and one camera failing leaves the others streaming.

mod common;

use std::time::{Duration, Instant};

use common::client::*;
use common::*;
use wsjpeg_launcher::controller::retry_delay;
use wsjpeg_launcher::source::Source;

const SECOND: Duration = Duration::from_secs(1);
const MISSING: &str = "/dev/video-missing";
/// Starts, then fails on its first buffer: every attempt is a start, and none delivers a frame.
const FAILS_AT_ONCE: &str = "videotestsrc is-live=true ! identity error-after=1";
/// Delivers a frame at once and the next only ten seconds later, without any error. Offers only
/// that rate, so the launcher takes its JPEG as it comes.
const STALLS: &str = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=1/10 \
                      ! jpegenc ! capsfilter caps=\"image/jpeg,framerate=1/10\"";

/// What a viewer saw for a while.
#[derive(Debug, Default)]
struct Watched {
    frames: usize,
    longest_gap: Duration,
    /// The camera state of every `status` message.
    states: Vec<String>,
}

async fn watch(ws: &mut WebSocket, during: Duration) -> Watched {
    let deadline = Instant::now() + during;
    let mut watched = Watched::default();
    let mut last = Instant::now();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match next_message(ws, left).await {
            Some(Received::Binary(data)) => {
                assert!(is_complete_jpeg(&data), "every frame is a whole JPEG");
                watched.frames += 1;
                watched.longest_gap = watched.longest_gap.max(last.elapsed());
                last = Instant::now();
            }
            Some(Received::Text(message)) if message["type"] == "status" => {
                watched
                    .states
                    .push(message["camera"].as_str().unwrap_or("?").to_string());
            }
            Some(Received::Text(_)) => {}
            Some(Received::Closed(code)) => panic!("viewer closed: {code:?}"),
            None => break,
        }
    }
    watched.longest_gap = watched.longest_gap.max(last.elapsed());
    watched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_camera_does_not_touch_the_others() {
    let mut config = config(Source::TestPattern);
    config.sources.push(Source::Device(MISSING.into()));
    let running = Running::start(config);
    let (healthy, failing) = (running.ports[0], running.ports[1]);

    let mut viewer = connect(healthy, "/stream").await;
    assert!(next_frame(&mut viewer, 5 * SECOND).await.is_some());
    let mut other = connect(failing, "/stream").await;
    let error = wait_camera_state(&mut other, "error", 5 * SECOND)
        .await
        .expect("camera 1 reports its error");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(MISSING)),
        "{error}"
    );

    // Meanwhile camera 1 is retried, after 1 s and after 3 s.
    let frames_in = || {
        status_blocking(healthy)["frames"]["in"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = frames_in();
    let watched = watch(&mut viewer, 4 * SECOND).await;
    assert!(
        watched.states.iter().all(|state| state == "streaming"),
        "camera 0's viewer only ever hears of streaming: {watched:?}"
    );
    Share {
        received: watched.frames,
        taken_in: frames_in() - before,
    }
    .assert_most("camera 0's viewer while camera 1 is retried");
    // No interruption: the share above, and camera 0 never restarted (below). How long the
    // longest gap between two frames is depends on the machine: logged, not asserted.
    eprintln!("camera 0's viewer while camera 1 is retried: {watched:?}");
    assert_eq!(health(healthy).await, 200);
    assert_eq!(health(failing).await, 503);
    let camera0 = running.view_of(0);
    assert!(camera0.running && camera0.error.is_none(), "{camera0:?}");
    assert_eq!(camera0.starts, 1, "camera 0 was never restarted");
    let camera1 = running.view_of(1);
    assert!(
        camera1
            .error
            .as_deref()
            .is_some_and(|e| e.contains(MISSING)),
        "{camera1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_while_watched_and_stop_when_nobody_watches() {
    let mut config = config(Source::Fragment(FAILS_AT_ONCE.into()));
    config.linger = Duration::from_millis(100);
    let running = Running::start(config);
    let viewer = connect(running.port, "/stream").await;
    let mut started = Vec::new();
    for n in 1..=3 {
        let at = when(10 * SECOND, || running.view().starts >= n)
            .await
            .unwrap_or_else(|| panic!("start {n} did not happen: {:?}", running.view()));
        started.push(at);
    }
    assert_eq!(running.view().starts, 3);
    for (retry, pair) in (1..).zip(started.windows(2)) {
        let waited = pair[1] - pair[0];
        // Starting and failing take a little on top of the delay; polling blurs by a few ms.
        let expected = retry_delay(retry);
        assert!(
            waited + Duration::from_millis(50) >= expected
                && waited <= expected + Duration::from_millis(800),
            "retry {retry} came {waited:?} after the previous start, not {expected:?}"
        );
    }

    // The next retry would come 4 s after the third failure; nobody watches by then.
    drop(viewer);
    assert!(
        eventually(5 * SECOND, || running.view().error.is_none()).await,
        "parked once the viewer left: {:?}",
        running.view()
    );
    assert!(
        always(5 * SECOND, || running.view().starts == 3).await,
        "no start without a viewer: {:?}",
        running.view()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_stops_delivering_is_restarted_after_the_stall_timeout() {
    let mut config = config(Source::Fragment(STALLS.into()));
    config.stall_timeout = SECOND;
    let running = Running::start(config);
    let mut viewer = connect(running.port, "/stream").await;
    assert!(
        next_frame(&mut viewer, 5 * SECOND).await.is_some(),
        "the first frame"
    );
    let error = wait_camera_state(&mut viewer, "error", 5 * SECOND)
        .await
        .expect("the stall is reported to the viewer");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no frames") && message.contains("for 1 s"),
        "{error}"
    );
    assert_eq!(health(running.port).await, 503);
    assert!(
        eventually(5 * SECOND, || running.view().starts >= 2).await,
        "restarted: {:?}",
        running.view()
    );
    assert!(
        wait_camera_state(&mut viewer, "streaming", 5 * SECOND)
            .await
            .is_some(),
        "the restarted camera streams to the same viewer"
    );
}
