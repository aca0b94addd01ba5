// SPDX-License-Identifier: MIT
//! The route table: which path and method reaches which handler, behind the token check.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use headers::HeaderMapExt;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::access::{
    detector_token_accepted, origin_allowed, query_param, request_scheme, token_accepted,
    token_cookie,
};
use crate::context::{Peer, ServerContext};
use crate::events::{RecordAction, log};
use crate::hub::Frame;
use crate::protocol::CameraState;
use crate::reply::{respond, service_unavailable, text, with_common_headers};
use crate::snapshot::Snapshot;
use crate::viewers::ClientKind;
use crate::websocket::{self, Codec, Container, ViewerOptions};
use crate::{files, hls_http, mjpeg, page, recordings, report, signin};

/// A request without a valid token; `sign_in` when it is a browser opening a page, `refused`
/// when it gave a token that is not the one.
#[derive(Debug)]
struct Unauthorized {
    sign_in: bool,
    refused: bool,
}
impl warp::reject::Reject for Unauthorized {}

fn jpeg_response(frame: &Frame) -> Response {
    let mut r = respond(StatusCode::OK, "image/jpeg", frame.jpeg.clone());
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}.{:06}",
        frame.capture_time_us / 1_000_000,
        frame.capture_time_us % 1_000_000
    )) {
        r.headers_mut().insert("x-timestamp", v);
    }
    r
}

pub fn routes(ctx: Arc<ServerContext>) -> BoxedFilter<(Response,)> {
    let with_ctx = warp::any().map(move || ctx.clone());
    let peer = warp::ext::get::<Peer>();
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let headers = warp::header::headers_cloned();
    let get = warp::get().or(warp::head()).unify();

    let healthz =
        warp::path!("healthz")
            .and(get)
            .and(with_ctx.clone())
            .map(|ctx: Arc<ServerContext>| {
                let camera = ctx.hub.camera_status();
                if camera.state == CameraState::Error {
                    text(StatusCode::SERVICE_UNAVAILABLE, "camera error\n")
                } else {
                    text(StatusCode::OK, "ok\n")
                }
            });

    let authorized = with_ctx
        .clone()
        .and(query)
        .and(headers)
        .and(warp::method())
        .and(warp::path::full())
        .and_then(
            |ctx: Arc<ServerContext>,
             query: String,
             headers: HeaderMap,
             method: http::Method,
             path: warp::path::FullPath| async move {
                let config = ctx.config();
                if token_accepted(config.auth_token.as_deref(), &query, &headers) {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Unauthorized {
                        sign_in: signin::wants_page(&method, path.as_str(), &headers),
                        refused: query_param(&query, "token").is_some(),
                    }))
                }
            },
        )
        .untuple_one();

    // The sign-in page's form: the token as a cookie, then back to the page.
    let sign_in = warp::path::end()
        .and(warp::post())
        .and(with_ctx.clone())
        .and(headers)
        .and(peer)
        .and(warp::body::content_length_limit(signin::MAX_FORM_BYTES))
        .and(warp::body::bytes())
        .map(
            |ctx: Arc<ServerContext>, headers: HeaderMap, peer: Peer, body: Bytes| {
                let Some(expected) = ctx.config().auth_token else {
                    return text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
                };
                let secure = request_scheme(peer.secure, &headers) == "https";
                let form = signin::form_as_query(&body);
                match token_cookie(Some(&expected), form, secure) {
                    Some(cookie) => signin::signed_in(cookie),
                    None => signin::page(true),
                }
            },
        );

    let index = warp::path::end()
        .and(get)
        .and(with_ctx.clone())
        .and(query)
        .and(headers)
        .and(peer)
        .and_then(
            |ctx: Arc<ServerContext>, query: String, headers: HeaderMap, peer: Peer| async move {
                Ok::<_, Rejection>(match query_param(&query, "action").as_deref() {
                    Some("stream") => mjpeg_stream(&ctx, peer),
                    Some("snapshot") => snapshot(ctx, peer).await,
                    _ => {
                        let secure = request_scheme(peer.secure, &headers) == "https";
                        let cookie =
                            token_cookie(ctx.config().auth_token.as_deref(), &query, secure);
                        let mut response = page(ctx, "/".to_string()).await;
                        if let Some(cookie) = cookie {
                            response.headers_mut().insert(header::SET_COOKIE, cookie);
                        }
                        response
                    }
                })
            },
        );

    // The built-in page's files; with a document root, its own files are served instead.
    let assets = warp::path("assets")
        .and(warp::path::param::<String>())
        .and(warp::path::tail())
        .and(get)
        .and(with_ctx.clone())
        .and_then(
            |version: String, name: warp::path::Tail, ctx: Arc<ServerContext>| async move {
                if ctx.config().document_root.is_some() {
                    return Err(warp::reject::not_found());
                }
                let (body, content_type) =
                    page::asset(&version, name.as_str()).ok_or_else(warp::reject::not_found)?;
                let mut response = http::Response::new(body).into_response();
                let h = response.headers_mut();
                h.insert(header::CONTENT_TYPE, content_type);
                h.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(page::IMMUTABLE),
                );
                Ok::<_, Rejection>(response)
            },
        );

    let stream = warp::path!("stream")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(query)
        .and(headers)
        .and(peer)
        .and(warp::ext::optional::<OnUpgrade>())
        .map(ws_or_mjpeg);

    let mjpg = warp::path!("stream.mjpg")
        .and(get)
        .and(with_ctx.clone())
        .and(peer)
        .map(|ctx: Arc<ServerContext>, peer: Peer| mjpeg_stream(&ctx, peer));

    let snapshot_route = warp::path!("snapshot.jpg")
        .and(get)
        .and(with_ctx.clone())
        .and(peer)
        .then(snapshot);

    let status =
        warp::path!("status")
            .and(get)
            .and(with_ctx.clone())
            .map(|ctx: Arc<ServerContext>| {
                let snapshot = Snapshot::take(&ctx);
                warp::reply::json(&report::status_json(&snapshot, &ctx.config().source_info))
                    .into_response()
            });

    let metrics =
        warp::path!("metrics")
            .and(get)
            .and(with_ctx.clone())
            .map(|ctx: Arc<ServerContext>| {
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    report::metrics_text(&Snapshot::take(&ctx)),
                )
            });

    let hls = warp::path!("hls" / String)
        .and(get)
        .and(with_ctx.clone())
        .and(query)
        .and(peer)
        .then(
            |name: String, ctx: Arc<ServerContext>, query: String, peer: Peer| {
                hls_http::answer(ctx, name, query, peer)
            },
        );

    let recording_list = warp::path!("api" / "recordings")
        .and(get)
        .and(with_ctx.clone())
        .and_then(recordings::list);

    let recording_file = warp::path("recordings")
        .and(warp::path::tail())
        .and(get)
        .and(warp::method())
        .and(headers)
        .and(peer)
        .and(with_ctx.clone())
        .and_then(
            |name: warp::path::Tail,
             method: http::Method,
             headers: HeaderMap,
             peer: Peer,
             ctx: Arc<ServerContext>| {
                recordings::download(ctx, name.as_str().to_string(), method, headers, peer)
            },
        );

    // Any method, so that a GET is told to use POST (405) instead of "not found".
    let record_control = warp::path!("api" / "record" / String)
        .and(warp::method())
        .and(headers)
        .and(peer)
        .and(with_ctx.clone())
        .and_then(
            |action: String,
             method: http::Method,
             headers: HeaderMap,
             peer: Peer,
             ctx: Arc<ServerContext>| async move {
                let action = match action.as_str() {
                    "start" => RecordAction::Start,
                    "stop" => RecordAction::Stop,
                    _ => return Err(warp::reject::not_found()),
                };
                Ok(recordings::control(ctx, action, method, headers, peer).await)
            },
        );

    // Without a document root there are no files: any other path is unknown, whatever the
    // method (404, not 405).
    let static_files = warp::path::full()
        .and(with_ctx)
        .and_then(
            |path: warp::path::FullPath, ctx: Arc<ServerContext>| async move {
                if ctx.config().document_root.is_none() {
                    return Err(warp::reject::not_found());
                }
                Ok((path, ctx))
            },
        )
        .untuple_one()
        .and(get)
        .then(
            |path: warp::path::FullPath, ctx: Arc<ServerContext>| async move {
                page(ctx, path.as_str().to_string()).await
            },
        );

    let guarded = authorized.and(
        index
            .or(stream)
            .unify()
            .or(mjpg)
            .unify()
            .or(snapshot_route)
            .unify()
            .or(status)
            .unify()
            .or(metrics)
            .unify()
            .or(hls)
            .unify()
            .or(recording_list)
            .unify()
            .or(recording_file)
            .unify()
            .or(record_control)
            .unify()
            .or(assets)
            .unify()
            .or(static_files)
            .unify(),
    );

    healthz
        .or(sign_in)
        .unify()
        .or(guarded)
        .unify()
        .recover(|rejection: Rejection| async move {
            Ok::<_, std::convert::Infallible>(rejection_response(rejection))
        })
        .unify()
        .map(with_common_headers)
        .boxed()
}

fn rejection_response(rejection: Rejection) -> Response {
    if let Some(refusal) = rejection.find::<Unauthorized>() {
        if refusal.sign_in {
            return signin::page(refusal.refused);
        }
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: a valid token is required\n",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    } else if rejection.is_not_found() {
        text(StatusCode::NOT_FOUND, "Not found\n")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n")
    } else {
        text(StatusCode::BAD_REQUEST, "Bad request\n")
    }
}

/// The viewer page: the built-in one, or a file from `document-root`, streamed.
async fn page(ctx: Arc<ServerContext>, path: String) -> Response {
    let Some(root) = ctx.config().document_root else {
        return respond(StatusCode::OK, "text/html; charset=utf-8", page::page());
    };
    let events = ctx.hub.events.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let resolved = files::resolve(&root, &path)?;
        let file = std::fs::File::open(&resolved).map_err(|err| {
            log!(
                events,
                Warning,
                "Cannot read {}: {}",
                resolved.display(),
                err
            );
        });
        let file = file.ok()?;
        let size = file.metadata().ok()?.len();
        Some((file, size, files::content_type(&resolved)))
    })
    .await;
    let Ok(Some((file, size, content_type))) = opened else {
        return text(StatusCode::NOT_FOUND, "Not found\n");
    };
    let mut response = if size == 0 {
        http::Response::new(Bytes::new()).into_response()
    } else {
        warp::reply::stream(files::stream(&ctx, file, 0, size)).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    response
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// `/stream`: a WebSocket for browsers; a plain GET gets the MJPEG stream, as µStreamer's does.
fn ws_or_mjpeg(
    ctx: Arc<ServerContext>,
    query: String,
    headers: HeaderMap,
    peer: Peer,
    upgrade: Option<OnUpgrade>,
) -> Response {
    if !is_websocket_upgrade(&headers) {
        return mjpeg_stream(&ctx, peer);
    }
    let config = ctx.config();
    let scheme = request_scheme(peer.secure, &headers);
    if !origin_allowed(&config.allowed_origins, &headers, scheme) {
        log!(
            ctx.hub.events,
            Info,
            "Refused WebSocket from {} with a foreign Origin",
            peer.addr
        );
        return text(StatusCode::FORBIDDEN, "Origin not allowed\n");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes() != b"13")
        .unwrap_or(true)
    {
        let mut r = text(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket version 13 required\n",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let (Some(key), Some(upgrade)) = (headers.typed_get::<headers::SecWebsocketKey>(), upgrade)
    else {
        return text(StatusCode::BAD_REQUEST, "Invalid WebSocket handshake\n");
    };
    let flag = |name: &str| query_param(&query, name).is_some_and(|v| v == "1" || v == "true");
    let codec = match query_param(&query, "codec").as_deref() {
        Some("h264") => Codec::H264,
        _ => Codec::Jpeg,
    };
    // Refused viewers still complete the handshake, so that they can be told why (1013).
    let guard = ctx.hub.viewers.register(
        match codec {
            Codec::Jpeg => ClientKind::WebSocket,
            Codec::H264 => ClientKind::H264,
        },
        peer.addr,
        config.max_clients,
    );
    let options = ViewerOptions {
        codec,
        container: Container::from_query(query_param(&query, "container").as_deref()),
        meta: flag("meta"),
        detections: flag("detections"),
        detector: detector_token_accepted(config.detector_token.as_deref(), &query, &headers),
        keepalive: config.keepalive,
    };
    ctx.spawn(websocket::serve_upgraded(
        upgrade,
        guard,
        options,
        ctx.hub.clone(),
        peer.connection.busy(),
    ));

    let mut response = http::Response::new(Bytes::new()).into_response();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.typed_insert(headers::SecWebsocketAccept::from(key));
    response
}

fn mjpeg_stream(ctx: &Arc<ServerContext>, peer: Peer) -> Response {
    let config = ctx.config();
    let Some(guard) = ctx
        .hub
        .viewers
        .register(ClientKind::Mjpeg, peer.addr, config.max_clients)
    else {
        return service_unavailable("Too many viewers\n");
    };
    let body = mjpeg::stream(ctx.hub.clone(), guard, |task| ctx.spawn(task));
    let mut response = warp::reply::stream(body).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "multipart/x-mixed-replace;boundary={}",
        mjpeg::BOUNDARY
    )) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The newest frame if it is fresh; otherwise waits for the next one (the application sees a
/// viewer and may start the camera), up to `snapshot-timeout`.
async fn snapshot(ctx: Arc<ServerContext>, peer: Peer) -> Response {
    let hub = &ctx.hub;
    let mut feed = hub.subscribe();
    let fresh = feed.borrow_and_update().frame.clone();
    if let Some(frame) = fresh.filter(|f| f.is_fresh()) {
        return jpeg_response(&frame);
    }
    let config = ctx.config();
    let Some(_guard) = hub
        .viewers
        .register(ClientKind::Snapshot, peer.addr, config.max_clients)
    else {
        return service_unavailable("Too many viewers\n");
    };
    let wait = async {
        loop {
            feed.changed().await.ok()?;
            let feed = feed.borrow_and_update();
            if feed.stopping {
                return None;
            }
            if let Some(frame) = &feed.frame {
                return Some(frame.clone());
            }
        }
    };
    let timeout = config.snapshot_timeout.max(Duration::from_millis(1));
    let frame = tokio::time::timeout(timeout, wait).await.ok().flatten();
    match frame {
        Some(frame) => jpeg_response(&frame),
        None => service_unavailable("No frame available yet, retry shortly\n"),
    }
}
