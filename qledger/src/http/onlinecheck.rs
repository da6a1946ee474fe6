//! `POST /v1/onlinecheck`: the online check's XML request in, its result
//! out ([`crate::onlinecheck`]), for hospital systems that speak the format
//! over HTTP. The result is always the format's message: a request that
//! cannot be read gets `SegmentOfResult` 9 with an `ErrorCode`, and the HTTP
//! status says the same (400 for the request, 403 for scope, 500 for us).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::auth::Caller;
use crate::onlinecheck::codes::ErrorCode;
use crate::onlinecheck::xml::Charset;
use crate::onlinecheck::{self, Channel, Status};
use crate::service::Ledger;

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new().route("/v1/onlinecheck", post(check))
}

/// The media type of a result in `charset`.
pub(super) fn media_type(charset: Charset) -> &'static str {
    match charset {
        Charset::Utf8 => "application/xml; charset=UTF-8",
        Charset::ShiftJis => "application/xml; charset=Shift_JIS",
    }
}

/// A lookup like the JSON one: a few point reads, on the async worker.
async fn check(State(ledger): State<Arc<Ledger>>, caller: Caller, body: Bytes) -> Response {
    let answer = onlinecheck::answer(&*ledger, Channel::Http(&caller), &body);
    let status = match answer.status {
        Status::Answered(_) => StatusCode::OK,
        Status::Refused(ErrorCode::NotPermitted) => StatusCode::FORBIDDEN,
        Status::Refused(ErrorCode::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
        Status::Refused(ErrorCode::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        Status::Refused(_) => StatusCode::BAD_REQUEST,
    };
    (
        status,
        [(header::CONTENT_TYPE, media_type(answer.charset))],
        answer.body,
    )
        .into_response()
}
