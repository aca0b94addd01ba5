// SPDX-License-Identifier: MIT
//! Stand-ins for the Jetson elements `nvvidconv` and `nvjpegenc`, so the hardware path and its
//! fallback run on a machine without a Jetson. They speak the same caps as the real ones
//! (`video/x-raw(memory:NVMM)` between them) but do the work in software.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

const NVMM: &str = "memory:NVMM";

/// How many times a stand-in's `force-IDR` action signal was emitted (the Jetson encoder's way
/// to ask for a keyframe now).
pub static FORCED_IDRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Relabels raw video caps between system memory and NVMM; buffers pass untouched.
mod feature_swap {
    use super::*;

    #[derive(Default)]
    pub struct FeatureSwap {
        pub to_nvmm: std::sync::atomic::AtomicBool,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for FeatureSwap {
        const NAME: &'static str = "WsjpegTestFeatureSwap";
        type Type = super::FeatureSwap;
        type ParentType = gst_base::BaseTransform;
    }

    impl ObjectImpl for FeatureSwap {}
    impl GstObjectImpl for FeatureSwap {}

    impl ElementImpl for FeatureSwap {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new("featureswap", "Test", "test", "wsjpeg")
            });
            Some(&META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(any_templates);
            TEMPLATES.as_ref()
        }
    }

    impl BaseTransformImpl for FeatureSwap {
        const MODE: gst_base::subclass::BaseTransformMode =
            gst_base::subclass::BaseTransformMode::AlwaysInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = false;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

        fn transform_caps(
            &self,
            direction: gst::PadDirection,
            caps: &gst::Caps,
            filter: Option<&gst::Caps>,
        ) -> Option<gst::Caps> {
            if caps.is_any() {
                return Some(caps.clone());
            }
            let to_nvmm = self.to_nvmm.load(std::sync::atomic::Ordering::Relaxed);
            // Going downstream adds NVMM when this is the "upload" side; upstream undoes it.
            let add = (direction == gst::PadDirection::Sink) == to_nvmm;
            let mut out = gst::Caps::new_empty();
            {
                let out = out.get_mut().unwrap();
                for (s, _) in caps.iter_with_features() {
                    let features = if add {
                        gst::CapsFeatures::new([NVMM])
                    } else {
                        gst::CapsFeatures::new_empty()
                    };
                    out.append_structure_full(s.to_owned(), Some(features));
                }
            }
            Some(match filter {
                Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
                None => out,
            })
        }

        fn transform_ip(
            &self,
            _buf: &mut gst::BufferRef,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            Ok(gst::FlowSuccess::Ok)
        }
    }
}

glib::wrapper! {
    pub struct FeatureSwap(ObjectSubclass<feature_swap::FeatureSwap>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

fn feature_swap(to_nvmm: bool) -> gst::Element {
    let element = glib::Object::new::<FeatureSwap>();
    element
        .imp()
        .to_nvmm
        .store(to_nvmm, std::sync::atomic::Ordering::Relaxed);
    element.upcast()
}

/// A bin with ghost pads around `elements`, linked in order.
fn wrap(bin: &gst::Bin, elements: &[gst::Element]) {
    bin.add_many(elements).unwrap();
    gst::Element::link_many(elements).unwrap();
    let sink = elements[0].static_pad("sink").unwrap();
    let src = elements[elements.len() - 1].static_pad("src").unwrap();
    bin.add_pad(&gst::GhostPad::with_target(&sink).unwrap())
        .unwrap();
    bin.add_pad(&gst::GhostPad::with_target(&src).unwrap())
        .unwrap();
}

fn any_templates() -> Vec<gst::PadTemplate> {
    let caps = gst::Caps::new_any();
    vec![
        gst::PadTemplate::new(
            "src",
            gst::PadDirection::Src,
            gst::PadPresence::Always,
            &caps,
        )
        .unwrap(),
        gst::PadTemplate::new(
            "sink",
            gst::PadDirection::Sink,
            gst::PadPresence::Always,
            &caps,
        )
        .unwrap(),
    ]
}

macro_rules! standin_bin {
    ($module:ident, $wrapper:ident, $type_name:literal, $long:literal, $build:expr, $fail:expr) => {
        mod $module {
            use super::*;

            #[derive(Default)]
            pub struct Imp;

            #[glib::object_subclass]
            impl ObjectSubclass for Imp {
                const NAME: &'static str = $type_name;
                type Type = super::$wrapper;
                type ParentType = gst::Bin;
            }

            impl ObjectImpl for Imp {
                // Accepted like the real element's, and ignored.
                fn properties() -> &'static [glib::ParamSpec] {
                    static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                        vec![
                            glib::ParamSpecUInt::builder("quality").maximum(100).build(),
                            glib::ParamSpecUInt::builder("bitrate").build(),
                            glib::ParamSpecUInt::builder("iframeinterval").build(),
                            glib::ParamSpecUInt::builder("idrinterval").build(),
                            glib::ParamSpecBoolean::builder("insert-sps-pps").build(),
                        ]
                    });
                    PROPERTIES.as_ref()
                }

                fn signals() -> &'static [glib::subclass::Signal] {
                    static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
                        vec![glib::subclass::Signal::builder("force-IDR")
                            .action()
                            .class_handler(|_| {
                                FORCED_IDRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                None
                            })
                            .build()]
                    });
                    SIGNALS.as_ref()
                }

                fn set_property(&self, _id: usize, _value: &glib::Value, _pspec: &glib::ParamSpec) {}

                fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
                    if pspec.value_type() == bool::static_type() {
                        true.to_value()
                    } else {
                        85u32.to_value()
                    }
                }

                fn constructed(&self) {
                    self.parent_constructed();
                    let build: fn() -> Vec<gst::Element> = $build;
                    wrap(self.obj().upcast_ref(), &build());
                }
            }
            impl GstObjectImpl for Imp {}
            impl BinImpl for Imp {}
            impl ElementImpl for Imp {
                fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
                    static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                        gst::subclass::ElementMetadata::new($long, "Test", $long, "wsjpeg")
                    });
                    Some(&META)
                }

                fn pad_templates() -> &'static [gst::PadTemplate] {
                    static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> =
                        LazyLock::new(any_templates);
                    TEMPLATES.as_ref()
                }

                fn change_state(
                    &self,
                    transition: gst::StateChange,
                ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
                    let fail: bool = $fail;
                    if fail && transition == gst::StateChange::ReadyToPaused {
                        return Err(gst::StateChangeError);
                    }
                    self.parent_change_state(transition)
                }
            }
        }

        glib::wrapper! {
            pub struct $wrapper(ObjectSubclass<$module::Imp>) @extends gst::Bin, gst::Element, gst::Object;
        }
    };
}

/// A stand-in for an inference element (DeepStream's `nvinfer`, …): buffers pass untouched, in
/// any memory, each with a region-of-interest meta for a "person" over the left half of the
/// frame, at confidence 0.5.
mod detector_standin {
    use super::*;

    #[derive(Default)]
    pub struct Detector {
        pub size: std::sync::Mutex<(u32, u32)>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Detector {
        const NAME: &'static str = "WsjpegTestDetector";
        type Type = super::Detector;
        type ParentType = gst_base::BaseTransform;
    }

    impl ObjectImpl for Detector {}
    impl GstObjectImpl for Detector {}

    impl ElementImpl for Detector {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new("detector", "Test", "test", "wsjpeg")
            });
            Some(&META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(any_templates);
            TEMPLATES.as_ref()
        }
    }

    impl BaseTransformImpl for Detector {
        const MODE: gst_base::subclass::BaseTransformMode =
            gst_base::subclass::BaseTransformMode::AlwaysInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = false;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

        fn set_caps(
            &self,
            incaps: &gst::Caps,
            _outcaps: &gst::Caps,
        ) -> Result<(), gst::LoggableError> {
            let s = incaps
                .structure(0)
                .ok_or_else(|| gst::loggable_error!(gst::CAT_RUST, "no caps"))?;
            let width = s.get::<i32>("width").unwrap_or(0).max(0) as u32;
            let height = s.get::<i32>("height").unwrap_or(0).max(0) as u32;
            *self.size.lock().unwrap() = (width, height);
            Ok(())
        }

        fn transform_ip(
            &self,
            buf: &mut gst::BufferRef,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let (width, height) = *self.size.lock().unwrap();
            let mut meta =
                gst_video::VideoRegionOfInterestMeta::add(buf, "person", (0, 0, width / 2, height));
            meta.add_param(
                gst::Structure::builder("detection")
                    .field("confidence", 0.5f64)
                    .build(),
            );
            Ok(gst::FlowSuccess::Ok)
        }
    }
}

glib::wrapper! {
    pub struct Detector(ObjectSubclass<detector_standin::Detector>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers the stand-in inference element under `name` (once per process).
pub fn register_detector(name: &str) {
    if gst::ElementFactory::find(name).is_none() {
        gst::Element::register(None, name, gst::Rank::NONE, Detector::static_type()).unwrap();
    }
}

standin_bin!(
    nvvidconv_imp,
    NvVidConv,
    "WsjpegTestNvVidConv",
    "stand-in nvvidconv",
    || vec![
        gst::ElementFactory::make("videoconvert").build().unwrap(),
        gst::ElementFactory::make("videoscale").build().unwrap(),
        feature_swap(true),
    ],
    false
);

standin_bin!(
    nvjpegenc_imp,
    NvJpegEnc,
    "WsjpegTestNvJpegEnc",
    "stand-in nvjpegenc",
    || vec![
        feature_swap(false),
        gst::ElementFactory::make("jpegenc").build().unwrap(),
    ],
    false
);

standin_bin!(
    broken_nvjpegenc_imp,
    BrokenNvJpegEnc,
    "WsjpegTestBrokenNvJpegEnc",
    "stand-in nvjpegenc that cannot start",
    || vec![
        feature_swap(false),
        gst::ElementFactory::make("jpegenc").build().unwrap(),
    ],
    true
);

standin_bin!(
    nvv4l2h264enc_imp,
    NvV4l2H264Enc,
    "WsjpegTestNvV4l2H264Enc",
    "stand-in nvv4l2h264enc",
    || vec![
        feature_swap(false),
        gst::ElementFactory::make("videoconvert").build().unwrap(),
        gst::ElementFactory::make("x264enc")
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", "ultrafast")
            .build()
            .unwrap(),
    ],
    false
);

/// Registers a working stand-in for the Jetson H.264 encoder (needs x264enc).
pub fn register_h264() {
    gst::Element::register(
        None,
        "nvv4l2h264enc",
        gst::Rank::NONE,
        NvV4l2H264Enc::static_type(),
    )
    .unwrap();
}

/// Registers working stand-ins under the Jetson elements' names.
pub fn register_working() {
    gst::Element::register(None, "nvvidconv", gst::Rank::NONE, NvVidConv::static_type()).unwrap();
    gst::Element::register(None, "nvjpegenc", gst::Rank::NONE, NvJpegEnc::static_type()).unwrap();
}

/// Registers an `nvjpegenc` that exists but cannot reach PAUSED, like one whose GPU is busy or
/// whose driver is missing.
pub fn register_broken() {
    gst::Element::register(None, "nvvidconv", gst::Rank::NONE, NvVidConv::static_type()).unwrap();
    gst::Element::register(
        None,
        "nvjpegenc",
        gst::Rank::NONE,
        BrokenNvJpegEnc::static_type(),
    )
    .unwrap();
}

/// A `filesink` on a slow disk: writes every buffer to `location` as the real one does, then
/// takes as long as a disk writing `SLOW_DISK_BYTES_PER_SECOND` would. It does not seek, so
/// muxers write their streamable form.
mod slow_file_sink {
    use std::io::Write;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use gst_base::prelude::*;

    use super::*;

    #[derive(Default)]
    pub struct SlowFileSink {
        location: Mutex<Option<String>>,
        file: Mutex<Option<std::fs::File>>,
        unlocked: AtomicBool,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for SlowFileSink {
        const NAME: &'static str = "WsjpegTestSlowFileSink";
        type Type = super::SlowFileSink;
        type ParentType = gst_base::BaseSink;
    }

    impl ObjectImpl for SlowFileSink {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> =
                LazyLock::new(|| vec![glib::ParamSpecString::builder("location").build()]);
            PROPERTIES.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, _pspec: &glib::ParamSpec) {
            *self.location.lock().unwrap() = value.get().unwrap();
        }

        fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
            self.location.lock().unwrap().to_value()
        }

        fn constructed(&self) {
            self.parent_constructed();
            // As filesink: a file takes data as fast as it can, not in time with the clock.
            self.obj().set_sync(false);
        }
    }

    impl GstObjectImpl for SlowFileSink {}

    impl ElementImpl for SlowFileSink {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "filesink on a slow disk",
                    "Sink/File",
                    "test",
                    "wsjpeg",
                )
            });
            Some(&META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                vec![
                    gst::PadTemplate::new(
                        "sink",
                        gst::PadDirection::Sink,
                        gst::PadPresence::Always,
                        &gst::Caps::new_any(),
                    )
                    .unwrap(),
                ]
            });
            TEMPLATES.as_ref()
        }
    }

    impl BaseSinkImpl for SlowFileSink {
        fn start(&self) -> Result<(), gst::ErrorMessage> {
            let location = self.location.lock().unwrap().clone().unwrap_or_default();
            let file = std::fs::File::create(&location).map_err(|err| {
                gst::error_msg!(gst::ResourceError::OpenWrite, ["{location}: {err}"])
            })?;
            *self.file.lock().unwrap() = Some(file);
            Ok(())
        }

        fn stop(&self) -> Result<(), gst::ErrorMessage> {
            *self.file.lock().unwrap() = None;
            Ok(())
        }

        fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
            let data = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
            if let Some(file) = self.file.lock().unwrap().as_mut() {
                file.write_all(&data).map_err(|_| gst::FlowError::Error)?;
            }
            let mut left =
                Duration::from_secs_f64(data.len() as f64 / super::SLOW_DISK_BYTES_PER_SECOND);
            while !left.is_zero() {
                if self.unlocked.load(Ordering::SeqCst) {
                    return Err(gst::FlowError::Flushing);
                }
                let step = left.min(Duration::from_millis(10));
                std::thread::sleep(step);
                left -= step;
            }
            Ok(gst::FlowSuccess::Ok)
        }

        fn unlock(&self) -> Result<(), gst::ErrorMessage> {
            self.unlocked.store(true, Ordering::SeqCst);
            Ok(())
        }

        fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
            self.unlocked.store(false, Ordering::SeqCst);
            Ok(())
        }
    }
}

glib::wrapper! {
    pub struct SlowFileSink(ObjectSubclass<slow_file_sink::SlowFileSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

/// How fast the stand-in disk of [`register_slow_filesink`] writes.
pub const SLOW_DISK_BYTES_PER_SECOND: f64 = 1024.0 * 1024.0;

/// Puts every file this process writes with `filesink` (as splitmuxsink does the recordings) on
/// a slow disk.
pub fn register_slow_filesink() {
    // Loads the real one's plugin first: loading it later would register the real one again.
    gst::ElementFactory::make("filesink").build().unwrap();
    gst::Element::register(
        None,
        "filesink",
        gst::Rank::PRIMARY,
        SlowFileSink::static_type(),
    )
    .unwrap();
    let factory = gst::ElementFactory::find("filesink").unwrap();
    assert_eq!(factory.element_type(), SlowFileSink::static_type());
}
