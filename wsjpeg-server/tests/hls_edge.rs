// SPDX-License-Identifier: MIT
//! The LL-HLS origin behind the committed nginx edge (`packaging/nginx/wsjpeg-hls-edge.conf`,
//! Debian's nginx started by the test on loopback): 200 players doing what hls.js does in
//! low-latency mode for 20 s are all answered, keep up with the stream, and cost the origin
//! about one fetch of each media object and a small share of their blocking reloads.
//!
//! Skipped (with a message) when nginx is not installed, unless `WSJPEG_REQUIRE_NGINX` is set,
//! as CI does: then a missing nginx is a failure.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::edge::{EDGE_CONF, STATUS_PATH, edge_include, edge_nginx_conf, stub_status_requests};
use common::llhls::{PlayerReport, PlayerSetup, Playlist, play_all};
use common::*;
use wsjpeg_server::Settings;

const PLAYERS: usize = 200;
/// From the first player's start to every player's end.
const PLAYING: Duration = Duration::from_secs(20);
/// The players start one after the other over this, as viewers of a page do.
const RAMP: Duration = Duration::from_secs(2);
/// Longer than the edge may hold a request (its cache lock, 5 s, and the origin's blocking
/// reload, 3 s, at most).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The committed edge configuration, as it is in the checkout.
fn committed_edge() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(EDGE_CONF);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// nginx running the committed edge in front of the origin on `origin`.
fn start_edge(binary: &std::path::Path, origin: u16) -> Nginx {
    let committed = committed_edge();
    Nginx::start(binary, "hls-edge", 2, |dir, ports| {
        let include = edge_include(
            &committed,
            &dir.join("cache"),
            loopback(origin),
            loopback(ports[0]),
        )
        .expect("the committed edge configuration can be aimed at the test's origin");
        let path = dir.join("wsjpeg-hls-edge.conf");
        std::fs::write(&path, include).expect("the edge configuration written");
        edge_nginx_conf(dir, &path, loopback(ports[1]), 1024)
    })
}

/// The `q` quantile of `values` (sorted here), or 0 for none.
fn quantile(values: &mut [i64], q: f64) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[((values.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_low_latency_players_through_the_edge_cost_the_origin_about_one_of_each() {
    let Some(binary) = find_nginx(
        "two_hundred_low_latency_players_through_the_edge_cost_the_origin_about_one_of_each",
    ) else {
        return;
    };
    let origin = H264Live::start(Settings::default());
    let nginx = start_edge(&binary, origin.port);

    let setup = PlayerSetup {
        addr: loopback(nginx.port()),
        playlist_path: "/hls/index.m3u8".to_string(),
        stop_at: tokio::time::Instant::now() + PLAYING,
        request_timeout: REQUEST_TIMEOUT,
    };
    let reports = play_all(PLAYERS, RAMP, setup).await;
    let origin_media = origin
        .metric("wsjpeg_hls_media_requests_total")
        .expect("the origin counts its media requests");
    let origin_bytes = origin
        .metric("wsjpeg_hls_media_bytes_total")
        .unwrap_or_default();
    let origin_blocking = origin
        .metric("wsjpeg_hls_blocking_playlist_requests_total")
        .expect("the origin counts its blocking reloads");
    let origin_playlists = origin
        .metric("wsjpeg_hls_playlist_requests_total")
        .unwrap_or_default();
    let (_, status) = get_blocking(nginx.ports[1], STATUS_PATH);
    let edge_requests = stub_status_requests(&String::from_utf8_lossy(&status));

    let mut all = PlayerReport::default();
    for report in &reports {
        all.merge(report);
    }
    let mut parts: Vec<u64> = reports.iter().map(|r| r.parts).collect();
    parts.sort_unstable();
    let mut first: Vec<Duration> = reports.iter().filter_map(|r| r.first_playlist).collect();
    first.sort_unstable();
    let distinct = all.objects.len() as f64;
    let mut delays = all.part_delays_us.clone();
    eprintln!(
        "{PLAYERS} players, {PLAYING:?}: {} requests ({:.0}/s), {} answered 200, other statuses \
         {:?}, {} unanswered, {} connections, {} resyncs\n\
         parts per player: min {} median {} max {}; {} hinted; first playlist after {:?} \
         (median) {:?} (last)\n\
         part delay behind its media's end: p50 {} ms, p90 {} ms, p99 {} ms\n\
         playlists {} plain + {} blocking, edge said {:?}; media said {:?}\n\
         origin: {origin_media} media requests ({:.0} KB) for {distinct} distinct objects, \
         {origin_blocking} blocking reloads of the players' {} (1 in {:.0}), {origin_playlists} \
         playlist requests; nginx served {edge_requests:?} requests",
        all.requests,
        all.requests as f64 / PLAYING.as_secs_f64(),
        all.ok,
        all.statuses,
        all.unanswered,
        all.connects,
        all.resyncs,
        parts[0],
        parts[parts.len() / 2],
        parts[parts.len() - 1],
        all.hinted_parts,
        first.get(first.len() / 2),
        first.last(),
        quantile(&mut delays, 0.5) / 1000,
        quantile(&mut delays, 0.9) / 1000,
        quantile(&mut delays, 0.99) / 1000,
        all.plain_playlists,
        all.blocking_playlists,
        all.playlist_cache,
        all.media_cache,
        origin_bytes / 1000.0,
        all.blocking_playlists,
        all.blocking_playlists as f64 / origin_blocking.max(1.0),
    );
    if !all.problems.is_empty() {
        eprintln!("first problems: {:#?}", all.problems);
    }

    assert_eq!(reports.len(), PLAYERS);
    assert_eq!(
        all.failed(),
        0,
        "every request is answered 200: other statuses {:?}, {} unanswered; {:?}",
        all.statuses,
        all.unanswered,
        all.problems
    );
    // 30 fps with a keyframe every 10 frames makes about 6 parts a second: a player that
    // keeps up fetches about 100 in its 18 to 20 s, less the time its first playlist took.
    assert!(
        parts[0] >= 40,
        "every player kept fetching parts: the fewest were {}, the median {}",
        parts[0],
        parts[parts.len() / 2]
    );
    assert!(
        all.inits >= PLAYERS as u64,
        "each fetched the initialisation segment"
    );
    // Each object came from the origin at least once (the cache started empty), and about
    // once only: many players asking at once wait for the first one's fetch.
    assert!(
        origin_media >= distinct,
        "the origin served {origin_media} media objects, the players got {distinct} different ones"
    );
    assert!(
        origin_media <= 1.1 * distinct + 5.0,
        "the origin served {origin_media} media objects for {distinct} different ones: the edge \
         let players' requests through"
    );
    assert!(
        origin_blocking * 10.0 <= all.blocking_playlists as f64,
        "the origin held {origin_blocking} blocking reloads of the players' {}",
        all.blocking_playlists
    );
    assert_eq!(origin.metric("wsjpeg_hls_running"), Some(1.0));
    assert!(
        origin.producer.followers() >= 1,
        "the origin follows the track while players ask"
    );
    assert_eq!(server_panics(), 0, "a server thread panicked");
    drop(nginx);
}

#[test]
fn a_low_latency_playlist_is_read_and_the_next_reload_found() {
    let text = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n\
        #EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init-r-0.mp4\"\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n\
        #EXT-X-PART:DURATION=0.20000,URI=\"part-r-1.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.13333,URI=\"part-r-2.m4s\"\n\
        #EXTINF:0.33333,\nseg-r-7.m4s\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.333Z\n\
        #EXT-X-PART:DURATION=0.20000,URI=\"part-r-3.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-r-4.m4s\"\n";
    let playlist = Playlist::parse(text).expect("a playlist");
    assert_eq!(playlist.segments.len(), 2);
    assert!(playlist.segments[0].complete && !playlist.segments[1].complete);
    assert_eq!(playlist.segments[1].msn, 8);
    assert_eq!(
        playlist.next_reload(),
        Some((8, 1)),
        "the next part of the segment being filled"
    );
    assert_eq!(playlist.preload_hint.as_deref(), Some("part-r-4.m4s"));
    let parts = playlist.parts();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2].map.as_deref(), Some("init-r-0.mp4"));
    let start = 1_767_225_600_000_000;
    assert_eq!(parts[1].end_us, Some(start + 333_330));
    assert_eq!(parts[2].end_us, Some(start + 333_000 + 200_000));

    let complete = text.replace(
        "#EXT-X-PRELOAD-HINT",
        "#EXTINF:0.20000,\nseg-r-8.m4s\n#EXT-X-PRELOAD-HINT",
    );
    let playlist = Playlist::parse(&complete).expect("a playlist");
    assert_eq!(
        playlist.next_reload(),
        Some((9, 0)),
        "the first part of the next segment"
    );
    assert!(Playlist::parse("no playlist").is_err());
}

#[test]
fn the_committed_edge_is_aimed_at_the_test_origin_and_nginx_status_is_read() {
    let include = edge_include(
        &committed_edge(),
        std::path::Path::new("/tmp/edge-cache"),
        loopback(3003),
        loopback(8080),
    )
    .expect("the committed file has what the tests replace");
    assert!(
        include.contains("proxy_cache_path /tmp/edge-cache "),
        "{include}"
    );
    assert!(include.contains("server 127.0.0.1:3003;"), "{include}");
    assert!(include.contains("listen 127.0.0.1:8080;"), "{include}");
    let err = edge_include(
        "server {}",
        std::path::Path::new("/x"),
        loopback(1),
        loopback(2),
    )
    .expect_err("nothing to replace");
    assert!(err.contains("0 times"), "{err}");
    let status = "Active connections: 2 \nserver accepts handled requests\n 5 5 9 \n\
                  Reading: 0 Writing: 1 Waiting: 1 \n";
    assert_eq!(stub_status_requests(status), Some(9));
    assert_eq!(stub_status_requests("<html>"), None);
}
