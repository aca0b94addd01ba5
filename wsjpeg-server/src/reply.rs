// SPDX-License-Identifier: MIT
//! Building answers: plain text, JSON, any body with its content type, and the headers every
//! answer carries.

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};
use warp::reply::{Reply, Response};

pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut response = http::Response::new(body.into()).into_response();
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn text(status: StatusCode, body: &'static str) -> Response {
    respond(status, "text/plain; charset=utf-8", body)
}

/// 503 with `Retry-After`, for an answer that will be there shortly.
pub fn service_unavailable(body: &'static str) -> Response {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut r = warp::reply::json(value).into_response();
    *r.status_mut() = status;
    r
}

/// `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

/// Every answer carries these: nothing sniffed, and nothing cached unless the answer says how
/// (the viewer's versioned files).
pub fn with_common_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
