//! `qledger serve` and `qledger config show`: the server's settings resolved
//! in one precedence (defaults < settings file < `QLEDGER_*` environment <
//! flags; see [`crate::config`]), then the ledger opened and served.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::{card_authority, emit, kafka, open_ledger, serve_ledger, settings_file, KafkaArgs};
#[cfg(feature = "kafka")]
use crate::config::mask;
use crate::config::{Effective, ServerSettings, SettingsFile};
use crate::http::{self, Access};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory [default: ./data].
    #[arg(long, value_name = "DIR", env = "QLEDGER_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", env = "QLEDGER_LISTEN")]
    pub listen: Option<String>,
    /// Log partitions, when the data directory is new [default: 8].
    #[arg(long, value_name = "N", env = "QLEDGER_PARTITIONS")]
    pub partitions: Option<u32>,
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
    /// allowed per client and window; then 429 until the window ends [default: 20].
    #[arg(long, value_name = "N", env = "QLEDGER_MISS_LIMIT")]
    pub miss_limit: Option<u32>,
    /// The window of --miss-limit, in seconds [default: 60].
    #[arg(long, value_name = "S", env = "QLEDGER_MISS_WINDOW")]
    pub miss_window: Option<u64>,
    /// /readyz answers 200 once no partition lags by more events [default: 1000].
    #[arg(long, value_name = "N", env = "QLEDGER_READY_MAX_LAG")]
    pub ready_max_lag: Option<u64>,
    /// A request not answered within this many seconds gets 503 [default: 60].
    #[arg(long, value_name = "S", env = "QLEDGER_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// The largest request body, in bytes [default: 16 MiB].
    #[arg(long, value_name = "BYTES", env = "QLEDGER_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Days verification records are kept; 0 keeps them [default: 1095].
    #[arg(long, value_name = "DAYS", env = "QLEDGER_VERIFICATION_RETENTION_DAYS")]
    pub verification_retention_days: Option<u32>,
    /// Answer the online check's request files dropped into DIR/req, into
    /// DIR/res (the folder exchange of hospital systems).
    #[arg(long, value_name = "DIR", env = "QLEDGER_ONLINECHECK_DIR")]
    pub onlinecheck_dir: Option<PathBuf>,
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
    #[arg(long, value_name = "FILE", env = "QLEDGER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve plain HTTP: development only, refused unless listening on a
    /// loopback address.
    #[arg(long, conflicts_with = "tls_cert")]
    pub plain_http: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting `serve` would run with (same flags), secrets masked.
    Show(Box<ServeArgs>),
}

impl ServeArgs {
    /// The `[server]` settings in force, and the rest of the settings file.
    pub fn resolve(&self) -> Result<(ServerSettings, SettingsFile)> {
        let mut file = settings_file(self.kafka.config.as_deref())?;
        let mut s = file.server.take().unwrap_or_default();
        if let Some(v) = &self.data {
            s.data = v.clone();
        }
        if let Some(v) = &self.listen {
            s.listen = v.clone();
        }
        if let Some(v) = self.partitions {
            s.partitions = v;
        }
        if let Some(v) = &self.tokens {
            s.tokens = Some(v.clone());
        }
        s.no_auth |= self.no_auth;
        s.plain_http |= self.tls.plain_http;
        if let (Some(cert), Some(key)) = (&self.tls.tls_cert, &self.tls.tls_key) {
            let client_ca = s.tls.as_ref().and_then(|t| t.client_ca.clone());
            s.tls = Some(http::tls::TlsSettings {
                cert: cert.clone(),
                key: key.clone(),
                client_ca,
            });
        }
        if let Some(ca) = &self.tls.tls_client_ca {
            match &mut s.tls {
                Some(tls) => tls.client_ca = Some(ca.clone()),
                None => bail!("--tls-client-ca needs a server certificate (--tls-cert, --tls-key or [server.tls])"),
            }
        }
        if let Some(v) = self.miss_limit {
            s.miss_limit = v;
        }
        if let Some(v) = self.miss_window {
            s.miss_window_secs = v;
        }
        if let Some(v) = self.ready_max_lag {
            s.ready_max_lag = v;
        }
        if let Some(v) = self.request_timeout {
            s.request_timeout_secs = v;
        }
        if let Some(v) = self.body_limit {
            s.body_limit_bytes = v;
        }
        if let Some(v) = self.verification_retention_days {
            s.verification_retention_days = v;
        }
        if let Some(dir) = &self.onlinecheck_dir {
            s.onlinecheck_dir = Some(dir.clone());
        }
        if s.tls.is_some() && s.plain_http {
            bail!("both TLS ([server.tls] or --tls-cert) and plain HTTP are configured; pick one");
        }
        if s.tls.is_none() && !s.plain_http {
            bail!(
                "serve needs --tls-cert and --tls-key (HTTPS), or --plain-http for development on a loopback address"
            );
        }
        Ok((s, file))
    }
}

/// How `serve` authenticates: the token file, or nobody with `--no-auth`.
pub(super) fn access(no_auth: bool, tokens: &Path) -> Result<Access> {
    if no_auth {
        return Ok(Access::open());
    }
    let tokens = crate::auth::tokens::Tokens::open(tokens)?;
    Ok(Access::enforced(std::sync::Arc::new(tokens)))
}

pub(super) fn run(args: ServeArgs) -> Result<ExitCode> {
    let (server, file) = args.resolve()?;
    let access = access(server.no_auth, &server.tokens_file())?.with_miss_limiter(
        http::misses::MissLimiter::new(
            server.miss_limit,
            Duration::from_secs(server.miss_window_secs),
            http::misses::DEFAULT_FLOOR,
        ),
    );
    let cards = card_authority(args.kafka.config.as_deref())?;
    let notices = file.notices.unwrap_or_default();
    let mut ledger = match kafka::settings(&args.kafka)? {
        Some(settings) => kafka::open_ledger(&server.data, &settings)?,
        None => open_ledger(&server.data, server.partitions)?,
    };
    if let Some(cards) = cards {
        ledger.set_card_authority(cards);
    }
    ledger.start_projector();
    ledger
        .start_notifier(notices)
        .context("starting the notifier")?;
    let settings = http::HttpSettings {
        body_limit: server.body_limit_bytes,
        request_timeout: Duration::from_secs(server.request_timeout_secs.max(1)),
        ready_max_lag: server.ready_max_lag,
        verification_retention: (server.verification_retention_days > 0)
            .then(|| Duration::from_secs(u64::from(server.verification_retention_days) * 86_400)),
        onlinecheck_dir: server.onlinecheck_dir.clone(),
    };
    serve_ledger(
        ledger,
        &server.listen,
        access,
        server.tls.as_ref(),
        settings,
        |_, _| {},
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn config(args: ConfigArgs) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::Show(args) => {
            let (server, file) = args.resolve()?;
            let kafka = kafka_shown(&args.kafka)?;
            let effective = Effective {
                server,
                kafka,
                cards: file.cards,
                notices: file.notices,
            };
            let text = effective.masked().context("rendering the configuration")?;
            emit(&format!(
                "# qledger serve: the settings in force\n# precedence: defaults < settings file ({}) < QLEDGER_* environment < flags\n\n{text}",
                args.kafka
                    .config
                    .as_deref()
                    .map_or("none".into(), |p| p.display().to_string())
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `[kafka]` settings in force, as TOML with secrets masked.
#[cfg(feature = "kafka")]
fn kafka_shown(args: &KafkaArgs) -> Result<Option<toml::Value>> {
    kafka::settings(args)?
        .map(|s| {
            toml::Value::try_from(&s)
                .map(mask)
                .context("rendering [kafka]")
        })
        .transpose()
}

#[cfg(not(feature = "kafka"))]
fn kafka_shown(args: &KafkaArgs) -> Result<Option<toml::Value>> {
    kafka::settings(args).map(|_| None)
}
