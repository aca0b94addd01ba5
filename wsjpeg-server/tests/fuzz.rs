// SPDX-License-Identifier: MIT
//! Property-based fuzzing of what the server parses from clients, through its public API: JSON
//! messages, WebSocket frames and their reassembly, JPEG frames, recording names, then a few
//! hundred arbitrary requests and WebSocket sessions against live servers (token, Origin,
//! `document-root` paths, extreme numbers). Nothing may panic; a few properties say what the
//! answers must be. The parsers the public API does not show (tokens, Origin, paths, ranges)
//! have properties of their own beside them, in the crate's unit tests.
//!
//! Bounded for CI: each property runs a fixed number of cases (`WSJPEG_FUZZ_CASES` scales
//! them, e.g. `WSJPEG_FUZZ_CASES=20000` for a longer local run); the whole file takes seconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

mod common;

use common::{exchange_blocking as exchange, fixture, server_panics, watch_process};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use wsjpeg_server::protocol::{self, ClientMessage, MAX_CLIENT_MESSAGE, ServerMessage};
use wsjpeg_server::websocket::codec::{self, ClientInput, ParsedFrame};
use wsjpeg_server::{Config, NoEvents, Server, Settings, jpeg};

fn cases(default: u32) -> u32 {
    let wanted = std::env::var("WSJPEG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    match wanted {
        // The variable sets the count for the cheap properties; the others keep their ratio.
        Some(n) => (u64::from(n) * u64::from(default) / 2000).max(1) as u32,
        None => default,
    }
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        // Failures are printed with their minimal input; nothing is written into the tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- client JSON messages

/// JSON values shaped like client messages: the right keys and type names most of the time,
/// anything at all some of the time.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let word = prop_oneof![
        Just("pong".to_string()),
        Just("pause".to_string()),
        Just("resume".to_string()),
        Just("max-fps".to_string()),
        Just("time".to_string()),
        Just("type".to_string()),
        Just("fps".to_string()),
        Just("client".to_string()),
        Just("MaxFps".to_string()),
        any::<String>(),
    ];
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number,
        word.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A client message with the `type` it claims, and fields of any kind.
fn message_like() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![
            Just("pong"),
            Just("pause"),
            Just("resume"),
            Just("max-fps"),
            Just("time"),
            Just("detections"),
            Just("nope"),
        ],
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::collection::vec(
            (
                prop_oneof![
                    any::<String>(),
                    Just("frame".to_string()),
                    Just("time".to_string()),
                    Just("objects".to_string()),
                ],
                json_value(),
            ),
            0..3,
        ),
    )
        .prop_map(|(kind, fps, client, extra)| {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), kind.into());
            if let Some(fps) = fps {
                object.insert("fps".into(), fps);
            }
            if let Some(client) = client {
                object.insert("client".into(), client);
            }
            for (k, v) in extra {
                object.entry(k).or_insert(v);
            }
            serde_json::Value::Object(object)
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn client_messages_never_panic_on_any_text(text in any::<String>()) {
        let _ = protocol::parse_client_message(&text);
    }

    #[test]
    fn client_messages_never_panic_on_json_like_text(
        text in r#"[{}\[\]":,0-9a-z\-. eE+\\u]{0,64}"#
    ) {
        let _ = protocol::parse_client_message(&text);
    }

    #[test]
    fn client_messages_parse_as_their_type_says(value in prop_oneof![json_value(), message_like()]) {
        let text = value.to_string();
        match protocol::parse_client_message(&text) {
            Ok(message) => {
                let kind = value["type"].as_str().unwrap_or_default();
                match message {
                    ClientMessage::Pong => prop_assert_eq!(kind, "pong"),
                    ClientMessage::Pause => prop_assert_eq!(kind, "pause"),
                    ClientMessage::Resume => prop_assert_eq!(kind, "resume"),
                    ClientMessage::MaxFps { fps } => {
                        prop_assert_eq!(kind, "max-fps");
                        prop_assert!(fps.is_finite());
                    }
                    ClientMessage::Time { client } => {
                        prop_assert_eq!(kind, "time");
                        // The reply echoes the client's clock untouched.
                        let reply = ServerMessage::Time { client: &client, server: 1 }.to_json();
                        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
                        prop_assert_eq!(&reply["client"], &value["client"]);
                        prop_assert_eq!(&reply["type"], "time");
                    }
                    ClientMessage::Detections { frame, time, objects } => {
                        prop_assert_eq!(kind, "detections");
                        // Exactly one way of naming the frame made it through.
                        prop_assert!(frame.is_some() != time.is_some());
                        // Objects are checked when they are pushed, not when they are parsed.
                        let _ = wsjpeg_server::detections::validate(&objects);
                    }
                }
            }
            Err(err) => {
                // Errors go back to the client in an `error` message: short and JSON-safe.
                let shown = ServerMessage::Error { message: &err.to_string() }.to_json();
                prop_assert!(serde_json::from_str::<serde_json::Value>(&shown).is_ok());
            }
        }
    }

}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn deeply_nested_json_is_refused_without_overflowing_the_stack(
        depth in prop_oneof![1usize..120, 130usize..200_000],
        arrays in any::<bool>(),
    ) {
        // Valid JSON at every depth: a pause message with a nested extra field.
        let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
        let inner = if arrays { "" } else { "0" };
        let text = format!(
            r#"{{"type":"pause","x":{}{inner}{}}}"#,
            open.repeat(depth),
            close.repeat(depth)
        );
        let parsed = protocol::parse_client_message(&text);
        if depth < 120 {
            // Within the parser's nesting limit: the extra field is ignored.
            prop_assert_eq!(parsed, Ok(ClientMessage::Pause));
        } else {
            // Beyond it: an error, not a stack overflow.
            prop_assert!(parsed.is_err(), "depth {}", depth);
        }
    }
}

// ---------------------------------------------------------------- WebSocket frames

const OPCODES: [u8; 6] = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA];

/// How a client might encode a frame's length: shortest form, or needlessly long (allowed).
#[derive(Debug, Clone, Copy)]
enum LengthForm {
    Shortest,
    Sixteen,
    SixtyFour,
}

/// The codec's client frame, with its length field rewritten in the longer `form` when asked.
fn encode_client_frame(
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: [u8; 4],
    form: LengthForm,
) -> Vec<u8> {
    let shortest = codec::client_frame(fin, opcode, payload, mask);
    let header = codec::parse_header(&shortest).expect("the codec writes whole headers");
    let length: Vec<u8> = match form {
        LengthForm::Sixteen if payload.len() < 126 => {
            [&[0x80 | 126][..], &(payload.len() as u16).to_be_bytes()].concat()
        }
        LengthForm::SixtyFour if payload.len() <= usize::from(u16::MAX) => {
            [&[0x80 | 127][..], &(payload.len() as u64).to_be_bytes()].concat()
        }
        _ => return shortest,
    };
    // First byte, the longer length, then the mask and the masked payload as they were.
    [&shortest[..1], &length, &shortest[header.len - 4..]].concat()
}

fn length_form() -> impl Strategy<Value = LengthForm> {
    prop_oneof![
        3 => Just(LengthForm::Shortest),
        1 => Just(LengthForm::Sixteen),
        1 => Just(LengthForm::SixtyFour),
    ]
}

/// A valid frame: data frames of any size up to `max`, control frames short and final.
fn valid_frame(max: usize) -> impl Strategy<Value = (bool, u8, Vec<u8>)> {
    prop::sample::select(OPCODES.to_vec()).prop_flat_map(move |opcode| {
        let control = opcode & 0x8 != 0;
        let limit = if control { 125.min(max) } else { max };
        (
            if control {
                Just(true).boxed()
            } else {
                any::<bool>().boxed()
            },
            Just(opcode),
            prop::collection::vec(any::<u8>(), 0..=limit),
        )
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn frame_parser_never_panics_and_stays_in_bounds(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        max in 0usize..200,
    ) {
        match codec::parse_client_frame(&bytes, max) {
            ParsedFrame::Incomplete => {}
            ParsedFrame::Violation(code, _) => prop_assert!([1002, 1009].contains(&code)),
            ParsedFrame::Frame(frame, used) => {
                prop_assert!(used <= bytes.len());
                prop_assert!(frame.payload.len() <= max);
                prop_assert!(used >= frame.payload.len() + 6, "header and mask are counted");
                prop_assert!(OPCODES.contains(&frame.opcode));
                if frame.opcode & 0x8 != 0 {
                    prop_assert!(frame.fin && frame.payload.len() <= 125);
                }
            }
        }
    }

    #[test]
    fn frame_parser_never_panics_on_mostly_valid_headers(
        first in any::<u8>(),
        len_byte in any::<u8>(),
        extended in prop::collection::vec(any::<u8>(), 0..12),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![first, len_byte | 0x80];
        bytes.extend(extended);
        bytes.extend(tail);
        let _ = codec::parse_client_frame(&bytes, MAX_CLIENT_MESSAGE);
    }

    #[test]
    fn a_valid_masked_frame_round_trips(
        (fin, opcode, payload) in valid_frame(2048),
        mask in any::<[u8; 4]>(),
        form in length_form(),
        trailing in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let encoded = encode_client_frame(fin, opcode, &payload, mask, form);
        let mut buf = encoded.clone();
        buf.extend_from_slice(&trailing);
        match codec::parse_client_frame(&buf, 2048) {
            ParsedFrame::Frame(frame, used) => {
                prop_assert_eq!(used, encoded.len());
                prop_assert_eq!(frame.fin, fin);
                prop_assert_eq!(frame.opcode, opcode);
                prop_assert_eq!(frame.payload, payload);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        // Any strict prefix is just incomplete.
        for cut in 0..encoded.len() {
            prop_assert_eq!(
                codec::parse_client_frame(&encoded[..cut], 2048),
                ParsedFrame::Incomplete
            );
        }
    }

    #[test]
    fn oversized_frames_are_refused_from_their_header_alone(
        opcode in prop::sample::select(vec![0x0u8, 0x1, 0x2]),
        len in (MAX_CLIENT_MESSAGE as u64 + 1)..=u64::MAX,
        mask in any::<[u8; 4]>(),
    ) {
        let mut header = vec![0x80 | opcode, 0x80 | 127];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(&mask);
        prop_assert!(matches!(
            codec::parse_client_frame(&header, MAX_CLIENT_MESSAGE),
            ParsedFrame::Violation(1009, _)
        ));
    }
}

// ---------------------------------------------------------------- reassembly, as the server reads

/// Feeds `data` to the server's message reader in `chunks` (then the rest at once) and returns
/// what it reported, in order, as text.
fn read_as_server(data: &[u8], chunks: &[usize]) -> Vec<String> {
    let mut reader = codec::MessageReader::default();
    let mut seen = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter();
    loop {
        while let Some(input) = reader.next_input() {
            seen.push(describe(&input));
        }
        if rest.is_empty() {
            return seen;
        }
        let size = sizes
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        reader.push(&rest[..size]);
        rest = &rest[size..];
    }
}

fn describe(input: &ClientInput) -> String {
    format!("{input:?}")
}

/// A frame as a fuzzed client might send it: mostly valid, sometimes not at all.
fn any_client_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (valid_frame(300), any::<[u8; 4]>(), length_form())
            .prop_map(|((fin, op, p), mask, form)| encode_client_frame(fin, op, &p, mask, form)),
        2 => (any::<bool>(), 0u8..16, prop::collection::vec(any::<u8>(), 0..200), any::<[u8; 4]>())
            .prop_map(|(fin, op, p, mask)| encode_client_frame(fin, op, &p, mask, LengthForm::Shortest)),
        1 => prop::collection::vec(any::<u8>(), 1..40),
    ]
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn reading_does_not_depend_on_how_bytes_arrive(
        frames in prop::collection::vec(any_client_frame(), 0..12),
        chunks in prop::collection::vec(1usize..64, 0..64),
    ) {
        let data = frames.concat();
        let whole = read_as_server(&data, &[usize::MAX]);
        let chunked = read_as_server(&data, &chunks);
        prop_assert_eq!(&whole, &chunked);
        // Nothing is reported after the end of the conversation.
        if let Some(pos) = whole
            .iter()
            .position(|s| s.starts_with("Close") || s.starts_with("Violation"))
        {
            prop_assert_eq!(pos, whole.len() - 1);
        }
    }

    #[test]
    fn a_fragmented_message_reads_like_the_whole_one(
        message in prop_oneof![
            Just(r#"{"type":"pause"}"#.to_string()),
            Just(r#"{"type":"resume"}"#.to_string()),
            (0.0f64..240.0).prop_map(|f| format!(r#"{{"type":"max-fps","fps":{f}}}"#)),
            any::<u64>().prop_map(|t| format!(r#"{{"type":"time","client":{t}}}"#)),
            any::<String>().prop_map(|s| serde_json::json!({"type": "pong", "note": s}).to_string()),
            any::<String>(),
        ],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        pings in prop::collection::vec(any::<bool>(), 6),
        mask in any::<[u8; 4]>(),
    ) {
        let bytes = message.as_bytes();
        // Cut anywhere, even inside a UTF-8 sequence.
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut pieces = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            if p >= start {
                pieces.push(&bytes[start..p]);
                start = p;
            }
        }
        let mut stream = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { 0x1 } else { 0x0 };
            let fin = i == pieces.len() - 1;
            stream.extend(encode_client_frame(fin, opcode, piece, mask, LengthForm::Shortest));
            if pings[i % pings.len()] && !fin {
                stream.extend(encode_client_frame(true, 0x9, b"p", mask, LengthForm::Shortest));
            }
        }
        let fragmented: Vec<String> = read_as_server(&stream, &[usize::MAX])
            .into_iter()
            .filter(|s| !s.starts_with("Ping"))
            .collect();
        let whole = read_as_server(
            &encode_client_frame(true, 0x1, bytes, mask, LengthForm::Shortest),
            &[usize::MAX],
        );
        prop_assert_eq!(fragmented, whole);
    }

    #[test]
    fn assembler_survives_any_frame_sequence(
        frames in prop::collection::vec(
            (
                any::<bool>(),
                prop::sample::select(OPCODES.to_vec()),
                prop_oneof![
                    4 => prop::collection::vec(any::<u8>(), 0..64),
                    1 => (any::<u8>(), 0usize..40_000).prop_map(|(b, n)| vec![b; n]),
                ],
            ),
            0..16,
        )
    ) {
        let mut assembler = codec::MessageAssembler::default();
        for (fin, opcode, payload) in frames {
            let _ = assembler.push(codec::ClientFrame { fin, opcode, payload });
        }
    }
}

// ---------------------------------------------------------------- JPEG frames

/// Frames GStreamer's `jpegenc` made (quality 75), kept as files: the crate has no GStreamer.
fn real_jpegs() -> &'static [(u32, u32, Vec<u8>)] {
    static JPEGS: OnceLock<Vec<(u32, u32, Vec<u8>)>> = OnceLock::new();
    JPEGS.get_or_init(|| {
        [(64, 48, "ball"), (320, 240, "snow"), (33, 17, "smpte")]
            .into_iter()
            .map(|(w, h, pattern)| (w, h, fixture(&format!("{pattern}-{w}x{h}.jpg"))))
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    PadZeros(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => (0usize..3000).prop_map(Mutation::PadZeros),
    ]
}

fn apply(data: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Set(i, b) if !data.is_empty() => {
            let i = i.index(data.len());
            data[i] = *b;
        }
        Mutation::Insert(i, bytes) => {
            let i = i.index(data.len() + 1);
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove(i, n) if !data.is_empty() => {
            let i = i.index(data.len());
            let end = (i + n).min(data.len());
            data.drain(i..end);
        }
        Mutation::Truncate(i) => data.truncate(i.index(data.len() + 1)),
        Mutation::PadZeros(n) => data.extend(std::iter::repeat_n(0u8, *n)),
        _ => {}
    }
}

fn check_validate(data: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(end) = jpeg::validate(data) {
        prop_assert!((jpeg::MIN_JPEG_SIZE..=data.len()).contains(&end));
        prop_assert_eq!(&data[..2], &[0xFF, 0xD8]);
        prop_assert_eq!(&data[end - 2..end], &[0xFF, 0xD9]);
        prop_assert!(
            data[end..].iter().all(|&b| b == 0),
            "only zero padding is cut"
        );
    }
    let _ = jpeg::dimensions(data);
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn jpeg_checks_never_panic_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        check_validate(&data)?;
    }

    #[test]
    fn jpeg_checks_never_panic_on_marker_soup(
        segments in prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..24)),
            0..24,
        ),
    ) {
        let mut data = vec![0xFF, 0xD8];
        for (marker, body) in segments {
            data.extend_from_slice(&[0xFF, marker]);
            data.extend_from_slice(&((body.len() as u16).wrapping_add(2)).to_be_bytes());
            data.extend(body);
        }
        data.extend(std::iter::repeat_n(0x11u8, 128));
        data.extend_from_slice(&[0xFF, 0xD9]);
        check_validate(&data)?;
    }

    #[test]
    fn jpeg_checks_survive_mutated_real_frames(
        which in 0usize..3,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut data = real_jpegs()[which].2.clone();
        for m in &mutations {
            apply(&mut data, m);
        }
        check_validate(&data)?;
    }

    #[test]
    fn real_frames_pass_with_their_size_and_padding(which in 0usize..3, padding in 0usize..1000) {
        let (width, height, original) = &real_jpegs()[which];
        let mut data = original.clone();
        data.extend(std::iter::repeat_n(0u8, padding));
        prop_assert_eq!(jpeg::validate(&data), Ok(original.len()));
        prop_assert_eq!(jpeg::dimensions(&data), Some((*width, *height)));
    }

    #[test]
    fn truncated_real_frames_are_refused(which in 0usize..3, cut in any::<prop::sample::Index>()) {
        let original = &real_jpegs()[which].2;
        let prefix = &original[..cut.index(original.len() - 1)];
        let mut end = prefix.len();
        while end > 0 && prefix[end - 1] == 0 {
            end -= 1;
        }
        // Only a cut that happens to end on an EOI marker could look complete.
        if !prefix[..end].ends_with(&[0xFF, 0xD9]) {
            prop_assert!(jpeg::validate(prefix).is_err(), "a {}-byte prefix passed", prefix.len());
        }
    }
}

// ---------------------------------------------------------------- document-root paths

const SECRET: &str = "SECRET-d3c1: outside the document root";

/// root/{index.html, app.js, sub/page.html, sub/deep/x.css, links…} and secrets around it.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
    inside: Vec<&'static str>,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wsjpeg-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::create_dir_all(dir.join("root2")).unwrap();
        let inside = vec![
            "index.html",
            "app.js",
            "sub/page.html",
            "sub/deep/x.css",
            "sub/index.html",
        ];
        for f in &inside {
            std::fs::write(root.join(f), "inside").unwrap();
        }
        for f in ["secret.txt", "outside/secret.txt", "root2/index.html"] {
            std::fs::write(dir.join(f), SECRET).unwrap();
        }
        use std::os::unix::fs::symlink;
        symlink(dir.join("secret.txt"), root.join("link.txt")).unwrap();
        symlink(dir.join("outside"), root.join("linkdir")).unwrap();
        symlink("../../secret.txt", root.join("sub/rel.txt")).unwrap();
        symlink("../root2", root.join("sub/sibling")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink(root.join("app.js"), root.join("sub/app-link.js")).unwrap();
        Tree { dir, root, inside }
    })
}

/// Request paths built from the pieces traversal attacks are made of.
fn request_path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/",
        "/",
        "/",
        "..",
        "..",
        ".",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "%00",
        "%",
        "%zz",
        "%c0%ae",
        "%252e",
        "sub",
        "deep",
        "index.html",
        "app.js",
        "secret.txt",
        "link.txt",
        "linkdir",
        "sibling",
        "rel.txt",
        "etc",
        "passwd",
        "outside",
        "root",
        "root2",
        "~",
        "//",
        "é",
        "%e9",
        " ",
        "%20",
        ";",
        "?",
        "#",
        "*",
    ]);
    prop_oneof![
        8 => prop::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat())),
        1 => any::<String>(),
        1 => "[/.%a-z0-9\\\\]{0,40}",
    ]
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn document_paths_never_escape_the_root(path in request_path()) {
        let (status, body) = exchange(live().open.local_addr().port(), &get(&request_target(&path), &[]));
        if status == 200 {
            // Every file inside the root says "inside"; the page would too.
            prop_assert_eq!(String::from_utf8_lossy(&body), "inside", "{:?}", path);
        }
    }

    #[test]
    fn every_file_inside_the_root_is_reachable(which in 0usize..5, encode in any::<bool>()) {
        let file = tree().inside[which];
        let path = if encode {
            file.bytes().map(|b| format!("%{b:02x}")).collect::<String>()
        } else {
            file.to_string()
        };
        let (status, body) = exchange(live().open.local_addr().port(), &get(&format!("/{path}"), &[]));
        prop_assert_eq!(status, 200, "{}", path);
        prop_assert_eq!(String::from_utf8_lossy(&body), "inside");
    }
}

#[test]
fn the_root_itself_and_its_folders_serve_their_index() {
    for path in ["/", "/sub/", "/sub/app-link.js"] {
        let (status, body) = exchange(live().open.local_addr().port(), &get(path, &[]));
        assert_eq!(
            (status, String::from_utf8_lossy(&body).as_ref()),
            (200, "inside"),
            "{path}"
        );
    }
    assert!(tree().dir.join("secret.txt").exists());
}

/// Only what a client can put on a request line: no spaces, no control bytes.
fn request_target(path: &str) -> String {
    let target: String = path
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if target.starts_with('/') {
        target
    } else {
        format!("/{target}")
    }
}

// ---------------------------------------------------------------- a live server

struct LiveServers {
    /// document-root set, no token.
    open: Server,
    /// auth-token set.
    locked: Server,
}

/// Two servers for the whole run, each fed a real JPEG ten times a second.
fn live() -> &'static LiveServers {
    static LIVE: OnceLock<LiveServers> = OnceLock::new();
    LIVE.get_or_init(|| {
        watch_process();
        let start = |settings: Settings| {
            let config = Config {
                address: "127.0.0.1".into(),
                port: 0,
                tls: None,
                settings,
                h264: None,
            };
            Server::start(config, Arc::new(NoEvents)).expect("a live server starts")
        };
        LiveServers {
            open: start(Settings {
                document_root: Some(tree().root.clone()),
                ..Settings::default()
            }),
            locked: start(Settings {
                auth_token: Some("Fuzz-Token-8d2a".into()),
                ..Settings::default()
            }),
        }
    })
    .feeding()
}

impl LiveServers {
    fn feeding(&'static self) -> &'static Self {
        static FEEDER: OnceLock<()> = OnceLock::new();
        FEEDER.get_or_init(|| {
            let frame = fixture("smpte-160x120.jpg");
            std::thread::spawn(move || {
                loop {
                    for server in [&self.open, &self.locked] {
                        let _ = server.publish(&frame, protocol::unix_time_us());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        });
        self
    }
}

/// After every live case: the server still answers a health check.
fn healthy(port: u16) -> bool {
    exchange(port, &get("/healthz", &[])).0 == 200
}

fn get(target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

fn upgrade_request(port: u16, path: &str) -> String {
    let key = codec::client_key(*b"wsjpeg fuzz key!");
    codec::upgrade_request(&format!("127.0.0.1:{port}"), path, &key, "")
}

/// A WebSocket viewer on a blocking socket, speaking through the server's own codec.
struct Viewer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Viewer {
    fn connect(port: u16) -> Viewer {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("server accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(upgrade_request(port, "/stream").as_bytes())
            .unwrap();
        let mut viewer = Viewer {
            stream,
            buf: Vec::new(),
        };
        while !viewer.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(viewer.fill(), "no handshake answer");
        }
        let end = viewer
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4;
        assert!(
            viewer.buf.starts_with(b"HTTP/1.1 101"),
            "{:?}",
            String::from_utf8_lossy(&viewer.buf)
        );
        viewer.buf.drain(..end);
        viewer
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.stream.write_all(&codec::client_frame(
            true,
            codec::OPCODE_TEXT,
            text.as_bytes(),
            [3, 1, 4, 1],
        ))
    }

    /// The next text message from the server; `None` when the connection ends or stalls.
    fn next_text(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(header) = codec::parse_header(&self.buf) {
                let end = header.len + header.payload_len as usize;
                if self.buf.len() >= end {
                    let payload: Vec<u8> = self.buf.drain(..end).skip(header.len).collect();
                    match header.opcode {
                        codec::OPCODE_TEXT => return serde_json::from_slice(&payload).ok(),
                        codec::OPCODE_CLOSE => return None,
                        _ => continue,
                    }
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }
}

fn http_header() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            Just("Authorization".to_string()),
            Just("Cookie".to_string()),
            Just("Origin".to_string()),
            Just("Range".to_string()),
            Just("Accept-Encoding".to_string()),
            Just("Upgrade".to_string()),
            "[A-Za-z-]{1,12}",
        ],
        "[ -~]{0,60}",
    )
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn live_server_paths_never_leak_or_fail(path in request_path(), headers in prop::collection::vec(http_header(), 0..4)) {
        let target = request_target(&path);
        let (status, body) = exchange(live().open.local_addr().port(), &get(&target, &headers));
        prop_assert!(!String::from_utf8_lossy(&body).contains("SECRET-d3c1"), "{} leaked", target);
        prop_assert!(!String::from_utf8_lossy(&body).contains("root:x:0"), "{} leaked", target);
        prop_assert!(status != 0 && status < 500 || status == 503, "{} answered {}", target, status);
        prop_assert!(healthy(live().open.local_addr().port()), "unhealthy after {}", target);
    }

    #[test]
    fn live_server_without_the_token_always_says_401(
        path in prop::sample::select(vec!["/", "/status", "/metrics", "/snapshot.jpg", "/stream.mjpg", "/stream", "/?action=snapshot"]),
        q in "[ -~]{0,60}",
        headers in prop::collection::vec(http_header(), 0..4),
    ) {
        let q: String = q
            .chars()
            .map(|c| if c.is_ascii_graphic() && c != '#' { c } else { '_' })
            .collect();
        prop_assume!(!q.contains("Fuzz-Token-8d2a"));
        prop_assume!(!headers.iter().any(|(_, v)| v.contains("Fuzz-Token-8d2a")));
        let target = if q.is_empty() { path.to_string() } else { format!("{path}?{q}") };
        let (status, body) = exchange(live().locked.local_addr().port(), &get(&target, &headers));
        prop_assert!(status == 401 || status == 400, "{} answered {}", target, status);
        prop_assert!(body.len() < 200);
        prop_assert!(healthy(live().locked.local_addr().port()), "unhealthy after {}", target);
    }

    #[test]
    fn live_websocket_survives_any_bytes(frames in prop::collection::vec(any_client_frame(), 1..6)) {
        let port = live().open.local_addr().port();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(upgrade_request(port, "/stream").as_bytes()).unwrap();
        let _ = stream.write_all(&frames.concat());
        // End of input: whatever the server was waiting for will not come.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut raw = Vec::new();
        let started = Instant::now();
        let _ = stream.read_to_end(&mut raw);
        prop_assert!(started.elapsed() < Duration::from_secs(4), "the server let go in time");
        prop_assert!(raw.starts_with(b"HTTP/1.1 101"));
        prop_assert!(healthy(port));
    }
}

/// Numbers at and beyond the edges of what a double or an integer holds, written as a client
/// might: the cases that once panicked a viewer task (`max-fps` 1e-300).
fn extreme_number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-0",
            "-0.0",
            "1e-300",
            "5e-324",
            "-5e-324",
            "2.2250738585072014e-308",
            "1e300",
            "-1e300",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "1e309",
            "-1e400",
            "1e-400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "0.1",
            "1",
            "\"NaN\"",
            "\"Infinity\"",
            "null",
            "true",
            "[]",
            "{}",
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<i64>().prop_map(|i| i.to_string()),
    ]
}

/// A client message of any known type whose number fields (and an extra one) hold `n`.
fn message_with_number() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["max-fps", "time", "pause", "resume", "pong"]),
        extreme_number(),
        extreme_number(),
    )
        .prop_map(|(kind, a, b)| {
            format!(r#"{{"type":"{kind}","fps":{a},"client":{b},"extra":{a}}}"#)
        })
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn live_viewer_survives_extreme_numbers_in_every_message(
        messages in prop::collection::vec(message_with_number(), 1..6),
    ) {
        let port = live().open.local_addr().port();
        let mut viewer = Viewer::connect(port);
        for text in &messages {
            prop_assert!(viewer.send_text(text).is_ok(), "sending {}", text);
        }
        // The session still runs after all of them: it answers a clock request.
        // (Earlier `time` messages have answers of their own; this one's says 4242.)
        viewer.send_text(r#"{"type":"time","client":4242}"#).unwrap();
        let answered = std::iter::from_fn(|| viewer.next_text())
            .any(|m| m["type"] == "time" && m["client"] == 4242);
        let outcome = if answered { Ok(()) } else { Err(format!("no clock answer after {messages:?}")) };
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
        prop_assert_eq!(server_panics(), 0, "a server thread panicked");
        prop_assert!(healthy(port));
    }
}
