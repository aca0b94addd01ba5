// SPDX-License-Identifier: MIT
//! Who may use the server: the token (`auth-token`) and the Origin rule (`allowed-origins`),
//! checked by the routes and the recording endpoints alike.

use http::header::{self, HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use subtle::ConstantTimeEq;

/// The cookie the viewer page may carry the token in.
pub const TOKEN_COOKIE: &str = "wsjpeg_token";

/// Which pages may open the WebSocket (`allowed-origins`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// Only pages served from the same host and port as the request.
    #[default]
    SameHost,
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses the property's comma list: empty means same host, `*` means any.
    pub fn parse(value: &str) -> Self {
        let list: Vec<String> = value
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            AllowedOrigins::SameHost
        } else if list.iter().any(|s| s == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(list)
        }
    }
}

/// Returns the value of `name` in a URL query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Compares in a time that does not depend on where the two differ, so response times say
/// nothing about the token (its length is not secret).
fn same_token(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Finds a token in the query (`?token=`), an `Authorization: Bearer` header or the cookie.
pub fn presented_tokens(query: &str, headers: &HeaderMap) -> Vec<String> {
    let mut tokens = Vec::new();
    if let Some(t) = query_param(query, "token") {
        tokens.push(t);
    }
    for value in headers.get_all(header::AUTHORIZATION) {
        // The scheme is case-insensitive (RFC 9110 §11.1).
        if let Some((scheme, t)) = value.to_str().ok().and_then(|v| v.split_once(' '))
            && scheme.eq_ignore_ascii_case("bearer")
        {
            tokens.push(t.trim().to_string());
        }
    }
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == TOKEN_COOKIE
            {
                tokens.push(v.to_string());
                // As `token_cookie` writes a token that a cookie cannot hold as it is.
                if let Ok(decoded) = percent_decode_str(v).decode_utf8()
                    && decoded != v
                {
                    tokens.push(decoded.into_owned());
                }
            }
        }
    }
    tokens
}

/// What a cookie value cannot hold as it is (RFC 6265 §4.1.1), and `%`, which escapes.
const NOT_IN_COOKIES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// The token cookie to set on the answer to a page load with a valid `?token=`, so that what
/// the page loads (modules, stylesheet, WebSocket), which carries no query, passes too.
/// `HttpOnly`: scripts cannot read it; `SameSite=Strict`: other sites cannot send it.
pub fn token_cookie(expected: Option<&str>, query: &str, secure: bool) -> Option<HeaderValue> {
    let token = query_param(query, "token")?;
    if !same_token(&token, expected?) {
        return None;
    }
    let value = utf8_percent_encode(&token, NOT_IN_COOKIES);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{TOKEN_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

pub fn token_accepted(expected: Option<&str>, query: &str, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    presented_tokens(query, headers)
        .iter()
        .any(|t| same_token(t, expected))
}

/// The header a detector may present its token in, instead of `?detector_token=`.
pub const DETECTOR_TOKEN_HEADER: &str = "x-detector-token";

/// Whether the client presented the detector token (`?detector_token=` or the
/// `X-Detector-Token` header). With no token set, nobody may push detections.
pub fn detector_token_accepted(expected: Option<&str>, query: &str, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    let from_query = query_param(query, "detector_token");
    let from_headers = headers
        .get_all(DETECTOR_TOKEN_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    from_query
        .into_iter()
        .chain(from_headers)
        .any(|t| same_token(&t, expected))
}

/// The scheme the browser used: the connection's, or the one a reverse proxy that terminates
/// TLS reports in `X-Forwarded-Proto`. A page cannot set that header on a WebSocket handshake or
/// a plain form post, so trusting it lets no other site in.
pub fn request_scheme(secure: bool, headers: &HeaderMap) -> &'static str {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match forwarded.as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        _ if secure => "https",
        _ => "http",
    }
}

/// Cross-site WebSocket hijacking guard. Requests without `Origin` (curl, VLC, scripts) pass:
/// only browsers send it, and they always do. `scheme` is [`request_scheme`]'s answer.
pub fn origin_allowed(allowed: &AllowedOrigins, headers: &HeaderMap, scheme: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    match allowed {
        AllowedOrigins::Any => true,
        AllowedOrigins::List(list) => list.contains(&origin),
        AllowedOrigins::SameHost => {
            let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                return false;
            };
            let Some((origin_scheme, authority)) = origin.split_once("://") else {
                return false;
            };
            // An origin is scheme, host and port (RFC 6454): https://cam:3003 is not the
            // origin of a page served over plain http on cam:3003.
            if origin_scheme != scheme {
                return false;
            }
            let default_port = if scheme == "https" { ":443" } else { ":80" };
            let without_default = |a: &str| a.strip_suffix(default_port).unwrap_or(a).to_string();
            without_default(authority) == without_default(&host.trim().to_ascii_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_rules() {
        let same = AllowedOrigins::SameHost;
        let allowed = |h: &[(&'static str, &str)]| origin_allowed(&same, &headers(h), "http");
        assert!(allowed(&[("host", "cam:3003")]));
        assert!(allowed(&[
            ("host", "cam:3003"),
            ("origin", "http://cam:3003")
        ]));
        assert!(allowed(&[("host", "cam"), ("origin", "http://CAM")]));
        assert!(allowed(&[("host", "cam:80"), ("origin", "http://cam")]));
        assert!(allowed(&[("host", "cam"), ("origin", "http://cam:80")]));
        assert!(!allowed(&[
            ("host", "cam:3003"),
            ("origin", "http://evil.example")
        ]));
        assert!(!allowed(&[("host", "cam:3003"), ("origin", "null")]));
        assert!(!allowed(&[
            ("host", "cam:3003"),
            ("origin", "https://cam:3003")
        ]));
        assert!(!allowed(&[
            ("host", "cam:3003"),
            ("origin", "ftp://cam:3003")
        ]));
        let secure = |h: &[(&'static str, &str)]| origin_allowed(&same, &headers(h), "https");
        assert!(secure(&[
            ("host", "cam:3003"),
            ("origin", "https://cam:3003")
        ]));
        assert!(secure(&[("host", "cam"), ("origin", "https://cam:443")]));
        assert!(!secure(&[
            ("host", "cam:3003"),
            ("origin", "http://cam:3003")
        ]));
        let list = AllowedOrigins::parse("https://a.example, http://b.example:8080/");
        assert!(origin_allowed(
            &list,
            &headers(&[("origin", "http://b.example:8080")]),
            "https"
        ));
        assert!(!origin_allowed(
            &list,
            &headers(&[("origin", "http://c.example")]),
            "http"
        ));
        assert!(origin_allowed(
            &AllowedOrigins::parse("*"),
            &headers(&[("origin", "null")]),
            "http"
        ));
        assert_eq!(AllowedOrigins::parse(" , "), AllowedOrigins::SameHost);
    }

    #[test]
    fn the_scheme_is_the_connections_or_the_proxys() {
        assert_eq!(request_scheme(false, &HeaderMap::new()), "http");
        assert_eq!(request_scheme(true, &HeaderMap::new()), "https");
        let proxied = headers(&[("x-forwarded-proto", "HTTPS, http")]);
        assert_eq!(request_scheme(false, &proxied), "https");
        let odd = headers(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(request_scheme(true, &odd), "https");
    }

    #[test]
    fn token_sources() {
        let none = HeaderMap::new();
        assert!(token_accepted(None, "", &none));
        assert!(!token_accepted(Some("s3cret"), "", &none));
        assert!(token_accepted(Some("s3cret"), "meta=1&token=s3cret", &none));
        assert!(token_accepted(Some("a b"), "token=a%20b", &none));
        assert!(token_accepted(
            Some("s3cret"),
            "",
            &headers(&[("authorization", "Bearer s3cret")])
        ));
        assert!(token_accepted(
            Some("s3cret"),
            "",
            &headers(&[("authorization", "bearer s3cret")])
        ));
        assert!(!token_accepted(
            Some("s3cret"),
            "",
            &headers(&[("authorization", "Basic s3cret")])
        ));
        assert!(token_accepted(
            Some("s3cret"),
            "",
            &headers(&[("cookie", "x=1; wsjpeg_token=s3cret")])
        ));
        assert!(!token_accepted(Some("s3cret"), "token=s3cre", &none));
        assert!(!token_accepted(Some("s3cret"), "token=s3cret2", &none));
    }
}

#[cfg(test)]
mod fuzz {
    //! Properties of token and Origin checks on any query string and headers.

    use http::header::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::config;

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
            let _ = query_param(&q, &name);
        }

        #[test]
        fn token_extraction_never_panics(q in query(), headers in header_map(), expected in prop::option::of(token())) {
            let _ = presented_tokens(&q, &headers);
            let accepted = token_accepted(expected.as_deref(), &q, &headers);
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
                token_accepted(Some(&secret), &q, &headers),
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
                let presented = presented_tokens(&q, &headers);
                prop_assume!(!presented.contains(&secret));
                prop_assert!(!token_accepted(Some(&secret), &q, &headers));
            }
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
            let ok = origin_allowed(&allowed, &headers, scheme);
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
                origin_allowed(&AllowedOrigins::SameHost, headers, scheme)
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
}
