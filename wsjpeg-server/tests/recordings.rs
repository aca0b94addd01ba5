// SPDX-License-Identifier: MIT
//! The recordings of a `recording_dir`: the listing (names, sizes, start, in progress) and
//! downloads (with ranges), confined to the folder. Real sockets, real files in a temp folder.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsjpeg_server::{RecordingStatus, Settings};

const SECOND: Duration = Duration::from_secs(1);

/// The memory test measures the whole process: it runs alone, the other tests share.
static MEMORY_GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Bytes that differ at every offset, so a misplaced range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A server listening, nothing streaming.
fn server() -> Live {
    Live::idle(Settings::default())
}

fn with_dir(dir: &TempDir) -> Live {
    let server = server();
    set_recording_dir(&server, Some(dir.path()));
    server
}

fn set_recording_dir(server: &Live, dir: Option<&Path>) {
    let dir = dir.map(Path::to_path_buf);
    server
        .server
        .update(|settings| settings.recording_dir = dir);
}

fn state_active(file: &str) -> RecordingStatus {
    RecordingStatus {
        active: true,
        control: true,
        started: Some("2026-11-25T03:13:00Z".into()),
        file: Some(file.into()),
        format: Some("mjpeg".into()),
        bytes_written: 12345,
        segments_deleted: 2,
        frames_dropped: 3,
        detections_dropped: 4,
        error: None,
    }
}

fn assert_no_store(response: &Response) {
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_names_sizes_start_and_in_progress() {
    let _gate = MEMORY_GATE.read().await;
    let dir = TempDir::new("list");
    let server = server();
    // No folder configured: there is nothing to list.
    let response = http_get(server.port, "/api/recordings", &[], usize::MAX).await;
    assert_eq!(response.status, 404);

    let finished = dir.write("2026-11-25T03-12-00Z_cam0.mkv", &pattern(1000));
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_576_320);
    std::fs::File::options()
        .write(true)
        .open(&finished)
        .expect("open")
        .set_modified(started + Duration::from_secs(60))
        .expect("mtime set");
    dir.write("2026-11-25T03-13-00Z_cam0.mkv", &pattern(2000));
    dir.write("2026-11-25T03-11-00Z_cam1.mp4", &pattern(500));
    dir.write("notes.txt", b"not a recording");
    dir.write("2026-11-25T03-10-00Z_cam0.avi", b"wrong extension");
    dir.write("2026-13-25T03-10-00Z_cam0.mkv", b"no such month");
    std::fs::create_dir(dir.path().join("2026-11-25T03-14-00Z_folder.mkv")).expect("subdir");
    let outside = TempDir::new("list-outside");
    let secret = outside.write("secret.mkv", b"SECRET");
    std::os::unix::fs::symlink(&secret, dir.path().join("2026-11-25T03-15-00Z_link.mkv"))
        .expect("symlink");

    set_recording_dir(&server, Some(dir.path()));
    let response = http_get(server.port, "/api/recordings", &[], usize::MAX).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_no_store(&response);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let list = response.json()["recordings"]
        .as_array()
        .expect("a recordings array")
        .clone();
    let names: Vec<&str> = list.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "2026-11-25T03-13-00Z_cam0.mkv",
            "2026-11-25T03-12-00Z_cam0.mkv",
            "2026-11-25T03-11-00Z_cam1.mp4",
        ],
        "newest first, recordings only"
    );
    assert_eq!(list[1]["start"], "2026-11-25T03:12:00Z");
    assert_eq!(list[1]["size"], 1000);
    assert_eq!(list[1]["duration_seconds"], 60.0);
    assert_eq!(list[2]["start"], "2026-11-25T03:11:00Z");
    assert_eq!(list[2]["size"], 500);
    for entry in &list {
        assert_eq!(entry["in_progress"], false, "{entry}");
        assert!(entry["duration_seconds"].as_f64().expect("a number") >= 0.0);
    }

    // The application says which segment it is writing.
    server
        .server
        .set_recording(Some(state_active("2026-11-25T03-13-00Z_cam0.mkv")));
    let list = http_get(server.port, "/api/recordings", &[], usize::MAX)
        .await
        .json();
    let current = &list["recordings"][0];
    assert_eq!(current["name"], "2026-11-25T03-13-00Z_cam0.mkv");
    assert_eq!(current["in_progress"], true);
    assert_eq!(current["size"], 2000);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let expected = now - 1_795_576_380.0;
    let duration = current["duration_seconds"].as_f64().expect("a number");
    assert!(
        (duration - expected).abs() < 5.0,
        "in-progress duration {duration}, expected about {expected}"
    );
    assert_eq!(list["recordings"][1]["in_progress"], false);

    // Stopped, with the last segment's name still reported: nothing is being written.
    let mut stopped = state_active("2026-11-25T03-13-00Z_cam0.mkv");
    stopped.active = false;
    server.server.set_recording(Some(stopped));
    let list = http_get(server.port, "/api/recordings", &[], usize::MAX)
        .await
        .json();
    assert_eq!(list["recordings"][0]["in_progress"], false);

    // Unset again: 404.
    set_recording_dir(&server, None);
    let response = http_get(server.port, "/api/recordings", &[], usize::MAX).await;
    assert_eq!(response.status, 404);
    assert_no_store(&response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_missing_folder_is_empty() {
    let _gate = MEMORY_GATE.read().await;
    let dir = TempDir::new("missing");
    let server = with_dir(&dir);
    std::fs::remove_dir_all(dir.path()).expect("removed");
    let response = http_get(server.port, "/api/recordings", &[], usize::MAX).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["recordings"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_whole_and_ranges() {
    let _gate = MEMORY_GATE.read().await;
    let dir = TempDir::new("download");
    let data = pattern(1_000_000);
    dir.write("2026-11-25T03-12-00Z_cam0.mkv", &data);
    dir.write("2026-11-25T03-12-00Z_cam0.mp4", &data[..1000]);
    dir.write("2026-11-25T03-13-00Z_empty.mkv", b"");
    let server = with_dir(&dir);
    let path = "/recordings/2026-11-25T03-12-00Z_cam0.mkv";

    let whole = http_get(server.port, path, &[], usize::MAX).await;
    assert_eq!(whole.status, 200);
    assert_no_store(&whole);
    assert_eq!(whole.header("content-type"), Some("video/x-matroska"));
    assert_eq!(
        whole.header("content-disposition"),
        Some("attachment; filename=\"2026-11-25T03-12-00Z_cam0.mkv\"")
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-length"), Some("1000000"));
    assert!(whole.body == data, "the whole file, byte for byte");

    let mp4 = http_get(
        server.port,
        "/recordings/2026-11-25T03-12-00Z_cam0.mp4",
        &[],
        usize::MAX,
    )
    .await;
    assert_eq!(mp4.status, 200);
    assert_eq!(mp4.header("content-type"), Some("video/mp4"));
    assert_eq!(mp4.body, &data[..1000]);

    for (range, start, end) in [
        ("bytes=0-0", 0usize, 0usize),
        ("bytes=10-19", 10, 19),
        ("bytes=65530-200000", 65530, 200000),
        ("bytes=999990-", 999990, 999999),
        ("bytes=-100", 999900, 999999),
        ("bytes=999000-5000000", 999000, 999999),
    ] {
        let part = http_get(server.port, path, &[("Range", range)], usize::MAX).await;
        assert_eq!(part.status, 206, "{range}");
        assert_no_store(&part);
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {start}-{end}/1000000").as_str()),
            "{range}"
        );
        assert_eq!(
            part.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
        assert!(part.body == data[start..=end], "{range}: bytes match");
    }

    for range in ["bytes=1000000-", "bytes=2000000-3000000", "bytes=-0"] {
        let refused = http_get(server.port, path, &[("Range", range)], usize::MAX).await;
        assert_eq!(refused.status, 416, "{range}");
        assert_eq!(refused.header("content-range"), Some("bytes */1000000"));
        assert_no_store(&refused);
    }
    // Several ranges are not supported: the whole file, as RFC 9110 allows.
    let multi = http_get(server.port, path, &[("Range", "bytes=0-1,5-6")], usize::MAX).await;
    assert_eq!(multi.status, 200);
    assert_eq!(multi.body.len(), data.len());

    let empty = http_get(
        server.port,
        "/recordings/2026-11-25T03-13-00Z_empty.mkv",
        &[],
        usize::MAX,
    )
    .await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.is_empty());
    let empty = http_get(
        server.port,
        "/recordings/2026-11-25T03-13-00Z_empty.mkv",
        &[("Range", "bytes=0-")],
        usize::MAX,
    )
    .await;
    assert_eq!(empty.status, 416);
    assert_eq!(empty.header("content-range"), Some("bytes */0"));

    let head = http_request(server.port, "HEAD", path, &[], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000000"));
    assert!(head.body.is_empty());

    let missing = http_get(
        server.port,
        "/recordings/2026-11-25T03-14-00Z_cam0.mkv",
        &[],
        usize::MAX,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_no_store(&missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_downloads_do_not_buffer_the_file() {
    let _gate = MEMORY_GATE.write().await;
    const SIZE: usize = 32 * 1024 * 1024;
    let dir = TempDir::new("slow");
    {
        use std::io::Write;
        let block = pattern(1024 * 1024);
        let mut file =
            std::fs::File::create(dir.path().join("2026-11-25T03-12-00Z_big.mkv")).expect("file");
        for _ in 0..SIZE / block.len() {
            file.write_all(&block).expect("written");
        }
    }
    let server = with_dir(&dir);
    let rss_before = rss_bytes();
    // Four clients read the head and a little of the body, then stop reading.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("connects");
        stream
            .write_all(b"GET /recordings/2026-11-25T03-12-00Z_big.mkv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("sent");
        let mut head = Vec::new();
        let mut buf = vec![0u8; 4096];
        let body_start = loop {
            let n = tokio::time::timeout(10 * SECOND, stream.read(&mut buf))
                .await
                .expect("the response comes within 10 s")
                .expect("reads");
            assert!(n > 0, "the response starts");
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&head, b"\r\n\r\n") {
                break end + 4;
            }
        };
        assert!(head.starts_with(b"HTTP/1.1 200"));
        streams.push((stream, head.len() - body_start));
    }
    tokio::time::sleep(SECOND).await;
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < 24 * 1024 * 1024,
        "4 stalled downloads of 32 MiB grew memory by {grown} bytes"
    );
    // A stalled client that reads on gets the rest of the file.
    let (mut stream, mut received) = streams.remove(0);
    drop(streams);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(10 * SECOND, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received += n,
        }
    }
    assert_eq!(received, SIZE, "the whole body arrives after the stall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_bad_names_are_refused() {
    let _gate = MEMORY_GATE.read().await;
    let outside = TempDir::new("traversal-outside");
    outside.write("2026-11-25T03-12-00Z_secret.mkv", b"SECRET-OUTSIDE");
    outside.write("secret.txt", b"SECRET-OUTSIDE");
    let dir = TempDir::new("traversal");
    dir.write("2026-11-25T03-12-00Z_cam0.mkv", b"inside");
    dir.write("notes.txt", b"SECRET-NOTES");
    dir.write(".hidden.mkv", b"SECRET-HIDDEN");
    std::os::unix::fs::symlink(
        outside.path().join("2026-11-25T03-12-00Z_secret.mkv"),
        dir.path().join("2026-11-25T03-13-00Z_link.mkv"),
    )
    .expect("symlink");
    // A link that stays inside the folder is fine.
    std::os::unix::fs::symlink(
        dir.path().join("2026-11-25T03-12-00Z_cam0.mkv"),
        dir.path().join("2026-11-25T03-14-00Z_alias.mkv"),
    )
    .expect("symlink");
    let server = with_dir(&dir);
    let outside_name = outside
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");

    let bad = [
        "/recordings/..".to_string(),
        "/recordings/../secret.txt".to_string(),
        format!("/recordings/../{outside_name}/2026-11-25T03-12-00Z_secret.mkv"),
        format!("/recordings/..%2F{outside_name}%2F2026-11-25T03-12-00Z_secret.mkv"),
        format!("/recordings/%2e%2e%2f{outside_name}%2f2026-11-25T03-12-00Z_secret.mkv"),
        "/recordings/notes.txt".to_string(),
        "/recordings/.hidden.mkv".to_string(),
        "/recordings/2026-11-25T03-12-00Z_a..b.mkv".to_string(),
        "/recordings/2026-11-25T03-12-00Z_cam0.mkv/x".to_string(),
        "/recordings/2026-11-25T03-12-00Z_cam0.mkv%00".to_string(),
        "/recordings/2026-11-25T03-12-00Z_a%5Cb.mkv".to_string(),
        "/recordings/%2Fetc%2Fpasswd".to_string(),
        "/recordings/%zz".to_string(),
    ];
    for path in &bad {
        let response = http_get(server.port, path, &[], usize::MAX).await;
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert!(!response.text().contains("SECRET"), "{path}");
        assert_no_store(&response);
    }
    for path in [
        "/recordings/2026-11-25T03-13-00Z_link.mkv",
        "/recordings/2026-11-25T03-12-00Z_nothere.mkv",
    ] {
        let response = http_get(server.port, path, &[], usize::MAX).await;
        assert_eq!(response.status, 404, "{path}");
        assert!(!response.text().contains("SECRET"), "{path}");
    }
    let alias = http_get(
        server.port,
        "/recordings/2026-11-25T03-14-00Z_alias.mkv",
        &[],
        usize::MAX,
    )
    .await;
    assert_eq!(alias.status, 200);
    assert_eq!(alias.body, b"inside");
    // The listing shows neither link: only regular files are recordings.
    let list = http_get(server.port, "/api/recordings", &[], usize::MAX)
        .await
        .json();
    assert_eq!(
        list["recordings"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );

    // Without a folder, download paths are simply not there.
    set_recording_dir(&server, None);
    let response = http_get(
        server.port,
        "/recordings/2026-11-25T03-12-00Z_cam0.mkv",
        &[],
        usize::MAX,
    )
    .await;
    assert_eq!(response.status, 404);
}
