// SPDX-License-Identifier: MIT
//! A real detector in the pipeline: OpenCV's `facedetect` finds the face in a photo, attaches
//! a region-of-interest meta, and the viewers get a detections message with a box around the
//! face. Needs `gstreamer1.0-opencv` and `opencv-data` (installed by scripts/install-deps.sh
//! --test); without them the test says so and passes, unless WSJPEG_REQUIRE_OPENCV is set
//! (CI sets it).

mod common;

use std::time::Duration;

use common::*;

const SECOND: Duration = Duration::from_secs(1);

/// Where the face is in `tests/fixtures/astronaut.jpg`: its centre, in pixels.
pub const FACE_CENTRE: (f64, f64) = (224.0, 113.0);

fn fixture() -> String {
    format!(
        "{}/tests/fixtures/astronaut.jpg",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Whether OpenCV's face detector is here; panics when CI says it must be.
fn have_facedetect() -> bool {
    init();
    let here = gst::ElementFactory::find("facedetect").is_some();
    here || cannot_run(
        "OpenCV detector tests",
        "facedetect is not installed (apt-get install gstreamer1.0-opencv opencv-data)",
        "WSJPEG_REQUIRE_OPENCV",
    )
}

fn box_contains(object: &serde_json::Value, point: (f64, f64)) -> bool {
    let b = &object["box"];
    let (x, y, w, h) = (
        b[0].as_f64().unwrap_or(-1.0),
        b[1].as_f64().unwrap_or(-1.0),
        b[2].as_f64().unwrap_or(0.0),
        b[3].as_f64().unwrap_or(0.0),
    );
    x <= point.0 && point.0 <= x + w && y <= point.1 && point.1 <= y + h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facedetect_finds_the_face_and_viewers_get_a_box_around_it() {
    if !have_facedetect() {
        return;
    }
    let server = Server::launch(&format!(
        "filesrc location={} ! jpegdec ! imagefreeze is-live=true \
         ! video/x-raw,framerate=10/1 ! videoconvert \
         ! facedetect display=false nose-profile=none mouth-profile=none eyes-profile=none \
         ! videoconvert ! jpegenc ! wsjpegsink name=sink port=0 address=127.0.0.1",
        fixture()
    ));
    let mut viewer = connect(server.port, "/stream?meta=1&detections=1").await;
    let message = next_text_of_type(&mut viewer, "detections", 10 * SECOND)
        .await
        .expect("detections from facedetect");
    assert_eq!(message["width"], 512);
    assert_eq!(message["height"], 512);
    let objects = message["objects"].as_array().expect("objects");
    assert!(
        objects
            .iter()
            .any(|o| o["label"] == "face" && box_contains(o, FACE_CENTRE)),
        "a face box around {FACE_CENTRE:?}: {message}"
    );
    // The frame it belongs to follows right after it.
    let frame = next_frame(&mut viewer, 5 * SECOND).await.expect("a frame");
    let meta = wsjpeg_server::protocol::parse_meta_header(&frame).expect("meta");
    assert_eq!(message["frame"], meta.sequence);
}
