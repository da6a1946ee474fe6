//! Usage routes: an institution's verification records, read incrementally,
//! and the metering of a month per insurer (JSON, CSV, an SVG chart).
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /v1/verifications?after=&limit=&format=jsonl\|csv` | institution (its own), auditor (`institution=`) | the answers it was given, oldest first; `after=` the last `cursor` read |
//! | `GET /v1/metering?month=YYYY-MM&format=json\|csv` | insurer, aggregator (their own), auditor, admin | per insurer: insured persons and answers served |
//! | `GET /v1/metering/chart.svg?month=` | the same | the month as a bar chart |

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ledger::domain::{Day, InstitutionCode, ServiceMonth};

use super::problem::{ApiError, Query};
use super::routes::{blocking, Params, DEFAULT_PAGE, MAX_PAGE};
use crate::auth::{Caller, Denied};
use crate::service::Ledger;
use crate::usage::{metering_csv, verifications_csv, MeterRow};

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new()
        .route("/v1/verifications", get(verifications))
        .route("/v1/metering", get(metering))
        .route("/v1/metering/chart.svg", get(chart))
}

async fn verifications(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["after", "limit", "format", "institution"])?;
    let asked: Option<InstitutionCode> = params.parse("institution")?;
    let institution = match (caller.as_institution(), asked) {
        (Some((own, _)), Some(other)) if own != other => {
            return Err(ApiError::Forbidden(Denied::at(
                "institution",
                "an institution reads its own verification records",
            )))
        }
        (Some((own, _)), _) => own,
        (None, Some(asked)) => asked,
        (None, None) => {
            return Err(ApiError::parameter(
                "institution",
                "is required: whose verification records",
            ))
        }
    };
    let after = match params.get("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::parameter("after", "must be a cursor from a record"))?,
    };
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
    let csv = match params.get("format") {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::parameter("format", "must be jsonl or csv")),
    };
    let records = blocking(&ledger, move |l| {
        Ok(l.usage().records(&institution, after, limit)?)
    })
    .await?;
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            verifications_csv(&records),
        )
            .into_response());
    }
    let mut body = String::new();
    for r in &records {
        body.push_str(&serde_json::to_string(r).unwrap_or_default());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The month asked (default: this month in Japan) and its rows, limited to
/// the caller's insurers when it is scoped.
async fn month_rows(
    ledger: &Arc<Ledger>,
    caller: &Caller,
    params: &Params,
) -> Result<(ServiceMonth, Vec<MeterRow>), ApiError> {
    let month: ServiceMonth = match params.parse("month")? {
        Some(m) => m,
        None => Day::today_in_japan()
            .to_string()
            .get(..7)
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| ApiError::Internal("today has no month".into()))?,
    };
    let mut rows = blocking(ledger, move |l| l.metering(month)).await?;
    if let Some(scope) = caller.insurer_scope() {
        rows.retain(|r| scope.contains(&r.insurer));
    }
    Ok((month, rows))
}

async fn metering(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["month", "format"])?;
    let csv = match params.get("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::parameter("format", "must be json or csv")),
    };
    let (month, rows) = month_rows(&ledger, &caller, &params).await?;
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            metering_csv(month, &rows),
        )
            .into_response());
    }
    Ok(super::problem::Json(serde_json::json!({"month": month, "insurers": rows})).into_response())
}

async fn chart(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["month"])?;
    let (month, rows) = month_rows(&ledger, &caller, &params).await?;
    let svg = crate::usage::chart::svg(month, &rows).map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
