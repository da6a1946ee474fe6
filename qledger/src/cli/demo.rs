//! `qledger demo`: a fresh data directory with the p17 scenario and a sample
//! population, example queries built from what was loaded, then the server.
//!
//! The demo imports history: the log stamps each event with its producer's
//! time (`RecordTimePolicy::CreateTime`, never later than now), and events are
//! appended in the order they were produced. So "as of 3 April 2024" asks what
//! the ledger knew then, as it would have been answered at the time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ledger::domain::{Day, IndividualInsuredNumber, RecordTime};
use ledger::event::{Event, Payload, QualificationAcquired};
use ledger::log::RecordTimePolicy;
use ledger::sample::{self, SampleConfig, SampleStats};
use projectors::{Lookup, LookupKey};

use super::remote::{encode, query};
use super::{emit, DemoArgs};
use crate::auth::tokens::{TokenStore, DEFAULT_FILE};
use crate::auth::{Principal, Role};
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

/// The p17 case (資格過誤): insurer A's old card, the day it is shown at the
/// desk, and when the ledger recorded each step.
struct P17 {
    old_card: IndividualInsuredNumber,
    on: Day,
    steps: Vec<Step>,
    link: String,
}

impl P17 {
    fn of(events: &[Event]) -> Option<P17> {
        let acquisitions: Vec<&QualificationAcquired> = events
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::QualificationAcquired(q) => Some(q),
                _ => None,
            })
            .collect();
        let a = acquisitions.first()?;
        // The day after the move: the patient shows A's old card at the desk.
        let moved_on = acquisitions
            .iter()
            .find(|q| q.insurer_number != a.insurer_number)
            .map(|b| b.acquired_on);
        Some(P17 {
            old_card: a.insured_number().ok()?,
            on: moved_on.unwrap_or(a.acquired_on).succ(),
            steps: Vec::new(),
            link: events.first()?.envelope.link.to_string(),
        })
    }

    /// The instants worth asking about: the morning after the visit (what
    /// the desk and the claim check saw), then each later step as recorded.
    fn instants(&self) -> Vec<(String, RecordTime)> {
        let morning = self
            .on
            .succ()
            .naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| RecordTime::from_datetime(t.and_utc()));
        let mut out: Vec<(String, RecordTime)> = morning
            .map(|t| (format!("at {t}, the morning after the visit"), t))
            .into_iter()
            .collect();
        for step in &self.steps {
            if morning.is_none_or(|m| step.recorded > m) {
                out.push((
                    format!("at {}, once {} was recorded", step.recorded, step.what),
                    step.recorded,
                ));
            }
        }
        out
    }
}

fn describe_step(e: &Event) -> String {
    match &e.payload {
        Payload::QualificationAcquired(q) => format!(
            "the acquisition at {} from {}",
            q.insurer_number, q.acquired_on
        ),
        Payload::QualificationLost(l) => format!("the loss at the old insurer on {}", l.lost_on),
        other => other.event_type().to_string(),
    }
}

/// Candidate keys for the examples.
#[derive(Default)]
struct Candidates {
    numbers: Vec<LookupKey>,
    cards: Vec<LookupKey>,
}

impl Candidates {
    fn see(&mut self, e: &Event) {
        match &e.payload {
            Payload::QualificationAcquired(q) if self.numbers.len() < CANDIDATES => {
                self.numbers
                    .extend(q.insured_number().ok().map(LookupKey::Insured));
            }
            Payload::CardLinked(c) if self.cards.len() < CANDIDATES => {
                self.cards.push(LookupKey::Card(c.card_serial.clone()));
            }
            _ => {}
        }
    }
}

/// Appends the p17 scenario and the population, merged in the order the
/// events were produced, in batches.
fn load(
    ledger: &Ledger,
    mut events: Vec<Event>,
    p17: &mut Option<P17>,
    loaded: &mut Loaded,
) -> Result<Candidates> {
    let p17_link = p17.as_ref().map(|p| p.link.clone());
    // Stable: each person's events keep their (publication) order.
    events.sort_by_key(|e| e.envelope.produced_at);
    let mut candidates = Candidates::default();
    for chunk in events.chunks(BATCH) {
        let outcomes = ledger
            .submit(chunk.to_vec(), Wait::Durable)
            .context("appending the demo events")?;
        loaded.count(&outcomes);
        for (event, outcome) in chunk.iter().zip(&outcomes) {
            let of_p17 = p17_link.as_deref() == Some(event.envelope.link.as_str());
            match (p17.as_mut(), outcome) {
                (Some(p), Submitted::Accepted(r)) if of_p17 => p.steps.push(Step {
                    what: describe_step(event),
                    recorded: r.record_time,
                }),
                _ if of_p17 => {}
                _ => candidates.see(event),
            }
        }
    }
    Ok(candidates)
}

/// The first key that finds someone insured on `on`, as known now.
/// The first key whose person is insured on `on`, with the person's date of
/// birth (a card lookup must give it).
fn first_insured(ledger: &Ledger, keys: &[LookupKey], on: Day) -> Option<(LookupKey, Day)> {
    keys.iter()
        .find_map(|k| match ledger.eligibility(k, on, None) {
            Ok(Lookup::Found(e)) => e
                .qualifications
                .first()
                .map(|q| (k.clone(), q.qualification.birth_date)),
            _ => None,
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

/// Ready-to-paste queries with values from the loaded data.
struct Examples {
    /// An auditor's API token, issued for the demo (reads everything).
    token: String,
    /// A clinic's (医療機関コード 1311234567): eligibility and claim checks.
    clinic: String,
    p17: Option<P17>,
    number: Option<(LookupKey, Day)>,
    card: Option<(LookupKey, Day)>,
}

impl Examples {
    fn render(&self, base: &str) -> String {
        let mut out = vec![format!(
            "\nTry these (server at {base}). The demo issued two API tokens: T, an auditor's (reads\neverything), and C, a clinic's (医療機関コード 1311234567: eligibility, claim checks):\n\n  T={}\n  C={}",
            self.token, self.clinic
        )];
        let mut example = |comment: String, command: String| {
            out.push(format!("\n  # {comment}"));
            out.push(format!("  {command}"));
        };
        if let Some(p) = &self.p17 {
            let card = &p.old_card;
            for (when, t) in p.instants() {
                example(
                    format!(
                        "p17: insurer A's old card, shown on {}, as the ledger knew it {when}:",
                        p.on
                    ),
                    format!(
                        "curl -s -H \"Authorization: Bearer $T\" '{base}/v1/eligibility{}'",
                        number_query(card, Some(p.on), Some(t))
                    ),
                );
            }
            example(
                "p17: the same question as the ledger knows it now (the claim is re-routed to B, 振替):".into(),
                format!("curl -s -H \"Authorization: Bearer $T\" '{base}/v1/eligibility{}'", number_query(card, Some(p.on), None)),
            );
            example(
                "p17: every version of the person's records, with both time axes:".into(),
                format!(
                    "curl -s -H \"Authorization: Bearer $T\" '{base}/v1/persons/{}/history'",
                    encode(&p.link)
                ),
            );
        }
        if let Some((LookupKey::Insured(n), _)) = &self.number {
            example(
                "by individual insured number (個人単位被保険者番号), today in Japan:".into(),
                format!(
                    "curl -s -H \"Authorization: Bearer $T\" '{base}/v1/eligibility{}'",
                    number_query(n, None, None)
                ),
            );
        }
        if let Some((LookupKey::Card(serial), born)) = &self.card {
            example(
                "by the serial of a linked My Number card and the holder's date of birth, today in Japan:".into(),
                format!(
                    "curl -s -H \"Authorization: Bearer $T\" '{base}/v1/eligibility/card/{}?birth_date={born}'",
                    encode(serial.as_str())
                ),
            );
            example(
                "the same from the command line:".into(),
                format!("QLEDGER_TOKEN=$T qledger eligibility --server {base} --card {serial} --birth-date {born}"),
            );
        }
        example(
            "events the projector could not apply:".into(),
            format!("curl -s -H \"Authorization: Bearer $T\" '{base}/v1/dead-letters'"),
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
    let policy = RecordTimePolicy::CreateTime {
        max_future_micros: 0,
    };
    let ledger = Ledger::open_with(&args.data, DEFAULT_PARTITIONS, policy)
        .with_context(|| format!("cannot open the data directory {}", args.data.display()))?;
    let config = SampleConfig {
        persons: args.persons,
        seed: args.seed,
        ..SampleConfig::default()
    };
    let mut events = sample::scenario_p17();
    let p17_events = events.len();
    let mut p17 = P17::of(&events);
    let mut stats = SampleStats::default();
    events.extend(sample::population(&config).inspect(|e| stats.add(e)));
    let mut loaded = Loaded::default();
    let candidates = load(&ledger, events, &mut p17, &mut loaded)?;
    let applied = ledger.catch_up().context("projecting the loaded events")?;
    let dead_letters = ledger
        .views()
        .dead_letter_count()
        .context("counting dead letters")?;

    let mut out = vec![format!("Loaded into {}:", args.data.display())];
    out.push(format!(
        "  scenario p17 (資格過誤: moved from insurer A to B on 2024-04-01, registered late): {p17_events} events"
    ));
    out.push(format!(
        "  sample population (seed {}, {} to {}): {} events for {} persons",
        config.seed, config.start, config.today, stats.events, stats.persons
    ));
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
    let mut tokens = TokenStore::load(&args.data.join(DEFAULT_FILE))?;
    let (token, _) = tokens.issue(Principal::new("demo-auditor", Role::Auditor))?;
    let mut clinic = Principal::new("demo-clinic", Role::Institution);
    clinic.institution = Some("1311234567".parse().context("the demo clinic's code")?);
    let (clinic, _) = tokens.issue(clinic)?;
    let examples = Examples {
        token,
        clinic,
        p17,
        number: first_insured(&ledger, &candidates.numbers, today),
        card: first_insured(&ledger, &candidates.cards, today),
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
    // The import is done: from here on the log stamps its own clock
    // (LogAppendTime), so nothing published live can change what the ledger
    // knew in the past.
    drop(ledger);
    let ledger = Ledger::open(&args.data, DEFAULT_PARTITIONS)
        .with_context(|| format!("cannot reopen the data directory {}", args.data.display()))?;
    let access = super::serve::access(false, &args.data.join(crate::auth::tokens::DEFAULT_FILE))?;
    // Plain HTTP: the demo is for one machine (serve_ledger refuses any
    // address but loopback without TLS).
    super::serve_ledger(
        ledger,
        &args.listen,
        access,
        None,
        crate::http::HttpSettings::default(),
        |_, addr| {
            let _ = emit(&examples.render(&base_url(addr)));
        },
    )?;
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
