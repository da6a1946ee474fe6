//! `POST /v1/eligibility/batch`: a body of pairs (JSON lines, or CSV with a
//! header when the Content-Type is `text/csv`) answered as a stream of JSON
//! lines, one per pair, in order ([`crate::batch`]). The body is read as it
//! arrives and the answers leave as they are made, through a bounded
//! channel: memory stays bounded whatever the size, and a slow reader slows
//! the lookups down rather than piling answers up.
//!
//! Each pair follows the single lookup's rules: scopes, the birth date with
//! a card, the per-client miss limit (a line past it is answered
//! `rate_limited`), metering and verification records.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use ledger::error::FieldError;
use projectors::{Lookup, LookupKey};
use utoipa::ToSchema;

use super::access::ClientKey;
use super::misses::MissLimiter;
use super::problem::Problem;
use crate::auth::{Action, Caller};
use crate::batch::{self, Pair, MAX_LINE};
use crate::onlinecheck::batch::{self as xml_batch, Splitter};
use crate::onlinecheck::{self, Channel};
use crate::service::Ledger;

/// The OpenAPI description of the route ([`super::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(check))]
pub(super) struct Api;

/// Lines answered per trip to the blocking pool.
const CHUNK: usize = 256;

enum Input {
    Jsonl,
    Csv(Option<Vec<String>>),
}

/// One result line of the batch check ([`batch::answered`],
/// [`batch::failed`]): the answer to the pair, or why it got none.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the lines, written as JSON
enum BatchLine {
    Answered(BatchAnswer),
    Failed(BatchFailure),
}

/// The answer to the pair on line `line`: the single lookup's answer.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct BatchAnswer {
    /// The line of the request (1-based; with CSV the header is line 1).
    line: u64,
    /// The pair's `id`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(flatten)]
    answer: Lookup,
}

/// A pair that got no answer.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct BatchFailure {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    status: FailureStatus,
    error: FieldError,
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum FailureStatus {
    /// The line is not a pair.
    Error,
    /// The caller may not ask this pair.
    Forbidden,
    /// Too many card lookups from this client found nothing.
    RateLimited,
}

#[utoipa::path(post, path = "/v1/eligibility/batch", tag = "eligibility", operation_id = "check_batch",
    request_body(description = "Pairs, one per line: JSON objects (`{\"insurer\": …, \"number\": …, \"branch\": …, \"on\": …}` or `{\"card\": …, \"birth_date\": …}`, with an optional `id`, `on`, `as_of`), or CSV rows under a header naming those columns, or the online check's `XmlMsg` requests one after another (`application/xml`)", content(
        (String = "application/x-ndjson"),
        (String = "text/csv"),
        (String = "application/xml"),
    )),
    responses(
        (status = 200, description = "One JSON line per pair, in order, streamed as they are answered; for an `application/xml` body (the online check's `XmlMsg` requests one after another), one `<QualificationConfirmationResults>` document with one result `XmlMsg` per request, in order", content(
            (BatchLine = "application/x-ndjson"),
            (String = "application/xml"),
        )),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn check(
    State(ledger): State<Arc<Ledger>>,
    Extension(misses): Extension<Arc<MissLimiter>>,
    Extension(ClientKey(client)): Extension<ClientKey>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let csv = content_type.starts_with("text/csv");
    if content_type.starts_with("application/xml") || content_type.starts_with("text/xml") {
        return check_xml(ledger, caller, body);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut input = if csv { Input::Csv(None) } else { Input::Jsonl };
        let mut stream = body.into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut lines: Vec<(u64, String)> = Vec::new();
        let mut number = 0u64;
        let mut skipping = false;
        let work = Work {
            ledger,
            misses,
            client,
            caller,
        };
        loop {
            let chunk = stream.next().await;
            let done = match chunk {
                Some(Ok(bytes)) => {
                    pending.extend_from_slice(&bytes);
                    false
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
                None => true,
            };
            // Complete lines; an over-long one is skipped to its end.
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if skipping {
                    skipping = false;
                    continue;
                }
                number += 1;
                lines.push((number, String::from_utf8_lossy(&line).trim_end().to_owned()));
            }
            if pending.len() > MAX_LINE && !skipping {
                number += 1;
                lines.push((number, "\u{0}too long".into()));
                pending.clear();
                skipping = true;
            }
            if done && !pending.is_empty() && !skipping {
                number += 1;
                lines.push((
                    number,
                    String::from_utf8_lossy(&pending).trim_end().to_owned(),
                ));
                pending.clear();
            }
            if lines.len() >= CHUNK || (done && !lines.is_empty()) {
                let batch = std::mem::take(&mut lines);
                let out = work.answer(&mut input, batch).await;
                if tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return; // the client went away
                }
            }
            if done {
                return;
            }
        }
    });
    streamed(rx, "application/x-ndjson")
}

/// The answer: what the worker sends through `rx`, as it comes.
fn streamed(
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    content_type: &'static str,
) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The XML batch: a body of online-check requests (`<XmlMsg>…</XmlMsg>`,
/// one after another, optionally inside any wrapper element, the first XML
/// declaration naming the encoding of all) answered as one UTF-8 document,
/// `<QualificationConfirmationResults>` holding one result `XmlMsg` per
/// request, in order, streamed.
fn check_xml(ledger: Arc<Ledger>, caller: Caller, body: Body) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut splitter = Splitter::default();
        let head = Bytes::from_static(xml_batch::RESULTS_HEAD.as_bytes());
        if tx.send(Ok(head)).await.is_err() {
            return;
        }
        loop {
            let (requests, done) = match stream.next().await {
                Some(Ok(bytes)) => (splitter.push(&bytes), false),
                Some(Err(e)) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
                None => (splitter.finish(), true),
            };
            if !requests.is_empty() {
                let ledger = Arc::clone(&ledger);
                let caller = caller.clone();
                let out = tokio::task::spawn_blocking(move || {
                    let mut out = String::new();
                    for request in requests {
                        let (_, element, _) =
                            onlinecheck::answer_element(&*ledger, Channel::Http(&caller), &request);
                        out.push_str(&xml_batch::result_fragment(&element));
                    }
                    out
                })
                .await
                .unwrap_or_default();
                if tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return;
                }
            }
            if done {
                let tail = Bytes::from_static(xml_batch::RESULTS_TAIL.as_bytes());
                let _ = tx.send(Ok(tail)).await;
                return;
            }
        }
    });
    streamed(rx, "application/xml; charset=UTF-8")
}

struct Work {
    ledger: Arc<Ledger>,
    misses: Arc<MissLimiter>,
    client: String,
    caller: Caller,
}

impl Work {
    /// Answers `lines` (number, text) on the blocking pool; JSON lines out.
    async fn answer(&self, input: &mut Input, lines: Vec<(u64, String)>) -> Vec<u8> {
        // Parse here (cheap), look up there.
        let mut parsed: Vec<(u64, Result<Pair, FieldError>)> = Vec::with_capacity(lines.len());
        for (n, text) in lines {
            if text.is_empty() {
                continue;
            }
            if text.starts_with('\u{0}') {
                parsed.push((
                    n,
                    Err(FieldError::new(
                        "",
                        format!("the line is longer than {MAX_LINE} bytes"),
                    )),
                ));
                continue;
            }
            let pair = match input {
                Input::Jsonl => batch::pair_of_json(&text),
                Input::Csv(header @ None) => {
                    match batch::csv_header(&text) {
                        Ok(h) => *header = Some(h),
                        Err(e) => parsed.push((n, Err(e))),
                    }
                    continue;
                }
                Input::Csv(Some(header)) => batch::pair_of_csv(header, &text),
            };
            parsed.push((n, pair));
        }
        let ledger = Arc::clone(&self.ledger);
        let misses = Arc::clone(&self.misses);
        let client = self.client.clone();
        let caller = self.caller.clone();
        let answered = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (n, pair) in parsed {
                let line = match pair {
                    Err(e) => batch::failed(n, None, "error", &e),
                    Ok(pair) => one(&ledger, &misses, &client, &caller, n, &pair),
                };
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
            out
        })
        .await;
        answered.unwrap_or_else(|e| {
            format!("{{\"status\":\"error\",\"error\":{{\"field\":\"\",\"rule\":\"internal: {e}\"}}}}\n")
                .into_bytes()
        })
    }
}

/// One pair, by the single lookup's rules.
fn one(
    ledger: &Ledger,
    misses: &MissLimiter,
    client: &str,
    caller: &Caller,
    n: u64,
    pair: &Pair,
) -> String {
    let id = pair.id.as_deref();
    let card = matches!(pair.key, LookupKey::Card(_));
    let allowed = match &pair.key {
        LookupKey::Card(_) => caller.allow(Action::EligibilityByCard),
        LookupKey::Insured(n) => caller
            .allow(Action::EligibilityByNumber)
            .and_then(|()| caller.insurer("insurer", n.insurer())),
    };
    if let Err(denied) = allowed {
        let e = FieldError::new(denied.field.as_deref().unwrap_or(""), denied.reason);
        return batch::failed(n, id, "forbidden", &e);
    }
    if card && misses.check(client).is_err() {
        let e = FieldError::new("card", "too many card lookups found nothing; slow down");
        return batch::failed(n, id, "rate_limited", &e);
    }
    let lookup = match pair.birth_date {
        Some(born) => ledger.eligibility_of_holder(&pair.key, born, pair.on, pair.as_of),
        None => ledger.eligibility(&pair.key, pair.on, pair.as_of),
    };
    let lookup = match lookup {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "batch lookup failed");
            let e = FieldError::new("", "an internal error occurred; it has been logged");
            return batch::failed(n, id, "error", &e);
        }
    };
    if card && matches!(lookup, Lookup::NotFound) {
        misses.miss(client);
        std::thread::sleep(misses.floor());
    }
    let asker = caller.as_institution();
    let asker = asker.as_ref().map(|(c, name)| (c, name.as_str()));
    if let Err(e) = ledger
        .usage()
        .answered(asker, &pair.key, pair.on, pair.as_of, &lookup)
    {
        tracing::error!(error = %e, "recording a batch answer failed");
    }
    batch::answered(n, pair, &lookup)
}
