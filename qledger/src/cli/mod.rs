//! The `qledger` command line: serve, demo, publish, query, replay, verify,
//! generate sample data, check identifiers.
//!
//! Every command goes through [`Ledger`](crate::service::Ledger) (or the
//! read-only views, or a server's HTTP API with `--server`); none has ledger
//! logic of its own. `anyhow` lives here, at the binary's edge.
//!
//! Exit status, as ripgrep's: 0 yes (found, valid, accepted, matching), 1 no
//! (not found, invalid, a line rejected, a mismatch), 2 error.

mod audit;
mod batch;
mod cards;
mod claims;
mod demo;
mod ids;
mod import;
mod intake;
mod kafka;
mod onlinecheck;
mod query;
pub(crate) mod remote;
mod serve;
mod tokens;
mod usage;

pub use serve::{ServeArgs, TlsArgs};

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ledger::domain::{
    Branch, CardNumber, CardSerial, CardSymbol, Day, InsurerNumber, LinkNumber, RecordTime,
};
use serde::Serialize;

use crate::cardcert::CardAuthority;
use crate::http::{self, Access};
use crate::service::Ledger;

/// The default data directory.
pub const DEFAULT_DATA: &str = "./data";

/// qledger: an event-sourced, bitemporal qualification ledger for online
/// eligibility checks (オンライン資格確認).
#[derive(Debug, Parser)]
#[command(name = "qledger", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on standard error: `text`, or `json` (one object per line,
    /// for log collectors). The level comes from RUST_LOG [default: info].
    #[arg(
        long,
        global = true,
        value_enum,
        env = "QLEDGER_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API over a data directory until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Load sample data into a fresh directory, print example queries, serve.
    Demo(DemoArgs),
    /// Publish events from a JSON-lines file (one event per line).
    Publish(PublishArgs),
    /// Import a batch file: municipal qualification records (CSV) or Avro events.
    Import(import::ImportArgs),
    /// Ask who insures a person on a date, by insured number or card serial.
    Eligibility(EligibilityArgs),
    /// Every version of a person's records, with both time axes.
    History(HistoryArgs),
    /// Rebuild the views from the log into a fresh directory.
    Replay(ReplayArgs),
    /// Check the live views against a rebuild from the log.
    Verify(VerifyArgs),
    /// Write a sample population as JSON lines.
    Generate(GenerateArgs),
    /// Is this identifier valid, and if not, why.
    CheckId(CheckIdArgs),
    /// Events the projector could not apply, with the reason.
    DeadLetters(DeadLettersArgs),
    /// A card holder's link request: the ledger verifies the certificate and decides.
    LinkCard(cards::LinkCardArgs),
    /// End a card's link (lost card, revoked certificate, holder's wish).
    UnlinkCard(cards::UnlinkCardArgs),
    /// Where a link request stands: decision, completion notice, contact erasure.
    LinkRequest(cards::LinkRequestArgs),
    /// The notices outbox: requests with a notice or an address erasure pending.
    Notices(cards::NoticesArgs),
    /// Claims: register, check before submission, show, the decision feed, withdraw.
    Claims(claims::ClaimsArgs),
    /// API tokens: issue, list, revoke (the token file holds hashes only).
    Tokens(tokens::TokensArgs),
    /// Batch check (一括照会): a JSON-lines or CSV file of pairs, one answer per line.
    CheckBatch(batch::CheckBatchArgs),
    /// The online check's XML request (XmlMsg) answered with its result message.
    #[command(name = "onlinecheck")]
    OnlineCheck(onlinecheck::OnlineCheckArgs),
    /// The online check's folder exchange: requests in DIR/req answered into DIR/res.
    #[command(name = "onlinecheck-folder")]
    OnlineCheckFolder(onlinecheck::OnlineCheckFolderArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `GET /openapi.json` serves).
    #[command(name = "openapi")]
    OpenApi,
    /// An institution's verification records (the answers it was given).
    Verifications(usage::VerificationsArgs),
    /// Per insurer and month: insured persons and answers served (JSON, CSV, SVG chart).
    Metering(usage::MeteringArgs),
    /// The server's configuration: `config show` prints the settings in
    /// force (defaults < settings file < QLEDGER_* environment < flags).
    Config(serve::ConfigArgs),
}

/// Where a command finds the ledger: a data directory or a server.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Data directory [default: ./data].
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    pub data: Option<PathBuf>,
    /// A running server, e.g. http://127.0.0.1:8080; requests send the API
    /// token in QLEDGER_TOKEN.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

impl Target {
    fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA))
    }
}

/// Kafka as the log of record instead of the embedded log in the data
/// directory (which then holds only the views).
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers of the log of record, e.g. 127.0.0.1:9092
    /// [default: the embedded log in the data directory].
    #[arg(long, value_name = "HOST:PORT,...", env = "QLEDGER_KAFKA_BOOTSTRAP")]
    pub kafka: Option<String>,
    /// Settings file (TOML): its [kafka] table names topics, partitions,
    /// groups and librdkafka properties; QLEDGER_KAFKA_* variables and
    /// flags override it.
    #[arg(long, value_name = "FILE", env = "QLEDGER_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Demo data directory; its previous content is removed.
    #[arg(long, value_name = "DIR", default_value = "./data/demo")]
    pub data: PathBuf,
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    pub persons: u64,
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
    /// Load and print, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// JSON-lines file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub target: Target,
    /// With --server: wait until the server's views reflect each batch.
    /// (With --data the views are always brought up to date before exit.)
    #[arg(long)]
    pub wait: bool,
    /// Events per append (per request with --server).
    #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch: u32,
}

#[derive(Debug, Args)]
pub struct EligibilityArgs {
    /// 保険者番号
    #[arg(
        long,
        value_name = "I",
        required_unless_present = "card",
        conflicts_with = "card"
    )]
    pub insurer: Option<InsurerNumber>,
    /// 記号 (none on 後期高齢者 cards)
    #[arg(long, value_name = "S", requires = "insurer", conflicts_with = "card")]
    pub symbol: Option<CardSymbol>,
    /// 番号
    #[arg(
        long,
        value_name = "N",
        required_unless_present = "card",
        requires = "insurer",
        conflicts_with = "card"
    )]
    pub number: Option<CardNumber>,
    /// 枝番 (none on 後期高齢者 cards)
    #[arg(long, value_name = "B", requires = "insurer", conflicts_with = "card")]
    pub branch: Option<Branch>,
    /// シリアル of a linked My Number card.
    #[arg(long, value_name = "SERIAL")]
    pub card: Option<CardSerial>,
    /// 生年月日 of the holder: required with --card; with an insured number,
    /// a person born on another day is not found.
    #[arg(long = "birth-date", value_name = "DATE")]
    pub birth_date: Option<Day>,
    /// The date asked about [default: today in Japan].
    #[arg(long, value_name = "DATE")]
    pub on: Option<Day>,
    /// Answer as the ledger knew it at this RFC 3339 instant [default: now].
    #[arg(long = "as-of", value_name = "INSTANT")]
    pub as_of: Option<RecordTime>,
    /// Answer in FHIR R4: a CoverageEligibilityResponse (or an OperationOutcome).
    #[arg(long)]
    pub fhir: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// 紐付番号 (link number) of the person.
    #[arg(value_name = "LINK")]
    pub link: LinkNumber,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// A fresh (absent or empty) directory for the rebuilt views.
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    /// Replay records recorded at or before this RFC 3339 instant.
    #[arg(long = "as-of", value_name = "INSTANT", conflicts_with = "offsets")]
    pub as_of: Option<RecordTime>,
    /// Replay each partition up to (not including) an offset: `P:O,P:O`.
    #[arg(long, value_name = "P:O,...")]
    pub offsets: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// A fresh directory for the rebuild [default: a temporary one, removed after].
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    pub persons: u64,
    /// Output file [default: standard output].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckIdArgs {
    #[arg(value_enum)]
    pub kind: ids::IdKind,
    /// The identifier; for `insured`, `INSURER,SYMBOL,NUMBER,BRANCH`
    /// (symbol and branch may be empty).
    pub value: String,
}

/// Parses the command line, runs the command, and turns the outcome into
/// the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command; `Ok` carries exit status 0 or 1.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Publish(a) => intake::publish(a),
        Command::Import(a) => import::run(a),
        Command::Generate(a) => intake::generate(a),
        Command::Eligibility(a) => query::eligibility(a),
        Command::History(a) => query::history(a),
        Command::DeadLetters(a) => query::dead_letters(a),
        Command::Replay(a) => audit::replay(a),
        Command::Verify(a) => audit::verify(a),
        Command::CheckId(a) => ids::check(a),
        Command::LinkCard(a) => cards::link(a),
        Command::UnlinkCard(a) => cards::unlink(a),
        Command::LinkRequest(a) => cards::link_request(a),
        Command::Notices(a) => cards::notices(a),
        Command::Claims(a) => claims::run(a),
        Command::Tokens(a) => tokens::run(a),
        Command::Config(a) => serve::config(a),
        Command::Verifications(a) => usage::verifications(a),
        Command::CheckBatch(a) => batch::run(a),
        Command::OnlineCheck(a) => onlinecheck::run(a),
        Command::OpenApi => {
            emit(crate::http::openapi::document_json())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::OnlineCheckFolder(a) => onlinecheck::run_folder(a),
        Command::Metering(a) => usage::metering(a),
    }
}

/// `RUST_LOG` (default `info`), to standard error, as text or JSON lines.
/// What is logged never carries personal data: routes are logged by
/// template, errors by field and rule, events by id and type.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// 0 or 1.
fn status(yes: bool) -> ExitCode {
    if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    emit(&serde_json::to_string_pretty(value).context("encoding the answer as JSON")?)
}

/// Writes `text` and a newline to standard output. A closed pipe (`| head`)
/// surfaces as an error that [`main`] ends on quietly.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|_| out.flush())
        .context("writing to standard output")
}

/// Whether the error is a closed standard output.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Opens a data directory for writing (the log is locked by one process).
fn open_ledger(data: &Path, partitions: u32) -> Result<Ledger> {
    Ledger::open(data, partitions).with_context(|| {
        format!(
            "cannot open the data directory {} (if a server runs on it, use --server URL instead)",
            data.display()
        )
    })
}

fn settings_file(config: Option<&Path>) -> Result<crate::config::SettingsFile> {
    let Some(path) = config else {
        return Ok(crate::config::SettingsFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("settings file {}", path.display()))
}

/// The card-certificate verifier of the settings file's `[cards]` table
/// (trust anchors, intermediates, CRLs), if it has one.
fn card_authority(config: Option<&Path>) -> Result<Option<std::sync::Arc<CardAuthority>>> {
    let Some(cards) = settings_file(config)?.cards else {
        return Ok(None);
    };
    let authority = CardAuthority::load(&cards).with_context(|| {
        format!(
            "the [cards] table of {}",
            config.unwrap_or(Path::new("")).display()
        )
    })?;
    Ok(Some(std::sync::Arc::new(authority)))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Serves `ledger` (projector started here) on `listen` until Ctrl-C or
/// SIGTERM; `ready` runs once the address is bound.
fn serve_ledger(
    mut ledger: Ledger,
    listen: &str,
    access: Access,
    tls: Option<&http::tls::TlsSettings>,
    settings: http::HttpSettings,
    ready: impl FnOnce(&Ledger, SocketAddr),
) -> Result<()> {
    let tls = tls
        .map(|t| http::tls::server_config(t).context("loading the TLS certificate and key"))
        .transpose()?;
    ledger.start_projector();
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr: SocketAddr = listener
            .local_addr()
            .context("reading the listening address")?;
        if access.is_open() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "--no-auth serves without authentication and is only allowed on a loopback address, not {addr}"
            );
        }
        if tls.is_none() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "plain HTTP is only allowed on a loopback address, not {addr}: give --tls-cert and --tls-key"
            );
        }
        if access.is_open() {
            tracing::warn!(%addr, "serving WITHOUT authentication (--no-auth): development only");
        }
        let endpoint = match tls {
            Some(config) => http::Endpoint::Tls(
                http::tls::TlsListener::new(listener, config).context("starting TLS")?,
            ),
            None => http::Endpoint::Plain(listener),
        };
        ready(&ledger, addr);
        eprintln!(
            "qledger listening on {}://{addr} (Ctrl-C to stop)",
            endpoint.scheme()
        );
        http::serve_with(
            ledger,
            std::sync::Arc::new(access),
            settings,
            endpoint,
            http::shutdown_signal(),
        )
            .await
            .context("serving HTTP")
    })
}
