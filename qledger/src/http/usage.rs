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
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{ApiError, Json, Problem, Query};
use super::routes::{blocking, Params, DEFAULT_PAGE, MAX_PAGE};
use crate::auth::{Caller, Denied};
use crate::service::Ledger;
use crate::usage::{metering_csv, verifications_csv, MeterRow, VerificationRecord};

/// The OpenAPI description of these routes ([`super::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(verifications, metering, chart),
    components(schemas(RecordsFormat, MeteringFormat, InstitutionCode, ServiceMonth))
)]
pub(super) struct Api;

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new()
        .route("/v1/verifications", get(verifications))
        .route("/v1/metering", get(metering))
        .route("/v1/metering/chart.svg", get(chart))
}

/// The formats of `/v1/verifications`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents the parameter
enum RecordsFormat {
    /// JSON lines (`application/x-ndjson`), one record per line.
    Jsonl,
    /// CSV with a header (`text/csv`).
    Csv,
}

/// The formats of `/v1/metering`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents the parameter
enum MeteringFormat {
    Json,
    /// CSV with a header (`text/csv`).
    Csv,
}

#[utoipa::path(get, path = "/v1/verifications", tag = "usage",
    params(
        ("after" = Option<u64>, Query, description = "The `cursor` of the last record read [default: from the first]"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Records per page [default: 100]"),
        ("format" = Option<RecordsFormat>, Query, description = "[default: jsonl]"),
        ("institution" = Option<InstitutionCode>, Query, description = "Whose records (an institution reads its own; others must name one)"),
    ),
    responses(
        (status = 200, description = "The answers the institution was given, oldest first: one JSON object per line, or CSV", content(
            (VerificationRecord = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An institution asked for another's records", body = Problem, content_type = "application/problem+json"),
    ))]
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

/// The metering of a month.
#[derive(Debug, Serialize, ToSchema)]
struct Metering {
    month: ServiceMonth,
    /// Per insurer (only the caller's own when it is scoped).
    insurers: Vec<MeterRow>,
}

#[utoipa::path(get, path = "/v1/metering", tag = "usage",
    params(
        ("month" = Option<ServiceMonth>, Query, description = "[default: this month in Japan]"),
        ("format" = Option<MeteringFormat>, Query, description = "[default: json]"),
    ),
    responses(
        (status = 200, description = "Per insurer: insured persons and answers served", content(
            (Metering = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
    ))]
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
    Ok(Json(Metering {
        month,
        insurers: rows,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/metering/chart.svg", tag = "usage",
    params(("month" = Option<ServiceMonth>, Query, description = "[default: this month in Japan]")),
    responses(
        (status = 200, description = "The month's metering as a bar chart", body = String, content_type = "image/svg+xml"),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
    ))]
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
