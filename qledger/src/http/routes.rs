//! The routes: each parses its input into domain types, calls [`Ledger`] on a
//! blocking thread, and shapes the answer. No ledger logic lives here.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger::domain::{
    Branch, CardNumber, CardSerial, CardSymbol, Day, IndividualInsuredNumber, InstitutionCode,
    InsurerNumber, LinkNumber, RecordTime,
};
use ledger::error::{FieldError, RuleViolation};
use ledger::event::json;
use projectors::model::DeadLetter;
use projectors::{History, Lookup, LookupKey};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::access::ClientKey;
use super::metrics::Metrics;
use super::misses::MissLimiter;
use super::openapi::{EventBody, FhirResource, FoundEligibility};
use super::problem::{ApiError, Json, Path, Problem, Query};
use super::ReadyMaxLag;
use crate::auth::{Caller, Denied, Role};
use crate::service::{Ledger, PartitionLag, ServiceError, Submitted, Wait};

/// How long `?wait=projected` waits when `timeout_ms` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(5_000);
/// The longest `timeout_ms` accepted.
pub const MAX_WAIT: Duration = Duration::from_millis(60_000);
/// Dead letters per page when `limit` is not given, and the most per page.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1_000;

/// The OpenAPI description of these routes ([`super::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        healthz,
        readyz,
        metrics,
        whoami,
        post_events,
        eligibility_by_number,
        eligibility_by_card,
        history,
        dead_letters
    ),
    // The parameters' schemas (utoipa collects the bodies' by itself).
    components(schemas(
        WaitFor,
        InsurerNumber,
        CardSymbol,
        CardNumber,
        Branch,
        Day,
        RecordTime,
        CardSerial,
        LinkNumber
    ))
)]
pub(super) struct Api;

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/whoami", get(whoami))
        .route("/v1/events", post(post_events))
        .route("/v1/eligibility", get(eligibility_by_number))
        .route("/v1/eligibility/card/{serial}", get(eligibility_by_card))
        .route("/v1/eligibility/batch", post(super::batch::check))
        .route("/v1/persons/{link}/history", get(history))
        .route("/v1/dead-letters", get(dead_letters))
}

/// Runs `f` on the blocking pool: every ledger call touches RocksDB, and
/// intake may wait for the projector.
pub(super) async fn blocking<T, F>(ledger: &Arc<Ledger>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Ledger) -> Result<T, ServiceError> + Send + 'static,
{
    let ledger = Arc::clone(ledger);
    Ok(tokio::task::spawn_blocking(move || f(&ledger)).await??)
}

/// `/healthz`: the process answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    status: HealthStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum HealthStatus {
    Ok,
}

/// `GET /healthz`: the process is up (no ledger work).
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// `/readyz`: whether the views are within the tolerated lag of the log.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Readiness {
    status: ReadyStatus,
    /// The lag tolerated per partition (events).
    max_lag: u64,
    /// The partitions this process projects.
    partitions: Vec<PartitionReadiness>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    Ready,
    CatchingUp,
}

/// How far the projector is behind the log in one partition.
#[derive(Debug, Serialize, ToSchema)]
struct PartitionReadiness {
    partition: u32,
    /// The log's end offset (the next offset to be written).
    end: u64,
    /// The next offset the projector will apply.
    next: u64,
    /// Events written and not yet applied.
    lag: u64,
}

/// `GET /readyz`: 200 once every partition this process projects is within
/// the configured lag of the log's end (503 before), with the lags.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Every partition projected here is within the tolerated lag", body = Readiness),
        (status = 503, description = "Catching up (`application/json`), or the request timed out (a problem)", content(
            (Readiness = "application/json"),
            (Problem = "application/problem+json"),
        )),
    ))]
async fn readyz(
    State(ledger): State<Arc<Ledger>>,
    Extension(ReadyMaxLag(max)): Extension<ReadyMaxLag>,
) -> Result<Response, ApiError> {
    let lags = blocking(&ledger, |l| l.projection_lag()).await?;
    let behind: Vec<&PartitionLag> = lags
        .iter()
        .filter(|l| l.projected_here && l.lag() > max)
        .collect();
    let projecting = lags.iter().any(|l| l.projected_here);
    let ready = projecting && behind.is_empty();
    let body = Readiness {
        status: if ready {
            ReadyStatus::Ready
        } else {
            ReadyStatus::CatchingUp
        },
        max_lag: max,
        partitions: lags
            .iter()
            .filter(|l| l.projected_here)
            .map(|l| PartitionReadiness {
                partition: l.partition,
                end: l.end,
                next: l.next,
                lag: l.lag(),
            })
            .collect(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")))]
async fn metrics(
    State(ledger): State<Arc<Ledger>>,
    Extension(metrics): Extension<Arc<Metrics>>,
) -> Result<Response, ApiError> {
    let text = blocking(&ledger, move |l| metrics.scrape(l)).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `/v1/whoami`: who the credentials name.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WhoAmI {
    /// The principal's name (`null` without authentication).
    name: Option<String>,
    role: Option<Role>,
    /// `off` on a server without authentication (`serve --no-auth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication: Option<AuthenticationOff>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum AuthenticationOff {
    Off,
}

/// `GET /v1/whoami`: the principal the credentials name (no ledger work:
/// also the constant route of the HTTP benchmark's baseline).
#[utoipa::path(get, path = "/v1/whoami", tag = "operations",
    responses((status = 200, description = "The principal the credentials name", body = WhoAmI)))]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(match caller.principal_shown() {
        Some(p) => WhoAmI {
            name: Some(p.name.clone()),
            role: Some(p.role),
            authentication: None,
        },
        None => WhoAmI {
            name: None,
            role: None,
            authentication: Some(AuthenticationOff::Off),
        },
    })
}

/// The query parameters of one request, checked against the names a route
/// knows: an unknown or repeated parameter is refused rather than ignored, so
/// a misspelt `insurer_number=` does not silently ask another question.
#[derive(Debug)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn new(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Params, ApiError> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::parameter(
                    name,
                    format!(
                        "is not a parameter of this endpoint; known: {}",
                        known.join(", ")
                    ),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::parameter(name, "is given more than once"));
            }
        }
        Ok(Params(pairs))
    }

    /// The value, if given and not empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    pub(super) fn parse<T: FromStr<Err = RuleViolation>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|e: RuleViolation| ApiError::InvalidParameter(e.at(name)))
            })
            .transpose()
    }

    pub(super) fn require<T: FromStr<Err = RuleViolation>>(
        &self,
        name: &str,
    ) -> Result<T, ApiError> {
        self.parse(name)?
            .ok_or_else(|| ApiError::parameter(name, "is required"))
    }

    /// `on` (default: today in Japan) and `as_of` (default: now).
    fn on_and_as_of(&self) -> Result<(Day, Option<RecordTime>), ApiError> {
        let on = self.parse::<Day>("on")?.unwrap_or_else(Day::today_in_japan);
        Ok((on, self.parse("as_of")?))
    }
}

/// The values of `wait` that [`wait_of`] reads.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents the parameter
enum WaitFor {
    /// Acknowledge once durable in the log (the default).
    Durable,
    /// Also wait (up to `timeout_ms`) until the views reflect the event.
    Projected,
}

/// `?wait=durable|projected&timeout_ms=N`.
fn wait_of(params: &Params) -> Result<Wait, ApiError> {
    let timeout = match params.get("timeout_ms") {
        None => DEFAULT_WAIT,
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) if Duration::from_millis(ms) <= MAX_WAIT => Duration::from_millis(ms),
            _ => {
                return Err(ApiError::parameter(
                    "timeout_ms",
                    format!(
                        "must be a whole number of milliseconds, at most {}",
                        MAX_WAIT.as_millis()
                    ),
                ))
            }
        },
    };
    match params.get("wait") {
        None | Some("durable") => Ok(Wait::Durable),
        Some("projected") => Ok(Wait::Projected(timeout)),
        Some(_) => Err(ApiError::parameter("wait", "must be durable or projected")),
    }
}

/// One event of a request: what intake said, or why the caller may not
/// publish it (then it was not offered to intake at all).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum Outcome {
    Submitted(Submitted),
    Forbidden(Refusal),
}

/// An item of a batch the caller may not send (the others go on).
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum Refusal {
    Forbidden {
        /// The field whose value is out of the caller's scope, if one is.
        field: Option<String>,
        reason: String,
    },
}

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Refusal {
        Refusal::Forbidden {
            field: d.field,
            reason: d.reason,
        }
    }
}

/// The answer to an array of events: one result per element, in order.
#[derive(Debug, Serialize, ToSchema)]
struct EventsAnswer {
    results: Vec<EventResult>,
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    forbidden: usize,
}

/// A 200 answer of `POST /v1/events`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum EventsReply {
    /// One event, appended before (`status: duplicate`).
    One(Submitted),
    /// An array of events.
    Many(EventsAnswer),
}

/// The result of the element at `index`.
#[derive(Debug, Serialize, ToSchema)]
struct EventResult {
    index: usize,
    #[serde(flatten)]
    outcome: Outcome,
}

/// `POST /v1/events`: one event object, or an array of them. Each event is
/// authorised on its own: one the caller may not publish is refused with
/// the reason and the others of the batch go on.
#[utoipa::path(post, path = "/v1/events", tag = "intake",
    params(
        ("wait" = Option<WaitFor>, Query, description = "`projected`: also wait until the views reflect the events"),
        ("timeout_ms" = Option<u64>, Query, maximum = 60000, description = "How long `wait=projected` waits [default: 5000]"),
    ),
    request_body(content = EventBody, description = "One event, or an array of them"),
    responses(
        (status = 201, description = "The event was appended", body = Submitted, links(
            ("History" = (operation_id = "history", parameters(("link" = "$request.body#/envelope/link")))),
        )),
        (status = 200, description = "The event was appended before (applied once), or the answers to an array", body = EventsReply),
        (status = 400, description = "A bad parameter, or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not publish this event", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The event was refused: nothing was appended", body = Problem, content_type = "application/problem+json"),
    ))]
async fn post_events(
    State(ledger): State<Arc<Ledger>>,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let wait = wait_of(&Params::new(query, &["wait", "timeout_ms"])?)?;
    let single = !body.is_array();
    let values = match body {
        Value::Array(events) => events,
        event => vec![event],
    };
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(values.len());
    let mut offered = Vec::with_capacity(values.len());
    for value in values {
        match json::from_value(value) {
            Ok(event) => match caller.publish(&event) {
                Ok(()) => {
                    outcomes.push(None);
                    offered.push(Ok(event));
                }
                Err(denied) => outcomes.push(Some(Outcome::Forbidden(denied.into()))),
            },
            Err(error) => {
                outcomes.push(None);
                offered.push(Err(error));
            }
        }
    }
    let mut submitted = blocking(&ledger, move |l| l.submit_parsed(offered, wait))
        .await?
        .into_iter();
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| o.or_else(|| submitted.next().map(Outcome::Submitted)))
        .collect::<Option<_>>()
        .ok_or_else(|| ApiError::Internal("intake returned fewer outcomes than events".into()))?;
    if !single {
        return Ok(Json(EventsReply::Many(batch_body(outcomes))).into_response());
    }
    match outcomes.into_iter().next() {
        Some(Outcome::Submitted(s @ Submitted::Accepted(_))) => {
            Ok((StatusCode::CREATED, Json(s)).into_response())
        }
        Some(Outcome::Submitted(s @ Submitted::Duplicate(_))) => {
            Ok((StatusCode::OK, Json(EventsReply::One(s))).into_response())
        }
        Some(Outcome::Submitted(Submitted::Rejected { error })) => {
            Err(ApiError::InvalidEvent(error))
        }
        Some(Outcome::Forbidden(Refusal::Forbidden { field, reason })) => {
            Err(ApiError::Forbidden(Denied { field, reason }))
        }
        None => Err(ApiError::Internal(
            "intake returned no outcome for the event".into(),
        )),
    }
}

/// `{"results": [{"index": 0, "status": "accepted", …}, …], "accepted": n, …}`.
fn batch_body(outcomes: Vec<Outcome>) -> EventsAnswer {
    let (mut accepted, mut duplicates, mut rejected, mut forbidden) = (0, 0, 0, 0);
    for o in &outcomes {
        match o {
            Outcome::Submitted(Submitted::Accepted(_)) => accepted += 1,
            Outcome::Submitted(Submitted::Duplicate(_)) => duplicates += 1,
            Outcome::Submitted(Submitted::Rejected { .. }) => rejected += 1,
            Outcome::Forbidden(_) => forbidden += 1,
        }
    }
    EventsAnswer {
        results: outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| EventResult { index, outcome })
            .collect(),
        accepted,
        duplicates,
        rejected,
        forbidden,
    }
}

/// The parameter an [`IndividualInsuredNumber`] field is read from.
fn parameter_of(field: &str) -> &str {
    match field {
        "insurer_number" => "insurer",
        "card_symbol" => "symbol",
        "card_number" => "number",
        other => other,
    }
}

/// `GET /v1/eligibility?insurer=&symbol=&number=&branch=&on=&as_of=`
#[utoipa::path(get, path = "/v1/eligibility", tag = "eligibility",
    params(
        // The examples are the p17 case of `qledger demo`.
        ("insurer" = InsurerNumber, Query, description = "保険者番号", example = "01130012"),
        ("symbol" = Option<CardSymbol>, Query, description = "記号 (absent for 後期高齢者医療)", example = "13010017"),
        ("number" = CardNumber, Query, description = "番号", example = "1234"),
        ("branch" = Option<Branch>, Query, description = "枝番 (required except for 後期高齢者医療)", example = "00"),
        ("birth_date" = Option<Day>, Query, description = "The holder's date of birth: when given, it must match"),
        ("on" = Option<Day>, Query, description = "The date asked about [default: today in Japan]"),
        ("as_of" = Option<RecordTime>, Query, description = "As the ledger knew it at this instant [default: now]"),
    ),
    responses(
        (status = 200, description = "The person is known: the qualifications valid on the date (possibly none)", content(
            (FoundEligibility = "application/json"),
            (FhirResource = "application/fhir+json"),
        )),
        (status = 400, description = "A bad, unknown or repeated parameter", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The insurer is out of the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such insured number is known (a FHIR `OperationOutcome` when asked for FHIR)", content(
            (Problem = "application/problem+json"),
            (FhirResource = "application/fhir+json"),
        )),
    ))]
async fn eligibility_by_number(
    State(ledger): State<Arc<Ledger>>,
    headers: HeaderMap,
    caller: Caller,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(
        query,
        &[
            "insurer",
            "symbol",
            "number",
            "branch",
            "birth_date",
            "on",
            "as_of",
        ],
    )?;
    let insurer: InsurerNumber = params.require("insurer")?;
    caller.insurer("insurer", &insurer)?;
    let symbol: Option<CardSymbol> = params.parse("symbol")?;
    let number: CardNumber = params.require("number")?;
    let branch: Option<Branch> = params.parse("branch")?;
    let number = IndividualInsuredNumber::new(insurer, symbol, number, branch)
        .map_err(|e| ApiError::InvalidParameter(FieldError::new(parameter_of(&e.field), e.rule)))?;
    let born: Option<Day> = params.parse("birth_date")?;
    let (on, as_of) = params.on_and_as_of()?;
    let key = LookupKey::Insured(number);
    let fhir = fhir_key(&headers, &key);
    let asker = caller.as_institution();
    answer(
        lookup_inline(&ledger, |l| {
            let lookup = match born {
                Some(born) => l.eligibility_of_holder(&key, born, on, as_of)?,
                None => l.eligibility(&key, on, as_of)?,
            };
            recorded(l, asker, &key, on, as_of, lookup)
        })?,
        "insured number",
        fhir.as_ref(),
    )
}

/// An eligibility lookup, run on the async worker itself: a handful of
/// RocksDB point reads and a short scan of one person's rows, from the block
/// cache as a rule — cheaper than the two thread hops of the blocking pool,
/// which cost more than the lookup (see the HTTP benchmark). Anything that
/// writes, waits or scans widely goes through [`blocking`].
fn lookup_inline<T>(
    ledger: &Arc<Ledger>,
    f: impl FnOnce(&Ledger) -> Result<T, ServiceError>,
) -> Result<T, ApiError> {
    Ok(f(ledger)?)
}

/// Records the answer (metering; a verification record when an institution
/// asked) and hands it back.
fn recorded(
    ledger: &Ledger,
    asker: Option<(InstitutionCode, String)>,
    key: &LookupKey,
    on: Day,
    as_of: Option<RecordTime>,
    lookup: Lookup,
) -> Result<Lookup, ServiceError> {
    let asker = asker.as_ref().map(|(code, name)| (code, name.as_str()));
    ledger.usage().answered(asker, key, on, as_of, &lookup)?;
    Ok(lookup)
}

/// `GET /v1/eligibility/card/{serial}?birth_date=&on=&as_of=`: the holder's
/// date of birth is required, and a wrong one is answered exactly as an
/// unknown serial ([`misses`](super::misses)).
#[utoipa::path(get, path = "/v1/eligibility/card/{serial}", tag = "eligibility",
    params(
        ("serial" = CardSerial, Path, description = "シリアル of the My Number card"),
        ("birth_date" = Day, Query, description = "The holder's date of birth"),
        ("on" = Option<Day>, Query, description = "The date asked about [default: today in Japan]"),
        ("as_of" = Option<RecordTime>, Query, description = "As the ledger knew it at this instant [default: now]"),
    ),
    responses(
        (status = 200, description = "The card identifies the person: the qualifications valid on the date (possibly none)", content(
            (FoundEligibility = "application/json"),
            (FhirResource = "application/fhir+json"),
        )),
        (status = 400, description = "A bad, unknown or repeated parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card serial is known with this birth date, or its link ended by the date (`/problems/card-not-linked`)", content(
            (Problem = "application/problem+json"),
            (FhirResource = "application/fhir+json"),
        )),
        (status = 429, description = "Too many lookups from this client found nothing", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn eligibility_by_card(
    State(ledger): State<Arc<Ledger>>,
    Extension(misses): Extension<Arc<MissLimiter>>,
    Extension(ClientKey(client)): Extension<ClientKey>,
    headers: HeaderMap,
    caller: Caller,
    Path(serial): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let started = tokio::time::Instant::now();
    let serial =
        CardSerial::parse(&serial).map_err(|e| ApiError::InvalidParameter(e.at("serial")))?;
    let params = Params::new(query, &["birth_date", "on", "as_of"])?;
    let born: Day = params.require("birth_date")?;
    let (on, as_of) = params.on_and_as_of()?;
    misses
        .check(&client)
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let key = LookupKey::Card(serial);
    let fhir = fhir_key(&headers, &key);
    let asker = caller.as_institution();
    let lookup = lookup_inline(&ledger, |l| {
        let lookup = l.eligibility_of_holder(&key, born, on, as_of)?;
        recorded(l, asker, &key, on, as_of, lookup)
    })?;
    if matches!(lookup, Lookup::NotFound) {
        misses.miss(&client);
        tokio::time::sleep_until(started + misses.floor()).await;
    }
    answer(lookup, "card serial", fhir.as_ref())
}

/// The answer as JSON, or in FHIR R4 when the client asked for it (`fhir`
/// holds the key asked): a `CoverageEligibilityResponse`, or an
/// `OperationOutcome` for a miss (the same 404 either way).
fn answer(
    lookup: Lookup,
    what: &'static str,
    fhir: Option<&LookupKey>,
) -> Result<Response, ApiError> {
    let fhir_body = |status: StatusCode, body: Value| {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, crate::fhir::FHIR_JSON)],
            axum::Json(body),
        )
            .into_response()
    };
    if let Some(key) = fhir {
        let (found, body) = crate::fhir::answer(&lookup, key, what, RecordTime::now());
        let status = if found {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        return Ok(fhir_body(status, body));
    }
    match lookup {
        found @ Lookup::Found(_) => Ok(Json(found).into_response()),
        Lookup::NotFound => Err(ApiError::NotFound { what }),
        Lookup::NotLinked { since } => Err(ApiError::CardNotLinked { since }),
    }
}

/// The key, when the request's `Accept` asks for FHIR.
fn fhir_key(headers: &HeaderMap, key: &LookupKey) -> Option<LookupKey> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    crate::fhir::wants_fhir(accept).then(|| key.clone())
}

/// `GET /v1/persons/{link}/history`
#[utoipa::path(get, path = "/v1/persons/{link}/history", tag = "audit",
    params(("link" = LinkNumber, Path, description = "紐付番号: the person")),
    responses(
        (status = 200, description = "Every version row of the person, and its card-link requests", body = History),
        (status = 400, description = "A bad link number, or a query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such person is known", body = Problem, content_type = "application/problem+json"),
    ))]
async fn history(
    State(ledger): State<Arc<Ledger>>,
    Path(link): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    Params::new(query, &[])?;
    let link = LinkNumber::parse(&link).map_err(|e| ApiError::InvalidParameter(e.at("link")))?;
    match blocking(&ledger, move |l| l.history(&link)).await? {
        Some(h) => Ok(Json(h).into_response()),
        None => Err(ApiError::NotFound { what: "person" }),
    }
}

/// A dead-letter cursor, `P:O` (partition, offset).
fn cursor(s: &str) -> Option<(u32, u64)> {
    let (p, o) = s.split_once(':')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// A page of dead letters.
#[derive(Debug, Serialize, ToSchema)]
struct DeadLetters {
    dead_letters: Vec<DeadLetter>,
    /// The cursor of the next page (`after=`), when this one is full.
    #[schema(pattern = "^[0-9]+:[0-9]+$")]
    next: Option<String>,
}

/// `GET /v1/dead-letters?after=P:O&limit=N`
#[utoipa::path(get, path = "/v1/dead-letters", tag = "audit",
    params(
        ("after" = Option<String>, Query, pattern = "^[0-9]+:[0-9]+$", description = "The cursor `PARTITION:OFFSET` of the page before (`next`)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Dead letters per page [default: 100]"),
    ),
    responses(
        (status = 200, description = "Events that could not be applied, in log order", body = DeadLetters),
        (status = 400, description = "A bad parameter", body = Problem, content_type = "application/problem+json"),
    ))]
async fn dead_letters(
    State(ledger): State<Arc<Ledger>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(query, &["after", "limit"])?;
    let after = match params.get("after") {
        None => None,
        Some(s) => Some(cursor(s).ok_or_else(|| {
            ApiError::parameter(
                "after",
                "must be a cursor PARTITION:OFFSET, as returned in next",
            )
        })?),
    };
    let limit = match params.get("limit") {
        None => DEFAULT_PAGE,
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=MAX_PAGE) => n,
            _ => {
                return Err(ApiError::parameter(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                ))
            }
        },
    };
    let letters = blocking(&ledger, move |l| l.dead_letters(after, limit)).await?;
    let next = (letters.len() == limit)
        .then(|| {
            letters
                .last()
                .map(|d| format!("{}:{}", d.partition, d.offset))
        })
        .flatten();
    Ok(Json(DeadLetters {
        dead_letters: letters,
        next,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_partition_and_offset() {
        assert_eq!(cursor("3:17"), Some((3, 17)));
        assert_eq!(cursor("3"), None);
        assert_eq!(cursor("a:1"), None);
        assert_eq!(cursor("1:-1"), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let p = |pairs: &[(&str, &str)]| {
            Params::new(
                pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                &["on", "as_of"],
            )
        };
        assert!(p(&[("on", "2024-04-02")]).is_ok());
        let Err(ApiError::InvalidParameter(e)) = p(&[("insurer_number", "1")]) else {
            panic!()
        };
        assert_eq!(e.field, "insurer_number");
        let Err(ApiError::InvalidParameter(e)) = p(&[("on", "2024-04-02"), ("on", "2024-04-03")])
        else {
            panic!()
        };
        assert_eq!(e.field, "on");
    }

    #[test]
    fn bad_dates_name_the_parameter() {
        let params = Params::new(vec![("on".into(), "2024-02-30".into())], &["on"]).unwrap();
        let Err(ApiError::InvalidParameter(e)) = params.on_and_as_of() else {
            panic!()
        };
        assert_eq!(e.field, "on");
    }
}
