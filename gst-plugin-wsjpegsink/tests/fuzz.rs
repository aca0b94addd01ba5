// SPDX-License-Identifier: MIT
//! Property-based fuzzing of everything the server parses from clients: JSON messages,
//! WebSocket frames and their reassembly, query strings, tokens, Origin headers, the
//! `allowed-origins` list, JPEG frames and `document-root` paths, first as functions, then a few
//! hundred arbitrary requests against a live server. Nothing may panic; a few properties say
//! what the answers must be.
//!
//! Bounded for CI: each property runs a fixed number of cases (`WSJPEG_FUZZ_CASES` scales
//! them, e.g. `WSJPEG_FUZZ_CASES=20000` for a longer local run); the whole file takes seconds.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use gstwsjpeg::jpeg;
use gstwsjpeg::protocol::{self, ClientMessage, MAX_CLIENT_MESSAGE, ServerMessage};
use gstwsjpeg::server::AllowedOrigins;
use gstwsjpeg::server::parsers;
use gstwsjpeg::server::websocket::{self, ClientInput, ParsedFrame};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

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
            Just("nope"),
        ],
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::collection::vec((any::<String>(), json_value()), 0..3),
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

fn encode_client_frame(
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: [u8; 4],
    form: LengthForm,
) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    let len = payload.len();
    match form {
        LengthForm::Shortest if len < 126 => frame.push(0x80 | len as u8),
        LengthForm::Shortest | LengthForm::Sixteen if len <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    frame
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
        match websocket::parse_client_frame(&bytes, max) {
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
        let _ = websocket::parse_client_frame(&bytes, MAX_CLIENT_MESSAGE);
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
        match websocket::parse_client_frame(&buf, 2048) {
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
                websocket::parse_client_frame(&encoded[..cut], 2048),
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
            websocket::parse_client_frame(&header, MAX_CLIENT_MESSAGE),
            ParsedFrame::Violation(1009, _)
        ));
    }
}

// ---------------------------------------------------------------- reassembly, as the server reads

/// An in-memory socket that hands out its bytes in the given chunk sizes, then EOF.
struct ChunkedReader {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<usize>,
    next_chunk: usize,
}

impl tokio::io::AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let want = this
            .chunks
            .get(this.next_chunk)
            .copied()
            .unwrap_or(usize::MAX)
            .max(1);
        this.next_chunk += 1;
        let n = want.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Runs the server's own reading loop over `data` delivered in `chunks`, and returns what it
/// reported, in order, as text.
fn read_as_server(data: &[u8], chunks: &[usize]) -> Vec<String> {
    let reader = ChunkedReader {
        data: data.to_vec(),
        pos: 0,
        chunks: chunks.to_vec(),
        next_chunk: 0,
    };
    runtime().block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let read = websocket::read_client(reader, bytes::BytesMut::new(), tx);
        let collect = async {
            let mut seen = Vec::new();
            while let Some(input) = rx.recv().await {
                seen.push(describe(&input));
            }
            seen
        };
        let ((), seen) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(read, collect)
        })
        .await
        .expect("the reader finishes once the input ends");
        seen
    })
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
        let mut assembler = websocket::MessageAssembler::default();
        for (fin, opcode, payload) in frames {
            let _ = assembler.push(websocket::ClientFrame { fin, opcode, payload });
        }
    }
}

// ---------------------------------------------------------------- query strings, tokens, Origin

/// Header values as a client can send them: visible ASCII, spaces, tabs and obs-text.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff],
        0..80,
    )
    .prop_map(|bytes| HeaderValue::from_bytes(&bytes).expect("valid header bytes"))
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec(
        (
            prop::sample::select(vec![
                "authorization",
                "cookie",
                "origin",
                "host",
                "x-forwarded-host",
                "sec-websocket-protocol",
            ]),
            prop_oneof![
                header_value(),
                "(Bearer|bearer|BEARER|Basic) [ -~]{0,40}"
                    .prop_map(|s| HeaderValue::from_str(&s).unwrap()),
                "([a-z_]{1,12}=[ -:<-~]{0,20}; ?){0,4}"
                    .prop_map(|s| HeaderValue::from_str(&s).unwrap()),
                "(https?|ws|null|file)://[a-z0-9.\\-\\[\\]:]{0,30}/?"
                    .prop_map(|s| HeaderValue::from_str(&s).unwrap()),
            ],
        ),
        0..6,
    )
    .prop_map(|pairs| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(HeaderName::from_static(name), value);
        }
        headers
    })
}

/// Query strings: well-formed pairs, broken escapes, and plain noise.
fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(("[a-z]{0,6}", any::<String>()), 0..5)
            .prop_map(|pairs| serde_urlencoded::to_string(pairs).unwrap()),
        "[a-z=&%0-9A-F+;]{0,60}",
        any::<String>(),
    ]
}

/// A token such as a user would configure.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~+/=-]{8,40}"
}

/// Where a client may present its token.
#[derive(Debug, Clone)]
enum Presented {
    Query,
    Bearer(String),
    Cookie,
}

fn presented() -> impl Strategy<Value = Presented> {
    prop_oneof![
        Just(Presented::Query),
        prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")]
            .prop_map(|s| Presented::Bearer(s.to_string())),
        Just(Presented::Cookie),
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn query_parsing_never_panics(q in query(), name in "[a-z]{0,6}") {
        let _ = parsers::query_param(&q, &name);
    }

    #[test]
    fn token_extraction_never_panics(q in query(), headers in header_map(), expected in prop::option::of(token())) {
        let _ = parsers::presented_tokens(&q, &headers);
        let accepted = parsers::token_accepted(expected.as_deref(), &q, &headers);
        if expected.is_none() {
            prop_assert!(accepted, "no token configured: everything passes");
        }
    }

    #[test]
    fn a_token_is_found_wherever_it_is_presented(
        secret in token(),
        place in presented(),
        noise_pairs in prop::collection::vec(("[a-su-z][a-z]{0,5}", any::<String>()), 0..4),
        noise_headers in header_map(),
    ) {
        let mut headers = HeaderMap::new();
        // Noise first: the real token must still be found after any amount of it, but noise
        // that is itself a (wrong) token in the same place is not what this is about.
        for (name, value) in noise_headers.iter() {
            if name != "authorization" && name != "cookie" {
                headers.append(name.clone(), value.clone());
            }
        }
        let mut pairs = noise_pairs.clone();
        match &place {
            Presented::Query => pairs.insert(pairs.len() / 2, ("token".into(), secret.clone())),
            Presented::Bearer(scheme) => {
                headers.append("authorization", HeaderValue::from_str(&format!("{scheme} {secret}")).unwrap());
            }
            Presented::Cookie => {
                headers.append(
                    "cookie",
                    HeaderValue::from_str(&format!("theme=dark; wsjpeg_token={secret}; lang=en")).unwrap(),
                );
            }
        }
        let q = serde_urlencoded::to_string(&pairs).unwrap();
        prop_assert!(
            parsers::token_accepted(Some(&secret), &q, &headers),
            "{:?} not accepted from query {:?} headers {:?}", place, q, headers
        );
    }

    #[test]
    fn a_wrong_token_is_never_accepted(
        secret in token(),
        q in query(),
        headers in header_map(),
        near_miss in 0usize..4,
    ) {
        // Anything the client made up, plus near misses of the real token.
        let mut headers = headers;
        let wrong = match near_miss {
            0 => format!("{secret}x"),
            1 => secret[..secret.len() - 1].to_string(),
            2 => secret.to_ascii_uppercase().replace(|c: char| !c.is_ascii_uppercase(), "Q"),
            _ => String::new(),
        };
        if wrong != secret {
            headers.append("authorization", HeaderValue::from_str(&format!("Bearer {wrong}")).unwrap());
            headers.append("cookie", HeaderValue::from_str(&format!("wsjpeg_token={wrong}")).unwrap());
            let presented = parsers::presented_tokens(&q, &headers);
            prop_assume!(!presented.contains(&secret));
            prop_assert!(!parsers::token_accepted(Some(&secret), &q, &headers));
        }
    }

    #[test]
    fn constant_time_eq_is_equality(a in prop::collection::vec(any::<u8>(), 0..40), b in prop::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(parsers::constant_time_eq(&a, &b), a == b);
        prop_assert!(parsers::constant_time_eq(&a, &a));
    }

    #[test]
    fn allowed_origins_parse_never_panics(list in any::<String>()) {
        match AllowedOrigins::parse(&list) {
            AllowedOrigins::SameHost => prop_assert!(list.split(',').all(|s| s.trim().trim_end_matches('/').is_empty())),
            AllowedOrigins::Any => prop_assert!(list.split(',').any(|s| s.trim().trim_end_matches('/') == "*")),
            AllowedOrigins::List(entries) => {
                prop_assert!(!entries.is_empty());
                for e in entries {
                    prop_assert!(!e.is_empty() && !e.ends_with('/'));
                    prop_assert_eq!(e.to_ascii_lowercase(), e.clone());
                }
            }
        }
    }

    #[test]
    fn origin_check_never_panics_and_follows_the_rules(
        list in prop::collection::vec("(https?://)?[a-zA-Z0-9.\\-:*]{0,20}/?", 0..4),
        headers in header_map(),
        secure in any::<bool>(),
    ) {
        let allowed = AllowedOrigins::parse(&list.join(","));
        let scheme = if secure { "https" } else { "http" };
        let ok = parsers::origin_allowed(&allowed, &headers, scheme);
        if !headers.contains_key("origin") {
            prop_assert!(ok, "requests without Origin pass");
        }
        // `*` takes any Origin a browser can send (ASCII); a binary one is refused anyway.
        let ascii_origin = headers.get("origin").is_none_or(|o| o.to_str().is_ok());
        if allowed == AllowedOrigins::Any {
            prop_assert_eq!(ok, ascii_origin);
        }
        if let (AllowedOrigins::List(entries), Some(origin)) = (&allowed, headers.get("origin")) {
            let normalized = origin
                .to_str()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase());
            prop_assert_eq!(ok, normalized.is_ok_and(|o| entries.contains(&o)));
        }
    }

    #[test]
    fn same_host_accepts_its_own_pages_only(
        host in "[a-z0-9][a-z0-9.\\-]{0,20}(:[0-9]{1,5})?",
        other in "[a-z0-9][a-z0-9.\\-]{0,20}(:[0-9]{1,5})?",
        scheme in prop_oneof![Just("http"), Just("https")],
        upper in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_str(&host).unwrap());
        let origin = format!("{scheme}://{host}");
        let origin = if upper { origin.to_ascii_uppercase() } else { origin };
        headers.insert("origin", HeaderValue::from_str(&origin).unwrap());
        let same_host = |headers: &HeaderMap, scheme| {
            parsers::origin_allowed(&AllowedOrigins::SameHost, headers, scheme)
        };
        prop_assert!(same_host(&headers, scheme));
        let other_scheme = if scheme == "https" { "http" } else { "https" };
        prop_assert!(!same_host(&headers, other_scheme), "another scheme is another origin");
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        let without_default = |a: &str| a.strip_suffix(default_port).unwrap_or(a).to_string();
        if without_default(&other) != without_default(&host) {
            headers.insert("origin", HeaderValue::from_str(&format!("{scheme}://{other}")).unwrap());
            prop_assert!(!same_host(&headers, scheme));
        }
    }
}

// ---------------------------------------------------------------- JPEG frames

fn real_jpegs() -> &'static [(u32, u32, Vec<u8>)] {
    static JPEGS: OnceLock<Vec<(u32, u32, Vec<u8>)>> = OnceLock::new();
    JPEGS.get_or_init(|| {
        [(64, 48, "ball"), (320, 240, "snow"), (33, 17, "smpte")]
            .into_iter()
            .map(|(w, h, pattern)| (w, h, common::encode_jpeg(w, h, pattern, 75)))
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

fn check_resolution(path: &str) -> Result<(), TestCaseError> {
    let t = tree();
    if let Some(file) = parsers::resolve_document_path(&t.root, path) {
        let root = t.root.canonicalize().unwrap();
        prop_assert!(
            file.starts_with(&root),
            "{:?} resolved outside: {:?}",
            path,
            file
        );
        prop_assert!(file.is_file());
        let content = std::fs::read_to_string(&file).unwrap_or_default();
        prop_assert_eq!(content, "inside", "{:?} -> {:?}", path, file);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn document_paths_never_escape_the_root(path in request_path()) {
        check_resolution(&path)?;
    }

    #[test]
    fn every_file_inside_the_root_is_reachable(which in 0usize..5, encode in any::<bool>()) {
        let t = tree();
        let file = t.inside[which];
        let path = if encode {
            file.bytes().map(|b| format!("%{b:02x}")).collect::<String>()
        } else {
            file.to_string()
        };
        let resolved = parsers::resolve_document_path(&t.root, &format!("/{path}"));
        prop_assert_eq!(resolved, Some(t.root.join(file).canonicalize().unwrap()));
    }
}

#[test]
fn the_root_itself_and_its_folders_serve_their_index() {
    let t = tree();
    let root = t.root.canonicalize().unwrap();
    assert_eq!(
        parsers::resolve_document_path(&t.root, "/"),
        Some(root.join("index.html"))
    );
    assert_eq!(
        parsers::resolve_document_path(&t.root, "/sub/"),
        Some(root.join("sub/index.html"))
    );
    assert_eq!(
        parsers::resolve_document_path(&t.root, "/sub/app-link.js"),
        Some(root.join("app.js"))
    );
    assert!(t.dir.join("secret.txt").exists());
}

// ---------------------------------------------------------------- a live server

struct LiveServers {
    /// document-root set, no token.
    open: common::Server,
    /// auth-token set.
    locked: common::Server,
}

// The pipelines are only ever touched from the test threads through GStreamer's thread-safe
// API; the statics just keep them alive for the whole run.
fn live() -> &'static LiveServers {
    static LIVE: OnceLock<LiveServers> = OnceLock::new();
    LIVE.get_or_init(|| LiveServers {
        open: common::Server::test_pattern(
            160,
            120,
            10,
            &format!("document-root={}", tree().root.display()),
        ),
        locked: common::Server::test_pattern(160, 120, 10, "auth-token=Fuzz-Token-8d2a"),
    })
}

/// After every live case: the server still answers a health check.
fn healthy(port: u16) -> bool {
    common::exchange_blocking(port, &request_bytes("/healthz", &[])).0 == 200
}

fn request_bytes(target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
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
        // Only what a client can put on a request line: no spaces, no control bytes.
        let target: String = path
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        let target = if target.starts_with('/') { target } else { format!("/{target}") };
        let (status, body) = common::exchange_blocking(live().open.port, &request_bytes(&target, &headers));
        prop_assert!(!String::from_utf8_lossy(&body).contains("SECRET-d3c1"), "{} leaked", target);
        prop_assert!(!String::from_utf8_lossy(&body).contains("root:x:0"), "{} leaked", target);
        prop_assert!(status != 0 && status < 500 || status == 503, "{} answered {}", target, status);
        prop_assert!(healthy(live().open.port), "unhealthy after {}", target);
    }

    #[test]
    fn live_server_without_the_token_always_says_401(
        path in prop::sample::select(vec!["/", "/status", "/metrics", "/snapshot.jpg", "/stream.mjpg", "/stream", "/?action=snapshot"]),
        q in query(),
        headers in prop::collection::vec(http_header(), 0..4),
    ) {
        let q: String = q
            .chars()
            .map(|c| if c.is_ascii_graphic() && c != '#' { c } else { '_' })
            .collect();
        prop_assume!(!q.contains("Fuzz-Token-8d2a"));
        prop_assume!(!headers.iter().any(|(_, v)| v.contains("Fuzz-Token-8d2a")));
        let target = if q.is_empty() { path.to_string() } else { format!("{path}?{q}") };
        let (status, body) = common::exchange_blocking(live().locked.port, &request_bytes(&target, &headers));
        prop_assert!(status == 401 || status == 400, "{} answered {}", target, status);
        prop_assert!(body.len() < 200);
        prop_assert!(healthy(live().locked.port), "unhealthy after {}", target);
    }

    #[test]
    fn live_websocket_survives_any_bytes(frames in prop::collection::vec(any_client_frame(), 1..6)) {
        let port = live().open.port;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(common::upgrade_request(port, "/stream", "").as_bytes()).unwrap();
        let _ = stream.write_all(&frames.concat());
        // End of input: whatever the server was waiting for will not come.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut raw = Vec::new();
        let started = std::time::Instant::now();
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
        let port = live().open.port;
        let outcome = runtime().block_on(async {
            use futures_util::SinkExt;
            let mut ws = common::connect(port, "/stream").await;
            for text in &messages {
                ws.send(tokio_tungstenite::tungstenite::Message::text(text.as_str()))
                    .await
                    .map_err(|e| format!("sending {text}: {e}"))?;
            }
            // The session still runs after all of them: it answers a clock request.
            // (Earlier `time` messages have answers of their own; this one's says 4242.)
            common::send_json(&mut ws, serde_json::json!({"type": "time", "client": 4242})).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let answered = loop {
                let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                    break false;
                };
                match common::next_text_of_type(&mut ws, "time", left).await {
                    Some(reply) if reply["client"] == 4242 => break true,
                    Some(_) => continue,
                    None => break false,
                }
            };
            let _ = ws.close(None).await;
            if answered {
                Ok(())
            } else {
                Err(format!("no clock answer after {messages:?}"))
            }
        });
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
        prop_assert_eq!(common::server_panics(), 0, "a server thread panicked");
        prop_assert!(healthy(port));
    }
}

// ---------------------------------------------------------------- recording names and ranges

use gstwsjpeg::server::recordings::{self, ByteRange};

fn range_header() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "(bytes|BYTES|items| bytes )=[0-9]{0,25}-[0-9]{0,25}",
        "bytes=-[0-9]{0,25}",
        "bytes=[0-9 ,-]{0,30}",
        "[ -~]{0,40}",
    ])
}

/// A name as the recorder writes them, with a valid date and time.
fn recording_name() -> impl Strategy<Value = (String, String)> {
    (
        1970u32..2200,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        "[A-Za-z0-9._-]{1,16}",
        prop_oneof![Just("mkv"), Just("mp4")],
    )
        .prop_map(|(y, mo, d, h, mi, s, label, ext)| {
            (
                format!("{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z_{label}.{ext}"),
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
            )
        })
        .prop_filter("no '..' in a name", |(name, _)| !name.contains(".."))
}

/// Names close to valid ones: a valid name with a few bytes replaced, inserted or cut.
fn near_recording_name() -> impl Strategy<Value = String> {
    (
        recording_name(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..3),
        any::<prop::sample::Index>(),
    )
        .prop_map(|((name, _), edits, cut)| {
            let mut chars: Vec<char> = name.chars().collect();
            for (at, c) in edits {
                let i = at.index(chars.len());
                chars[i] = c;
            }
            let keep = cut.index(chars.len() + 8).min(chars.len());
            chars.truncate(keep.max(chars.len() - 6));
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn range_parsing_never_panics_and_stays_in_the_file(header in range_header(), size in prop_oneof![0u64..1000, any::<u64>()]) {
        match recordings::parse_range(header.as_deref(), size) {
            ByteRange::Whole => {}
            ByteRange::Unsatisfiable => {}
            ByteRange::Part { start, end } => {
                prop_assert!(start <= end, "{:?}", header);
                prop_assert!(end < size, "{:?} of {}", header, size);
            }
        }
    }

    #[test]
    fn well_formed_ranges_mean_what_they_say(size in 1u64..1_000_000, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(), n in 1u64..2_000_000) {
        let (a, b) = (a.index(size as usize) as u64, b.index(size as usize) as u64);
        let (first, last) = (a.min(b), a.max(b));
        prop_assert_eq!(
            recordings::parse_range(Some(&format!("bytes={first}-{last}")), size),
            ByteRange::Part { start: first, end: last }
        );
        prop_assert_eq!(
            recordings::parse_range(Some(&format!("bytes={first}-")), size),
            ByteRange::Part { start: first, end: size - 1 }
        );
        prop_assert_eq!(
            recordings::parse_range(Some(&format!("bytes=-{n}")), size),
            ByteRange::Part { start: size - n.min(size), end: size - 1 }
        );
        prop_assert_eq!(
            recordings::parse_range(Some(&format!("bytes={}-", size + first)), size),
            ByteRange::Unsatisfiable
        );
    }

    #[test]
    fn recording_names_parse_back((name, iso) in recording_name()) {
        let parsed = recordings::parse_name(&name).expect("a valid name");
        prop_assert_eq!(&parsed.start_iso, &iso);
        let (requested, again) = recordings::requested_name(&name).expect("servable");
        prop_assert_eq!(requested, name);
        prop_assert_eq!(again, parsed);
    }

    #[test]
    fn ascii_recording_names_never_panic(name in prop_oneof!["[ -~]{0,40}".boxed(), near_recording_name().prop_filter("ASCII", |n| n.is_ascii()).boxed()]) {
        check_requested_name(&name)?;
    }
}

fn check_requested_name(name: &str) -> Result<(), TestCaseError> {
    let _ = recordings::parse_name(name);
    if let Some((decoded, _)) = recordings::requested_name(name) {
        prop_assert!(!decoded.contains(['/', '\\', '\0']), "{:?}", decoded);
        prop_assert!(
            !decoded.starts_with('.') && !decoded.contains(".."),
            "{:?}",
            decoded
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    /// A name whose last four bytes start inside a multi-byte character
    /// (`/recordings/2026-11-25T03-12-00Z_a%E2%82%ACkv`) once panicked in `parse_name`.
    #[test]
    fn any_recording_name_never_panics(name in prop_oneof![any::<String>().boxed(), near_recording_name().boxed()]) {
        check_requested_name(&name)?;
    }
}

#[test]
fn a_multibyte_character_before_the_extension_is_refused() {
    assert_eq!(
        recordings::requested_name("2026-11-25T03-12-00Z_a%E2%82%ACkv"),
        None
    );
}
