// SPDX-License-Identifier: MIT
//! Detections as GStreamer carries them: region-of-interest metas on buffers, and the
//! "detections" structure of the `push-detections` action signal. For the element, and for
//! applications that run a detector and push what it finds.

use gst::glib;
use gst::prelude::*;
pub use wsjpeg_server::DetectedObject;

/// Parameter fields of a region of interest that hold the detector's confidence.
const SCORE_FIELDS: [&str; 3] = ["confidence", "score", "probability"];

/// The objects that region-of-interest metas on `buffer` describe (from a detector upstream,
/// such as `facedetect`), boxes multiplied by `scale` (1 for the frame's own pixels).
pub fn region_objects(buffer: &gst::BufferRef, scale: (f64, f64)) -> Vec<DetectedObject> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|meta| {
            let (x, y, width, height) = meta.rect();
            // A "detection" parameter may name the class where the ROI type is generic.
            let label = meta
                .params()
                .find_map(|p| p.get::<String>("label").ok())
                .unwrap_or_else(|| meta.roi_type().to_string());
            DetectedObject {
                label,
                score: meta.params().find_map(score_of),
                bbox: [
                    f64::from(x) * scale.0,
                    f64::from(y) * scale.1,
                    f64::from(width) * scale.0,
                    f64::from(height) * scale.1,
                ],
                // 0 is what a meta carries when nobody set an id.
                id: Some(i64::from(meta.id())).filter(|id| *id > 0),
                parent: Some(i64::from(meta.parent_id())).filter(|id| *id > 0),
            }
        })
        .collect()
}

fn score_of(param: &gst::StructureRef) -> Option<f64> {
    SCORE_FIELDS.into_iter().find_map(|field| {
        param
            .get::<f64>(field)
            .ok()
            .or_else(|| param.get::<f32>(field).ok().map(f64::from))
    })
}

/// The frame detections belong to, as `push-detections` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameTime {
    /// The frame's sequence number (the `?meta=1` header's).
    Sequence(u64),
    /// The frame's capture time, Unix µs.
    CaptureTime(u64),
    /// The frame's capture time on the pipeline clock (running time plus base time).
    ClockTime(gst::ClockTime),
}

/// The "detections" structure `push-detections` takes.
pub fn detections_structure(at: FrameTime, objects: &[DetectedObject]) -> gst::Structure {
    let objects = gst::List::new(objects.iter().map(|object| {
        let mut s = gst::Structure::builder("object")
            .field("label", object.label.as_str())
            .field("x", object.bbox[0])
            .field("y", object.bbox[1])
            .field("width", object.bbox[2])
            .field("height", object.bbox[3])
            .build();
        if let Some(score) = object.score {
            s.set("score", score);
        }
        if let Some(id) = object.id {
            s.set("id", id);
        }
        if let Some(parent) = object.parent {
            s.set("parent", parent);
        }
        s.to_send_value()
    }));
    let builder = gst::Structure::builder("detections");
    let builder = match at {
        FrameTime::Sequence(frame) => builder.field("frame", frame),
        FrameTime::CaptureTime(time) => builder.field("capture-time", time),
        FrameTime::ClockTime(time) => builder.field("clock-time", time),
    };
    builder.field("objects", objects).build()
}

/// The objects of a "detections" structure.
pub(crate) fn objects_of(detections: &gst::StructureRef) -> Result<Vec<DetectedObject>, String> {
    let value = detections
        .value("objects")
        .map_err(|_| "no objects field (a list of \"object\" structures; empty for none)")?;
    let items: Vec<glib::SendValue> = if let Ok(list) = value.get::<gst::List>() {
        list.iter().cloned().collect()
    } else if let Ok(array) = value.get::<gst::Array>() {
        array.iter().cloned().collect()
    } else {
        return Err("objects is not a list or an array of structures".into());
    };
    items
        .iter()
        .map(|item| {
            let object = item
                .get::<gst::Structure>()
                .map_err(|_| "an object is not a structure")?;
            let number = |field: &str| -> Option<f64> {
                object
                    .get::<f64>(field)
                    .ok()
                    .or_else(|| object.get::<f32>(field).ok().map(f64::from))
                    .or_else(|| object.get::<i32>(field).ok().map(f64::from))
                    .or_else(|| object.get::<u32>(field).ok().map(f64::from))
                    .or_else(|| object.get::<i64>(field).ok().map(|v| v as f64))
                    .or_else(|| object.get::<u64>(field).ok().map(|v| v as f64))
            };
            let coordinate = |field: &str| {
                number(field).ok_or_else(|| format!("an object has no number {field}"))
            };
            let whole = |field: &str| {
                object
                    .get::<i64>(field)
                    .ok()
                    .or_else(|| object.get::<i32>(field).ok().map(i64::from))
                    .or_else(|| object.get::<u32>(field).ok().map(i64::from))
            };
            Ok(DetectedObject {
                label: object
                    .get::<String>("label")
                    .map_err(|_| "an object has no label")?,
                score: number("score"),
                bbox: [
                    coordinate("x")?,
                    coordinate("y")?,
                    coordinate("width")?,
                    coordinate("height")?,
                ],
                id: whole("id"),
                parent: whole("parent"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_structure_reads_back_as_the_objects_it_was_built_from() {
        gst::init().unwrap();
        let objects = vec![
            DetectedObject {
                label: "person".into(),
                score: Some(0.9),
                bbox: [1.0, 2.0, 30.0, 40.0],
                id: Some(7),
                parent: None,
            },
            DetectedObject {
                label: "face".into(),
                score: None,
                bbox: [5.0, 6.0, 7.0, 8.0],
                id: None,
                parent: Some(7),
            },
        ];
        let s = detections_structure(FrameTime::Sequence(3), &objects);
        assert_eq!(s.get::<u64>("frame").unwrap(), 3);
        assert_eq!(objects_of(&s).unwrap(), objects);
    }

    #[test]
    fn regions_become_objects_scaled_to_the_stream() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::with_size(16).unwrap();
        {
            let buffer = buffer.get_mut().unwrap();
            let mut meta =
                gst_video::VideoRegionOfInterestMeta::add(buffer, "face", (10, 20, 30, 40));
            meta.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.75f64)
                    .build(),
            );
        }
        let objects = region_objects(&buffer, (2.0, 0.5));
        assert_eq!(
            objects,
            vec![DetectedObject {
                label: "face".into(),
                score: Some(0.75),
                bbox: [20.0, 10.0, 60.0, 20.0],
                id: None,
                parent: None,
            }]
        );
    }
}
