// SPDX-License-Identifier: MIT
//! Who may use the server: the token (`auth-token`) and the Origin rule (`allowed-origins`),
//! checked by the routes and the recording endpoints alike.

use http::header::{self, HeaderMap};

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

/// Compares without an early exit, so response time says nothing about the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
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
            }
        }
    }
    tokens
}

pub fn token_accepted(expected: Option<&str>, query: &str, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    presented_tokens(query, headers)
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()))
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

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
