// SPDX-License-Identifier: MIT
//! `--detect`: a detector beside the live view. A real one (OpenCV's `facedetect`) on a photo
//! with a face, boxes scaled back to the stream; viewers keep their frame rate while it runs;
//! a detector that fails stops alone; the Jetson-style fragment runs with stand-ins.

mod common;

use std::time::Duration;

use common::client::*;
use common::*;
use gst::prelude::*;
use serde_json::Value;
use wsjpeg_launcher::detector::DetectionConfig;
use wsjpeg_launcher::encoder::Format;
use wsjpeg_launcher::source::Source;

const SECOND: Duration = Duration::from_secs(1);

fn photo() -> Source {
    Source::Fragment(format!(
        "filesrc location={}/../gst-plugin-wsjpegsink/tests/fixtures/astronaut.jpg ! jpegdec \
         ! imagefreeze is-live=true ! video/x-raw,framerate=30/1",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// The photo streamed at 640×480: 512×512 scaled to 480×480 between black bars of 80
/// columns (its shape kept), so boxes must be scaled back and moved past the bar.
fn photo_config(detect: Option<&str>) -> wsjpeg_launcher::Config {
    let mut config = config(photo());
    config.format = Format {
        width: 640,
        height: 480,
        fps: 30,
        quality: 80,
    };
    config.linger = Duration::from_secs(600);
    config.detection = detect.map(|fragment| DetectionConfig {
        fragment: fragment.to_string(),
        fps: 5.0,
        width: 320,
    });
    config
}

fn have_facedetect() -> bool {
    init();
    let here = gst::ElementFactory::find("facedetect").is_some();
    here || cannot_run(
        "OpenCV detector tests",
        "facedetect is not installed (apt-get install gstreamer1.0-opencv opencv-data)",
        "WSJPEG_REQUIRE_OPENCV",
    )
}

fn contains(object: &Value, point: (f64, f64)) -> bool {
    let b = |i: usize| object["box"][i].as_f64().unwrap_or(f64::NAN);
    b(0) <= point.0 && point.0 <= b(0) + b(2) && b(1) <= point.1 && point.1 <= b(1) + b(3)
}

/// The face's centre in the photo is at (224, 113) of 512×512: in the 640×480 stream, with
/// the picture 480×480 behind an 80-column bar, it is here.
const FACE_IN_STREAM: (f64, f64) = (80.0 + 224.0 * 480.0 / 512.0, 113.0 * 480.0 / 512.0);

/// The faces `facedetect` finds in a JPEG picture, as boxes `[x, y, width, height]` in its
/// pixels: what the launcher's boxes must match on the picture the viewers get.
fn faces_in(jpeg: &[u8]) -> Vec<[f64; 4]> {
    let pipeline = gst::parse::launch(
        "appsrc name=in caps=image/jpeg ! jpegdec ! videoconvert \
         ! facedetect display=false ! fakesink",
    )
    .expect("a facedetect pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let input = pipeline
        .by_name("in")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .expect("its input");
    pipeline.set_state(gst::State::Playing).expect("it plays");
    let _ = input.push_buffer(gst::Buffer::from_slice(jpeg.to_vec()));
    let _ = input.end_of_stream();
    let bus = pipeline.bus().expect("a bus");
    let mut faces = Vec::new();
    while let Some(message) = bus.timed_pop(gst::ClockTime::from_seconds(20)) {
        match message.view() {
            gst::MessageView::Element(element) => {
                let Some(s) = element.structure().filter(|s| s.name() == "facedetect") else {
                    continue;
                };
                let Ok(list) = s.get::<gst::List>("faces") else {
                    continue;
                };
                for face in list.iter().filter_map(|v| v.get::<gst::Structure>().ok()) {
                    let field = |name: &str| f64::from(face.get::<u32>(name).unwrap_or(0));
                    faces.push([field("x"), field("y"), field("width"), field("height")]);
                }
            }
            gst::MessageView::Eos(_) | gst::MessageView::Error(_) => break,
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    faces
}

/// Intersection over union of two boxes `[x, y, width, height]`.
fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let h = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    let inter = w.max(0.0) * h.max(0.0);
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

fn bbox(object: &Value) -> [f64; 4] {
    let b = |i: usize| object["box"][i].as_f64().unwrap_or(f64::NAN);
    [b(0), b(1), b(2), b(3)]
}

/// What each of `viewers` received over `duration`, next to the frames the server took in
/// over the same window.
async fn shares_of_viewers(port: u16, viewers: usize, duration: Duration) -> Vec<Share> {
    let mut sockets = Vec::new();
    for _ in 0..viewers {
        let mut ws = connect(port, "/stream").await;
        assert!(next_frame(&mut ws, 10 * SECOND).await.is_some());
        sockets.push(ws);
    }
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { count_share(&mut ws, port, duration).await }))
        .collect();
    let mut shares = Vec::new();
    for task in tasks {
        shares.push(task.await.expect("a viewer"));
    }
    shares
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_detector_boxes_the_face_and_the_viewers_keep_their_frame_rate() {
    if !have_facedetect() {
        return;
    }
    let running = Running::start(photo_config(Some("facedetect display=false")));
    let mut viewer = connect(running.port, "/stream?meta=1&detections=1").await;
    let message = first_objects(&mut viewer).await;
    assert_eq!(
        (message["width"].as_u64(), message["height"].as_u64()),
        (Some(640), Some(480))
    );
    let objects = message["objects"].as_array().unwrap();
    assert!(
        objects
            .iter()
            .any(|o| o["label"] == "face" && contains(o, FACE_IN_STREAM)),
        "a face box around {FACE_IN_STREAM:?} in the stream's pixels: {message}"
    );
    // The box is where the face is in the picture the viewers get: facedetect itself, run on
    // that picture, finds about the same box (a box over the whole frame, or one placed for a
    // stretched picture, would not match).
    let best = match_with_snapshot(running.port, &message).await;
    assert!(
        best >= 0.5,
        "the launcher's face box matches facedetect's on the snapshot (IoU {best:.2}): {message}"
    );
    // The detector costs the viewers nothing: while it runs, each of twenty viewers gets
    // (nearly) every frame the server takes in, and the camera is not held back to the
    // detector's rate (5 a second): it gives at least half its 30.
    let window = 3 * SECOND;
    let shares = shares_of_viewers(running.port, 20, window).await;
    for share in &shares {
        share.assert_most("a viewer while the detector runs");
    }
    let taken_in = shares.iter().map(|s| s.taken_in).max().unwrap_or(0);
    assert!(
        taken_in as f64 >= 0.5 * 30.0 * window.as_secs_f64(),
        "the camera is not held back by the detector: {taken_in} frames in {window:?}"
    );
    let status = status_blocking(running.port);
    let per_second = status["detections"]["per_second"].as_f64().unwrap_or(0.0);
    assert!(
        per_second > 1.0 && per_second <= 6.0,
        "about --detect-fps results a second: {status}"
    );
    assert_eq!(status["source"]["detector"], "facedetect display=false");
}

/// The best match (intersection over union) between the face boxes of `message` and the
/// faces facedetect itself finds on the snapshot of the stream.
async fn match_with_snapshot(port: u16, message: &Value) -> f64 {
    let snapshot = http_get(port, "/snapshot.jpg", &[], usize::MAX).await;
    let truth = faces_in(&snapshot.body);
    assert!(
        !truth.is_empty(),
        "facedetect finds the face in the snapshot"
    );
    message["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["label"] == "face")
        .flat_map(|o| truth.iter().map(move |t| iou(bbox(o), *t)))
        .fold(0.0, f64::max)
}

/// The first detections message with an object.
async fn first_objects(viewer: &mut WebSocket) -> Value {
    let deadline = std::time::Instant::now() + 60 * SECOND;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no detections with an object within a minute"
        );
        let message = next_text_of_type(viewer, "detections", 15 * SECOND)
            .await
            .expect("detections from the launcher's detector");
        if !message["objects"].as_array().is_some_and(|o| o.is_empty()) {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_square_source_in_a_wide_stream_is_boxed_where_the_face_is_shown() {
    if !have_facedetect() {
        return;
    }
    // 512×512 in a 640×240 stream: a 240×240 picture between bars of 200 columns. A detector
    // that saw the picture stretched would box a face five times too wide, or none at all.
    let mut config = photo_config(Some("facedetect display=false"));
    config.format.height = 240;
    if let Some(detection) = config.detection.as_mut() {
        detection.width = 640;
    }
    let running = Running::start(config);
    let mut viewer = connect(running.port, "/stream?meta=1&detections=1").await;
    let message = first_objects(&mut viewer).await;
    let best = match_with_snapshot(running.port, &message).await;
    assert!(
        best >= 0.5,
        "the face box matches facedetect's on the snapshot (IoU {best:.2}): {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_detector_stops_alone_and_streaming_goes_on() {
    // identity posts an error after three frames, as a detector that crashes would.
    let running = Running::start(photo_config(Some("identity error-after=3")));
    let mut viewer = connect(running.port, "/stream?meta=1").await;
    let status = loop {
        let status = status_blocking(running.port);
        if status["source"]["detector-error"].is_string() {
            break status;
        }
        assert!(
            next_frame(&mut viewer, 10 * SECOND).await.is_some(),
            "frames flow meanwhile"
        );
    };
    eprintln!("detector error: {}", status["source"]["detector-error"]);
    let mut plain = connect(running.port, "/stream").await;
    count_share(&mut plain, running.port, 2 * SECOND)
        .await
        .assert_most("streaming goes on");
    assert!(running.view().running);
    assert_eq!(running.view().starts, 1, "the camera was not restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetson_style_detector_runs_with_stand_ins() {
    init();
    standins::register_working();
    standins::register_detector("nvinfer");
    // As on a Jetson: frames go to GPU memory, the inference element attaches the boxes.
    let running = Running::start(photo_config(Some(
        "nvvidconv ! video/x-raw(memory:NVMM) ! nvinfer",
    )));
    let mut viewer = connect(running.port, "/stream?meta=1&detections=1").await;
    let message = next_text_of_type(&mut viewer, "detections", 15 * SECOND)
        .await
        .expect("detections from the stand-in");
    // The stand-in reports a person over the left half of the frame it sees.
    assert_eq!(
        message["objects"],
        serde_json::json!([{"label": "person", "score": 0.5, "box": [0.0, 0.0, 320.0, 480.0]}])
    );
}
