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
mod cards;
mod claims;
mod demo;
mod ids;
mod import;
mod intake;
mod kafka;
mod query;
pub(crate) mod remote;
mod tokens;

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

use crate::cardcert::{CardAuthority, CardAuthorityConfig};
use crate::http::{self, Access};
use crate::notices::NoticeSettings;
use crate::service::{Ledger, DEFAULT_PARTITIONS};

/// The default data directory.
pub const DEFAULT_DATA: &str = "./data";

/// qledger: an event-sourced, bitemporal qualification ledger for online
/// eligibility checks (オンライン資格確認).
#[derive(Debug, Parser)]
#[command(name = "qledger", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Log partitions, when the data directory is new.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARTITIONS)]
    pub partitions: u32,
    /// The API token file (hashes only; `qledger tokens`) [default: DATA/tokens.toml].
    #[arg(long, value_name = "FILE", env = "QLEDGER_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Development only: serve without authentication (everyone may do
    /// everything). Refused unless listening on a loopback address.
    #[arg(long)]
    pub no_auth: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Card lookups that find nothing (unknown serial or wrong birth date)
    /// allowed per client and window; then 429 until the window ends.
    #[arg(long, value_name = "N", default_value_t = crate::http::misses::DEFAULT_MISSES)]
    pub miss_limit: u32,
    /// The window of --miss-limit, in seconds.
    #[arg(long, value_name = "S", default_value_t = crate::http::misses::DEFAULT_WINDOW.as_secs())]
    pub miss_window: u64,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// HTTPS: the server's certificate and key, and the CA of client
/// certificates; or plain HTTP, explicitly, on loopback only.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// The server's certificate chain (PEM).
    #[arg(
        long,
        value_name = "FILE",
        env = "QLEDGER_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        env = "QLEDGER_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) of client certificates (mutual TLS); a client
    /// certificate is a credential once registered with `qledger tokens issue --certificate`.
    #[arg(
        long,
        value_name = "FILE",
        env = "QLEDGER_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve plain HTTP: development only, refused unless listening on a
    /// loopback address.
    #[arg(long, conflicts_with = "tls_cert")]
    pub plain_http: bool,
}

impl TlsArgs {
    fn settings(&self) -> Option<http::tls::TlsSettings> {
        Some(http::tls::TlsSettings {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
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
    init_tracing();
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
        Command::Serve(a) => serve(a),
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
    }
}

/// `RUST_LOG` (default `info`), to standard error.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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

/// The tables of the settings file this module reads (`[kafka]` is read by
/// [`kafka::settings`]).
#[derive(Debug, Default, serde::Deserialize)]
struct SettingsFile {
    #[serde(default)]
    cards: Option<CardAuthorityConfig>,
    #[serde(default)]
    notices: Option<NoticeSettings>,
}

fn settings_file(config: Option<&Path>) -> Result<SettingsFile> {
    let Some(path) = config else {
        return Ok(SettingsFile::default());
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
        http::serve(ledger, std::sync::Arc::new(access), endpoint, http::shutdown_signal())
            .await
            .context("serving HTTP")
    })
}

/// How `serve` authenticates: the token file, or nobody with `--no-auth`.
fn access(no_auth: bool, tokens: Option<&Path>, data: &Path) -> Result<Access> {
    if no_auth {
        return Ok(Access::open());
    }
    let path = tokens
        .map(Path::to_owned)
        .unwrap_or_else(|| data.join(crate::auth::tokens::DEFAULT_FILE));
    let tokens = crate::auth::tokens::Tokens::open(&path)?;
    Ok(Access::enforced(std::sync::Arc::new(tokens)))
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let tls = args.tls.settings();
    if tls.is_none() && !args.tls.plain_http {
        anyhow::bail!(
            "serve needs --tls-cert and --tls-key (HTTPS), or --plain-http for development on a loopback address"
        );
    }
    let access = access(args.no_auth, args.tokens.as_deref(), &args.data)?.with_miss_limiter(
        http::misses::MissLimiter::new(
            args.miss_limit,
            std::time::Duration::from_secs(args.miss_window),
            http::misses::DEFAULT_FLOOR,
        ),
    );
    let cards = card_authority(args.kafka.config.as_deref())?;
    let notices = settings_file(args.kafka.config.as_deref())?
        .notices
        .unwrap_or_default();
    let mut ledger = match kafka::settings(&args.kafka)? {
        Some(settings) => kafka::open_ledger(&args.data, &settings)?,
        None => open_ledger(&args.data, args.partitions)?,
    };
    if let Some(cards) = cards {
        ledger.set_card_authority(cards);
    }
    ledger.start_projector();
    ledger
        .start_notifier(notices)
        .context("starting the notifier")?;
    serve_ledger(ledger, &args.listen, access, tls.as_ref(), |_, _| {})?;
    Ok(ExitCode::SUCCESS)
}
