//! `qledger publish` and `generate`: JSON lines in and out.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper::StatusCode;
use ledger::error::FieldError;
use ledger::event::json;
use ledger::sample::{self, SampleConfig};
use serde_json::Value;

use super::remote::Remote;
use super::{emit, open_ledger, status, GenerateArgs, PublishArgs};
use crate::service::{Ledger, Submitted, Wait, DEFAULT_PARTITIONS};

/// Where `publish` sends its batches.
enum Sink {
    Local(Ledger),
    Server { remote: Remote, wait: bool },
}

/// What became of one line.
enum Outcome {
    Accepted,
    Duplicate,
    Rejected(FieldError),
}

#[derive(Default)]
struct Tally {
    lines: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

impl Tally {
    fn record(&mut self, line: u64, outcome: Outcome) {
        match outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Rejected(e) => {
                self.rejected += 1;
                eprintln!("line {line}: {}: {}", e.field, e.rule);
            }
        }
    }
}

impl Sink {
    fn submit(&self, events: Vec<Value>) -> Result<Vec<Outcome>> {
        let n = events.len();
        let outcomes = match self {
            Sink::Local(ledger) => ledger
                .submit_json(events, Wait::Durable)
                .context("appending to the event log (nothing of this batch was acknowledged)")?
                .into_iter()
                .map(|s| match s {
                    Submitted::Accepted(_) => Outcome::Accepted,
                    Submitted::Duplicate(_) => Outcome::Duplicate,
                    Submitted::Rejected { error } => Outcome::Rejected(error),
                })
                .collect(),
            Sink::Server { remote, wait } => post_batch(remote, *wait, &Value::Array(events))?,
        };
        if outcomes.len() != n {
            bail!(
                "expected {n} outcomes for the batch, got {}",
                outcomes.len()
            );
        }
        Ok(outcomes)
    }
}

/// POSTs a batch, retrying while the server asks to (503) or cannot be
/// reached: a re-sent event keeps its id, so it is applied once.
fn post_batch(remote: &Remote, wait: bool, batch: &Value) -> Result<Vec<Outcome>> {
    let path = if wait {
        "/v1/events?wait=projected"
    } else {
        "/v1/events"
    };
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    let answer = loop {
        let retry = match remote.post(path, batch) {
            Ok(a) if a.status == StatusCode::SERVICE_UNAVAILABLE => a.detail(),
            Ok(a) => break a,
            Err(e) if attempt < 5 => format!("{e:#}"),
            Err(e) => return Err(e),
        };
        if attempt >= 5 {
            bail!("the server kept refusing the batch: {retry}");
        }
        eprintln!("retrying in {delay:?}: {retry}");
        std::thread::sleep(delay);
        delay *= 2;
        attempt += 1;
    };
    if answer.status != StatusCode::OK {
        bail!("the server answered {}: {}", answer.status, answer.detail());
    }
    let results = answer
        .body
        .get("results")
        .and_then(Value::as_array)
        .context("the server's answer has no results")?;
    results
        .iter()
        .map(|r| match r.get("status").and_then(Value::as_str) {
            Some("accepted") => Ok(Outcome::Accepted),
            Some("duplicate") => Ok(Outcome::Duplicate),
            Some("rejected") => {
                let text = |k: &str| {
                    r.get("error")
                        .and_then(|e| e.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned()
                };
                Ok(Outcome::Rejected(FieldError::new(
                    text("field"),
                    text("rule"),
                )))
            }
            other => bail!("unexpected result status {other:?}"),
        })
        .collect()
}

pub(super) fn publish(args: PublishArgs) -> Result<ExitCode> {
    let name = args.file.display().to_string();
    let input: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        Box::new(BufReader::new(
            File::open(&args.file).with_context(|| format!("cannot open {name}"))?,
        ))
    };
    let sink = match &args.target.server {
        Some(url) => Sink::Server {
            remote: Remote::new(url)?,
            wait: args.wait,
        },
        None => Sink::Local(open_ledger(&args.target.data_dir(), DEFAULT_PARTITIONS)?),
    };
    let mut tally = Tally::default();
    // Lines in order; a line that is not JSON is refused here, in its place.
    let mut batch: Vec<(u64, Result<Value, FieldError>)> = Vec::new();
    let flush =
        |batch: &mut Vec<(u64, Result<Value, FieldError>)>, tally: &mut Tally| -> Result<()> {
            let lines = std::mem::take(batch);
            let events: Vec<Value> = lines
                .iter()
                .filter_map(|(_, v)| v.as_ref().ok().cloned())
                .collect();
            let mut outcomes = if events.is_empty() {
                Vec::new()
            } else {
                sink.submit(events)?
            }
            .into_iter();
            for (line, parsed) in lines {
                let outcome = match parsed {
                    Ok(_) => outcomes.next().context("an outcome per event")?,
                    Err(e) => Outcome::Rejected(e),
                };
                tally.record(line, outcome);
            }
            Ok(())
        };
    for (i, line) in input.lines().enumerate() {
        let number = i as u64 + 1;
        let line = line.with_context(|| format!("reading {name} line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        tally.lines += 1;
        let parsed = serde_json::from_str::<Value>(&line)
            .map_err(|e| FieldError::new("$", format!("is not valid JSON: {e}")));
        batch.push((number, parsed));
        if batch.len() >= args.batch as usize {
            flush(&mut batch, &mut tally)?;
        }
    }
    flush(&mut batch, &mut tally)?;
    if let Sink::Local(ledger) = &sink {
        ledger.catch_up().context("bringing the views up to date")?;
    }
    emit(&format!(
        "{name}: {} lines; {} accepted, {} duplicates, {} rejected",
        tally.lines, tally.accepted, tally.duplicates, tally.rejected
    ))?;
    Ok(status(tally.rejected == 0))
}

pub(super) fn generate(args: GenerateArgs) -> Result<ExitCode> {
    let config = SampleConfig {
        persons: args.persons,
        seed: args.seed,
        ..SampleConfig::default()
    };
    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    for event in sample::population(&config) {
        serde_json::to_writer(&mut out, &json::to_value(&event)).context("writing an event")?;
        out.write_all(b"\n").context("writing an event")?;
    }
    out.flush().context("writing the events")?;
    Ok(ExitCode::SUCCESS)
}
