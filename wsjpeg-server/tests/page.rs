// SPDX-License-Identifier: MIT
//! The viewer page as the server serves it, over real HTTP on 127.0.0.1: the page names its
//! files under a version, which are cached for good with the right content type; the token
//! travels as a cookie from a `?token=` page load to everything the page loads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wsjpeg_server::{Config, NoEvents, Server, Settings};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn start(settings: Settings) -> Server {
    let config = Config {
        address: "127.0.0.1".into(),
        port: 0,
        tls: None,
        settings,
        h264: None,
    };
    Server::start(config, Arc::new(NoEvents)).expect("the server starts")
}

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web")
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection, read until the server closes it.
fn request(server: &Server, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    request_with_body(server, method, target, headers, b"")
}

fn request_with_body(
    server: &Server,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(server.local_addr()).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    // To the end of the answer; a WebSocket's, which stays open, to the end of its head.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).expect("an answer in time");
        raw.extend_from_slice(&chunk[..n]);
        // The hello may come in the same read as the head.
        let head_done = raw.windows(4).any(|w| w == b"\r\n\r\n");
        if n == 0 || (raw.starts_with(b"HTTP/1.1 101") && head_done) {
            break;
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole answer head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn get(server: &Server, target: &str, headers: &[(&str, &str)]) -> Answer {
    request(server, "GET", target, headers)
}

/// The value of the first `attribute="…"` in `html` that starts with `prefix`.
fn attribute<'a>(html: &'a str, attribute: &str, prefix: &str) -> &'a str {
    let start = html
        .find(&format!("{attribute}=\"{prefix}"))
        .unwrap_or_else(|| panic!("no {attribute}=\"{prefix}… in the page"))
        + attribute.len()
        + 2;
    let len = html[start..].find('"').unwrap();
    &html[start..start + len]
}

/// The first module that `source` imports by relative path (`./name.js`).
fn first_import(source: &str) -> &str {
    let at = source.find("from './").expect("an import") + "from './".len();
    let len = source[at..].find('\'').unwrap();
    &source[at..at + len]
}

#[test]
fn the_page_names_versioned_files_that_are_cached_for_good() {
    let server = start(Settings::default());
    let page = get(&server, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("cache-control"),
        Some("no-store"),
        "the page is asked anew"
    );
    assert_eq!(page.header("set-cookie"), None, "no token, no cookie");
    let html = page.text();
    let script = attribute(&html, "src", "assets/");
    let stylesheet = attribute(&html, "href", "assets/");
    let version = script.split('/').nth(1).unwrap();
    assert_eq!(script, format!("assets/{version}/js/main.js"));
    assert_eq!(stylesheet, format!("assets/{version}/viewer.css"));

    let main = get(&server, &format!("/{script}"), &[]);
    assert_eq!(main.status, 200);
    assert_eq!(
        main.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(main.header("cache-control"), Some(IMMUTABLE));
    assert_eq!(main.header("x-content-type-options"), Some("nosniff"));
    let on_disk = std::fs::read(web_dir().join("js/main.js")).unwrap();
    assert!(main.body == on_disk, "the module as it is in web/js/");

    // What main.js imports resolves beside it, in the same version.
    let imported = first_import(std::str::from_utf8(&main.body).unwrap());
    let module = get(&server, &format!("/assets/{version}/js/{imported}"), &[]);
    assert_eq!(module.status, 200, "{imported}");
    assert_eq!(
        module.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(module.header("cache-control"), Some(IMMUTABLE));

    let css = get(&server, &format!("/{stylesheet}"), &[]);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("cache-control"), Some(IMMUTABLE));
    assert!(css.body == std::fs::read(web_dir().join("viewer.css")).unwrap());

    let head = request(&server, "HEAD", &format!("/{stylesheet}"), &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn an_unknown_version_or_file_is_not_found() {
    let server = start(Settings::default());
    let html = get(&server, "/", &[]).text();
    let version = attribute(&html, "src", "assets/")
        .split('/')
        .nth(1)
        .unwrap();
    for target in [
        "/assets/0000000000000000/js/main.js".to_string(),
        format!("/assets/{version}x/js/main.js"),
        format!("/assets/{version}/js/missing.js"),
        format!("/assets/{version}/index.html"),
        format!("/assets/{version}/tests/run.sh"),
        format!("/assets/{version}/"),
        format!("/assets/{version}"),
        "/assets/".to_string(),
        "/js/main.js".to_string(),
        "/viewer.css".to_string(),
    ] {
        let answer = get(&server, &target, &[]);
        assert_eq!(answer.status, 404, "{target}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{target}");
    }
}

#[test]
fn a_token_page_load_sets_the_cookie_the_pages_files_need() {
    let server = start(Settings {
        auth_token: Some("s3cret-T0ken".into()),
        ..Settings::default()
    });
    let refused = get(&server, "/", &[]);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("set-cookie"), None);
    let wrong = get(&server, "/?token=s3cret", &[]);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("set-cookie"), None);

    let page = get(&server, "/?token=s3cret-T0ken", &[]);
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").expect("a token cookie");
    let mut attributes = cookie.split(';').map(str::trim);
    let pair = attributes.next().unwrap();
    assert_eq!(pair, "wsjpeg_token=s3cret-T0ken");
    let attributes: Vec<&str> = attributes.collect();
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&wanted), "{wanted} in {cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP: {cookie}");

    let html = page.text();
    let script = format!("/{}", attribute(&html, "src", "assets/"));
    let stylesheet = format!("/{}", attribute(&html, "href", "assets/"));
    for target in [&script, &stylesheet] {
        let with_cookie = get(&server, target, &[("Cookie", pair)]);
        assert_eq!(with_cookie.status, 200, "{target} with the cookie");
        assert_eq!(with_cookie.header("cache-control"), Some(IMMUTABLE));
        let without = get(&server, target, &[]);
        assert_eq!(without.status, 401, "{target} without the cookie");
        let wrong = get(&server, target, &[("Cookie", "wsjpeg_token=s3cret")]);
        assert_eq!(wrong.status, 401, "{target} with a wrong cookie");
    }
    // The page itself and its WebSocket work with the cookie alone too.
    assert_eq!(get(&server, "/", &[("Cookie", pair)]).status, 200);
    let upgrade = get(
        &server,
        "/stream",
        &[
            ("Cookie", pair),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    );
    assert_eq!(upgrade.status, 101);
}

/// What a browser sends when it opens a page.
const BROWSER: (&str, &str) = (
    "Accept",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
);
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[test]
fn a_browser_without_the_token_gets_a_sign_in_page_that_sets_the_cookie() {
    let server = start(Settings {
        auth_token: Some("s3cret-T0ken".into()),
        ..Settings::default()
    });
    // A browser opening the page: a sign-in page, still 401, with a token field.
    let sign_in = get(&server, "/", &[BROWSER]);
    assert_eq!(sign_in.status, 401);
    assert_eq!(sign_in.header("www-authenticate"), Some("Bearer"));
    assert!(
        sign_in
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    let html = sign_in.text();
    assert!(html.contains("<title>Sign in · wsjpeg</title>"), "{html}");
    assert!(
        html.contains(r#"<form method="post" action="./">"#),
        "{html}"
    );
    assert!(html.contains(r#"name="token" type="password""#), "{html}");
    assert!(!html.contains("not accepted"), "{html}");
    // A wrong token in the address says so.
    let wrong = get(&server, "/?token=guess", &[BROWSER]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("That token is not accepted"));
    // Programs keep the plain answer, and so does everything but a page.
    let program = get(&server, "/", &[]);
    assert_eq!(program.status, 401);
    assert_eq!(program.text(), "Unauthorized: a valid token is required\n");
    assert_eq!(get(&server, "/status", &[BROWSER]).text(), program.text());

    // The form: a wrong token gets the page again, saying so, and no cookie.
    let refused = request_with_body(&server, "POST", "/", &[FORM], b"token=guess");
    assert_eq!(refused.status, 401);
    assert!(refused.text().contains("That token is not accepted"));
    assert_eq!(refused.header("set-cookie"), None);
    // The right one: the cookie, and back to the page, which then loads with it alone.
    let signed_in = request_with_body(&server, "POST", "/", &[FORM], b"token=s3cret-T0ken");
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.header("location"), Some("./"));
    let cookie = signed_in.header("set-cookie").expect("the token cookie");
    assert!(cookie.starts_with("wsjpeg_token=s3cret-T0ken;"), "{cookie}");
    for wanted in ["HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(wanted), "{wanted} in {cookie}");
    }
    let pair = cookie.split(';').next().unwrap();
    let page = get(&server, "/", &[BROWSER, ("Cookie", pair)]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<canvas id=\"view\""));
    // An oversized form is refused, and the server goes on.
    let huge = vec![b'a'; 8 * 1024];
    assert_ne!(
        request_with_body(&server, "POST", "/", &[FORM], &huge).status,
        303
    );
    assert_eq!(get(&server, "/", &[BROWSER, ("Cookie", pair)]).status, 200);
}

#[test]
fn without_a_token_there_is_nothing_to_sign_in_to() {
    let server = start(Settings::default());
    assert_eq!(get(&server, "/", &[BROWSER]).status, 200);
    let post = request_with_body(&server, "POST", "/", &[FORM], b"token=x");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("set-cookie"), None);
}

#[test]
fn a_token_that_a_cookie_cannot_hold_as_it_is_travels_escaped() {
    let token = "a b;c,\"d\"%é";
    let server = start(Settings {
        auth_token: Some(token.into()),
        ..Settings::default()
    });
    let query = format!(
        "/?{}",
        serde_urlencoded::to_string([("token", token)]).unwrap()
    );
    let page = get(&server, &query, &[]);
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").expect("a token cookie");
    let pair = cookie.split(';').next().unwrap();
    assert!(pair.starts_with("wsjpeg_token="), "{cookie}");
    assert!(
        !pair[13..].contains([' ', ',', '"', '\\']),
        "only cookie characters: {cookie}"
    );
    let script = format!("/{}", attribute(&page.text(), "src", "assets/"));
    assert_eq!(get(&server, &script, &[("Cookie", pair)]).status, 200);
}

#[test]
fn behind_a_tls_proxy_the_cookie_is_secure() {
    let server = start(Settings {
        auth_token: Some("s3cret-T0ken".into()),
        ..Settings::default()
    });
    let page = get(
        &server,
        "/?token=s3cret-T0ken",
        &[("X-Forwarded-Proto", "https")],
    );
    let cookie = page.header("set-cookie").expect("a token cookie");
    assert!(cookie.split(';').any(|a| a.trim() == "Secure"), "{cookie}");
}

#[test]
fn a_document_root_serves_its_own_files_unversioned() {
    let server = start(Settings {
        document_root: Some(web_dir()),
        ..Settings::default()
    });
    let page = get(&server, "/", &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains(r#"src="js/main.js""#), "the file as it is");
    let main = get(&server, "/js/main.js", &[]);
    assert_eq!(main.status, 200);
    assert_eq!(
        main.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(main.header("cache-control"), Some("no-store"));
    let version = {
        let built_in = start(Settings::default());
        let html = get(&built_in, "/", &[]).text();
        attribute(&html, "src", "assets/")
            .split('/')
            .nth(1)
            .unwrap()
            .to_string()
    };
    let versioned = get(&server, &format!("/assets/{version}/js/main.js"), &[]);
    assert_eq!(versioned.status, 404, "the folder has no assets/");
}
