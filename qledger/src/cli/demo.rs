//! `qledger demo`: a fresh data directory with the p17 scenario and a sample
//! population, example queries built from what was loaded, then the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use super::shim_sample::{self as sample, SampleConfig};
use anyhow::{bail, Context, Result};
use ledger::domain::{Day, IndividualInsuredNumber, RecordTime};
use ledger::event::{Event, Payload, QualificationAcquired};
use projectors::{Lookup, LookupKey};

use super::remote::{encode, query};
use super::{emit, open_ledger, DemoArgs};
use crate::service::{Ledger, Receipt, Submitted, Wait, DEFAULT_PARTITIONS};

/// Marks a directory `demo` made, so a later run may empty it.
const MARKER: &str = ".qledger-demo";
/// Events per append when loading the population.
const BATCH: usize = 5_000;

/// Empties `dir` if it is a demo directory (or empty); refuses anything else.
fn prepare_fresh(dir: &Path) -> Result<()> {
    if dir.exists() {
        let entries: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read {}", dir.display()))?;
        let ours = entries.iter().any(|e| e == MARKER)
            || entries
                .iter()
                .all(|e| matches!(e.as_str(), "log" | "views"));
        if !ours {
            bail!(
                "refusing to empty {}: it does not look like a qledger demo directory (pick another --data)",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the old demo data in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "demo data; `qledger demo` empties this directory on each run\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))
}

/// Counts by event type, and every refusal.
#[derive(Default)]
struct Loaded {
    by_type: BTreeMap<&'static str, u64>,
    duplicates: u64,
    rejected: Vec<String>,
}

impl Loaded {
    fn count(&mut self, outcomes: &[Submitted]) {
        for s in outcomes {
            match s {
                Submitted::Accepted(r) => *self.by_type.entry(r.event_type).or_default() += 1,
                Submitted::Duplicate(_) => self.duplicates += 1,
                Submitted::Rejected { error } => self.rejected.push(error.to_string()),
            }
        }
    }

    fn total(&self) -> u64 {
        self.by_type.values().sum()
    }
}

/// The p17 case (資格過誤): the old card of insurer A, the new qualification
/// at insurer B, and an instant when the ledger knew only A's.
struct P17 {
    old_card: IndividualInsuredNumber,
    on: Day,
    known_before_b: Option<RecordTime>,
    link: String,
}

fn acquired(e: &Event) -> Option<&QualificationAcquired> {
    match &e.payload {
        Payload::QualificationAcquired(q) => Some(q),
        _ => None,
    }
}

/// Appends the p17 events one by one, so each has its own record time.
fn load_p17(ledger: &Ledger, events: Vec<Event>, loaded: &mut Loaded) -> Result<Option<P17>> {
    let first = events.iter().find_map(acquired).cloned();
    let mut receipts: Vec<(Event, Option<Receipt>)> = Vec::new();
    for event in events {
        let outcome = ledger
            .submit(vec![event.clone()], Wait::Durable)
            .context("appending the p17 scenario")?;
        loaded.count(&outcome);
        let receipt = match outcome.into_iter().next() {
            Some(Submitted::Accepted(r) | Submitted::Duplicate(r)) => Some(r),
            _ => None,
        };
        receipts.push((event, receipt));
    }
    let Some(a) = first else { return Ok(None) };
    let Ok(old_card) = a.insured_number() else {
        return Ok(None);
    };
    let b_at = receipts
        .iter()
        .position(|(e, _)| acquired(e).is_some_and(|q| q.insurer_number != a.insurer_number));
    let on = b_at
        .and_then(|i| acquired(&receipts[i].0))
        .map(|b| b.acquired_on.succ())
        .unwrap_or_else(|| a.acquired_on.succ());
    let known_before_b = b_at
        .and_then(|i| receipts[..i].iter().rev().find_map(|(_, r)| r.as_ref()))
        .map(|r| r.record_time);
    let link = receipts
        .first()
        .map(|(e, _)| e.envelope.link.to_string())
        .unwrap_or_default();
    Ok(Some(P17 {
        old_card,
        on,
        known_before_b,
        link,
    }))
}

/// The first key among `keys` that finds someone insured on `on`.
fn first_insured(
    ledger: &Ledger,
    keys: impl Iterator<Item = LookupKey>,
    on: Day,
) -> Option<LookupKey> {
    keys.take(500).find(|k| {
        matches!(ledger.eligibility(k, on, None), Ok(Lookup::Found(e)) if !e.qualifications.is_empty())
    })
}

fn number_query(n: &IndividualInsuredNumber, on: Option<Day>, as_of: Option<RecordTime>) -> String {
    query(&[
        ("insurer", Some(n.insurer().to_string())),
        ("symbol", n.symbol().map(|s| s.to_string())),
        ("number", Some(n.number().to_string())),
        ("branch", n.branch().map(|b| b.to_string())),
        ("on", on.map(|d| d.to_string())),
        ("as_of", as_of.map(|t| t.to_string())),
    ])
}

fn examples(ledger: &Ledger, base: &str, p17: Option<&P17>, population: &[Event]) -> String {
    let today = Day::today_in_japan();
    let mut out = String::new();
    let _ = writeln!(out, "\nTry these (the server at {base}):\n");
    if let Some(p) = p17 {
        let _ = writeln!(
            out,
            "  # p17 (資格過誤): the patient shows insurer A's old card on {}.",
            p.on
        );
        if let Some(t) = p.known_before_b {
            let _ = writeln!(out, "  # As the ledger knew it before insurer B's acquisition was recorded ({t}): insurer A.");
            let _ = writeln!(
                out,
                "  curl -s '{base}/v1/eligibility{}'",
                number_query(&p.old_card, Some(p.on), Some(t))
            );
        }
        let _ = writeln!(
            out,
            "  # As the ledger knows it now: insurer B (the claim goes to B)."
        );
        let _ = writeln!(
            out,
            "  curl -s '{base}/v1/eligibility{}'",
            number_query(&p.old_card, Some(p.on), None)
        );
        let _ = writeln!(
            out,
            "  # Every version of that person's records, with both time axes:"
        );
        let _ = writeln!(
            out,
            "  curl -s '{base}/v1/persons/{}/history'",
            encode(&p.link)
        );
    }
    let numbers = population
        .iter()
        .filter_map(acquired)
        .filter_map(|q| q.insured_number().ok())
        .map(LookupKey::Insured);
    if let Some(LookupKey::Insured(n)) = first_insured(ledger, numbers, today) {
        let _ = writeln!(out, "  # By individual insured number, today ({today}):");
        let _ = writeln!(
            out,
            "  curl -s '{base}/v1/eligibility{}'",
            number_query(&n, None, None)
        );
    }
    let serials = population.iter().filter_map(|e| match &e.payload {
        Payload::CardLinked(c) => Some(LookupKey::Card(c.card_serial.clone())),
        _ => None,
    });
    if let Some(LookupKey::Card(serial)) = first_insured(ledger, serials, today) {
        let _ = writeln!(out, "  # By the serial of a linked My Number card, today:");
        let _ = writeln!(
            out,
            "  curl -s '{base}/v1/eligibility/card/{}'",
            encode(serial.as_str())
        );
        let _ = writeln!(out, "  qledger eligibility --server {base} --card {serial}");
    }
    let _ = writeln!(out, "  # Events the projector could not apply:");
    let _ = writeln!(out, "  curl -s '{base}/v1/dead-letters'");
    let _ = writeln!(out, "  # Check an identifier:");
    let _ = writeln!(out, "  qledger check-id insurer 01130012");
    let _ = writeln!(out);
    out
}

pub(super) fn run(args: DemoArgs) -> Result<ExitCode> {
    prepare_fresh(&args.data)?;
    let ledger = open_ledger(&args.data, DEFAULT_PARTITIONS)?;
    let mut loaded = Loaded::default();

    let p17_events = sample::scenario_p17();
    let p17_count = p17_events.len();
    let p17 = load_p17(&ledger, p17_events, &mut loaded)?;

    let config = SampleConfig {
        persons: args.persons,
        seed: args.seed,
        ..Default::default()
    };
    let population = sample::population(&config);
    for chunk in population.chunks(BATCH) {
        let outcomes = ledger
            .submit(chunk.to_vec(), Wait::Durable)
            .context("appending the sample population")?;
        loaded.count(&outcomes);
    }
    let stats = ledger.catch_up().context("projecting the loaded events")?;
    let dead_letters = ledger
        .views()
        .dead_letter_count()
        .context("counting dead letters")?;

    let mut out = String::new();
    let _ = writeln!(out, "Loaded into {}:", args.data.display());
    let _ = writeln!(
        out,
        "  scenario p17 (資格過誤, insurer A to B): {p17_count} events"
    );
    let _ = writeln!(
        out,
        "  sample population: {} persons, seed {}: {} events",
        args.persons,
        args.seed,
        population.len()
    );
    let _ = writeln!(
        out,
        "  appended {} events ({} applied by the projector):",
        loaded.total(),
        stats.applied
    );
    for (t, n) in &loaded.by_type {
        let _ = writeln!(out, "    {t:<24} {n:>7}");
    }
    if loaded.duplicates > 0 {
        let _ = writeln!(out, "  duplicates: {}", loaded.duplicates);
    }
    let _ = writeln!(out, "  rejected: {}", loaded.rejected.len());
    for r in loaded.rejected.iter().take(10) {
        let _ = writeln!(out, "    {r}");
    }
    let _ = writeln!(out, "dead letters: {dead_letters}");

    emit(out.trim_end())?;

    if args.no_serve {
        let base = args
            .listen
            .parse()
            .map(base_url)
            .unwrap_or_else(|_| format!("http://{}", args.listen));
        emit(&examples(&ledger, &base, p17.as_ref(), &population))?;
        return Ok(ExitCode::SUCCESS);
    }
    super::serve_ledger(ledger, &args.listen, |ledger, addr| {
        let _ = emit(&examples(
            ledger,
            &base_url(addr),
            p17.as_ref(),
            &population,
        ));
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A URL a local curl can reach (`0.0.0.0` is not one).
fn base_url(addr: SocketAddr) -> String {
    let ip = addr.ip();
    match ip {
        ip if ip.is_unspecified() && ip.is_ipv4() => format!("http://127.0.0.1:{}", addr.port()),
        ip if ip.is_unspecified() => format!("http://[::1]:{}", addr.port()),
        _ => format!("http://{addr}"),
    }
}
