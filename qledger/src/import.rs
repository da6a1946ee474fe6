//! Bulk import of batch files: the NHI aggregation system's (国保情報集約システム)
//! municipal qualification records as CSV, or qledger events in an Avro
//! object container file, published straight to the event log.
//!
//! Every row goes through the same rules as intake: the domain types'
//! validation, [`Event::validate`], the Avro encoding and the log record of
//! [`crate::service::append_request`]. A row that breaks a rule is rejected
//! with its line (CSV) or record number (Avro), the field at fault and the
//! rule; it never stops the import nor affects another row. Only reading the
//! input, writing the rejections and the log itself can fail an import.
//!
//! Memory stays bounded whatever the file size: rows go a chunk
//! ([`ImportOptions::batch`]) at a time through three threads — read and
//! validated, Avro-encoded, appended (and synced) — with at most one chunk
//! waiting between two of them, so at most five are alive. The [`Summary`]
//! keeps the first [`ImportOptions::keep_rejections`] rejections; every one
//! goes to the [`Report`] (e.g. a JSON-lines file, [`JsonLines`]).
//!
//! # CSV
//!
//! One row is one event: a qualification acquired (資格取得), changed (資格変更)
//! or lost (資格喪失). A header row names the columns, in any order; the layout
//! is documented in `docs/import.md` and by [`CsvWriter`], which writes it.
//! UTF-8, with or without a byte-order mark.
//!
//! A row without an `event_id` gets one derived from its content: a UUIDv7
//! whose timestamp is the row's `produced_at` and whose 74 other bits come
//! from SHA-256 over the row's line number, its publisher id and the bytes of
//! every known column (in the layout's order, not the file's). Importing the
//! same file again therefore appends nothing: every row comes back as a
//! duplicate. Rows moved to another line get new ids, so a publisher that
//! re-exports files should give each row its own `event_id`.
//!
//! # Avro
//!
//! An object container file whose writer schema is one of the committed
//! event schemas (`schemas/*.avsc` or a version in `schemas/history/`), or a
//! union of them ([`union_schema`] builds one); anything else is refused
//! before a record is read. Each record is resolved to the ledger's current
//! schema of its type and read by [`avro::from_value`], as the projectors
//! read the log.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::schema::{Name, ResolvedSchema, UnionSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use ledger::domain::{
    Branch, CardKind, CardNumber, CardSymbol, CopayRate, Day, InsurerKind, InsurerNumber,
    LinkNumber, LossReason, NameKana, NameKanji, PublisherId, QualificationId, Relationship, Sex,
    SpecialStatus,
};
use ledger::error::{FieldError, RuleViolation};
use ledger::event::avro::{self, Contract};
use ledger::event::{
    Envelope, Event, EventType, Payload, QualificationAcquired, QualificationChanged,
    QualificationLost,
};
use ledger::log::{AppendRequest, Appended, EventLog, LogError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::service;

/// Rows per chunk unless told otherwise.
pub const DEFAULT_BATCH: usize = 10_000;
/// Rejections the [`Summary`] keeps unless told otherwise.
pub const DEFAULT_KEEP_REJECTIONS: usize = 1_000;
/// The publisher of rows that name none: the NHI aggregation system.
pub const DEFAULT_SOURCE: &str = "nhi-aggregation";

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Municipal qualification records, one event per row (docs/import.md).
    Csv,
    /// An Avro object container file of qledger events.
    Avro,
}

impl Format {
    /// By extension: `.csv` (and `.txt`), `.avro`; case-insensitive.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "txt" => Some(Format::Csv),
            "avro" => Some(Format::Avro),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Avro => "avro",
        })
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Rows per chunk: validated and encoded together, appended (and synced)
    /// as one log append.
    pub batch: usize,
    /// How many rejections the [`Summary`] keeps (all go to the [`Report`]).
    pub keep_rejections: usize,
    /// The publisher id of CSV rows without a `source`.
    pub source: PublisherId,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            batch: DEFAULT_BATCH,
            keep_rejections: DEFAULT_KEEP_REJECTIONS,
            source: PublisherId::parse(DEFAULT_SOURCE).expect("a valid publisher id"),
        }
    }
}

/// Where a row is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// The line a CSV row starts on (the header is line 1).
    Line(u64),
    /// The 1-based number of a record in an Avro file.
    Record(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// A row refused: where, the field at fault and why. Serialised (one JSON
/// line in a rejects file) as `{"line": 17, "field": "copay_percent",
/// "reason": "…"}` (`"record"` instead of `"line"` for Avro).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    #[serde(flatten)]
    pub at: Location,
    /// The CSV column (or the event field, for Avro) at fault; `$` for the
    /// row as a whole.
    pub field: String,
    pub reason: String,
}

impl Rejection {
    fn new(at: Location, error: FieldError) -> Rejection {
        Rejection {
            at,
            field: error.field,
            reason: error.rule,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.field, self.reason)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rows (CSV) or records (Avro) read.
    pub rows: u64,
    /// Appended now.
    pub accepted: u64,
    /// Already in the log, identical (a re-import): acknowledged, not appended again.
    pub duplicates: u64,
    pub rejected: u64,
    /// The first rejections, in file order (at most [`ImportOptions::keep_rejections`]).
    pub rejections: Vec<Rejection>,
    /// Rejections counted but not kept in [`Summary::rejections`].
    pub rejections_not_kept: u64,
}

/// How far an import has got, after each chunk is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input consumed so far.
    pub bytes_read: u64,
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub elapsed: Duration,
}

/// Where an import reports as it goes. Both methods run on the calling thread.
pub trait Report {
    /// After each chunk has been appended durably.
    fn progress(&mut self, _progress: &Progress) {}

    /// Every rejection, in file order. An error stops the import.
    fn rejected(&mut self, _rejection: &Rejection) -> io::Result<()> {
        Ok(())
    }
}

/// Reports nothing.
impl Report for () {}

/// Writes every rejection as a JSON line.
#[derive(Debug)]
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> Report for JsonLines<W> {
    fn rejected(&mut self, rejection: &Rejection) -> io::Result<()> {
        serde_json::to_writer(&mut self.0, rejection)?;
        self.0.write_all(b"\n")
    }
}

/// Why an import stopped. Rejected rows are not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("reading the input: {0}")]
    Read(#[source] io::Error),
    /// The CSV header row is missing or unusable.
    #[error("CSV header: {0}")]
    Header(String),
    /// The Avro file's schema is not a qledger event schema, or the file is
    /// unreadable from some record on.
    #[error("Avro file: {0}")]
    Avro(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the log answered {answers} outcomes for {requests} records")]
    Outcomes { requests: usize, answers: usize },
    #[error("reporting a rejection: {0}")]
    Report(#[source] io::Error),
}

/// One row read: where it is, and the event or why not.
#[derive(Debug)]
pub struct Parsed {
    pub at: Location,
    pub event: Result<Event, FieldError>,
}

/// Imports files into one event log.
#[derive(Debug)]
pub struct Importer {
    log: Arc<dyn EventLog>,
    options: ImportOptions,
}

impl Importer {
    pub fn new(log: Arc<dyn EventLog>, options: ImportOptions) -> Importer {
        Importer { log, options }
    }

    /// Imports `input` in `format`; rejected rows are in the summary and
    /// were given to `report`.
    pub fn import(
        &self,
        input: impl Read,
        format: Format,
        report: &mut dyn Report,
    ) -> Result<Summary, ImportError> {
        match format {
            Format::Csv => self.run(CsvEvents::new(input, self.options.source.clone())?, report),
            Format::Avro => self.run(AvroEvents::new(input)?, report),
        }
    }

    fn run(&self, mut rows: impl Rows, report: &mut dyn Report) -> Result<Summary, ImportError> {
        let started = Instant::now();
        let batch = self.options.batch.max(1);
        let id_field = rows.id_field();
        let mut tally = Tally {
            summary: Summary::default(),
            keep: self.options.keep_rejections,
            started,
        };
        let log = &*self.log;
        std::thread::scope(|scope| {
            // Three stages, each a chunk at a time: this thread reads and
            // validates rows, the encoder Avro-encodes them, the appender
            // appends (and waits for the sync). One chunk may wait between
            // stages, so at most five are alive.
            let (parsed, to_encode) = mpsc::sync_channel::<ParsedChunk>(1);
            let (encoded, to_append) = mpsc::sync_channel::<Chunk>(1);
            let (done, outcomes) = mpsc::channel::<Result<Done, ImportError>>();
            scope.spawn(move || {
                for rows in to_encode {
                    if encoded.send(Chunk::encode(rows)).is_err() {
                        break;
                    }
                }
            });
            scope.spawn(move || {
                for chunk in to_append {
                    let outcome = append_chunk(log, chunk, id_field);
                    let failed = outcome.is_err();
                    if done.send(outcome).is_err() || failed {
                        break;
                    }
                }
            });
            loop {
                let mut chunk = ParsedChunk {
                    rows: Vec::with_capacity(batch),
                    bytes_read: 0,
                };
                let mut end = false;
                while chunk.rows.len() < batch {
                    match rows.next_row() {
                        None => {
                            end = true;
                            break;
                        }
                        Some(row) => chunk.rows.push(row?),
                    }
                }
                chunk.bytes_read = rows.bytes_read();
                if !chunk.rows.is_empty() && parsed.send(chunk).is_err() {
                    // A later stage stopped on an error; it is in `outcomes`.
                    break;
                }
                while let Ok(outcome) = outcomes.try_recv() {
                    tally.add(outcome?, report)?;
                }
                if end {
                    break;
                }
            }
            drop(parsed);
            for outcome in outcomes {
                tally.add(outcome?, report)?;
            }
            Ok(tally.summary)
        })
    }
}

/// Rows read and validated, waiting to be encoded.
struct ParsedChunk {
    rows: Vec<Parsed>,
    bytes_read: u64,
}

/// The summary so far, and how to grow it.
struct Tally {
    summary: Summary,
    keep: usize,
    started: Instant,
}

impl Tally {
    fn add(&mut self, done: Done, report: &mut dyn Report) -> Result<(), ImportError> {
        let s = &mut self.summary;
        s.rows += done.rows;
        s.accepted += done.accepted;
        s.duplicates += done.duplicates;
        for r in done.rejections {
            s.rejected += 1;
            report.rejected(&r).map_err(ImportError::Report)?;
            if s.rejections.len() < self.keep {
                s.rejections.push(r);
            } else {
                s.rejections_not_kept += 1;
            }
        }
        report.progress(&Progress {
            bytes_read: done.bytes_read,
            rows: s.rows,
            accepted: s.accepted,
            duplicates: s.duplicates,
            rejected: s.rejected,
            elapsed: self.started.elapsed(),
        });
        Ok(())
    }
}

/// Rows validated and encoded, waiting to be appended.
struct Chunk {
    rows: u64,
    requests: Vec<AppendRequest>,
    /// Where each request's row is.
    at: Vec<Location>,
    rejections: Vec<Rejection>,
    bytes_read: u64,
}

impl Chunk {
    /// Encodes the valid rows as log records; the others are rejections.
    fn encode(rows: ParsedChunk) -> Chunk {
        let n = rows.rows.len();
        let mut chunk = Chunk {
            rows: n as u64,
            requests: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            rejections: Vec::new(),
            bytes_read: rows.bytes_read,
        };
        for row in rows.rows {
            let request = row.event.and_then(|event| {
                service::append_request(&event).map_err(|e| FieldError::new("$", e.to_string()))
            });
            match request {
                Ok(r) => {
                    chunk.requests.push(r);
                    chunk.at.push(row.at);
                }
                Err(e) => chunk.rejections.push(Rejection::new(row.at, e)),
            }
        }
        chunk
    }
}

/// A chunk's outcome.
struct Done {
    rows: u64,
    accepted: u64,
    duplicates: u64,
    /// In file order.
    rejections: Vec<Rejection>,
    bytes_read: u64,
}

/// Appends a chunk and sorts its outcomes. A re-sent event id is a
/// duplicate only if the logged record is byte for byte this one (as at
/// intake); otherwise the row is rejected.
fn append_chunk(log: &dyn EventLog, chunk: Chunk, id_field: &str) -> Result<Done, ImportError> {
    let Chunk {
        rows,
        requests,
        at,
        mut rejections,
        bytes_read,
    } = chunk;
    let mut done = Done {
        rows,
        accepted: 0,
        duplicates: 0,
        rejections: Vec::new(),
        bytes_read,
    };
    if !requests.is_empty() {
        let n = requests.len();
        // Kept to compare with the logged record of a duplicate.
        let values: Vec<Vec<u8>> = requests.iter().map(|r| r.value.clone()).collect();
        let outcomes = log.append(requests)?;
        if outcomes.len() != n {
            return Err(ImportError::Outcomes {
                requests: n,
                answers: outcomes.len(),
            });
        }
        for ((outcome, at), value) in outcomes.into_iter().zip(at).zip(values) {
            match outcome {
                Appended::New(_) => done.accepted += 1,
                Appended::Duplicate(p) => {
                    let logged = log.read(p.partition, p.offset, 1)?;
                    if logged.first().is_some_and(|r| r.value == value) {
                        done.duplicates += 1;
                    } else {
                        rejections.push(Rejection {
                            at,
                            field: id_field.to_owned(),
                            reason: format!(
                                "is already used by a different event (at {}:{} in the log); \
                                 a re-sent event must be identical",
                                p.partition, p.offset
                            ),
                        });
                    }
                }
            }
        }
    }
    rejections.sort_by_key(|r| r.at);
    done.rejections = rejections;
    Ok(done)
}

/// A source of rows.
trait Rows {
    /// The next row; an error ends the import.
    fn next_row(&mut self) -> Option<Result<Parsed, ImportError>>;
    /// Bytes of the input consumed so far.
    fn bytes_read(&self) -> u64;
    /// The field named when an event id is already used by another event.
    fn id_field(&self) -> &'static str;
}

// ---------------------------------------------------------------------------
// CSV

macro_rules! columns {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// The CSV columns, in the layout's order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Col {
            $($variant,)+
        }

        impl Col {
            const ALL: &'static [Col] = &[$(Col::$variant,)+];

            fn name(self) -> &'static str {
                match self {
                    $(Col::$variant => $name,)+
                }
            }
        }
    };
}

columns!(
    RecordKind => "record_kind",
    EventId => "event_id",
    Source => "source",
    ProducedAt => "produced_at",
    Link => "link",
    QualificationId => "qualification_id",
    InsurerNumber => "insurer_number",
    CardSymbol => "card_symbol",
    CardNumber => "card_number",
    Branch => "branch",
    Relationship => "relationship",
    Name => "name",
    NameKana => "name_kana",
    Sex => "sex",
    BirthDate => "birth_date",
    AcquiredOn => "acquired_on",
    CardKind => "card_kind",
    Copay => "copay_percent",
    CardValidUntil => "card_valid_until",
    SpecialStatuses => "special_statuses",
    EffectiveOn => "effective_on",
    LostOn => "lost_on",
    LossReason => "loss_reason",
);

/// The CSV column names, in the layout's order.
pub fn csv_columns() -> Vec<&'static str> {
    Col::ALL.iter().map(|c| c.name()).collect()
}

/// Columns every row needs; a header without one is refused.
const REQUIRED_COLUMNS: &[Col] = &[Col::RecordKind, Col::Link, Col::QualificationId];

/// Which field of the row each column is.
#[derive(Debug)]
struct Columns {
    index: [Option<usize>; Col::ALL.len()],
    width: usize,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord) -> Result<Columns, ImportError> {
        if header.is_empty() || (header.len() == 1 && header[0].trim_ascii().is_empty()) {
            return Err(ImportError::Header(
                "the file is empty: a header row naming the columns is required".into(),
            ));
        }
        let mut index = [None; Col::ALL.len()];
        let mut unknown = Vec::new();
        for (i, raw) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
            // Extra columns of the export, and the nameless one a trailing
            // comma makes, are ignored.
            if name.is_empty() || name.starts_with("x_") || name.starts_with("x-") {
                continue;
            }
            match Col::ALL.iter().find(|c| c.name() == name) {
                Some(&c) => {
                    if index[c as usize].replace(i).is_some() {
                        return Err(ImportError::Header(format!("column {name} appears twice")));
                    }
                }
                None => unknown.push(name),
            }
        }
        let missing: Vec<&str> = REQUIRED_COLUMNS
            .iter()
            .filter(|c| index[**c as usize].is_none())
            .map(|c| c.name())
            .collect();
        if !unknown.is_empty() || !missing.is_empty() {
            let mut problems = Vec::new();
            if !missing.is_empty() {
                problems.push(format!("required columns missing: {}", missing.join(", ")));
            }
            if !unknown.is_empty() {
                problems.push(format!(
                    "unknown columns: {} (prefix a column with x_ to have it ignored)",
                    unknown.join(", ")
                ));
            }
            return Err(ImportError::Header(format!(
                "{}; the columns are: {} (docs/import.md)",
                problems.join("; "),
                csv_columns().join(", ")
            )));
        }
        Ok(Columns {
            index,
            width: header.len(),
        })
    }
}

/// What a CSV row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordKind {
    Acquired,
    Changed,
    Lost,
}

impl RecordKind {
    fn symbol(self) -> &'static str {
        match self {
            RecordKind::Acquired => "ACQUIRED",
            RecordKind::Changed => "CHANGED",
            RecordKind::Lost => "LOST",
        }
    }

    fn parse(s: &str) -> Result<RecordKind, RuleViolation> {
        match s {
            "取得" => return Ok(RecordKind::Acquired),
            "変更" => return Ok(RecordKind::Changed),
            "喪失" => return Ok(RecordKind::Lost),
            _ => {}
        }
        match s.to_ascii_uppercase().as_str() {
            "ACQUIRED" => Ok(RecordKind::Acquired),
            "CHANGED" => Ok(RecordKind::Changed),
            "LOST" => Ok(RecordKind::Lost),
            _ => Err(RuleViolation::new(format!(
                "{s:?} is not a record kind: use ACQUIRED (取得), CHANGED (変更) or LOST (喪失)"
            ))),
        }
    }
}

/// A closed vocabulary read from CSV: its symbol (any case), its Japanese
/// name, or a numeric code where the online check has one.
trait Vocabulary: Copy + FromStr<Err = RuleViolation> + 'static {
    fn all() -> &'static [Self];
    fn japanese(self) -> &'static str;
    fn from_code(_code: &str) -> Option<Self> {
        None
    }
}

macro_rules! vocabulary {
    ($($t:ty),+) => {$(
        impl Vocabulary for $t {
            fn all() -> &'static [Self] {
                <$t>::ALL
            }
            fn japanese(self) -> &'static str {
                <$t>::japanese(self)
            }
        }
    )+};
}

vocabulary!(CardKind, SpecialStatus, LossReason);

impl Vocabulary for Sex {
    fn all() -> &'static [Self] {
        Sex::ALL
    }
    fn japanese(self) -> &'static str {
        Sex::japanese(self)
    }
    /// 1 男, 2 女.
    fn from_code(code: &str) -> Option<Sex> {
        Sex::from_code(code.parse().ok()?)
    }
}

impl Vocabulary for Relationship {
    fn all() -> &'static [Self] {
        Relationship::ALL
    }
    fn japanese(self) -> &'static str {
        Relationship::japanese(self)
    }
    /// The online check's 本人家族区分: 1 本人, 2 家族.
    fn from_code(code: &str) -> Option<Relationship> {
        match code {
            "1" => Some(Relationship::Insured),
            "2" => Some(Relationship::Dependent),
            _ => None,
        }
    }
}

fn vocabulary<V: Vocabulary>(s: &str) -> Result<V, RuleViolation> {
    let first = match s.parse::<V>() {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if let Ok(v) = s.to_ascii_uppercase().parse::<V>() {
        return Ok(v);
    }
    if let Some(&v) = V::all().iter().find(|v| v.japanese() == s) {
        return Ok(v);
    }
    if let Some(v) = V::from_code(s) {
        return Ok(v);
    }
    Err(RuleViolation::new(format!(
        "{}, or the Japanese name",
        first.rule()
    )))
}

/// One CSV row, read through the header.
struct Row<'r> {
    record: &'r csv::ByteRecord,
    columns: &'r Columns,
}

impl<'r> Row<'r> {
    /// The column's bytes without surrounding ASCII white space; empty if
    /// the column is absent.
    fn raw(&self, c: Col) -> &'r [u8] {
        self.columns.index[c as usize]
            .and_then(|i| self.record.get(i))
            .unwrap_or_default()
            .trim_ascii()
    }

    /// The column's trimmed text; `None` if the column is absent or empty.
    fn text(&self, c: Col) -> Result<Option<&'r str>, FieldError> {
        let Some(i) = self.columns.index[c as usize] else {
            return Ok(None);
        };
        let bytes = self.record.get(i).unwrap_or_default();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            FieldError::new(
                c.name(),
                format!("is not valid UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        let text = text.trim();
        Ok((!text.is_empty()).then_some(text))
    }

    fn required(&self, c: Col, kind: RecordKind) -> Result<&'r str, FieldError> {
        self.text(c)?.ok_or_else(|| {
            FieldError::new(c.name(), format!("is required for a {} row", kind.symbol()))
        })
    }

    fn parse<T: FromStr<Err = RuleViolation>>(
        &self,
        c: Col,
        kind: RecordKind,
    ) -> Result<T, FieldError> {
        self.required(c, kind)?
            .parse()
            .map_err(|e: RuleViolation| e.at(c.name()))
    }

    fn parse_opt<T: FromStr<Err = RuleViolation>>(&self, c: Col) -> Result<Option<T>, FieldError> {
        self.text(c)?
            .map(|s| s.parse().map_err(|e: RuleViolation| e.at(c.name())))
            .transpose()
    }

    fn vocab<V: Vocabulary>(&self, c: Col, kind: RecordKind) -> Result<V, FieldError> {
        vocabulary(self.required(c, kind)?).map_err(|e| e.at(c.name()))
    }

    fn vocab_opt<V: Vocabulary>(&self, c: Col) -> Result<Option<V>, FieldError> {
        self.text(c)?
            .map(|s| vocabulary(s).map_err(|e| e.at(c.name())))
            .transpose()
    }

    /// `A|B` (or `A;B`); `NONE` is the empty list, as is an empty cell for
    /// an acquisition.
    fn statuses(&self) -> Result<Option<Vec<SpecialStatus>>, FieldError> {
        let Some(text) = self.text(Col::SpecialStatuses)? else {
            return Ok(None);
        };
        if text.eq_ignore_ascii_case("NONE") {
            return Ok(Some(Vec::new()));
        }
        text.split(['|', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| vocabulary(s).map_err(|e| e.at(Col::SpecialStatuses.name())))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn copay(&self, c: Col) -> Result<Option<CopayRate>, FieldError> {
        self.text(c)?
            .map(|s| CopayRate::parse(s).map_err(|e| e.at(c.name())))
            .transpose()
    }
}

/// Midnight in Japan at the start of `day`, as an instant.
fn jst_midnight(day: Day) -> DateTime<Utc> {
    let local = day.naive().and_time(NaiveTime::MIN);
    Utc.from_utc_datetime(&local) - chrono::Duration::hours(9)
}

/// `produced_at`: an RFC 3339 instant, or a date (midnight in Japan).
fn parse_produced_at(s: &str) -> Result<DateTime<Utc>, RuleViolation> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    s.parse::<Day>().map(jst_midnight).map_err(|_| {
        RuleViolation::new(format!(
            "must be an RFC 3339 instant (2024-04-01T09:00:00+09:00) or a date (2024-04-01), got {s:?}"
        ))
    })
}

/// CSV field names are the columns; the envelope's fields are flat there.
fn column_of(mut e: FieldError) -> FieldError {
    if let Some(rest) = e.field.strip_prefix("envelope.") {
        e.field = rest.to_owned();
    }
    e
}

/// The input, with a `\n` added at the end if it lacks one.
#[derive(Debug)]
struct EndsWithNewline<R> {
    inner: R,
    last: u8,
    done: bool,
}

impl<R: Read> Read for EndsWithNewline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last = buf[n - 1];
            return Ok(n);
        }
        self.done = true;
        if self.last == b'\n' {
            return Ok(0);
        }
        buf[0] = b'\n';
        Ok(1)
    }
}

/// Rows of a CSV file as events.
#[derive(Debug)]
pub struct CsvEvents<R: Read> {
    reader: csv::Reader<EndsWithNewline<R>>,
    columns: Columns,
    record: csv::ByteRecord,
    source: PublisherId,
}

impl<R: Read> CsvEvents<R> {
    /// Reads the header row; `source` is the publisher of rows that name none.
    pub fn new(input: R, source: PublisherId) -> Result<CsvEvents<R>, ImportError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            // Records end at `\n` only, so a `\r\n` file's line numbers are
            // right (the `\r` ends up at the end of the last field, trimmed).
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(EndsWithNewline {
                inner: input,
                last: b'\n',
                done: false,
            });
        let header = reader.byte_headers().map_err(csv_error)?.clone();
        let columns = Columns::from_header(&header)?;
        Ok(CsvEvents {
            reader,
            columns,
            record: csv::ByteRecord::new(),
            source,
        })
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    fn event(&self, line: u64) -> Result<Event, FieldError> {
        if self.record.len() != self.columns.width {
            return Err(FieldError::new(
                "$",
                format!(
                    "has {} fields, the header has {}",
                    self.record.len(),
                    self.columns.width
                ),
            ));
        }
        let row = Row {
            record: &self.record,
            columns: &self.columns,
        };
        let kind_text = row.text(Col::RecordKind)?.ok_or_else(|| {
            FieldError::new(
                Col::RecordKind.name(),
                "is required: ACQUIRED, CHANGED or LOST",
            )
        })?;
        let kind = RecordKind::parse(kind_text).map_err(|e| e.at(Col::RecordKind.name()))?;
        let link: LinkNumber = row.parse(Col::Link, kind)?;
        let qualification_id: QualificationId = row.parse(Col::QualificationId, kind)?;
        let (payload, day) = match kind {
            RecordKind::Acquired => {
                let insurer: InsurerNumber = row.parse(Col::InsurerNumber, kind)?;
                let card_kind = match row.vocab_opt(Col::CardKind)? {
                    Some(k) => k,
                    None => default_card_kind(insurer.kind()).ok_or_else(|| {
                        FieldError::new(
                            Col::CardKind.name(),
                            format!(
                                "is required for insurer kind {} ({}); it defaults only for 国保, 退職者医療 and 後期高齢者医療",
                                insurer.kind().japanese(),
                                insurer.kind().symbol()
                            ),
                        )
                    })?,
                };
                let p = QualificationAcquired {
                    qualification_id,
                    card_symbol: row.parse_opt::<CardSymbol>(Col::CardSymbol)?,
                    card_number: row.parse::<CardNumber>(Col::CardNumber, kind)?,
                    branch: row.parse_opt::<Branch>(Col::Branch)?,
                    insurer_number: insurer,
                    relationship: row.vocab(Col::Relationship, kind)?,
                    name: row.parse::<NameKanji>(Col::Name, kind)?,
                    name_kana: row.parse::<NameKana>(Col::NameKana, kind)?,
                    sex: row.vocab(Col::Sex, kind)?,
                    birth_date: row.parse(Col::BirthDate, kind)?,
                    acquired_on: row.parse(Col::AcquiredOn, kind)?,
                    card_kind,
                    copay: row.copay(Col::Copay)?.ok_or_else(|| {
                        FieldError::new(
                            Col::Copay.name(),
                            "is required for an ACQUIRED row: 10, 20 or 30",
                        )
                    })?,
                    card_valid_until: row.parse_opt(Col::CardValidUntil)?,
                    special_statuses: row.statuses()?.unwrap_or_default(),
                };
                let day = p.acquired_on;
                (Payload::QualificationAcquired(p), day)
            }
            RecordKind::Changed => {
                let p = QualificationChanged {
                    qualification_id,
                    effective_on: row.parse(Col::EffectiveOn, kind)?,
                    card_symbol: row.parse_opt(Col::CardSymbol)?,
                    card_number: row.parse_opt(Col::CardNumber)?,
                    branch: row.parse_opt(Col::Branch)?,
                    relationship: row.vocab_opt(Col::Relationship)?,
                    name: row.parse_opt(Col::Name)?,
                    name_kana: row.parse_opt(Col::NameKana)?,
                    card_kind: row.vocab_opt(Col::CardKind)?,
                    copay: row.copay(Col::Copay)?,
                    card_valid_until: row.parse_opt(Col::CardValidUntil)?,
                    special_statuses: row.statuses()?,
                };
                let day = p.effective_on;
                (Payload::QualificationChanged(p), day)
            }
            RecordKind::Lost => {
                let p = QualificationLost {
                    qualification_id,
                    lost_on: row.parse(Col::LostOn, kind)?,
                    reason: row.vocab(Col::LossReason, kind)?,
                };
                let day = p.lost_on;
                (Payload::QualificationLost(p), day)
            }
        };
        let source = match row.parse_opt::<PublisherId>(Col::Source)? {
            Some(s) => s,
            None => self.source.clone(),
        };
        let produced_at = match row.text(Col::ProducedAt)? {
            Some(s) => parse_produced_at(s).map_err(|e| e.at(Col::ProducedAt.name()))?,
            None => jst_midnight(day),
        };
        let event_id = match row.text(Col::EventId)? {
            Some(s) => Uuid::parse_str(s)
                .map_err(|e| FieldError::new(Col::EventId.name(), format!("is not a UUID: {e}")))?,
            None => derived_event_id(line, &row, &source, produced_at),
        };
        let event = Event {
            envelope: Envelope {
                event_id,
                source,
                link,
                produced_at,
            },
            payload,
        };
        event.validate().map_err(column_of)?;
        Ok(event)
    }
}

/// The card of an acquisition that names none, for the insurer kinds whose
/// card follows from the kind.
fn default_card_kind(kind: InsurerKind) -> Option<CardKind> {
    match kind {
        InsurerKind::NationalHealthInsurance => Some(CardKind::NationalHealthInsurance),
        InsurerKind::NhiRetiree => Some(CardKind::Retiree),
        InsurerKind::LateElderly => Some(CardKind::LateElderly),
        _ => None,
    }
}

/// The event id of a row without one: a UUIDv7 stamped with `produced_at`
/// (milliseconds, clamped to the UUIDv7 range), the rest from SHA-256 over
/// the line number, the publisher and every known column but `event_id`
/// (its bytes, trimmed of ASCII white space), tagged by column so neither
/// column order nor empty cells can collide.
fn derived_event_id(
    line: u64,
    row: &Row<'_>,
    source: &PublisherId,
    produced_at: DateTime<Utc>,
) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"qledger import csv v1\0");
    h.update(line.to_be_bytes());
    h.update((source.as_str().len() as u32).to_be_bytes());
    h.update(source.as_str().as_bytes());
    for &c in Col::ALL {
        if c == Col::EventId {
            continue;
        }
        let bytes = row.raw(c);
        if !bytes.is_empty() {
            h.update([c as u8]);
            h.update((bytes.len() as u32).to_be_bytes());
            h.update(bytes);
        }
    }
    let digest = h.finalize();
    let bits = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    let millis = produced_at.timestamp_millis().clamp(0, (1 << 48) - 1) as u128;
    let rand_a = (bits >> 64) & 0xFFF;
    let rand_b = bits & ((1 << 62) - 1);
    Uuid::from_u128((millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)
}

fn csv_error(e: csv::Error) -> ImportError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => ImportError::Read(e),
        other => ImportError::Read(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{other:?}"),
        )),
    }
}

impl<R: Read> Iterator for CsvEvents<R> {
    type Item = Result<Parsed, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        let read = loop {
            let read = self.reader.read_byte_record(&mut self.record);
            // A blank line (`\r\n` is one here) is no row.
            let blank = self.record.len() == 1 && self.record[0].trim_ascii().is_empty();
            if !(matches!(read, Ok(true)) && blank) {
                break read;
            }
        };
        match read {
            Ok(false) => None,
            Ok(true) => {
                // The csv crate's own record positions miss skipped blank
                // lines; count back from the end, which follows the record's
                // `\n` (the input always ends with one).
                let end = self.reader.position().line();
                let inside = self
                    .record
                    .as_slice()
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                let line = end.saturating_sub(1 + inside as u64);
                Some(Ok(Parsed {
                    at: Location::Line(line),
                    event: self.event(line),
                }))
            }
            Err(e) => {
                let line = self.reader.position().line();
                match e.into_kind() {
                    csv::ErrorKind::Io(e) => Some(Err(ImportError::Read(e))),
                    other => Some(Ok(Parsed {
                        at: Location::Line(line),
                        event: Err(FieldError::new("$", format!("is not a CSV row: {other:?}"))),
                    })),
                }
            }
        }
    }
}

impl<R: Read> Rows for CsvEvents<R> {
    fn next_row(&mut self) -> Option<Result<Parsed, ImportError>> {
        self.next()
    }
    fn bytes_read(&self) -> u64 {
        CsvEvents::<R>::bytes_read(self)
    }
    fn id_field(&self) -> &'static str {
        Col::EventId.name()
    }
}

/// Writes events in the CSV layout (acquisitions, changes and losses; other
/// event types have no row). The inverse of the import: a file written with
/// `envelope = true` imports to the same events, byte for byte.
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
    envelope: bool,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header. With `envelope`, each row carries its event's
    /// `event_id`, `source` and `produced_at`; without, the import derives them.
    pub fn new(out: W, envelope: bool) -> io::Result<CsvWriter<W>> {
        let mut out = csv::Writer::from_writer(out);
        let header = Col::ALL
            .iter()
            .filter(|c| envelope || !Self::is_envelope(**c))
            .map(|c| c.name());
        out.write_record(header).map_err(io::Error::other)?;
        Ok(CsvWriter { out, envelope })
    }

    fn is_envelope(c: Col) -> bool {
        matches!(c, Col::EventId | Col::Source | Col::ProducedAt)
    }

    /// Writes the event's row; `false` (nothing written) for an event type
    /// the layout does not carry.
    pub fn write(&mut self, event: &Event) -> io::Result<bool> {
        let mut cells: [String; Col::ALL.len()] = Default::default();
        let mut set = |c: Col, v: String| cells[c as usize] = v;
        let opt = |v: Option<String>| v.unwrap_or_default();
        let statuses =
            |s: &[SpecialStatus]| s.iter().map(|x| x.symbol()).collect::<Vec<_>>().join("|");
        let kind = match &event.payload {
            Payload::QualificationAcquired(p) => {
                set(Col::QualificationId, p.qualification_id.to_string());
                set(Col::InsurerNumber, p.insurer_number.to_string());
                set(
                    Col::CardSymbol,
                    opt(p.card_symbol.as_ref().map(|x| x.to_string())),
                );
                set(Col::CardNumber, p.card_number.to_string());
                set(Col::Branch, opt(p.branch.as_ref().map(|x| x.to_string())));
                set(Col::Relationship, p.relationship.symbol().into());
                set(Col::Name, p.name.to_string());
                set(Col::NameKana, p.name_kana.to_string());
                set(Col::Sex, p.sex.symbol().into());
                set(Col::BirthDate, p.birth_date.to_string());
                set(Col::AcquiredOn, p.acquired_on.to_string());
                set(Col::CardKind, p.card_kind.symbol().into());
                set(Col::Copay, p.copay.percent().to_string());
                set(
                    Col::CardValidUntil,
                    opt(p.card_valid_until.map(|d| d.to_string())),
                );
                set(Col::SpecialStatuses, statuses(&p.special_statuses));
                RecordKind::Acquired
            }
            Payload::QualificationChanged(p) => {
                set(Col::QualificationId, p.qualification_id.to_string());
                set(Col::EffectiveOn, p.effective_on.to_string());
                set(
                    Col::CardSymbol,
                    opt(p.card_symbol.as_ref().map(|x| x.to_string())),
                );
                set(
                    Col::CardNumber,
                    opt(p.card_number.as_ref().map(|x| x.to_string())),
                );
                set(Col::Branch, opt(p.branch.as_ref().map(|x| x.to_string())));
                set(
                    Col::Relationship,
                    opt(p.relationship.map(|x| x.symbol().into())),
                );
                set(Col::Name, opt(p.name.as_ref().map(|x| x.to_string())));
                set(
                    Col::NameKana,
                    opt(p.name_kana.as_ref().map(|x| x.to_string())),
                );
                set(Col::CardKind, opt(p.card_kind.map(|x| x.symbol().into())));
                set(Col::Copay, opt(p.copay.map(|x| x.percent().to_string())));
                set(
                    Col::CardValidUntil,
                    opt(p.card_valid_until.map(|d| d.to_string())),
                );
                let s = p.special_statuses.as_ref().map(|s| {
                    if s.is_empty() {
                        "NONE".to_owned()
                    } else {
                        statuses(s)
                    }
                });
                set(Col::SpecialStatuses, opt(s));
                RecordKind::Changed
            }
            Payload::QualificationLost(p) => {
                set(Col::QualificationId, p.qualification_id.to_string());
                set(Col::LostOn, p.lost_on.to_string());
                set(Col::LossReason, p.reason.symbol().into());
                RecordKind::Lost
            }
            _ => return Ok(false),
        };
        set(Col::RecordKind, kind.symbol().into());
        set(Col::Link, event.envelope.link.to_string());
        if self.envelope {
            let e = &event.envelope;
            set(Col::EventId, e.event_id.to_string());
            set(Col::Source, e.source.to_string());
            set(
                Col::ProducedAt,
                e.produced_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            );
        }
        let envelope = self.envelope;
        let row = Col::ALL
            .iter()
            .filter(|c| envelope || !Self::is_envelope(**c))
            .map(|c| cells[*c as usize].as_str());
        self.out.write_record(row).map_err(io::Error::other)?;
        Ok(true)
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

// ---------------------------------------------------------------------------
// Avro object container files

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A branch of the file's schema: which event type, and whether its
/// records are already in the current schema.
#[derive(Debug, Clone, Copy)]
struct SchemaBranch {
    event_type: EventType,
    current: bool,
}

/// Records of an Avro object container file as events.
pub struct AvroEvents<R: Read> {
    reader: apache_avro::Reader<'static, Counting<R>>,
    /// One per union branch, or one for a record schema.
    branches: Vec<SchemaBranch>,
    union: bool,
    count: Rc<Cell<u64>>,
    records: u64,
    /// Names of the current schemas, per type, for resolution.
    names: HashMap<EventType, HashMap<Name, &'static Schema>>,
}

impl<R: Read> fmt::Debug for AvroEvents<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvroEvents")
            .field("branches", &self.branches)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<R: Read> AvroEvents<R> {
    /// Reads the file header and checks its schema: a committed event schema
    /// or a union of them.
    pub fn new(input: R) -> Result<AvroEvents<R>, ImportError> {
        let count = Rc::new(Cell::new(0));
        let counting = Counting {
            inner: input,
            count: Rc::clone(&count),
        };
        let reader = apache_avro::Reader::new(counting)
            .map_err(|e| ImportError::Avro(format!("not an Avro object container file: {e}")))?;
        let writer = reader.writer_schema().clone();
        let named: Vec<Schema> = ResolvedSchema::try_from(&writer)
            .map_err(|e| ImportError::Avro(format!("its schema does not resolve: {e}")))?
            .get_names()
            .values()
            .map(|s| (*s).clone())
            .collect();
        let (union, branches) = match &writer {
            Schema::Union(u) => (
                true,
                u.variants()
                    .iter()
                    .map(|b| branch(b, &named))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            other => (false, vec![branch(other, &named)?]),
        };
        let contract = Contract::get();
        let mut names = HashMap::new();
        for b in &branches {
            if !b.current {
                let schema = &contract.current(b.event_type).schema;
                let resolved = ResolvedSchema::try_from(schema).map_err(|e| {
                    ImportError::Avro(format!("the current schema does not resolve: {e}"))
                })?;
                let map: HashMap<Name, &'static Schema> = resolved
                    .get_names()
                    .iter()
                    .map(|(n, s)| (n.clone(), *s))
                    .collect();
                names.insert(b.event_type, map);
            }
        }
        Ok(AvroEvents {
            reader,
            branches,
            union,
            count,
            records: 0,
            names,
        })
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.count.get()
    }

    fn event(&self, value: Value) -> Result<Event, FieldError> {
        let (branch, value) = match (self.union, value) {
            (false, v) => (self.branches[0], v),
            (true, Value::Union(i, v)) => match self.branches.get(i as usize) {
                Some(b) => (*b, *v),
                None => {
                    return Err(FieldError::new(
                        "$",
                        format!("union branch {i} is not in the schema"),
                    ))
                }
            },
            (true, other) => {
                return Err(FieldError::new(
                    "$",
                    format!("expected a union value, got {other:?}"),
                ))
            }
        };
        let t = branch.event_type;
        let value = if branch.current {
            value
        } else {
            let schema = &Contract::get().current(t).schema;
            value
                .resolve_with_names(schema, &self.names[&t])
                .map_err(|e| {
                    FieldError::new(
                        "$",
                        format!("cannot be resolved to the current {t} schema: {e}"),
                    )
                })?
        };
        let event = avro::from_value(t, value)?;
        event.validate()?;
        Ok(event)
    }
}

/// The event type of one (branch of a) writer schema, if it is a committed
/// version of an event schema.
fn branch(schema: &Schema, named: &[Schema]) -> Result<SchemaBranch, ImportError> {
    let Schema::Record(record) = schema else {
        return Err(ImportError::Avro(format!(
            "its schema must be a qledger event record (schemas/*.avsc) or a union of them, not {:?}",
            apache_avro::schema::SchemaKind::from(schema)
        )));
    };
    // A union defines a shared type (the Envelope, an enum) once and refers
    // to it after: inline the references to get the branch's own schema.
    let mut own = schema.clone();
    own.denormalize(named)
        .map_err(|e| ImportError::Avro(format!("its schema does not resolve: {e}")))?;
    let fp = avro::fingerprint(&own);
    let contract = Contract::get();
    let version = contract.by_fingerprint(fp).ok_or_else(|| {
        ImportError::Avro(format!(
            "record schema {} (fingerprint {fp:016x}) is not a committed qledger event schema \
             (schemas/*.avsc or schemas/history/)",
            record.name.fullname(None)
        ))
    })?;
    let t = version.event_type;
    Ok(SchemaBranch {
        event_type: t,
        current: fp == contract.current(t).fingerprint,
    })
}

impl<R: Read> Iterator for AvroEvents<R> {
    type Item = Result<Parsed, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        let value = match self.reader.next()? {
            Ok(v) => v,
            Err(e) => {
                return Some(Err(ImportError::Avro(format!(
                    "record {} cannot be decoded, nor anything after it: {e}",
                    self.records + 1
                ))))
            }
        };
        self.records += 1;
        Some(Ok(Parsed {
            at: Location::Record(self.records),
            event: self.event(value),
        }))
    }
}

impl<R: Read> Rows for AvroEvents<R> {
    fn next_row(&mut self) -> Option<Result<Parsed, ImportError>> {
        self.next()
    }
    fn bytes_read(&self) -> u64 {
        AvroEvents::<R>::bytes_read(self)
    }
    fn id_field(&self) -> &'static str {
        "envelope.event_id"
    }
}

/// The writer schema of an Avro file holding events of several types: the
/// union of their current schemas, each shared named type (the Envelope,
/// enums) defined once. Write each record as `Value::Union(index of its type
/// in types, avro::to_value(event))`.
pub fn union_schema(types: &[EventType]) -> Result<Schema, apache_avro::Error> {
    let contract = Contract::get();
    let branches = types
        .iter()
        .map(|t| contract.current(*t).schema.clone())
        .collect();
    let mut union = Schema::Union(UnionSchema::new(branches)?);
    union.denormalize(&[])?;
    Ok(union)
}

#[cfg(test)]
mod tests {
    use ledger::event::examples;
    use ledger::log::embedded::EmbeddedLog;
    use ledger::sample::{population, SampleConfig};

    use super::*;

    const HEADER: &str = "record_kind,link,qualification_id,insurer_number,card_symbol,card_number,branch,relationship,name,name_kana,sex,birth_date,acquired_on,copay_percent,effective_on,lost_on,loss_reason";

    /// 国保 (138057), 後期高齢 (39131008) acquisitions, a change and a loss.
    fn rows() -> Vec<&'static str> {
        vec![
            "ACQUIRED,L-1,Q-1,138057,01,1234,00,INSURED,山田 太郎,ヤマダ タロウ,MALE,1980-05-12,2024-04-01,30,,,",
            "取得,L-2,Q-2,39131008,,12345678,,本人,佐藤 花子,ｻﾄｳ ﾊﾅｺ,2,19480301,20240301,10,,,",
            "CHANGED,L-1,Q-1,,,,,,,,,,,20,2024-10-01,,",
            "lost,L-1,Q-1,,,,,,,,,,,,,2025-04-01,JOINED_OTHER_INSURANCE",
        ]
    }

    fn csv(rows: &[&str]) -> String {
        let mut s = HEADER.to_owned();
        for r in rows {
            s.push('\n');
            s.push_str(r);
        }
        s.push('\n');
        s
    }

    fn parse(text: &str) -> Vec<Parsed> {
        CsvEvents::new(text.as_bytes(), ImportOptions::default().source)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn log() -> (tempfile::TempDir, Arc<dyn EventLog>) {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log"), 4).unwrap();
        (dir, Arc::new(log))
    }

    fn import(log: &Arc<dyn EventLog>, text: &[u8], format: Format) -> Summary {
        let options = ImportOptions {
            batch: 2,
            ..ImportOptions::default()
        };
        Importer::new(Arc::clone(log), options)
            .import(text, format, &mut ())
            .unwrap()
    }

    /// Every record of the log, in partition and offset order.
    fn logged(log: &Arc<dyn EventLog>) -> Vec<Vec<u8>> {
        (0..log.partitions())
            .flat_map(|p| log.read(p, 0, usize::MAX).unwrap())
            .map(|r| r.value)
            .collect()
    }

    #[test]
    fn csv_rows_become_events() {
        let parsed = parse(&csv(&rows()));
        assert_eq!(parsed.len(), 4);
        let events: Vec<Event> = parsed
            .into_iter()
            .map(|p| p.event.expect("valid row"))
            .collect();
        let Payload::QualificationAcquired(a) = &events[0].payload else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(a.insurer_number.as_str(), "138057");
        assert_eq!(
            a.card_kind,
            CardKind::NationalHealthInsurance,
            "default for 国保"
        );
        assert_eq!(a.name.as_str(), "山田\u{3000}太郎");
        assert_eq!(events[0].envelope.source.as_str(), DEFAULT_SOURCE);
        assert_eq!(
            events[0].envelope.produced_at,
            "2024-03-31T15:00:00Z".parse::<DateTime<Utc>>().unwrap(),
            "midnight in Japan on acquired_on"
        );
        assert_eq!(events[0].envelope.event_id.get_version_num(), 7);
        let Payload::QualificationAcquired(b) = &events[1].payload else {
            panic!("{:?}", events[1]);
        };
        assert_eq!(b.card_kind, CardKind::LateElderly);
        assert_eq!(b.relationship, Relationship::Insured);
        assert_eq!(b.sex, Sex::Female);
        assert_eq!(b.name_kana.as_str(), "サトウ\u{3000}ハナコ");
        assert_eq!(b.card_symbol, None);
        let Payload::QualificationChanged(c) = &events[2].payload else {
            panic!("{:?}", events[2]);
        };
        assert_eq!(c.copay.map(|c| c.percent()), Some(20));
        assert_eq!(c.card_number, None);
        let Payload::QualificationLost(l) = &events[3].payload else {
            panic!("{:?}", events[3]);
        };
        assert_eq!(l.reason, LossReason::JoinedOtherInsurance);
    }

    #[test]
    fn a_rejected_row_names_its_line_and_field() {
        let mut bad = rows();
        // Line 3: copay 25 %. Line 4: wrong check digit. Line 6: card kind
        // a 国保 cannot issue. Line 7: a field short.
        bad.insert(1, "ACQUIRED,L-3,Q-3,138057,01,1,00,INSURED,山田 一郎,ヤマダ イチロウ,MALE,1980-05-12,2024-04-01,25,,,");
        bad.insert(2, "ACQUIRED,L-4,Q-4,138058,01,1,00,INSURED,山田 一郎,ヤマダ イチロウ,MALE,1980-05-12,2024-04-01,30,,,");
        let text = csv(&bad).replace("\nCHANGED", "\nCHANGED,L-9,Q-9,,,,,,,,,,,,,,\nCHANGED");
        let text = format!("{text}ACQUIRED,L-5\n");
        let (_dir, log) = log();
        let summary = import(&log, text.as_bytes(), Format::Csv);
        let got: Vec<_> = summary
            .rejections
            .iter()
            .map(|r| (r.at, r.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Location::Line(3), "copay_percent"),
                (Location::Line(4), "insurer_number"),
                (Location::Line(6), "effective_on"),
                (Location::Line(9), "$"),
            ],
            "{:#?}",
            summary.rejections
        );
        assert!(summary.rejections[0].reason.contains("got 25"));
        assert!(summary.rejections[1].reason.contains("check digit"));
        assert_eq!(
            summary.rejections[3].reason,
            "has 2 fields, the header has 17"
        );
        assert_eq!(
            (summary.rows, summary.accepted, summary.rejected),
            (8, 4, 4)
        );
        // The others went in, in order.
        assert_eq!(logged(&log).len(), 4);
    }

    #[test]
    fn cross_field_rules_name_the_column() {
        let text = csv(&[
            // A 健康保険 card from a 国保 insurer.
            "ACQUIRED,L-1,Q-1,138057,01,1,00,INSURED,山田 太郎,ヤマダ タロウ,MALE,1980-05-12,2024-04-01,30,,,",
        ])
        .replace("copay_percent", "copay_percent,card_kind")
        .replace(",30,", ",30,HEALTH_INSURANCE,");
        let row = &parse(&text)[0];
        let e = row.event.as_ref().unwrap_err();
        assert_eq!(e.field, "card_kind", "{e:?}");
        // A 協会けんぽ acquisition must say which card.
        let text = csv(&[
            "ACQUIRED,L-1,Q-1,01130012,あいう,1,01,INSURED,山田 太郎,ヤマダ タロウ,MALE,1980-05-12,2024-04-01,30,,,",
        ]);
        let e = parse(&text).remove(0).event.unwrap_err();
        assert_eq!(e.field, "card_kind");
        // A 国保 card number without its branch.
        let text = csv(&[
            "ACQUIRED,L-1,Q-1,138057,01,1,,INSURED,山田 太郎,ヤマダ タロウ,MALE,1980-05-12,2024-04-01,30,,,",
        ]);
        assert_eq!(parse(&text).remove(0).event.unwrap_err().field, "branch");
        // A non-v7 event id.
        let text = csv(&rows()[..1])
            .replace("record_kind,", "event_id,record_kind,")
            .replace(
                "ACQUIRED,",
                "0190a1b2-c3d4-4000-8000-000000000001,ACQUIRED,",
            );
        assert_eq!(parse(&text).remove(0).event.unwrap_err().field, "event_id");
    }

    #[test]
    fn header_problems_stop_the_import_before_any_row() {
        let err = |text: &str| {
            CsvEvents::new(text.as_bytes(), ImportOptions::default().source)
                .unwrap_err()
                .to_string()
        };
        assert!(err("").contains("header row"), "{}", err(""));
        let e = err("record_kind,link\nACQUIRED,L-1\n");
        assert!(
            e.contains("required columns missing: qualification_id"),
            "{e}"
        );
        let e = err("record_kind,link,qualification_id,copay\n");
        assert!(e.contains("unknown columns: copay"), "{e}");
        let e = err("record_kind,link,qualification_id,link\n");
        assert!(e.contains("link appears twice"), "{e}");
        // Columns prefixed x_ are ignored, as is a trailing comma; names are
        // case-insensitive.
        assert!(CsvEvents::new(
            "Record_Kind,LINK,qualification_id,x_address,\n".as_bytes(),
            ImportOptions::default().source
        )
        .is_ok());
    }

    #[test]
    fn a_byte_order_mark_and_crlf_are_tolerated() {
        let plain = parse(&csv(&rows()));
        let text = format!("\u{feff}{}", csv(&rows()).replace('\n', "\r\n"));
        let bom = parse(&text);
        assert_eq!(bom.len(), 4);
        for (a, b) in plain.iter().zip(&bom) {
            assert_eq!(a.at, b.at);
            assert_eq!(a.event.as_ref().unwrap(), b.event.as_ref().unwrap());
        }
        // Blank lines are skipped but counted.
        let gaps = csv(&rows()).replacen("\nCHANGED", "\r\n\nCHANGED", 1);
        let lines: Vec<_> = parse(&gaps).iter().map(|p| p.at).collect();
        assert_eq!(lines, [2, 3, 5, 6].map(Location::Line));
        // A quoted name over two lines, and no newline at the end.
        let quoted = csv(&rows())
            .replacen("山田 太郎", "\"山田\n太郎\"", 1)
            .trim_end()
            .to_owned();
        let parsed = parse(&quoted);
        let lines: Vec<_> = parsed.iter().map(|p| p.at).collect();
        assert_eq!(lines, [2, 4, 5, 6].map(Location::Line));
        // (A line break is no part of a name.)
        assert_eq!(parsed[0].event.as_ref().unwrap_err().field, "name");
        assert!(parsed[1..].iter().all(|p| p.event.is_ok()));
    }

    #[test]
    fn column_order_is_free_and_ids_do_not_depend_on_it() {
        let text = csv(&rows()[..1]);
        let mut lines = text.lines();
        let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
        let reversed = |l: &str| l.split(',').rev().collect::<Vec<_>>().join(",");
        let turned = format!("{}\n{}\n", reversed(header), reversed(row));
        assert_eq!(
            parse(&text)[0].event.as_ref().unwrap(),
            parse(&turned)[0].event.as_ref().unwrap()
        );
    }

    #[test]
    fn re_importing_a_file_appends_nothing() {
        let text = csv(&rows());
        let (_dir, log) = log();
        let first = import(&log, text.as_bytes(), Format::Csv);
        assert_eq!(
            (first.accepted, first.duplicates, first.rejected),
            (4, 0, 0)
        );
        let before = logged(&log);
        let again = import(&log, text.as_bytes(), Format::Csv);
        assert_eq!(
            (again.accepted, again.duplicates, again.rejected),
            (0, 4, 0)
        );
        assert_eq!(logged(&log), before);
        // The same row on another line is another event.
        let moved = csv(&[rows()[1], rows()[0]]);
        let third = import(&log, moved.as_bytes(), Format::Csv);
        assert_eq!(third.accepted, 2);
    }

    #[test]
    fn an_event_id_reused_for_other_content_is_rejected() {
        let text = csv(&rows()[..1]).replace("record_kind,", "event_id,record_kind,");
        let id = "0190a1b2-c3d4-7000-8000-0000000000aa";
        let first = text.replace("\nACQUIRED,", &format!("\n{id},ACQUIRED,"));
        let (_dir, log) = log();
        assert_eq!(import(&log, first.as_bytes(), Format::Csv).accepted, 1);
        let other = first.replace(",30,", ",20,");
        let s = import(&log, other.as_bytes(), Format::Csv);
        assert_eq!(s.rejected, 1);
        assert_eq!(s.rejections[0].field, "event_id");
        assert_eq!(s.rejections[0].at, Location::Line(2));
    }

    #[test]
    fn written_csv_imports_to_the_same_bytes() {
        let config = SampleConfig {
            persons: 300,
            ..SampleConfig::default()
        };
        let events: Vec<Event> = population(&config)
            .filter(|e| {
                matches!(
                    e.event_type(),
                    EventType::QualificationAcquired
                        | EventType::QualificationChanged
                        | EventType::QualificationLost
                )
            })
            .collect();
        let mut w = CsvWriter::new(Vec::new(), true).unwrap();
        for e in &events {
            assert!(w.write(e).unwrap());
        }
        let text = w.into_inner().unwrap();
        let parsed: Vec<Event> = CsvEvents::new(&text[..], ImportOptions::default().source)
            .unwrap()
            .map(|p| p.unwrap().event.unwrap())
            .collect();
        assert_eq!(parsed, events);
        // Without the envelope columns the same facts come back, with derived ids.
        let mut w = CsvWriter::new(Vec::new(), false).unwrap();
        for e in &events {
            w.write(e).unwrap();
        }
        let text = w.into_inner().unwrap();
        let derived: Vec<Event> = CsvEvents::new(&text[..], ImportOptions::default().source)
            .unwrap()
            .map(|p| p.unwrap().event.unwrap())
            .collect();
        assert_eq!(derived.len(), events.len());
        for (d, e) in derived.iter().zip(&events) {
            assert_eq!(d.payload, e.payload);
        }
        let ids: std::collections::HashSet<_> =
            derived.iter().map(|e| e.envelope.event_id).collect();
        assert_eq!(ids.len(), derived.len());
    }

    /// Records progress and rejections as they come.
    #[derive(Default)]
    struct Recorder {
        progress: Vec<Progress>,
        rejections: Vec<Rejection>,
    }

    impl Report for Recorder {
        fn progress(&mut self, p: &Progress) {
            self.progress.push(*p);
        }
        fn rejected(&mut self, r: &Rejection) -> io::Result<()> {
            self.rejections.push(r.clone());
            Ok(())
        }
    }

    #[test]
    fn memory_keeps_the_first_rejections_and_the_report_gets_all() {
        let bad = "ACQUIRED,L-3,Q-3,138057,01,1,00,INSURED,山田 一郎,ヤマダ イチロウ,MALE,1980-05-12,2024-04-01,25,,,";
        let text = csv(&[bad; 7]);
        let (_dir, log) = log();
        let options = ImportOptions {
            batch: 3,
            keep_rejections: 2,
            ..ImportOptions::default()
        };
        let mut recorder = Recorder::default();
        let s = Importer::new(log, options)
            .import(text.as_bytes(), Format::Csv, &mut recorder)
            .unwrap();
        assert_eq!(
            (s.rejected, s.rejections.len(), s.rejections_not_kept),
            (7, 2, 5)
        );
        let all = recorder.rejections;
        let lines: Vec<_> = all.iter().map(|r| r.at).collect();
        assert_eq!(lines, (2..=8).map(Location::Line).collect::<Vec<_>>());
        // One progress report per chunk, the last one complete.
        assert_eq!(recorder.progress.len(), 3);
        assert_eq!(recorder.progress[2].rows, 7);
        assert_eq!(recorder.progress[2].bytes_read, text.len() as u64);
        let json = serde_json::to_string(&all[0]).unwrap();
        assert!(
            json.starts_with(r#"{"line":2,"field":"copay_percent","reason":"#),
            "{json}"
        );
    }

    fn ocf(schema: &Schema, values: Vec<Value>) -> Vec<u8> {
        let mut w = apache_avro::Writer::new(schema, Vec::new()).unwrap();
        for v in values {
            w.append_value(v).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn avro_files_of_one_type_or_a_union_import() {
        let events = examples::all();
        let contract = Contract::get();
        let acquired = &events[0];
        let single = ocf(
            &contract.current(EventType::QualificationAcquired).schema,
            vec![avro::to_value(acquired)],
        );
        let (_dir, log) = log();
        let s = import(&log, &single, Format::Avro);
        assert_eq!((s.rows, s.accepted), (1, 1), "{:?}", s.rejections);
        assert_eq!(logged(&log), vec![avro::encode(acquired).unwrap()]);

        let types: Vec<EventType> = EventType::ALL.to_vec();
        let union = union_schema(&types).unwrap();
        let values = events
            .iter()
            .map(|e| {
                let i = types.iter().position(|t| *t == e.event_type()).unwrap();
                Value::Union(i as u32, Box::new(avro::to_value(e)))
            })
            .collect();
        let file = ocf(&union, values);
        let s = import(&log, &file, Format::Avro);
        assert_eq!(s.rows, events.len() as u64);
        assert_eq!(
            (s.accepted, s.duplicates, s.rejected),
            (events.len() as u64 - 1, 1, 0)
        );
        let mut want: Vec<Vec<u8>> = events.iter().map(|e| avro::encode(e).unwrap()).collect();
        let mut got = logged(&log);
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn avro_records_are_validated_like_the_log() {
        let mut event = examples::all().remove(0);
        let Payload::QualificationAcquired(p) = &mut event.payload else {
            unreachable!()
        };
        p.birth_date = Day::from_ymd(2030, 1, 1).unwrap();
        let value = avro::to_value(&event);
        let schema = &Contract::get()
            .current(EventType::QualificationAcquired)
            .schema;
        // And an insurer number with a wrong check digit in a second record.
        let mut second = value.clone();
        if let Value::Record(fields) = &mut second {
            for (k, v) in fields.iter_mut() {
                if k == "insurer_number" {
                    *v = Value::String("01130013".into());
                }
            }
        }
        let file = ocf(schema, vec![value, second]);
        let (_dir, log) = log();
        let s = import(&log, &file, Format::Avro);
        let got: Vec<_> = s
            .rejections
            .iter()
            .map(|r| (r.at, r.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Location::Record(1), "birth_date"),
                (Location::Record(2), "insurer_number")
            ]
        );
    }

    #[test]
    fn avro_files_of_other_schemas_are_refused() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"Other","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        let file = ocf(
            &schema,
            vec![Value::Record(vec![("a".into(), Value::Int(1))])],
        );
        let err = AvroEvents::new(&file[..]).unwrap_err().to_string();
        assert!(
            err.contains("not a committed qledger event schema"),
            "{err}"
        );
        let err = AvroEvents::new(&b"not avro"[..]).unwrap_err().to_string();
        assert!(err.contains("not an Avro object container file"), "{err}");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::from_path(Path::new("a/b.CSV")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("b.avro")), Some(Format::Avro));
        assert_eq!(Format::from_path(Path::new("b.json")), None);
        assert_eq!(Format::from_path(Path::new("b")), None);
    }
}
