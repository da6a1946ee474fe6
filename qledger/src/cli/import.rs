//! `qledger import`: a batch file of the NHI aggregation system (CSV, layout in
//! `docs/import.md`) or an Avro object container file of events, published
//! straight to the event log by [`crate::import::Importer`].

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ledger::domain::PublisherId;
use ledger::log::embedded::EmbeddedLog;
use ledger::log::EventLog;

use super::{emit, KafkaArgs, DEFAULT_DATA};
use crate::import::{
    Format, ImportOptions, Importer, JsonLines, Progress, Rejection, Report, Summary,
    DEFAULT_BATCH, DEFAULT_KEEP_REJECTIONS, DEFAULT_SOURCE,
};
use crate::service::{Ledger, DEFAULT_PARTITIONS};

const AFTER_HELP: &str = "\
Each CSV row is one qualification event (ACQUIRED, CHANGED or LOST); the columns are
described in docs/import.md. An Avro file's schema must be one of the committed event
schemas (schemas/*.avsc, schemas/history/) or a union of them.

Every row is validated as at intake. A rejected row is reported with its line (CSV) or
record number (Avro), the field at fault and the rule, and never stops the import; the
summary on standard output lists the first 1000, --rejects FILE receives them all.

Exit status: 0 once the whole file is read, even if rows were rejected; 2 if the file
cannot be read, the rejects file cannot be written, or the log refuses an append. Rows
appended before an error stay in the log, and importing the same file again is safe: rows
already in the log come back as duplicates (a CSV row without an event_id gets one derived
from its content and line).";

#[derive(Debug, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct ImportArgs {
    /// The batch file: CSV, or an Avro object container file of qledger events.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Input format [default: by extension: .csv, .avro].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Data directory [default: ./data]; its views are brought up to date after the import.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log partitions, when the data directory is new.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARTITIONS)]
    pub partitions: u32,
    /// Also write every rejected row to FILE, one JSON object a line
    /// ({"line": N, "field": "...", "reason": "..."}; "record" for Avro).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Rows per chunk: validated, encoded and appended (one synced write) together.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Publisher id of CSV rows whose `source` is empty.
    #[arg(long, value_name = "ID", default_value = DEFAULT_SOURCE)]
    pub source: PublisherId,
    /// Leave the views as they are (a server started on the data directory projects the import).
    #[arg(long)]
    pub no_project: bool,
    /// With --kafka (or a [kafka] table in --config), the rows go to the
    /// cluster's events topic; the servers' projectors pick them up, and
    /// --data and --partitions are not used.
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Where the events go. The log is opened here and only here.
#[derive(Debug, Clone)]
enum Destination {
    /// The embedded log of a data directory, whose views follow it.
    Data { dir: PathBuf, partitions: u32 },
    /// The events topic of a Kafka cluster.
    Kafka(Arc<dyn EventLog>),
}

impl Destination {
    fn of(args: &ImportArgs) -> Result<Destination> {
        if let Some(log) = super::kafka::events_log(&args.kafka, true)? {
            return Ok(Destination::Kafka(Arc::from(log)));
        }
        Ok(Destination::Data {
            dir: args
                .data
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            partitions: args.partitions,
        })
    }

    fn open(&self) -> Result<Arc<dyn EventLog>> {
        match self {
            Destination::Kafka(log) => Ok(Arc::clone(log)),
            Destination::Data { dir, partitions } => {
                let log_dir = dir.join("log");
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let log = if log_dir.join("CURRENT").exists() {
                    EmbeddedLog::open_existing(&log_dir)
                } else {
                    EmbeddedLog::open(&log_dir, *partitions)
                }
                .with_context(|| {
                    format!(
                        "cannot open the event log in {} (is a server running on it? stop it first)",
                        dir.display()
                    )
                })?;
                Ok(Arc::new(log))
            }
        }
    }

    /// The data directory whose views are projected from this log, if any.
    fn views(&self) -> Option<&Path> {
        match self {
            Destination::Data { dir, .. } => Some(dir),
            Destination::Kafka(_) => None,
        }
    }
}

/// The progress bar (hidden when standard error is not a terminal) and the
/// rejects file.
struct CliReport {
    bar: ProgressBar,
    rejects: Option<JsonLines<BufWriter<File>>>,
}

impl Report for CliReport {
    fn progress(&mut self, p: &Progress) {
        self.bar.set_position(p.bytes_read);
        let secs = p.elapsed.as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "{} rows ({:.0}/s), {} rejected",
            p.rows,
            p.rows as f64 / secs,
            p.rejected
        ));
    }

    fn rejected(&mut self, rejection: &Rejection) -> std::io::Result<()> {
        match &mut self.rejects {
            Some(w) => w.rejected(rejection),
            None => Ok(()),
        }
    }
}

fn bar(len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn spinner(message: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let s = ProgressBar::new_spinner().with_message(message);
    s.enable_steady_tick(Duration::from_millis(200));
    s
}

pub(super) fn run(args: ImportArgs) -> Result<ExitCode> {
    let name = args.file.display().to_string();
    let format = match args.format.or_else(|| Format::from_path(&args.file)) {
        Some(f) => f,
        None => anyhow::bail!(
            "cannot tell the format of {name} from its extension: give --format csv or --format avro"
        ),
    };
    let file = File::open(&args.file).with_context(|| format!("cannot open {name}"))?;
    let size = file.metadata().ok().map(|m| m.len());
    let destination = Destination::of(&args)?;
    let log = destination.open()?;
    let rejects = match &args.rejects {
        Some(path) => Some(JsonLines(BufWriter::new(File::create(path).with_context(
            || format!("cannot create the rejects file {}", path.display()),
        )?))),
        None => None,
    };
    let mut report = CliReport {
        bar: bar(size),
        rejects,
    };
    let options = ImportOptions {
        batch: args.batch as usize,
        keep_rejections: DEFAULT_KEEP_REJECTIONS,
        source: args.source.clone(),
    };
    let started = Instant::now();
    let outcome = Importer::new(Arc::clone(&log), options).import(
        BufReader::with_capacity(1 << 16, file),
        format,
        &mut report,
    );
    let took = started.elapsed();
    let summary = match outcome {
        Ok(s) => {
            report.bar.finish_and_clear();
            s
        }
        Err(e) => {
            report.bar.abandon();
            return Err(e).with_context(|| {
                format!(
                    "importing {name} stopped; the rows before the error are in the log, \
                     and importing the file again is safe"
                )
            });
        }
    };
    if let Some(JsonLines(mut w)) = report.rejects.take() {
        w.flush().context("writing the rejects file")?;
    }
    print_summary(&name, format, &summary, took, args.rejects.as_deref())?;
    if let (false, Some(dir)) = (args.no_project, destination.views()) {
        let s = spinner(format!("projecting into the views of {}", dir.display()));
        let ledger = Ledger::with_log(dir, log).context("opening the views")?;
        let stats = ledger.catch_up().context("bringing the views up to date")?;
        drop(ledger);
        s.finish_and_clear();
        let mut line = format!("views: {} events applied", stats.applied);
        if stats.dead_lettered > 0 {
            line.push_str(&format!(
                ", {} dead-lettered (qledger dead-letters --data {})",
                stats.dead_lettered,
                dir.display()
            ));
        }
        emit(&line)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(
    name: &str,
    format: Format,
    s: &Summary,
    took: Duration,
    rejects: Option<&Path>,
) -> Result<()> {
    let secs = took.as_secs_f64();
    let mut text = format!(
        "{name} ({format}): {} rows; {} accepted, {} duplicates, {} rejected in {secs:.2} s ({:.0} rows/s)",
        s.rows,
        s.accepted,
        s.duplicates,
        s.rejected,
        s.rows as f64 / secs.max(1e-9),
    );
    if !s.rejections.is_empty() {
        text.push_str("\nrejected:");
        for r in &s.rejections {
            text.push_str(&format!("\n  {r}"));
        }
    }
    if s.rejections_not_kept > 0 {
        text.push_str(&format!("\n  … and {} more", s.rejections_not_kept));
    }
    if s.rejected > 0 {
        match rejects {
            Some(path) => text.push_str(&format!("\nevery rejected row is in {}", path.display())),
            None if s.rejections_not_kept > 0 => {
                text.push_str("\n(--rejects FILE writes every rejected row)")
            }
            None => {}
        }
    }
    emit(&text)
}
