// SPDX-License-Identifier: MIT
//! `document-root` files are streamed from disk as fast as each client takes them: clients
//! that ask for a large file and read nothing cost no memory. Hidden files are never served.
//! In a test binary of its own, one host at a time, so that the memory measured is the
//! server's.

mod common;

use std::time::Duration;

use common::*;

const SECOND: Duration = Duration::from_secs(1);
const SIZE: usize = 50 * 1024 * 1024;
const SECRET: &str = "SECRET-3b7e: never served";

on_both_hosts!(large_files_for_clients_that_read_nothing_cost_no_memory);

async fn large_files_for_clients_that_read_nothing_cost_no_memory(kind: HostKind) {
    let _alone = serial().await;
    let root = unique_temp_dir("document-root");
    let content: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &content).unwrap();
    std::fs::write(root.join(".hidden"), SECRET).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), SECRET).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/.env"), SECRET).unwrap();
    std::fs::write(root.join("sub/index.html"), "sub page").unwrap();
    let server = Host::test_pattern(
        kind,
        320,
        240,
        25,
        &format!("document-root={}", root.display()),
    );
    let port = server.port();
    for path in [
        "/.hidden",
        "/.git/",
        "/.git/config",
        "/sub/.env",
        "/%2egit/config",
    ] {
        let response = http_get(port, path, &[], usize::MAX).await;
        assert_eq!(response.status, 404, "{path}");
        assert!(!response.text().contains("SECRET"), "{path}");
    }
    assert_eq!(
        http_get(port, "/sub/", &[], usize::MAX).await.text(),
        "sub page"
    );

    let rss_before = server.rss_bytes();
    let request = format!("GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut slow = Vec::new();
    for _ in 0..10 {
        let mut stream = stalled_client(port, &request).await;
        assert_eq!(read_response_head(&mut stream, 5 * SECOND).await, Some(200));
        slow.push(stream);
    }
    let mut rss_max = rss_before;
    for _ in 0..10 {
        tokio::time::sleep(SECOND / 5).await;
        rss_max = rss_max.max(server.rss_bytes());
    }
    let growth = rss_max.saturating_sub(rss_before);
    eprintln!(
        "{kind:?}: 10 stalled downloads of a 50 MB file, RSS grew by {} KB",
        growth / 1024
    );
    assert!(
        growth < 16 * 1024 * 1024,
        "memory grew by {growth} bytes for 10 stalled downloads"
    );
    drop(slow);
    // A client that reads gets the whole file, exactly.
    let whole = http_get(port, "/big.bin", &[], usize::MAX).await;
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.header("content-length"),
        Some(SIZE.to_string().as_str())
    );
    assert!(
        whole.body == content,
        "the file arrives intact ({} bytes)",
        whole.body.len()
    );
    server.finish();
    let _ = std::fs::remove_dir_all(&root);
}
