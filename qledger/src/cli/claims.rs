//! `qledger claims …`: a payer registers the claims it received, reads a
//! claim's decisions and its feed, withdraws a claim; an institution or a
//! payer checks a batch before submission. Through a server (`--server`) or
//! on a data directory.
//!
//! Batch files are JSON lines (one claim object per line, the fields of
//! `POST /v1/claims`), CSV with a header naming those fields
//! (`service_days` as days separated by spaces or `;`), or the receipt files
//! payers receive (`.UKE`, レセプト電算処理システム; see [`crate::receipt`]),
//! each claim answered with the line of its `RE` record. Files are read a
//! chunk at a time: memory stays bounded whatever their size, and every
//! line is answered in order, a bad line with its error, without stopping.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use hyper::StatusCode;
use ledger::domain::{ClaimId, PayerOrganisation, PublisherId, RecordTime};
use ledger::error::FieldError;
use projectors::claims::query::FeedCursor;
use serde_json::{json, Map, Value};

use super::query::{print_answer, read_only_views};
use super::remote::{encode, query, Remote};
use super::{open_ledger, print_json, status, Target};
use crate::claims::{check, parse_claim};
use crate::service::DEFAULT_PARTITIONS;

/// Claims per request or per append.
const CHUNK: usize = 500;

#[derive(Debug, Subcommand)]
pub enum ClaimsCommand {
    /// Register the claims of a batch file (JSON lines or CSV).
    Submit(SubmitArgs),
    /// Decide the claims of a batch file without registering them.
    Check(CheckArgs),
    /// A claim with its decision history.
    Show(ShowArgs),
    /// The decisions of a payer organisation's claims, after a cursor.
    Decisions(DecisionsArgs),
    /// Withdraw a claim: it is no longer checked.
    Withdraw(WithdrawArgs),
    /// Overlap notices (employee insurance over an open 国保), raised and cleared.
    Overlaps(OverlapsArgs),
}

#[derive(Debug, Args)]
pub struct OverlapsArgs {
    /// The 国保 insurer (municipality) [default: all].
    #[arg(long, value_name = "INSURER")]
    pub insurer: Option<ledger::domain::InsurerNumber>,
    /// The cursor of the last notice read (`next` of the previous page).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct ClaimsArgs {
    #[command(subcommand)]
    pub command: ClaimsCommand,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// JSON lines, CSV (`.csv`) or a receipt file (`.UKE`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Publisher id of the payer.
    #[arg(long, value_name = "ID", default_value = "payer")]
    pub source: PublisherId,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// As the ledger knew it at this RFC 3339 instant [default: now].
    #[arg(long = "as-of", value_name = "INSTANT")]
    pub as_of: Option<RecordTime>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(value_name = "CLAIM_ID")]
    pub claim_id: ClaimId,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct DecisionsArgs {
    /// SOCIAL_INSURANCE_FUND or NHI_FEDERATION.
    #[arg(long, value_name = "PAYER")]
    pub payer: PayerOrganisation,
    /// The cursor of the last decision read (`next` of the previous page).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    #[arg(value_name = "CLAIM_ID")]
    pub claim_id: ClaimId,
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[arg(long, value_name = "ID", default_value = "payer")]
    pub source: PublisherId,
    #[command(flatten)]
    pub target: Target,
}

pub(super) fn run(args: ClaimsArgs) -> Result<ExitCode> {
    match args.command {
        ClaimsCommand::Submit(a) => submit(a),
        ClaimsCommand::Check(a) => check_file(a),
        ClaimsCommand::Show(a) => show(a),
        ClaimsCommand::Decisions(a) => decisions(a),
        ClaimsCommand::Withdraw(a) => withdraw(a),
        ClaimsCommand::Overlaps(a) => overlaps(a),
    }
}

/// One line of a batch file: its number, and the claim's JSON or why the
/// line is not one.
type Line = (u64, Result<Value, FieldError>);

/// The claims of a batch file, a chunk at a time.
struct Batch {
    lines: Box<dyn Iterator<Item = Result<Line>>>,
}

impl Batch {
    fn open(path: &Path) -> Result<Batch> {
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let extension = |x: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(x));
        let lines: Box<dyn Iterator<Item = _>> = if extension("uke") {
            Box::new(
                crate::receipt::Reader::new(BufReader::new(file)).map(|item| {
                    let (line, claim) = item.context("reading the receipt file")?;
                    Ok((line, claim.map_err(|e| FieldError::new("record", e))))
                }),
            )
        } else if extension("csv") {
            let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
            let headers = reader.headers().context("reading the CSV header")?.clone();
            Box::new(reader.into_records().enumerate().map(move |(i, r)| {
                let line = i as u64 + 2;
                let r = r.with_context(|| format!("line {line}: not CSV"))?;
                Ok((line, Ok(csv_claim(&headers, &r))))
            }))
        } else {
            Box::new(
                BufReader::new(file)
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
                    .map(|(i, l)| {
                        let line = i as u64 + 1;
                        let l = l.with_context(|| format!("line {line}: cannot read"))?;
                        Ok((
                            line,
                            serde_json::from_str(&l)
                                .map_err(|e| FieldError::new("$", format!("not JSON: {e}"))),
                        ))
                    }),
            )
        };
        Ok(Batch { lines })
    }

    /// Up to [`CHUNK`] lines.
    fn chunk(&mut self) -> Result<Vec<Line>> {
        let mut out = Vec::with_capacity(CHUNK);
        for item in self.lines.by_ref().take(CHUNK) {
            out.push(item?);
        }
        Ok(out)
    }
}

/// A CSV record as the JSON claim: empty cells left out, `service_days`
/// split, `total_points` a number.
fn csv_claim(headers: &csv::StringRecord, record: &csv::StringRecord) -> Value {
    let mut object = Map::new();
    for (name, cell) in headers.iter().zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let value = match name.trim() {
            "service_days" => Value::Array(
                cell.split([' ', ';'])
                    .filter(|d| !d.is_empty())
                    .map(|d| {
                        d.parse::<u64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| json!(d))
                    })
                    .collect(),
            ),
            "total_points" => cell
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(cell)),
            _ => json!(cell),
        };
        object.insert(name.trim().to_owned(), value);
    }
    Value::Object(object)
}

fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let mut batch = Batch::open(&args.file)?;
    let remote = args.target.server.as_deref().map(Remote::new).transpose()?;
    let ledger = match &remote {
        Some(_) => None,
        None => {
            let mut l = open_ledger(&args.target.data_dir(), DEFAULT_PARTITIONS)?;
            l.start_projector();
            Some(l)
        }
    };
    let (mut accepted, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    let mut out = std::io::stdout().lock();
    loop {
        let chunk = batch.chunk()?;
        if chunk.is_empty() {
            break;
        }
        let lines: Vec<u64> = chunk.iter().map(|(l, _)| *l).collect();
        let results: Vec<Value> = match (&remote, &ledger) {
            (Some(remote), _) => {
                // Lines that are not even JSON never reach the server.
                let mut local = Vec::new();
                let mut sent = Vec::new();
                for (i, (_, item)) in chunk.into_iter().enumerate() {
                    match item {
                        Ok(v) => sent.push((i, v)),
                        Err(e) => local.push((i, json!({"status": "rejected", "error": e}))),
                    }
                }
                let body = Value::Array(sent.iter().map(|(_, v)| v.clone()).collect());
                let path = format!(
                    "/v1/claims{}",
                    query(&[("source", Some(args.source.to_string()))])
                );
                let answer = remote.post(&path, &body)?;
                if answer.status != StatusCode::OK {
                    bail!("the server answered {}: {}", answer.status, answer.detail());
                }
                let mut answers = answer.body["results"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter();
                let mut merged = vec![Value::Null; lines.len()];
                for (i, _) in sent {
                    merged[i] = answers.next().unwrap_or(Value::Null);
                }
                for (i, v) in local {
                    merged[i] = v;
                }
                merged
            }
            (None, Some(ledger)) => {
                let claims = chunk
                    .into_iter()
                    .map(|(_, item)| item.and_then(parse_claim))
                    .collect();
                ledger
                    .register_claims(claims, &args.source)?
                    .into_iter()
                    .map(|r| json!(r))
                    .collect()
            }
            (None, None) => unreachable!("a server or a data directory"),
        };
        for (line, mut result) in lines.into_iter().zip(results) {
            match result["status"].as_str() {
                Some("accepted") => accepted += 1,
                Some("duplicate") => duplicates += 1,
                _ => rejected += 1,
            }
            result["line"] = json!(line);
            writeln!(out, "{result}")?;
        }
    }
    drop(out);
    eprintln!("{accepted} accepted, {duplicates} duplicate, {rejected} rejected");
    Ok(status(rejected == 0))
}

fn check_file(args: CheckArgs) -> Result<ExitCode> {
    let mut batch = Batch::open(&args.file)?;
    let remote = args.target.server.as_deref().map(Remote::new).transpose()?;
    let views = match &remote {
        Some(_) => None,
        None => Some(read_only_views(&args.target.data_dir())?),
    };
    let mut bad = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        let chunk = batch.chunk()?;
        if chunk.is_empty() {
            break;
        }
        for (line, item) in chunk {
            let result = match item.and_then(parse_claim) {
                Err(error) => {
                    bad += 1;
                    json!({"status": "rejected", "error": error})
                }
                Ok(claim) => match (&remote, &views) {
                    (Some(remote), _) => {
                        let path = format!(
                            "/v1/claims/check{}",
                            query(&[("as_of", args.as_of.map(|t| t.to_string()))])
                        );
                        let answer = remote.post(&path, &serde_json::to_value(&claim)?)?;
                        if answer.status != StatusCode::OK {
                            bail!(
                                "line {line}: the server answered {}: {}",
                                answer.status,
                                answer.detail()
                            );
                        }
                        answer.body
                    }
                    (None, Some(views)) => json!(check(views, &claim, args.as_of)?),
                    (None, None) => unreachable!("a server or a data directory"),
                },
            };
            let mut result = result;
            result["line"] = json!(line);
            writeln!(out, "{result}")?;
        }
    }
    Ok(status(bad == 0))
}

fn show(args: ShowArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let answer =
            Remote::new(server)?.get(&format!("/v1/claims/{}", encode(args.claim_id.as_str())))?;
        return print_answer(answer);
    }
    let views = read_only_views(&args.target.data_dir())?;
    let mut found: Vec<Value> = views
        .claims_by_id(&args.claim_id)?
        .into_iter()
        .map(|(link, state)| {
            let mut v = json!(state);
            v["link"] = json!(link);
            v
        })
        .collect();
    match found.len() {
        0 => {
            eprintln!("no claim has the id {}", args.claim_id);
            Ok(status(false))
        }
        1 => print_json(&found.remove(0)).map(|_| ExitCode::SUCCESS),
        _ => print_json(&found).map(|_| ExitCode::SUCCESS),
    }
}

fn decisions(args: DecisionsArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let path = format!(
            "/v1/claims/decisions{}",
            query(&[
                ("payer", Some(args.payer.to_string())),
                ("after", args.after.clone()),
                ("limit", Some(args.limit.to_string())),
            ])
        );
        let answer = Remote::new(server)?.get(&path)?;
        if answer.status != StatusCode::OK {
            bail!("the server answered {}: {}", answer.status, answer.detail());
        }
        return print_json(&answer.body).map(|_| ExitCode::SUCCESS);
    }
    let after = args
        .after
        .as_deref()
        .map(|c| c.parse::<FeedCursor>().map_err(|e| anyhow!("--after: {e}")))
        .transpose()?;
    let views = read_only_views(&args.target.data_dir())?;
    let page = views.decision_feed(args.payer, after.as_ref(), args.limit)?;
    print_json(&crate::claims::decisions_page(page)).map(|_| ExitCode::SUCCESS)
}

fn withdraw(args: WithdrawArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let path = format!("/v1/claims/{}/withdraw", encode(args.claim_id.as_str()));
        let answer = Remote::new(server)?.post(
            &path,
            &json!({"reason": args.reason, "source": args.source.to_string()}),
        )?;
        return print_answer(answer);
    }
    let mut ledger = open_ledger(&args.target.data_dir(), DEFAULT_PARTITIONS)?;
    ledger.start_projector();
    match ledger.withdraw_claim(&args.claim_id, &args.reason, &args.source)? {
        Some(link) => {
            print_json(&json!({"claim_id": args.claim_id, "link": link, "withdrawn": true}))
                .map(|_| ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no open claim has the id {}", args.claim_id);
            Ok(status(false))
        }
    }
}

fn overlaps(args: OverlapsArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let path = format!(
            "/v1/overlaps{}",
            query(&[
                ("insurer", args.insurer.as_ref().map(|i| i.to_string())),
                ("after", args.after.clone()),
                ("limit", Some(args.limit.to_string())),
            ])
        );
        let answer = Remote::new(server)?.get(&path)?;
        if answer.status != StatusCode::OK {
            bail!("the server answered {}: {}", answer.status, answer.detail());
        }
        return print_json(&answer.body).map(|_| ExitCode::SUCCESS);
    }
    if let Some(a) = &args.after {
        hex::decode(a).map_err(|_| anyhow!("--after: not a cursor this feed gave"))?;
    }
    let views = read_only_views(&args.target.data_dir())?;
    let page = views.overlap_feed(args.insurer.as_ref(), args.after.as_deref(), args.limit)?;
    print_json(&crate::claims::overlaps_page(page)).map(|_| ExitCode::SUCCESS)
}
