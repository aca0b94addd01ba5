// SPDX-License-Identifier: MIT
//! The committed nginx edge of the LL-HLS origin (`packaging/nginx/wsjpeg-hls-edge.conf`) made
//! to run on loopback: its device address, player port and cache folder replaced, included
//! as it is in the `http {}` block of a one-process nginx, beside a `stub_status` page that
//! counts the requests nginx served. Nothing else of the committed file changes, so what runs
//! is what the packaging recommends. Shared by the server's tests and the benchmark
//! (`bench/`).

use std::net::SocketAddr;
use std::path::Path;

/// The committed edge configuration, from the workspace's root.
pub const EDGE_CONF: &str = "packaging/nginx/wsjpeg-hls-edge.conf";
/// The path of the `stub_status` page.
pub const STATUS_PATH: &str = "/nginx-status";

/// The committed file with the cache folder, the device (`192.0.2.10:3003`) and the players'
/// port (`listen 8080;`) replaced; `Err` says which of them the file no longer has (once).
pub fn edge_include(
    committed: &str,
    cache_dir: &Path,
    origin: SocketAddr,
    listen: SocketAddr,
) -> Result<String, String> {
    let mut text = committed.to_string();
    for (from, to) in [
        (
            "/var/cache/nginx/wsjpeg-hls",
            cache_dir.display().to_string(),
        ),
        ("192.0.2.10:3003", origin.to_string()),
        ("listen 8080;", format!("listen {listen};")),
    ] {
        let found = text.matches(from).count();
        if found != 1 {
            return Err(format!(
                "{EDGE_CONF} has {found} times {from:?}, expected once: the test's substitutions need updating"
            ));
        }
        text = text.replace(from, &to);
    }
    Ok(text)
}

/// A whole `nginx.conf` for one nginx process in `dir` (pid, logs, temp files there):
/// Debian's defaults for `http {}` that matter here (sendfile, keep-alive), the file
/// `include` (an [`edge_include`]) and the `stub_status` page on `status`.
pub fn edge_nginx_conf(
    dir: &Path,
    include: &Path,
    status: SocketAddr,
    worker_connections: u32,
) -> String {
    let d = dir.display();
    let include = include.display();
    format!(
        r#"# One process: nothing to switch users for, and killing it leaves no workers behind.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {files};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    # As Debian's nginx.conf has them.
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    include {include};

    server {{
        listen {status};
        location = {STATUS_PATH} {{ stub_status; }}
    }}
}}
"#,
        files = worker_connections * 2 + 64,
    )
}

/// The requests nginx served, from its `stub_status` page (`None` if `text` is not one).
pub fn stub_status_requests(text: &str) -> Option<u64> {
    // "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \nReading: …"
    let mut lines = text.lines();
    lines.find(|l| {
        l.trim_start()
            .starts_with("server accepts handled requests")
    })?;
    lines.next()?.split_whitespace().nth(2)?.parse().ok()
}
