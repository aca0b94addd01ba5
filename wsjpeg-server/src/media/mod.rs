// SPDX-License-Identifier: MIT
//! The video track and its packagers.
//!
//! A [`VideoTrack`] takes H.264 access units from whoever encodes them (a `wsh264sink`), keeps
//! the group of pictures a newcomer starts from, and answers each follower what to send next.
//! It knows nothing of transports: a packager ([`Format`]) turns an access unit into what one
//! transport sends, once per unit, and every viewer of that transport shares the result.

mod annexb;
pub mod fmp4;
mod packager;
mod packet;
mod sps;
mod track;
mod unit;
mod wsj;

pub use annexb::{access_units, codec_string, is_keyframe, nal_units};
pub use packager::{Format, PackagedUnit};
pub use packet::Packet;
pub use track::{Following, MAX_BACKLOG, Next, Producer, ProducerTaken, TrackInfo, VideoTrack};
pub use unit::AccessUnit;
pub use wsj::{KEYFRAME, WSJ_HEADER_LEN};
