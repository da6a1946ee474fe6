//! `qledger eligibility`, `history`, `dead-letters`: from the views of a data
//! directory, opened read-only (so they work beside a running server), or
//! from a server with `--server`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use hyper::StatusCode;
use ledger::domain::{Day, IndividualInsuredNumber, RecordTime};
use projectors::{Lookup, LookupKey, Views};
use serde_json::{json, Value};

use super::remote::{encode, query, Answer, Remote};
use super::{print_json, status, DeadLettersArgs, EligibilityArgs, HistoryArgs};
use crate::http::MAX_PAGE;

/// The views of `data`, read-only.
pub(super) fn read_only_views(data: &Path) -> Result<Views> {
    let dir = data.join("views");
    if !dir.join("CURRENT").exists() {
        bail!(
            "{} holds no views yet (publish events, or run a server on it, first)",
            data.display()
        );
    }
    Views::open_read_only(&dir)
        .with_context(|| format!("cannot open the views in {}", dir.display()))
}

/// A server's answer: 200 printed (exit 0), 404 printed (exit 1), else an error.
pub(super) fn print_answer(answer: Answer) -> Result<ExitCode> {
    match answer.status {
        StatusCode::OK => print_json(&answer.body).map(|_| ExitCode::SUCCESS),
        StatusCode::NOT_FOUND => print_json(&answer.body).map(|_| status(false)),
        s => bail!("the server answered {s}: {}", answer.detail()),
    }
}

pub(super) fn eligibility(args: EligibilityArgs) -> Result<ExitCode> {
    let key = match (args.card, args.insurer, args.number) {
        (Some(serial), _, _) => LookupKey::Card(serial),
        (None, Some(insurer), Some(number)) => LookupKey::Insured(
            IndividualInsuredNumber::new(insurer, args.symbol, number, args.branch)
                .map_err(|e| anyhow::anyhow!("--{}: {}", flag_of(&e.field), e.rule))?,
        ),
        _ => bail!("give --insurer and --number (with --symbol and --branch where the card has them), or --card"),
    };
    if matches!(key, LookupKey::Card(_)) && args.birth_date.is_none() {
        bail!("a lookup by --card must give the holder's --birth-date, as the online check does");
    }
    if let Some(server) = &args.target.server {
        let when = [
            ("birth_date", args.birth_date.map(|d| d.to_string())),
            ("on", args.on.map(|d| d.to_string())),
            ("as_of", args.as_of.map(|t| t.to_string())),
        ];
        let path = match &key {
            LookupKey::Card(serial) => format!(
                "/v1/eligibility/card/{}{}",
                encode(serial.as_str()),
                query(&when)
            ),
            LookupKey::Insured(n) => {
                let mut pairs = vec![
                    ("insurer", Some(n.insurer().to_string())),
                    ("symbol", n.symbol().map(|s| s.to_string())),
                    ("number", Some(n.number().to_string())),
                    ("branch", n.branch().map(|b| b.to_string())),
                ];
                pairs.extend(when);
                format!("/v1/eligibility{}", query(&pairs))
            }
        };
        let remote = Remote::new(server)?;
        return print_answer(if args.fhir {
            remote.get_as(&path, crate::fhir::FHIR_JSON)?
        } else {
            remote.get(&path)?
        });
    }
    let views = read_only_views(&args.target.data_dir())?;
    let on = args.on.unwrap_or_else(Day::today_in_japan);
    let lookup = match args.birth_date {
        Some(born) => views.eligibility_of_holder(&key, born, on, args.as_of),
        None => views.eligibility(&key, on, args.as_of),
    }
    .context("looking up eligibility")?;
    if args.fhir {
        let what = match key {
            LookupKey::Card(_) => "card",
            LookupKey::Insured(_) => "insured number",
        };
        let (found, body) = crate::fhir::answer(&lookup, &key, what, RecordTime::now());
        print_json(&body)?;
        return Ok(status(found));
    }
    print_json(&lookup)?;
    Ok(status(matches!(lookup, Lookup::Found(_))))
}

/// The command-line flag an [`IndividualInsuredNumber`] field comes from.
fn flag_of(field: &str) -> &str {
    match field {
        "insurer_number" => "insurer",
        "card_symbol" => "symbol",
        "card_number" => "number",
        other => other,
    }
}

pub(super) fn history(args: HistoryArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let path = format!("/v1/persons/{}/history", encode(args.link.as_str()));
        return print_answer(Remote::new(server)?.get(&path)?);
    }
    let views = read_only_views(&args.target.data_dir())?;
    match views.history(&args.link).context("reading the history")? {
        Some(h) => print_json(&h).map(|_| ExitCode::SUCCESS),
        None => {
            eprintln!("no records for link number {}", args.link);
            Ok(status(false))
        }
    }
}

pub(super) fn dead_letters(args: DeadLettersArgs) -> Result<ExitCode> {
    let letters: Vec<Value> = if let Some(server) = &args.target.server {
        let remote = Remote::new(server)?;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = format!(
                "/v1/dead-letters{}",
                query(&[
                    ("after", after.take()),
                    ("limit", Some(MAX_PAGE.to_string()))
                ])
            );
            let answer = remote.get(&path)?;
            if answer.status != StatusCode::OK {
                bail!("the server answered {}: {}", answer.status, answer.detail());
            }
            if let Some(page) = answer.body.get("dead_letters").and_then(Value::as_array) {
                all.extend(page.iter().cloned());
            }
            match answer.body.get("next").and_then(Value::as_str) {
                Some(next) => after = Some(next.to_owned()),
                None => break all,
            }
        }
    } else {
        let views = read_only_views(&args.target.data_dir())?;
        let letters = views
            .dead_letters(None, usize::MAX)
            .context("reading dead letters")?;
        letters
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .context("encoding dead letters")?
    };
    print_json(&json!({"count": letters.len(), "dead_letters": letters}))?;
    Ok(ExitCode::SUCCESS)
}
