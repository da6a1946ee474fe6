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
use ledger::domain::{ClaimId, InsurerNumber, PayerOrganisation, PublisherId, RecordTime};
use ledger::error::FieldError;
use ledger::event::ClaimSubmitted;
use projectors::claims::query::FeedCursor;
use serde::Deserialize;
use serde_json::{json, Value};

use super::problem::{ApiError, Json, Path, Query};
use super::routes::{blocking, Params, DEFAULT_PAGE, MAX_PAGE};
use crate::auth::{Caller, Denied};
use crate::claims::{parse_claim, Registered};
use crate::service::Ledger;

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

fn forbidden_item(d: &Denied) -> Value {
    json!({"status": "forbidden", "field": d.field, "reason": d.reason})
}

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
            Some(Ok(r @ Registered::Duplicate { .. })) => Ok(Json(r).into_response()),
            Some(Ok(Registered::Rejected { error })) => Err(ApiError::InvalidRequest(error)),
            Some(Err(denied)) => Err(ApiError::Forbidden(denied)),
            None => Err(ApiError::Internal("no outcome for the claim".into())),
        };
    }
    let count =
        |f: fn(&Registered) -> bool| results.iter().filter(|r| r.as_ref().is_ok_and(&f)).count();
    let body = json!({
        "accepted": count(|r| matches!(r, Registered::Accepted { .. })),
        "duplicates": count(|r| matches!(r, Registered::Duplicate { .. })),
        "rejected": count(|r| matches!(r, Registered::Rejected { .. })),
        "forbidden": results.iter().filter(|r| r.is_err()).count(),
        "results": results.iter().map(|r| match r {
            Ok(r) => json!(r),
            Err(d) => forbidden_item(d),
        }).collect::<Vec<_>>(),
    });
    Ok(Json(body).into_response())
}

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
            Some(Ok(Ok(checked))) => Ok(Json(checked).into_response()),
            Some(Ok(Err(error))) => Err(ApiError::InvalidRequest(error)),
            Some(Err(denied)) => Err(ApiError::Forbidden(denied)),
            None => Err(ApiError::Internal("no outcome for the claim".into())),
        };
    }
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(Ok(checked)) => json!(checked),
            Ok(Err(error)) => json!({"status": "rejected", "error": error}),
            Err(denied) => forbidden_item(&denied),
        })
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

fn claim_id(text: &str) -> Result<ClaimId, ApiError> {
    ClaimId::parse(text).map_err(|e| ApiError::InvalidParameter(e.at("claim_id")))
}

async fn show(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = claim_id(&id)?;
    let found = blocking(&ledger, move |l| l.claim(&id)).await?;
    // A payer sees its own organisation's claims only; others are unknown.
    let answers: Vec<Value> = found
        .into_iter()
        .filter(|(_, state)| caller.payer("payer", state.claim.payer).is_ok())
        .map(|(link, state)| {
            let mut v = json!(state);
            v["link"] = json!(link);
            v
        })
        .collect();
    match answers.len() {
        0 => Err(ApiError::NotFound { what: "claim" }),
        1 => Ok(Json(answers.into_iter().next().expect("one")).into_response()),
        _ => Ok(Json(Value::Array(answers)).into_response()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    reason: String,
    #[serde(default)]
    source: Option<String>,
}

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
        Some(link) => {
            Ok(Json(json!({"claim_id": shown, "link": link, "withdrawn": true})).into_response())
        }
        None => Err(ApiError::NotFound { what: "open claim" }),
    }
}

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
