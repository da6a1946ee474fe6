//! `POST /v1/onlinecheck`: the online check's XML request in, its result
//! out ([`crate::onlinecheck`]), for hospital systems that speak the format
//! over HTTP. The result is always the format's message: a request that
//! cannot be read gets `SegmentOfResult` 9 with an `ErrorCode`, and the HTTP
//! status says the same (400 for the request, 403 for scope, 500 for us).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::problem::Problem;
use crate::auth::Caller;
use crate::onlinecheck::codes::ErrorCode;
use crate::onlinecheck::xml::{Charset, MAX_MESSAGE_BYTES};
use crate::onlinecheck::{self, Channel, Status};
use crate::service::Ledger;

/// The p17 person's request (the document's example).
const EXAMPLE_REQUEST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n<XmlMsg><MessageHeader><QualificationConfirmationDate>20240402</QualificationConfirmationDate><MedicalInstitutionCode>1311234567</MedicalInstitutionCode><ArbitraryFileIdentifier>0001</ArbitraryFileIdentifier></MessageHeader><MessageBody><QualificationConfirmSearchInfo><InsurerNumber>01130012</InsurerNumber><InsuredCardSymbol>13010017</InsuredCardSymbol><InsuredIdentificationNumber>1234</InsuredIdentificationNumber><InsuredBranchNumber>00</InsuredBranchNumber><Birthdate>19850615</Birthdate><LimitApplicationCertificateRelatedConsFlg>1</LimitApplicationCertificateRelatedConsFlg></QualificationConfirmSearchInfo></MessageBody></XmlMsg>\n";

#[derive(utoipa::OpenApi)]
#[openapi(paths(check))]
pub(super) struct Api;

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
/// The body is read up to one byte past the largest message, so a larger
/// one is answered in the format (QLX004) without being read whole.
#[utoipa::path(post, path = "/v1/onlinecheck", tag = "eligibility", operation_id = "online_check",
    request_body(description = "The online check's 資格確認 request, `XmlMsg` (MessageHeader, MessageBody/QualificationConfirmSearchInfo), UTF-8 or Shift_JIS as its declaration says", content(
        (String = "application/xml", example = json!(EXAMPLE_REQUEST)),
    )),
    responses(
        (status = 200, description = "The result message (`SegmentOfResult` 1): `ProcessingResultStatus`, `QualificationValidity`, `ResultList/ResultOfQualificationConfirmation`, in the request's encoding", body = String, content_type = "application/xml"),
        (status = 400, description = "A request that cannot be answered: the result message with `SegmentOfResult` 9, `ErrorCode` and `ErrorMessage` naming the element", body = String, content_type = "application/xml"),
        (status = 403, description = "The caller may not ask under this `MedicalInstitutionCode` or about this insurer (the result message, `ErrorCode` QLX020), or the role may not look up eligibility (problem+json)", content(
            (String = "application/xml"),
            (Problem = "application/problem+json"),
        )),
        (status = 413, description = "Over 64 KiB: the result message with `ErrorCode` QLX004", body = String, content_type = "application/xml"),
        (status = 500, description = "The ledger failed (logged): the result message with `ErrorCode` QLX900", body = String, content_type = "application/xml"),
    ))]
async fn check(State(ledger): State<Arc<Ledger>>, caller: Caller, body: Body) -> Response {
    let body = match axum::body::to_bytes(body, MAX_MESSAGE_BYTES + 1).await {
        Ok(bytes) => bytes.to_vec(),
        // Over the limit (or the client went away): answered as too large.
        Err(_) => vec![b' '; MAX_MESSAGE_BYTES + 1],
    };
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
