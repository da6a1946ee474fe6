//! Card-link routes: a holder's link request, decided by the ledger.
//!
//! `POST /v1/card-links` takes the request as the portal forwards it — the
//! card's user-authentication certificate (PEM text, or base64 of DER) and
//! the individual insured number the holder gave — and answers the decision
//! ([`LinkDecision`]): `linked` (201), `already_linked` or `rejected` with
//! the reason (200). The certificate is verified and dropped; only its
//! serial is kept. No decision logic lives here.
//!
//! `GET /v1/card-links/requests/{request_id}` answers where a request stands:
//! its decision, its completion notice (state, attempts, last failure, the
//! events that moved it) and whether its contact address is erased.
//! `GET /v1/notices` lists the notices outbox: requests with work left.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use ledger::domain::{
    Branch, CardNumber, CardSerial, CardSymbol, Day, InsurerNumber, LinkNumber, PublisherId,
    RequestId,
};
use ledger::error::FieldError;
use ledger::event::UnlinkReason;
use projectors::model::LinkRequestStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{ApiError, Json, Path, Problem};
use crate::auth::Caller;
use crate::cardlink::{DecideError, LinkDecision, LinkRequest, Unlinked};
use crate::contact::ContactAddress;
use crate::service::{Ledger, LinkRequestError};

/// The OpenAPI description of these routes ([`super::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(request_link, unlink, request_status, outbox),
    components(schemas(RequestId, CardSerial))
)]
pub(super) struct Api;

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new()
        .route("/v1/card-links", post(request_link))
        .route("/v1/card-links/{serial}/unlink", post(unlink))
        .route("/v1/card-links/requests/{request_id}", get(request_status))
        .route("/v1/notices", get(outbox))
}

/// A link request with its person.
#[derive(Debug, Serialize, ToSchema)]
struct RequestAnswer {
    link: LinkNumber,
    #[serde(flatten)]
    request: LinkRequestStatus,
}

/// Where a link request stands: one answer, or several when the id was
/// used for more than one person.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum RequestAnswers {
    One(Box<RequestAnswer>),
    Several(Vec<RequestAnswer>),
}

/// The notices outbox: link requests with work left.
#[derive(Debug, Serialize, ToSchema)]
struct Outbox {
    open: Vec<RequestAnswer>,
}

#[utoipa::path(get, path = "/v1/card-links/requests/{request_id}", tag = "card-links",
    params(("request_id" = RequestId, Path, description = "The request's id, as the portal sent it")),
    responses(
        (status = 200, description = "The request's decision, completion notice and contact erasure", body = RequestAnswers),
        (status = 400, description = "A bad request id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link request is known", body = Problem, content_type = "application/problem+json"),
    ))]
async fn request_status(
    State(ledger): State<Arc<Ledger>>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let request_id = request_id
        .parse::<RequestId>()
        .map_err(|e| ApiError::parameter("request_id", e.to_string()))?;
    let mut found = ledger
        .views()
        .link_request_by_id(&request_id)
        .map_err(|e| ApiError::Service(e.into()))?;
    match found.len() {
        0 => Err(ApiError::NotFound {
            what: "link request",
        }),
        1 => {
            let (link, request) = found.remove(0);
            Ok(Json(RequestAnswers::One(Box::new(RequestAnswer {
                link,
                request,
            })))
            .into_response())
        }
        _ => Ok(Json(RequestAnswers::Several(
            found
                .into_iter()
                .map(|(link, request)| RequestAnswer { link, request })
                .collect(),
        ))
        .into_response()),
    }
}

#[utoipa::path(get, path = "/v1/notices", tag = "card-links",
    responses((status = 200, description = "Link requests with work left: a notice to publish or e-mail, or a contact key to destroy", body = Outbox)))]
async fn outbox(State(ledger): State<Arc<Ledger>>) -> Result<Response, ApiError> {
    let open = ledger
        .views()
        .notice_outbox()
        .map_err(|e| ApiError::Service(e.into()))?;
    let answers: Vec<RequestAnswer> = open
        .into_iter()
        .map(|(link, request)| RequestAnswer { link, request })
        .collect();
    Ok(Json(Outbox { open: answers }).into_response())
}

/// The body of `POST /v1/card-links/{serial}/unlink`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UnlinkBody {
    /// `CARD_LOST`, `CERTIFICATE_REVOKED`, `HOLDER_REQUEST`, …
    #[schema(value_type = UnlinkReason)]
    reason: String,
    /// First day not linked [default: today in Japan].
    #[serde(default)]
    #[schema(value_type = Option<Day>)]
    on: Option<String>,
    /// The publisher of the event [default: the caller's, or `portal`].
    #[serde(default)]
    #[schema(value_type = Option<PublisherId>)]
    source: Option<String>,
}

#[utoipa::path(post, path = "/v1/card-links/{serial}/unlink", tag = "card-links",
    params(("serial" = CardSerial, Path, description = "シリアル of the linked card")),
    request_body = UnlinkBody,
    responses(
        (status = 200, description = "The link ended", body = Unlinked),
        (status = 400, description = "A bad serial, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The source is not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card serial is linked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field broke its rule", body = Problem, content_type = "application/problem+json"),
    ))]
async fn unlink(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Path(serial): Path<String>,
    Json(body): Json<UnlinkBody>,
) -> Result<Response, ApiError> {
    let serial = serial
        .parse::<CardSerial>()
        .map_err(|e| ApiError::parameter("serial", e.to_string()))?;
    let reason = field(
        "reason",
        UnlinkReason::from_symbol(body.reason.trim())
            .ok_or_else(|| format!("unknown reason {:?}", body.reason)),
    )?;
    let on = match body.on {
        Some(on) => field("on", on.parse::<Day>())?,
        None => Day::today_in_japan(),
    };
    let given = body
        .source
        .as_deref()
        .map(|s| field("source", s.parse::<PublisherId>()))
        .transpose()?;
    let source = caller.source("source", given, "portal")?;
    let ledger = Arc::clone(&ledger);
    let done =
        tokio::task::spawn_blocking(move || ledger.unlink_card(&serial, on, reason, &source))
            .await?;
    match done {
        Ok(Some(unlinked)) => Ok(Json(unlinked).into_response()),
        Ok(None) => Err(ApiError::NotFound {
            what: "linked card serial",
        }),
        Err(e) => Err(decide_error(e)),
    }
}

fn decide_error(e: DecideError) -> ApiError {
    match e {
        DecideError::Invalid(e) => ApiError::InvalidRequest(e),
        DecideError::Service(e) => ApiError::Service(e),
        e => ApiError::Internal(e.to_string()),
    }
}

/// The body of `POST /v1/card-links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkRequestBody {
    #[schema(value_type = RequestId)]
    request_id: String,
    /// PEM (`-----BEGIN CERTIFICATE-----`…) or base64 of the DER bytes.
    certificate: String,
    #[schema(value_type = InsurerNumber)]
    insurer: String,
    #[serde(default)]
    #[schema(value_type = Option<CardSymbol>)]
    symbol: Option<String>,
    #[schema(value_type = CardNumber)]
    number: String,
    #[serde(default)]
    #[schema(value_type = Option<Branch>)]
    branch: Option<String>,
    #[serde(default)]
    notice_requested: bool,
    /// Where to e-mail the completion notice; sealed, then erased once sent.
    #[serde(default)]
    #[schema(format = Email)]
    contact_email: Option<String>,
    /// The forwarding system's publisher id [default: `portal`].
    #[serde(default)]
    #[schema(value_type = Option<PublisherId>)]
    source: Option<String>,
}

fn field<T, E: std::fmt::Display>(name: &str, parsed: Result<T, E>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::InvalidRequest(FieldError::new(name, e.to_string())))
}

impl LinkRequestBody {
    fn parse(self, caller: &Caller) -> Result<(LinkRequest, Vec<u8>), ApiError> {
        let optional = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        let request = LinkRequest {
            request_id: field("request_id", RequestId::parse(&self.request_id))?,
            insurer_number: field("insurer", self.insurer.parse::<InsurerNumber>())?,
            card_symbol: optional(self.symbol)
                .map(|s| field("symbol", s.parse::<CardSymbol>()))
                .transpose()?,
            card_number: field("number", self.number.parse::<CardNumber>())?,
            branch: optional(self.branch)
                .map(|s| field("branch", s.parse::<Branch>()))
                .transpose()?,
            notice_requested: self.notice_requested,
            contact: optional(self.contact_email)
                .map(|s| field("contact_email", ContactAddress::parse(&s)))
                .transpose()?,
            source: caller.source(
                "source",
                self.source
                    .as_deref()
                    .map(|s| field("source", s.parse::<PublisherId>()))
                    .transpose()?,
                "portal",
            )?,
        };
        field("symbol", request.insured_number().map_err(|e| e.rule))?;
        let text = self.certificate.trim();
        let certificate = if text.starts_with("-----BEGIN") {
            text.as_bytes().to_vec()
        } else {
            let compact: String = text.split_whitespace().collect();
            field(
                "certificate",
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| format!("neither PEM nor base64 of DER: {e}")),
            )?
        };
        Ok((request, certificate))
    }
}

#[utoipa::path(post, path = "/v1/card-links", tag = "card-links",
    request_body = LinkRequestBody,
    responses(
        (status = 201, description = "Linked", body = LinkDecision, links(
            ("RequestStatus" = (operation_id = "request_status", parameters(("request_id" = "$response.body#/request_id")))),
        )),
        (status = 200, description = "Already linked, or rejected with the reason", body = LinkDecision, links(
            ("RequestStatus" = (operation_id = "request_status", parameters(("request_id" = "$response.body#/request_id")))),
        )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The source is not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field broke its rule", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server verifies no card certificates (no `[cards]` settings)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn request_link(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Json(body): Json<LinkRequestBody>,
) -> Result<Response, ApiError> {
    let (request, certificate) = body.parse(&caller)?;
    let ledger = Arc::clone(&ledger);
    let decided =
        tokio::task::spawn_blocking(move || ledger.request_card_link(&request, &certificate))
            .await?;
    match decided {
        Ok(d @ LinkDecision::Linked { .. }) => Ok((StatusCode::CREATED, Json(d)).into_response()),
        Ok(d) => Ok(Json(d).into_response()),
        Err(LinkRequestError::NotConfigured) => Err(ApiError::NotConfigured(
            "card certificate verification (the [cards] table of the settings file)",
        )),
        Err(LinkRequestError::Invalid(e)) => Err(ApiError::InvalidRequest(e)),
        Err(LinkRequestError::Decide(e)) => Err(decide_error(e)),
    }
}
