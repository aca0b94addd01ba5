// SPDX-License-Identifier: MIT
//! `/hls/…` over HTTP: the playlist (blocking reloads included) and the media objects, with
//! the cache headers that let any HTTP cache in front collapse many players into one fetch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use warp::reply::Response;

use crate::access::query_param;
use crate::context::{Peer, ServerContext};
use crate::hls::{
    ADVANCE_PART_LIMIT, Directive, Object, PART_TARGET_US, Session, StartRefused,
    TARGET_DURATION_S, playlist,
};
use crate::protocol::CameraState;
use crate::reply::respond;
use crate::sync::lock;
use crate::viewers::ClientKind;

pub const PLAYLIST_NAME: &str = "index.m3u8";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MEDIA_TYPE: &str = "video/mp4";
/// A blocked request is answered within this, or told to come back (the specification: three
/// target durations).
const BLOCK_LIMIT: Duration = Duration::from_secs(3 * TARGET_DURATION_S);
/// The first playlist request of a run waits this long for the camera and the encoder to
/// start and the first segment to finish.
const FIRST_SEGMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Media objects never change under their name: a cache may keep them well past their time in
/// the playlist.
const MEDIA_CACHE: &str = "public, max-age=60, immutable";
/// A blocking reload's answer is right for anyone asking the same URI later (it contains at
/// least what was asked for), so caches may share it for a while.
const BLOCKED_PLAYLIST_CACHE: &str = "public, max-age=6";
/// A playlist asked for without directives changes with every part: caches ask again each time.
const PLAYLIST_CACHE: &str = "no-cache";
/// Parts in a segment, for telling how far ahead a request asks.
const PARTS_PER_SEGMENT: u64 = TARGET_DURATION_S * 1_000_000 / PART_TARGET_US;

fn error(status: StatusCode, message: String) -> Response {
    let mut response = respond(status, "text/plain; charset=utf-8", format!("{message}\n"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn with_headers(mut response: Response, cache: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Players on other sites (and caches' own pages) may read the stream.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Answers `GET /hls/<name>?<query>`.
pub async fn answer(ctx: Arc<ServerContext>, name: String, query: String, peer: Peer) -> Response {
    let response = if name == PLAYLIST_NAME {
        playlist(&ctx, &query, &peer).await
    } else {
        media(&ctx, &name).await
    };
    if response.status().is_success() {
        response
    } else {
        with_headers(response, "no-store")
    }
}

async fn playlist(ctx: &Arc<ServerContext>, query: &str, peer: &Peer) -> Response {
    let origin = &ctx.hub.hls;
    origin.counters.playlists.fetch_add(1, Ordering::Relaxed);
    let directive = match Directive::parse(query) {
        Ok(directive) => directive,
        Err(why) => return error(StatusCode::BAD_REQUEST, format!("Bad request: {why}")),
    };
    let config = ctx.config();
    let session = origin.session(
        || {
            ctx.hub
                .viewers
                .register(ClientKind::Hls, peer.addr, config.max_clients)
        },
        |task| ctx.spawn(task),
        ctx.hub.shutdown.clone(),
    );
    let session = match session {
        Ok(session) => session,
        Err(StartRefused::NoStream) => {
            return error(
                StatusCode::NOT_FOUND,
                "No H.264 stream here: HLS needs a wsh264sink feeding this server (the \
                 launcher's H.264 encoder, or one in your pipeline)"
                    .to_string(),
            );
        }
        Err(StartRefused::TooManyViewers) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many viewers (max-clients)".to_string(),
            );
        }
    };
    if !session.progress().complete
        && let Err(response) = first_segment(ctx, &session).await
    {
        return response;
    }
    if directive.too_far(&session.progress(), PARTS_PER_SEGMENT) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "Bad request: the playlist asked for is more than two segments or {ADVANCE_PART_LIMIT} parts ahead of the newest"
            ),
        );
    }
    let cache = match directive {
        Directive::Now => PLAYLIST_CACHE,
        Directive::Block { .. } => {
            origin
                .counters
                .blocked_playlists
                .fetch_add(1, Ordering::Relaxed);
            if session
                .wait_for(BLOCK_LIMIT, |p| directive.satisfied(p))
                .await
                .is_none()
            {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The stream did not reach the part asked for in time".to_string(),
                );
            }
            BLOCKED_PLAYLIST_CACHE
        }
    };
    session.touch();
    let token = query_param(query, "token")
        .filter(|_| config.auth_token.is_some())
        .map(|t| format!("token={}", utf8_percent_encode(&t, NON_ALPHANUMERIC)))
        .unwrap_or_default();
    let text = playlist::render(&lock(&session.window), &session.run, &token);
    with_headers(respond(StatusCode::OK, PLAYLIST_TYPE, text), cache)
}

/// Waits for the run's first complete segment; the answer to give instead if it does not come.
async fn first_segment(ctx: &ServerContext, session: &Session) -> Result<(), Response> {
    let started = tokio::time::Instant::now();
    while started.elapsed() < FIRST_SEGMENT_TIMEOUT {
        let camera = ctx.hub.camera_status();
        if camera.state == CameraState::Error {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "Camera error: {}",
                    camera.message.as_deref().unwrap_or("the camera failed")
                ),
            ));
        }
        if session
            .wait_for(Duration::from_millis(250), |p| p.complete)
            .await
            .is_some()
        {
            return Ok(());
        }
        if session.ended.is_cancelled() {
            break;
        }
    }
    Err(error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The stream has not started yet, retry shortly".to_string(),
    ))
}

async fn media(ctx: &ServerContext, name: &str) -> Response {
    let origin = &ctx.hub.hls;
    let gone = || {
        error(
            StatusCode::NOT_FOUND,
            format!("Not found: {name} is not in the stream's window (reload the playlist)"),
        )
    };
    let Some(session) = origin.current() else {
        return gone();
    };
    let Some(object) = session.run.parse(name) else {
        return gone();
    };
    session.touch();
    let progress = session.progress();
    // A part or segment not finished yet, but close: wait for it, as for a blocking reload
    // (the part the playlist hints at comes this way).
    let pending = match object {
        Object::Part(n) if n >= progress.next_part => {
            if n >= progress.next_part + ADVANCE_PART_LIMIT {
                return gone();
            }
            Some(session.wait_for(BLOCK_LIMIT, |p| p.next_part > n).await)
        }
        Object::Segment(msn) if msn >= progress.open_msn => {
            if msn > progress.open_msn {
                return gone();
            }
            Some(session.wait_for(BLOCK_LIMIT, |p| p.open_msn > msn).await)
        }
        _ => None,
    };
    if pending.is_some_and(|p| p.is_none()) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name} did not finish in time"),
        );
    }
    let bytes: Option<Bytes> = {
        let window = lock(&session.window);
        match object {
            Object::Init(n) => window.init(n),
            Object::Segment(msn) => window.segment(msn),
            Object::Part(n) => window.part(n),
        }
    };
    let Some(bytes) = bytes else {
        return gone();
    };
    origin.served(&bytes);
    with_headers(respond(StatusCode::OK, MEDIA_TYPE, bytes), MEDIA_CACHE)
}
