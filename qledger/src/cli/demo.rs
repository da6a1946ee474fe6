//! `qledger demo`: a fresh data directory with the p17 scenario and a sample
//! population, example queries built from what was loaded, then the server.
//!
//! Record time is the instant the log stores an event, so everything the demo
//! loads is recorded now, whatever the events' `produced_at`. The p17 events
//! are appended one at a time, and the examples ask "as of" the instants the
//! log gave them: what the ledger answered after each step, and today.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ledger::domain::{Day, IndividualInsuredNumber, RecordTime};
use ledger::event::{Event, Payload};
use ledger::sample::{self, SampleConfig, SampleStats};
use projectors::{Lookup, LookupKey};

use super::remote::{encode, query};
use super::{emit, open_ledger, DemoArgs};
use crate::service::{Ledger, Submitted, Wait, DEFAULT_PARTITIONS};

/// Marks a directory `demo` made, so a later run may empty it.
const MARKER: &str = ".qledger-demo";
/// Events per append when loading the population.
const BATCH: usize = 5_000;
/// Candidates kept for the example queries.
const CANDIDATES: usize = 500;

/// Empties `dir` if it is a demo directory (or holds only a data directory's
/// `log` and `views`); refuses anything else.
fn prepare_fresh(dir: &Path) -> Result<()> {
    if dir.exists() {
        let entries: Vec<String> = std::fs::read_dir(dir)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
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
        "demo data: `qledger demo` empties this directory on each run\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))
}

/// What was appended, by event type, and every refusal.
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

/// One p17 step as the log recorded it.
struct Step {
    what: String,
    recorded: RecordTime,
}

/// The p17 case (資格過誤): insurer A's old card, the date it is shown, and the
/// instants the ledger recorded each step.
struct P17 {
    old_card: IndividualInsuredNumber,
    on: Day,
    steps: Vec<Step>,
    link: String,
}

fn describe_step(e: &Event) -> String {
    match &e.payload {
        Payload::QualificationAcquired(q) => {
            format!(
                "the acquisition at insurer {} (from {})",
                q.insurer_number, q.acquired_on
            )
        }
        Payload::QualificationLost(l) => format!("the loss at insurer A (lost_on {})", l.lost_on),
        other => other.event_type().to_string(),
    }
}

/// Appends the p17 events one by one, so each has its own record time.
fn load_p17(ledger: &Ledger, loaded: &mut Loaded) -> Result<Option<P17>> {
    let events = sample::scenario_p17();
    let acquisitions: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::QualificationAcquired(q) => Some(q.clone()),
            _ => None,
        })
        .collect();
    let mut steps = Vec::new();
    for event in &events {
        let outcome = ledger
            .submit(vec![event.clone()], Wait::Durable)
            .context("appending the p17 scenario")?;
        loaded.count(&outcome);
        if let Some(Submitted::Accepted(r)) = outcome.first() {
            steps.push(Step {
                what: describe_step(event),
                recorded: r.record_time,
            });
        }
    }
    let (Some(a), Some(link)) = (
        acquisitions.first(),
        events.first().map(|e| e.envelope.link.to_string()),
    ) else {
        return Ok(None);
    };
    let Ok(old_card) = a.insured_number() else {
        return Ok(None);
    };
    // The day after the move: the patient shows A's old card at the desk.
    let moved_on = acquisitions
        .iter()
        .find(|q| q.insurer_number != a.insurer_number)
        .map(|b| b.acquired_on);
    let on = moved_on.unwrap_or(a.acquired_on).succ();
    Ok(Some(P17 {
        old_card,
        on,
        steps,
        link,
    }))
}

/// Streams the population into the log in batches; keeps a few keys for
/// the examples.
fn load_population(
    ledger: &Ledger,
    config: &SampleConfig,
    loaded: &mut Loaded,
) -> Result<(SampleStats, Vec<LookupKey>, Vec<LookupKey>)> {
    let mut stats = SampleStats::default();
    let (mut numbers, mut cards) = (Vec::new(), Vec::new());
    let mut batch = Vec::with_capacity(BATCH);
    let mut events = sample::population(config).peekable();
    while let Some(event) = events.next() {
        stats.add(&event);
        match &event.payload {
            Payload::QualificationAcquired(q) if numbers.len() < CANDIDATES => {
                numbers.extend(q.insured_number().ok().map(LookupKey::Insured));
            }
            Payload::CardLinked(c) if cards.len() < CANDIDATES => {
                cards.push(LookupKey::Card(c.card_serial.clone()))
            }
            _ => {}
        }
        batch.push(event);
        if batch.len() == BATCH || events.peek().is_none() {
            let outcomes = ledger
                .submit(std::mem::take(&mut batch), Wait::Durable)
                .context("appending the sample population")?;
            loaded.count(&outcomes);
        }
    }
    Ok((stats, numbers, cards))
}

/// The first key that finds someone insured on `on`, as known now.
fn first_insured(ledger: &Ledger, keys: &[LookupKey], on: Day) -> Option<LookupKey> {
    keys.iter()
        .find(|k| matches!(ledger.eligibility(k, on, None), Ok(Lookup::Found(e)) if !e.qualifications.is_empty()))
        .cloned()
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

/// Ready-to-paste queries with values from the loaded data.
struct Examples {
    p17: Option<P17>,
    number: Option<LookupKey>,
    card: Option<LookupKey>,
}

impl Examples {
    fn render(&self, base: &str) -> String {
        let mut out = vec![format!("\nTry these (server at {base}):")];
        let mut example = |comment: String, command: String| {
            out.push(format!("\n  # {comment}"));
            out.push(format!("  {command}"));
        };
        if let Some(p) = &self.p17 {
            for step in &p.steps {
                example(
                    format!(
                        "p17, insurer A's old card shown on {}, as known once {} was recorded:",
                        p.on, step.what
                    ),
                    format!(
                        "curl -s '{base}/v1/eligibility{}'",
                        number_query(&p.old_card, Some(p.on), Some(step.recorded))
                    ),
                );
            }
            example(
                format!("p17, the same question as known now (the claim is re-routed to B, 振替):"),
                format!(
                    "curl -s '{base}/v1/eligibility{}'",
                    number_query(&p.old_card, Some(p.on), None)
                ),
            );
            example(
                "p17, every version of the person's records, with both time axes:".into(),
                format!("curl -s '{base}/v1/persons/{}/history'", encode(&p.link)),
            );
        }
        if let Some(LookupKey::Insured(n)) = &self.number {
            example(
                "by individual insured number (個人単位被保険者番号), today in Japan:".into(),
                format!(
                    "curl -s '{base}/v1/eligibility{}'",
                    number_query(n, None, None)
                ),
            );
        }
        if let Some(LookupKey::Card(serial)) = &self.card {
            example(
                "by the serial of a linked My Number card, today in Japan:".into(),
                format!(
                    "curl -s '{base}/v1/eligibility/card/{}'",
                    encode(serial.as_str())
                ),
            );
            example(
                "the same from the command line:".into(),
                format!("qledger eligibility --server {base} --card {serial}"),
            );
        }
        example(
            "events the projector could not apply:".into(),
            format!("curl -s '{base}/v1/dead-letters'"),
        );
        example(
            "is this insurer number valid?".into(),
            "qledger check-id insurer 01130012".into(),
        );
        out.join("\n")
    }
}

pub(super) fn run(args: DemoArgs) -> Result<ExitCode> {
    prepare_fresh(&args.data)?;
    let ledger = open_ledger(&args.data, DEFAULT_PARTITIONS)?;
    let mut loaded = Loaded::default();
    let p17 = load_p17(&ledger, &mut loaded)?;
    let config = SampleConfig {
        persons: args.persons,
        seed: args.seed,
        ..SampleConfig::default()
    };
    let (stats, numbers, cards) = load_population(&ledger, &config, &mut loaded)?;
    let applied = ledger.catch_up().context("projecting the loaded events")?;
    let dead_letters = ledger
        .views()
        .dead_letter_count()
        .context("counting dead letters")?;

    let mut out = vec![format!("Loaded into {}:", args.data.display())];
    out.push(format!(
        "  scenario p17 (資格過誤: insurer A to B on 2024-04-01, registered late): {} events",
        p17.as_ref().map_or(0, |p| p.steps.len())
    ));
    out.push(
        format!(
            "  sample population (seed {}, {} to {}): {stats}",
            config.seed, config.start, config.today
        )
        .replace("\n  ", "\n    "),
    );
    out.push(format!(
        "  appended {} events, {} applied by the projector:",
        loaded.total(),
        applied.applied
    ));
    out.extend(
        loaded
            .by_type
            .iter()
            .map(|(t, n)| format!("    {t:<24}{n:>10}")),
    );
    if loaded.duplicates > 0 {
        out.push(format!("  duplicates: {}", loaded.duplicates));
    }
    out.push(format!("  rejected: {}", loaded.rejected.len()));
    out.extend(loaded.rejected.iter().take(10).map(|r| format!("    {r}")));
    out.push(format!("dead letters: {dead_letters}"));
    emit(&out.join("\n"))?;

    let today = Day::today_in_japan();
    let examples = Examples {
        p17,
        number: first_insured(&ledger, &numbers, today),
        card: first_insured(&ledger, &cards, today),
    };
    if args.no_serve {
        let base = args
            .listen
            .parse()
            .map(base_url)
            .unwrap_or_else(|_| format!("http://{}", args.listen));
        emit(&examples.render(&base))?;
        return Ok(ExitCode::SUCCESS);
    }
    super::serve_ledger(ledger, &args.listen, |_, addr| {
        let _ = emit(&examples.render(&base_url(addr)));
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A URL a local curl can reach (`0.0.0.0` is not one).
fn base_url(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => format!("http://127.0.0.1:{}", addr.port()),
        ip if ip.is_unspecified() => format!("http://[::1]:{}", addr.port()),
        _ => format!("http://{addr}"),
    }
}
