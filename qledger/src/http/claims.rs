//! Claim routes: a payer registers the claims it received and reads the
//! decisions; an institution or payer checks claims before submission.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/claims` | register one claim or an array: each answered with its patient and first decision |
//! | `POST /v1/claims/check?as_of=` | decide one claim or an array without registering anything |
//! | `GET /v1/claims/{claim_id}` | the claim with its decision history |
//! | `POST /v1/claims/{claim_id}/withdraw` | `{"reason": …}`: no longer checked |
//! | `GET /v1/claims/decisions?payer=&after=&limit=` | the decisions of a payer organisation's claims, after a cursor |
//! | `GET /v1/overlaps?insurer=&after=&limit=` | overlap notices (employee insurance over an open 国保) raised and cleared, for a municipality |
//!
//! No decision logic lives here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger::domain::{
    ClaimId, InsurerNumber, LinkNumber, PayerOrganisation, PublisherId, RecordTime,
};
use ledger::error::FieldError;
use ledger::event::ClaimSubmitted;
use projectors::claims::query::FeedCursor;
use projectors::claims::ClaimState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::problem::{ApiError, Json, Path, Problem, Query};
use super::routes::{blocking, Params, Refusal, DEFAULT_PAGE, MAX_PAGE};
use crate::auth::{Caller, Denied};
use crate::claims::{parse_claim, Checked, DecisionsPage, OverlapsPage, Registered};
use crate::service::Ledger;

/// The OpenAPI description of these routes ([`super::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(register, check, decisions, show, withdraw, overlaps),
    components(schemas(InsurerNumber, PublisherId, RecordTime, ClaimId, PayerOrganisation))
)]
pub(super) struct Api;

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new()
        .route("/v1/claims", post(register))
        .route("/v1/claims/check", post(check))
        .route("/v1/claims/decisions", get(decisions))
        .route("/v1/claims/{claim_id}", get(show))
        .route("/v1/claims/{claim_id}/withdraw", post(withdraw))
        .route("/v1/overlaps", get(overlaps))
}

/// `GET /v1/overlaps?insurer=&after=&limit=`: overlap notices raised and
/// cleared, for one 国保 insurer (a municipality) or all.
#[utoipa::path(get, path = "/v1/overlaps", tag = "claims",
    params(
        ("insurer" = Option<InsurerNumber>, Query, description = "The 国保 insurer (required for a caller scoped to insurers)"),
        ("after" = Option<String>, Query, pattern = "^([0-9a-fA-F]{2})*$", description = "The cursor of the last entry read"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Entries per page [default: 100]"),
    ),
    responses(
        (status = 200, description = "Overlap notices raised and cleared, oldest first", body = OverlapsPage),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The insurer is out of the caller's scope", body = Problem, content_type = "application/problem+json"),
    ))]
async fn overlaps(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["insurer", "after", "limit"])?;
    let insurer: Option<InsurerNumber> = params.parse("insurer")?;
    match &insurer {
        Some(i) => caller.insurer("insurer", i)?,
        None if caller.insurer_scope().is_some() => {
            return Err(ApiError::parameter(
                "insurer",
                "is required: name one of the insurers this client acts for",
            ))
        }
        None => {}
    }
    let after = params.get("after").map(str::to_owned);
    if let Some(a) = &after {
        if hex::decode(a).is_err() {
            return Err(ApiError::parameter(
                "after",
                "is not a cursor this feed gave",
            ));
        }
    }
    let limit = limit_of(&params)?;
    let page = blocking(&ledger, move |l| {
        Ok(l.views()
            .overlap_feed(insurer.as_ref(), after.as_deref(), limit)?)
    })
    .await?;
    Ok(Json(crate::claims::overlaps_page(page)).into_response())
}

fn limit_of(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::parameter(
                "limit",
                format!("must be 1 to {MAX_PAGE}"),
            )),
        },
    }
}

/// One object or an array of them.
fn items(body: Value) -> Vec<Value> {
    match body {
        Value::Array(items) => items,
        one => vec![one],
    }
}

/// The claims of a request body, each parsed and authorised on its own: a
/// claim of another payer organisation (or, for an institution, another
/// institution) is refused and the others go on.
fn scoped_claims(
    caller: &Caller,
    body: Value,
) -> (Vec<Option<Denied>>, Vec<Result<ClaimSubmitted, FieldError>>) {
    let mut denials = Vec::new();
    let mut offered = Vec::new();
    for claim in items(body).into_iter().map(parse_claim) {
        let denied = claim.as_ref().ok().and_then(|c| {
            caller
                .payer("payer", c.payer)
                .and_then(|()| caller.institution("institution", &c.institution))
                .err()
        });
        match denied {
            Some(d) => denials.push(Some(d)),
            None => {
                denials.push(None);
                offered.push(claim);
            }
        }
    }
    (denials, offered)
}

/// The answers in request order: the refused claims' reasons between the
/// answers of the claims offered.
fn merge<T: serde::Serialize>(
    denials: Vec<Option<Denied>>,
    answered: Vec<T>,
) -> Result<Vec<Result<T, Denied>>, ApiError> {
    let mut answered = answered.into_iter();
    denials
        .into_iter()
        .map(|d| match d {
            Some(d) => Some(Err(d)),
            None => answered.next().map(Ok),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::Internal("fewer outcomes than claims".into()))
}

/// One claim, or an array of them: the fields of `ClaimSubmitted`.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the body, read as JSON
enum Claims {
    One(Box<ClaimSubmitted>),
    Many(Vec<ClaimSubmitted>),
}

/// One claim of an array: what became of it, or why the caller may not
/// send it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum RegisterResult {
    Registered(Registered),
    Forbidden(Refusal),
}

/// The answer to an array of claims, one result per element, in order.
#[derive(Debug, Serialize, ToSchema)]
struct RegisterAnswer {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    forbidden: usize,
    results: Vec<RegisterResult>,
}

/// A 200 answer of `POST /v1/claims`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum RegisterReply {
    /// One claim, registered before (`status: duplicate`).
    One(Registered),
    Many(RegisterAnswer),
}

#[utoipa::path(post, path = "/v1/claims", tag = "claims",
    params(("source" = Option<PublisherId>, Query, description = "The publisher of the events [default: the caller's, or `payer`]")),
    request_body = Claims,
    responses(
        (status = 201, description = "The claim was registered and decided", body = Registered, links(
            ("ShowClaim" = (operation_id = "show", parameters(("claim_id" = "$response.body#/claim_id")))),
            ("WithdrawClaim" = (operation_id = "withdraw", parameters(("claim_id" = "$response.body#/claim_id")))),
        )),
        (status = 200, description = "The claim was registered before, or the answers to an array", body = RegisterReply),
        (status = 400, description = "A bad parameter, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The claim is of another payer organisation or institution", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The claim broke a rule: nothing was registered", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["source"])?;
    let source = caller.source("source", params.parse::<PublisherId>("source")?, "payer")?;
    let single = !body.is_array();
    let (denials, claims) = scoped_claims(&caller, body);
    let registered = blocking(&ledger, move |l| l.register_claims(claims, &source)).await?;
    let mut results = merge(denials, registered)?;
    if single {
        return match results.pop() {
            Some(Ok(r @ Registered::Accepted { .. })) => {
                Ok((StatusCode::CREATED, Json(r)).into_response())
            }
            Some(Ok(r @ Registered::Duplicate { .. })) => {
                Ok(Json(RegisterReply::One(r)).into_response())
            }
            Some(Ok(Registered::Rejected { error })) => Err(ApiError::InvalidRequest(error)),
            Some(Err(denied)) => Err(ApiError::Forbidden(denied)),
            None => Err(ApiError::Internal("no outcome for the claim".into())),
        };
    }
    let count =
        |f: fn(&Registered) -> bool| results.iter().filter(|r| r.as_ref().is_ok_and(&f)).count();
    let body = RegisterAnswer {
        accepted: count(|r| matches!(r, Registered::Accepted { .. })),
        duplicates: count(|r| matches!(r, Registered::Duplicate { .. })),
        rejected: count(|r| matches!(r, Registered::Rejected { .. })),
        forbidden: results.iter().filter(|r| r.is_err()).count(),
        results: results
            .into_iter()
            .map(|r| match r {
                Ok(r) => RegisterResult::Registered(r),
                Err(d) => RegisterResult::Forbidden(d.into()),
            })
            .collect(),
    };
    Ok(Json(RegisterReply::Many(body)).into_response())
}

/// One claim of an array checked: its decision, why it was refused, or why
/// the caller may not send it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum CheckResult {
    Checked(Checked),
    Rejected(Rejection),
    Forbidden(Refusal),
}

/// A claim of an array that broke a rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Rejection {
    Rejected { error: FieldError },
}

/// The answer to an array of claims checked, one result per element.
#[derive(Debug, Serialize, ToSchema)]
struct CheckAnswer {
    results: Vec<CheckResult>,
}

/// A 200 answer of `POST /v1/claims/check`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum CheckReply {
    One(Checked),
    Many(CheckAnswer),
}

#[utoipa::path(post, path = "/v1/claims/check", tag = "claims", operation_id = "check_claims",
    params(("as_of" = Option<RecordTime>, Query, description = "Decide as the ledger knew it at this instant [default: now]")),
    request_body = Claims,
    responses(
        (status = 200, description = "The decision for one claim, or the answers to an array", body = CheckReply),
        (status = 400, description = "A bad parameter, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The claim is of another payer organisation or institution", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The claim broke a rule", body = Problem, content_type = "application/problem+json"),
    ))]
async fn check(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["as_of"])?;
    let as_of: Option<RecordTime> = params.parse("as_of")?;
    let single = !body.is_array();
    let (denials, claims) = scoped_claims(&caller, body);
    let checked = blocking(&ledger, move |l| {
        claims
            .into_iter()
            .map(|c| match c {
                Ok(c) => l.check_claim(&c, as_of).map(Ok),
                Err(error) => Ok(Err(error)),
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let mut results = merge(denials, checked)?;
    if single {
        return match results.pop() {
            Some(Ok(Ok(checked))) => Ok(Json(CheckReply::One(checked)).into_response()),
            Some(Ok(Err(error))) => Err(ApiError::InvalidRequest(error)),
            Some(Err(denied)) => Err(ApiError::Forbidden(denied)),
            None => Err(ApiError::Internal("no outcome for the claim".into())),
        };
    }
    let results = results
        .into_iter()
        .map(|r| match r {
            Ok(Ok(checked)) => CheckResult::Checked(checked),
            Ok(Err(error)) => CheckResult::Rejected(Rejection::Rejected { error }),
            Err(denied) => CheckResult::Forbidden(denied.into()),
        })
        .collect();
    Ok(Json(CheckReply::Many(CheckAnswer { results })).into_response())
}

fn claim_id(text: &str) -> Result<ClaimId, ApiError> {
    ClaimId::parse(text).map_err(|e| ApiError::InvalidParameter(e.at("claim_id")))
}

/// A claim with its patient and decisions.
#[derive(Debug, Serialize, ToSchema)]
struct ClaimAnswer {
    #[serde(flatten)]
    state: ClaimState,
    link: LinkNumber,
}

/// A claim, or several when patients share the claim id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum ClaimAnswers {
    One(Box<ClaimAnswer>),
    Several(Vec<ClaimAnswer>),
}

#[utoipa::path(get, path = "/v1/claims/{claim_id}", tag = "claims",
    params(("claim_id" = ClaimId, Path, description = "The claim's id")),
    responses(
        (status = 200, description = "The claim with its decision history", body = ClaimAnswers),
        (status = 400, description = "A bad claim id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such claim is known to the caller", body = Problem, content_type = "application/problem+json"),
    ))]
async fn show(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = claim_id(&id)?;
    let found = blocking(&ledger, move |l| l.claim(&id)).await?;
    // A payer sees its own organisation's claims only; others are unknown.
    let mut answers: Vec<ClaimAnswer> = found
        .into_iter()
        .filter(|(_, state)| caller.payer("payer", state.claim.payer).is_ok())
        .map(|(link, state)| ClaimAnswer { state, link })
        .collect();
    match answers.len() {
        0 => Err(ApiError::NotFound { what: "claim" }),
        1 => Ok(Json(ClaimAnswers::One(Box::new(answers.remove(0)))).into_response()),
        _ => Ok(Json(ClaimAnswers::Several(answers)).into_response()),
    }
}

/// The body of `POST /v1/claims/{claim_id}/withdraw`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    /// Why, in a few words (no personal data).
    reason: String,
    /// The publisher of the event [default: the caller's, or `payer`].
    #[serde(default)]
    #[schema(value_type = Option<PublisherId>)]
    source: Option<String>,
}

/// A claim withdrawn.
#[derive(Debug, Serialize, ToSchema)]
struct Withdrawn {
    claim_id: ClaimId,
    link: LinkNumber,
    withdrawn: bool,
}

#[utoipa::path(post, path = "/v1/claims/{claim_id}/withdraw", tag = "claims",
    params(("claim_id" = ClaimId, Path, description = "The claim's id")),
    request_body = WithdrawBody,
    responses(
        (status = 200, description = "The claim is withdrawn: no longer checked", body = Withdrawn),
        (status = 400, description = "A bad claim id, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The source is not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such open claim is known to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field broke its rule", body = Problem, content_type = "application/problem+json"),
    ))]
async fn withdraw(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<WithdrawBody>,
) -> Result<Response, ApiError> {
    let id = claim_id(&id)?;
    let given = body
        .source
        .as_deref()
        .map(|s| {
            s.parse::<PublisherId>()
                .map_err(|e| ApiError::InvalidRequest(e.at("source")))
        })
        .transpose()?;
    let source = caller.source("source", given, "payer")?;
    let reason = body.reason;
    let shown = id.clone();
    let own = caller.own_payer();
    let withdrawn = blocking(&ledger, move |l| {
        // A payer withdraws its own organisation's claims only.
        if let Some(own) = own {
            let open_of_own = l
                .claim(&id)?
                .iter()
                .any(|(_, state)| state.claim.payer == own);
            if !open_of_own {
                return Ok(None);
            }
        }
        l.withdraw_claim(&id, &reason, &source)
    })
    .await?;
    match withdrawn {
        Some(link) => Ok(Json(Withdrawn {
            claim_id: shown,
            link,
            withdrawn: true,
        })
        .into_response()),
        None => Err(ApiError::NotFound { what: "open claim" }),
    }
}

#[utoipa::path(get, path = "/v1/claims/decisions", tag = "claims",
    params(
        ("payer" = PayerOrganisation, Query, description = "The payer organisation whose claims' decisions to read"),
        ("after" = Option<String>, Query, description = "The cursor of the last entry read"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Entries per page [default: 100]"),
    ),
    responses(
        (status = 200, description = "Decisions after the cursor, oldest first", body = DecisionsPage),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The payer organisation is not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
async fn decisions(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["payer", "after", "limit"])?;
    let payer: PayerOrganisation = params.require("payer")?;
    caller.payer("payer", payer)?;
    let after = params
        .get("after")
        .map(|c| {
            c.parse::<FeedCursor>()
                .map_err(|e| ApiError::parameter("after", e))
        })
        .transpose()?;
    let limit = match params.get("limit") {
        None => DEFAULT_PAGE,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::parameter(
                    "limit",
                    format!("must be 1 to {MAX_PAGE}"),
                ))
            }
        },
    };
    let page = blocking(&ledger, move |l| {
        Ok(l.views().decision_feed(payer, after.as_ref(), limit)?)
    })
    .await?;
    Ok(Json(crate::claims::decisions_page(page)).into_response())
}
