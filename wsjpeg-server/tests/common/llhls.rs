// SPDX-License-Identifier: MIT
//! Simulated Low-Latency HLS players, each doing what hls.js does in low-latency mode, on one
//! kept HTTP/1.1 connection: the playlist once, then over and over a blocking reload
//! (`_HLS_msn`/`_HLS_part`) for the part after the newest the last playlist listed, every
//! listed part not fetched yet (the initialisation segment once), and the part the playlist
//! hints at (`EXT-X-PRELOAD-HINT`), which the server holds until it is finished.
//!
//! A player starts three parts behind the live edge (`PART-HOLD-BACK`) and never skips a part
//! while it keeps up. It records every answer: statuses other than 200, requests with no
//! answer, what an HTTP cache in front said (`X-Cache-Status`), the names of the media objects
//! it fetched, and how late each part arrived. Nothing here panics on what a server sends.
//! Shared by the server's tests and the benchmark (`bench/`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::keepalive::{KeepAlive, Reply};

/// Parts behind the newest listed one a player starts at (the origin's `PART-HOLD-BACK` is
/// three part targets).
pub const START_BEHIND_PARTS: usize = 3;
/// Problems a player describes in words; beyond these it only counts them.
const PROBLEMS_KEPT: usize = 5;
/// After a playlist request that failed, a player waits this long before asking again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// A part the playlist lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedPart {
    pub uri: String,
    pub duration_us: u64,
}

/// A segment the playlist lists: complete (with its `EXTINF` and URI) or the one being
/// filled, which is listed by its parts only.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSegment {
    pub msn: u64,
    pub complete: bool,
    /// The initialisation segment (`EXT-X-MAP`) in force.
    pub map: Option<String>,
    /// `EXT-X-PROGRAM-DATE-TIME`, Unix µs.
    pub start_us: Option<u64>,
    pub parts: Vec<ListedPart>,
}

/// A media playlist, as much of it as a low-latency player needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Playlist {
    pub segments: Vec<ListedSegment>,
    pub preload_hint: Option<String>,
}

/// A listed part with what a player needs beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartAt {
    pub uri: String,
    pub map: Option<String>,
    /// The end of the part's media (its segment's date and time plus the parts up to and
    /// including it), Unix µs.
    pub end_us: Option<u64>,
}

impl Playlist {
    pub fn parse(text: &str) -> Result<Playlist, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some("#EXTM3U") {
            return Err("not a playlist: no #EXTM3U first".to_string());
        }
        let mut playlist = Playlist::default();
        let mut msn = 0;
        let mut map = None;
        let mut open = None::<ListedSegment>;
        let mut after_extinf = false;
        for line in lines {
            let new_segment = |msn, map: &Option<String>| ListedSegment {
                msn,
                complete: false,
                map: map.clone(),
                start_us: None,
                parts: Vec::new(),
            };
            if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                msn = value
                    .parse()
                    .map_err(|_| format!("EXT-X-MEDIA-SEQUENCE {value:?}"))?;
            } else if let Some(attributes) = line.strip_prefix("#EXT-X-MAP:") {
                map = Some(attribute(attributes, "URI").ok_or("EXT-X-MAP without URI")?);
                if let Some(segment) = open.as_mut().filter(|s| s.parts.is_empty()) {
                    segment.map = map.clone();
                }
            } else if let Some(value) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                let at = humantime::parse_rfc3339(value)
                    .map_err(|e| format!("EXT-X-PROGRAM-DATE-TIME {value:?}: {e}"))?;
                let us = at
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| format!("EXT-X-PROGRAM-DATE-TIME {value:?} before 1970"))?
                    .as_micros() as u64;
                open.get_or_insert_with(|| new_segment(msn, &map)).start_us = Some(us);
            } else if let Some(attributes) = line.strip_prefix("#EXT-X-PART:") {
                let uri = attribute(attributes, "URI").ok_or("EXT-X-PART without URI")?;
                let duration = attribute(attributes, "DURATION")
                    .and_then(|d| d.parse::<f64>().ok())
                    .ok_or("EXT-X-PART without a DURATION")?;
                open.get_or_insert_with(|| new_segment(msn, &map))
                    .parts
                    .push(ListedPart {
                        uri,
                        duration_us: (duration * 1e6).round() as u64,
                    });
            } else if line.starts_with("#EXTINF:") {
                after_extinf = true;
            } else if let Some(attributes) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                if attribute(attributes, "TYPE").as_deref() == Some("PART") {
                    playlist.preload_hint = attribute(attributes, "URI");
                }
            } else if !line.starts_with('#') && after_extinf {
                // A complete segment's URI.
                let mut segment = open.take().unwrap_or_else(|| new_segment(msn, &map));
                segment.complete = true;
                playlist.segments.push(segment);
                msn += 1;
                after_extinf = false;
            }
        }
        if let Some(segment) = open.filter(|s| !s.parts.is_empty()) {
            playlist.segments.push(segment);
        }
        Ok(playlist)
    }

    /// The blocking reload that asks for the part after the newest listed one: the next part
    /// of the segment being filled, or the first part of the next segment when the newest
    /// listed segment is complete. `None` for an empty playlist.
    pub fn next_reload(&self) -> Option<(u64, u64)> {
        let last = self.segments.last()?;
        Some(if last.complete {
            (last.msn + 1, 0)
        } else {
            (last.msn, last.parts.len() as u64)
        })
    }

    /// Every listed part, oldest first.
    pub fn parts(&self) -> Vec<PartAt> {
        let mut out = Vec::new();
        for segment in &self.segments {
            let mut end = segment.start_us;
            for part in &segment.parts {
                end = end.map(|e| e + part.duration_us);
                out.push(PartAt {
                    uri: part.uri.clone(),
                    map: segment.map.clone(),
                    end_us: end,
                });
            }
        }
        out
    }
}

/// The value of `name` in an attribute list (`NAME=value,NAME="quoted"`).
fn attribute(list: &str, name: &str) -> Option<String> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((value, next)) => (value, next),
                None => (after, ""),
            }
        };
        if key.trim() == name {
            return Some(value.to_string());
        }
        rest = next;
    }
    None
}

/// Where a player plays from, and until when.
#[derive(Debug, Clone)]
pub struct PlayerSetup {
    /// The HTTP server: an edge in front of the origin, or the origin itself.
    pub addr: SocketAddr,
    /// The playlist's path; media are fetched beside it.
    pub playlist_path: String,
    /// When the player stops (a request under way then is dropped, uncounted).
    pub stop_at: Instant,
    /// The longest a request may take before it counts as unanswered.
    pub request_timeout: Duration,
}

/// What one player did.
#[derive(Debug, Clone, Default)]
pub struct PlayerReport {
    /// Requests answered, whatever the status, plus those with no answer.
    pub requests: u64,
    /// Answered 200.
    pub ok: u64,
    /// Answers other than 200, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no (whole) answer: refused, reset, timed out.
    pub unanswered: u64,
    /// The first few problems, in words.
    pub problems: Vec<String>,
    pub plain_playlists: u64,
    pub blocking_playlists: u64,
    /// Parts fetched, the hinted ones included.
    pub parts: u64,
    /// Of those, fetched as the playlist's preload hint.
    pub hinted_parts: u64,
    pub inits: u64,
    pub media_bytes: u64,
    /// Times the player found the newest part it had fetched gone from the playlist (it
    /// fell behind) and started again near the live edge.
    pub resyncs: u64,
    /// `X-Cache-Status` of the playlist answers and of the media answers (`none` without).
    pub playlist_cache: BTreeMap<String, u64>,
    pub media_cache: BTreeMap<String, u64>,
    /// The names of the media objects fetched (answered 200).
    pub objects: HashSet<String>,
    /// For each part whose time the playlist gave: when it arrived less the end of its media,
    /// µs (how far behind the live picture the player is, less its own buffer).
    pub part_delays_us: Vec<i64>,
    /// From the start to the first playlist.
    pub first_playlist: Option<Duration>,
    /// TCP connections opened.
    pub connects: u64,
}

impl PlayerReport {
    /// Adds `other`'s figures to these (objects are joined, delays appended).
    pub fn merge(&mut self, other: &PlayerReport) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.unanswered += other.unanswered;
        for problem in &other.problems {
            if self.problems.len() < PROBLEMS_KEPT {
                self.problems.push(problem.clone());
            }
        }
        self.plain_playlists += other.plain_playlists;
        self.blocking_playlists += other.blocking_playlists;
        self.parts += other.parts;
        self.hinted_parts += other.hinted_parts;
        self.inits += other.inits;
        self.media_bytes += other.media_bytes;
        self.resyncs += other.resyncs;
        for (mine, theirs) in [
            (&mut self.playlist_cache, &other.playlist_cache),
            (&mut self.media_cache, &other.media_cache),
        ] {
            for (status, n) in theirs {
                *mine.entry(status.clone()).or_default() += n;
            }
        }
        self.objects.extend(other.objects.iter().cloned());
        self.part_delays_us.extend_from_slice(&other.part_delays_us);
        self.connects += other.connects;
    }

    /// Answers other than 200 plus requests with no answer.
    pub fn failed(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.unanswered
    }
}

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Playlist,
    Media,
}

/// One player, from its first request until `setup.stop_at`.
pub async fn play(setup: PlayerSetup) -> PlayerReport {
    let mut player = Player {
        client: KeepAlive::new(setup.addr),
        base: setup
            .playlist_path
            .rsplit_once('/')
            .map_or(String::from("/"), |(dir, _)| format!("{dir}/")),
        report: PlayerReport::default(),
        waiting_for_time: HashMap::new(),
        newest: None,
        setup,
    };
    player.run().await;
    player.report.connects = player.client.connects;
    player.report
}

struct Player {
    client: KeepAlive,
    setup: PlayerSetup,
    /// Where media names are resolved.
    base: String,
    report: PlayerReport,
    /// Parts fetched before a playlist said when their media ends: their arrival, Unix µs.
    waiting_for_time: HashMap<String, u64>,
    /// The newest part fetched.
    newest: Option<String>,
}

impl Player {
    async fn run(&mut self) {
        let started = Instant::now();
        let mut last: Option<Playlist> = None;
        while Instant::now() < self.setup.stop_at {
            let reload = last.as_ref().and_then(Playlist::next_reload);
            let path = match reload {
                Some((msn, part)) => format!(
                    "{}?_HLS_msn={msn}&_HLS_part={part}",
                    self.setup.playlist_path
                ),
                None => self.setup.playlist_path.clone(),
            };
            let Some(reply) = self.request(&path, Kind::Playlist, true).await else {
                if Instant::now() >= self.setup.stop_at {
                    return;
                }
                last = None;
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            };
            if reload.is_some() {
                self.report.blocking_playlists += 1;
            } else {
                self.report.plain_playlists += 1;
            }
            self.report.first_playlist.get_or_insert(started.elapsed());
            let playlist = match Playlist::parse(&String::from_utf8_lossy(&reply.body)) {
                Ok(playlist) if !playlist.segments.is_empty() => playlist,
                Ok(_) => {
                    self.problem(format!("{path}: a playlist with no segment"));
                    last = None;
                    continue;
                }
                Err(why) => {
                    self.problem(format!("{path}: {why}"));
                    last = None;
                    continue;
                }
            };
            if !self.fetch_new_parts(&playlist).await {
                return;
            }
            last = Some(playlist);
        }
    }

    /// Fetches what `playlist` lists beyond the newest part fetched, and its hinted part.
    /// Returns false once it is time to stop.
    async fn fetch_new_parts(&mut self, playlist: &Playlist) -> bool {
        let parts = playlist.parts();
        for part in &parts {
            if let (Some(end), Some(arrived)) =
                (part.end_us, self.waiting_for_time.remove(&part.uri))
            {
                self.report.part_delays_us.push(arrived as i64 - end as i64);
            }
        }
        let newest_at = self
            .newest
            .as_ref()
            .and_then(|newest| parts.iter().position(|p| &p.uri == newest));
        let from = match (newest_at, &self.newest) {
            (Some(at), _) => at + 1,
            (None, None) => parts.len().saturating_sub(START_BEHIND_PARTS),
            (None, Some(_)) => {
                self.report.resyncs += 1;
                parts.len().saturating_sub(START_BEHIND_PARTS)
            }
        };
        for part in &parts[from..] {
            if let Some(map) = &part.map
                && !self.report.objects.contains(map)
            {
                match self.fetch_media(map).await {
                    None => return false,
                    Some(true) => self.report.inits += 1,
                    Some(false) => {}
                }
            }
            if self.report.objects.contains(&part.uri) {
                self.newest = Some(part.uri.clone());
                continue;
            }
            match self.fetch_media(&part.uri).await {
                None => return false,
                Some(true) => {
                    self.report.parts += 1;
                    if let Some(end) = part.end_us {
                        self.report
                            .part_delays_us
                            .push(unix_now_us() as i64 - end as i64);
                    }
                }
                Some(false) => {}
            }
            self.newest = Some(part.uri.clone());
        }
        if let Some(hint) = &playlist.preload_hint
            && !self.report.objects.contains(hint)
        {
            match self.fetch_media(hint).await {
                None => return false,
                Some(true) => {
                    self.report.parts += 1;
                    self.report.hinted_parts += 1;
                    self.waiting_for_time.insert(hint.clone(), unix_now_us());
                    self.newest = Some(hint.clone());
                }
                Some(false) => {}
            }
        }
        true
    }

    /// Fetches the media object `name`: `Some(true)` when it came, `Some(false)` when it did
    /// not (counted), `None` when it is time to stop.
    async fn fetch_media(&mut self, name: &str) -> Option<bool> {
        let path = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("{}{name}", self.base)
        };
        match self.request(&path, Kind::Media, false).await {
            Some(reply) => {
                self.report.media_bytes += reply.body_len as u64;
                self.report.objects.insert(name.to_string());
                Some(true)
            }
            None if Instant::now() >= self.setup.stop_at => None,
            None => Some(false),
        }
    }

    /// One request: the reply when it was a 200, `None` otherwise (counted and described) or
    /// when the player's time is up (not counted).
    async fn request(&mut self, path: &str, kind: Kind, keep_body: bool) -> Option<Reply> {
        let timeout = self.setup.request_timeout;
        let answer = tokio::select! {
            answer = self.client.get(path, keep_body, timeout) => answer,
            _ = tokio::time::sleep_until(self.setup.stop_at) => return None,
        };
        self.report.requests += 1;
        match answer {
            Ok(reply) => {
                let cache = reply.header("x-cache-status").unwrap_or("none").to_string();
                let tally = match kind {
                    Kind::Playlist => &mut self.report.playlist_cache,
                    Kind::Media => &mut self.report.media_cache,
                };
                *tally.entry(cache).or_default() += 1;
                if reply.status == 200 {
                    self.report.ok += 1;
                    Some(reply)
                } else {
                    *self.report.statuses.entry(reply.status).or_default() += 1;
                    self.problem(format!("{path}: status {}", reply.status));
                    None
                }
            }
            Err(e) => {
                self.report.unanswered += 1;
                self.problem(format!("{path}: {e}"));
                None
            }
        }
    }

    fn problem(&mut self, what: String) {
        if self.report.problems.len() < PROBLEMS_KEPT {
            self.report.problems.push(what);
        }
    }
}

fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Players started one after the other over `ramp`, each playing until `stop_at`; their
/// reports, in the order they started.
pub async fn play_all(players: usize, ramp: Duration, setup: PlayerSetup) -> Vec<PlayerReport> {
    let mut tasks = Vec::with_capacity(players);
    let start = Instant::now();
    for i in 0..players {
        let at = start + ramp.mul_f64(i as f64 / players.max(1) as f64);
        let setup = setup.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            play(setup).await
        }));
    }
    let mut reports = Vec::with_capacity(players);
    for task in tasks {
        match task.await {
            Ok(report) => reports.push(report),
            Err(e) => reports.push(PlayerReport {
                problems: vec![format!("a player's task failed: {e}")],
                unanswered: 1,
                ..PlayerReport::default()
            }),
        }
    }
    reports
}
