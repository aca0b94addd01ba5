// SPDX-License-Identifier: MIT
//! Signing in with the auth token from a browser: a page load without a valid token gets a
//! small page with a token field instead of a bare 401; the field posts the token
//! (`POST /` as a form), which sets the token cookie and sends the browser back to the page,
//! so the token never stands in the address bar or the history.

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use warp::reply::Response;

use crate::reply::respond;

/// Longest sign-in form accepted.
pub const MAX_FORM_BYTES: u64 = 4096;

/// Whether a refused request is a browser opening a page (which gets the sign-in page), not a
/// program asking for data (which gets the plain 401).
pub fn wants_page(method: &http::Method, path: &str, headers: &HeaderMap) -> bool {
    let page_path = path.ends_with('/') || path.ends_with(".html");
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    (method == http::Method::GET || method == http::Method::HEAD) && page_path && html
}

/// The sign-in form's body (`application/x-www-form-urlencoded`) as the query string it reads
/// like: its `token` field is the `?token=` of a page load.
pub fn form_as_query(body: &[u8]) -> &str {
    std::str::from_utf8(body).unwrap_or("")
}

/// The sign-in page, 401; `refused` says the token given was not accepted.
pub fn page(refused: bool) -> Response {
    let note = if refused {
        r#"<p class="error" role="alert">That token is not accepted. Check it and try again.</p>"#
    } else {
        ""
    };
    let body = PAGE.replace("{note}", note);
    let mut response = respond(
        StatusCode::UNAUTHORIZED,
        "text/html; charset=utf-8",
        Bytes::from(body),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// After a sign-in: back to the page the form was on, with the cookie.
pub fn signed_in(cookie: HeaderValue) -> Response {
    let mut response = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    let h = response.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("./"));
    h.insert(header::SET_COOKIE, cookie);
    response
}

// The page's own look (the viewer's colours), with no file of its own: the viewer's files
// are behind the token.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Sign in · wsjpeg</title>
<style>
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: #0d0f13;
    color: #eceef1; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
  main { width: min(24rem, calc(100vw - 2rem)); padding: 1.5rem; border: 1px solid #2b313c;
    border-radius: 10px; background: #15181e; }
  h1 { margin: 0 0 .4rem; font-size: 1.2rem; }
  p { margin: 0 0 1rem; color: #a4abb6; }
  .error { color: #ff8a80; }
  label { display: block; margin-bottom: .35rem; font-weight: 600; }
  input { box-sizing: border-box; width: 100%; padding: .6rem .7rem; border: 1px solid #2b313c;
    border-radius: 8px; background: #0d0f13; color: #eceef1; font: inherit; }
  input:focus-visible, button:focus-visible { outline: 3px solid #6cb2ff; outline-offset: 2px; }
  button { margin-top: 1rem; width: 100%; min-height: 44px; border: 1px solid #6cb2ff;
    border-radius: 10px; background: #2a3c57; color: #eceef1; font: inherit; font-weight: 600;
    cursor: pointer; }
</style>
</head>
<body>
<main>
  <h1>wsjpeg</h1>
  <p>This camera asks for its access token.</p>
  {note}
  <form method="post" action="./">
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Open the camera</button>
  </form>
</main>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_browsers_opening_a_page_get_it() {
        let mut html = HeaderMap::new();
        html.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_page(&http::Method::GET, "/", &html));
        assert!(wants_page(&http::Method::GET, "/cam/index.html", &html));
        assert!(!wants_page(&http::Method::GET, "/status", &html));
        assert!(!wants_page(&http::Method::POST, "/", &html));
        assert!(!wants_page(&http::Method::GET, "/", &HeaderMap::new()));
    }

    #[test]
    fn reads_the_token_field() {
        use crate::access::query_param;
        let token = |body: &[u8]| query_param(form_as_query(body), "token");
        assert_eq!(token(b"token=a%20b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(token(b"other=1&token=x").as_deref(), Some("x"));
        assert_eq!(token(b"tokens=x"), None);
        assert_eq!(token(b"\xff\xfe"), None);
    }
}
