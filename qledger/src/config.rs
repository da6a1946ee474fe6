//! The server's configuration: one settings file (TOML) with a table per
//! part, the `QLEDGER_*` environment, and command-line flags, in one
//! precedence, lowest first:
//!
//! 1. built-in defaults;
//! 2. the settings file named by `--config` or `QLEDGER_CONFIG`;
//! 3. `QLEDGER_*` environment variables;
//! 4. command-line flags.
//!
//! | table | what | read by |
//! | --- | --- | --- |
//! | `[server]` | data directory, address, TLS, tokens, limits, readiness | [`ServerSettings`] |
//! | `[kafka]` | the cluster, topics, groups, librdkafka properties (TLS, SASL) | [`KafkaSettings`](crate::kafka::KafkaSettings) |
//! | `[cards]` | trust anchors and CRLs of card certificates | [`CardAuthorityConfig`] |
//! | `[notices]` | the notifier and its SMTP relay | [`NoticeSettings`] |
//!
//! [`Effective::masked`] is what `qledger config show` prints: every value
//! in force, secrets replaced by `***`. Secrets are never read from the
//! file's own text into logs; the SMTP password is only ever named by the
//! variable that holds it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cardcert::CardAuthorityConfig;
use crate::http::tls::TlsSettings;
use crate::notices::NoticeSettings;

/// What the `[server]` table holds (every field optional there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// The data directory: views, embedded log, keys, token file.
    pub data: PathBuf,
    /// The address the HTTP API listens on.
    pub listen: String,
    /// Log partitions, when the data directory is new.
    pub partitions: u32,
    /// The token file [default: DATA/tokens.toml].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<PathBuf>,
    /// Serve without authentication (development, loopback only).
    pub no_auth: bool,
    /// Serve plain HTTP (development, loopback only).
    pub plain_http: bool,
    /// HTTPS: certificate, key, client CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// Card lookups that miss, per client and window, before 429.
    pub miss_limit: u32,
    pub miss_window_secs: u64,
    /// `/readyz` answers 200 once every partition's projector is at most
    /// this many events behind the log.
    pub ready_max_lag: u64,
    /// A request (headers to the end of the answer) is cut off after this.
    pub request_timeout_secs: u64,
    /// The largest request body.
    pub body_limit_bytes: usize,
    /// Verification records older than this many days are deleted (the
    /// sweep runs hourly); 0 keeps them for ever.
    pub verification_retention_days: u32,
    /// The online check's folder exchange (requests in DIR/req, results in
    /// DIR/res); off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onlinecheck_dir: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            data: PathBuf::from(crate::cli::DEFAULT_DATA),
            listen: "127.0.0.1:8080".into(),
            partitions: crate::service::DEFAULT_PARTITIONS,
            tokens: None,
            no_auth: false,
            plain_http: false,
            tls: None,
            miss_limit: crate::http::misses::DEFAULT_MISSES,
            miss_window_secs: crate::http::misses::DEFAULT_WINDOW.as_secs(),
            ready_max_lag: 1_000,
            request_timeout_secs: 60,
            body_limit_bytes: crate::http::BODY_LIMIT,
            verification_retention_days: 1_095,
            onlinecheck_dir: None,
        }
    }
}

impl ServerSettings {
    /// The token file in force.
    pub fn tokens_file(&self) -> PathBuf {
        self.tokens
            .clone()
            .unwrap_or_else(|| self.data.join(crate::auth::tokens::DEFAULT_FILE))
    }
}

/// The tables of the settings file this module reads (`[kafka]` is read by
/// [`KafkaSettings::load`](crate::kafka::KafkaSettings::load), which also
/// applies its environment variables).
#[derive(Debug, Default, Deserialize)]
pub struct SettingsFile {
    #[serde(default)]
    pub server: Option<ServerSettings>,
    #[serde(default)]
    pub cards: Option<CardAuthorityConfig>,
    #[serde(default)]
    pub notices: Option<NoticeSettings>,
}

/// Every setting in force, as `qledger config show` prints it.
#[derive(Debug, Serialize)]
pub struct Effective {
    pub server: ServerSettings,
    /// The Kafka settings (when a cluster is the log of record), with
    /// secret properties masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cards: Option<CardAuthorityConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices: Option<NoticeSettings>,
}

/// Whether a property's name says it holds a secret (librdkafka's
/// `sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`,
/// `ssl.keystore.password`, …).
pub fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "credential", "token", "ssl.key.pem"]
        .iter()
        .any(|s| name.contains(s))
}

/// `value` with every secret-named key's value replaced by `***`.
pub fn mask(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(t) => toml::Value::Table(
            t.into_iter()
                .map(|(k, v)| {
                    if is_secret(&k) && !v.is_table() {
                        (k, toml::Value::String("***".into()))
                    } else {
                        (k, mask(v))
                    }
                })
                .collect(),
        ),
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(mask).collect()),
        other => other,
    }
}

impl Effective {
    /// The configuration as TOML, secrets masked.
    pub fn masked(&self) -> Result<String, toml::ser::Error> {
        let value = toml::Value::try_from(self)?;
        toml::to_string_pretty(&mask(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_properties_are_masked_wherever_they_are() {
        let value: toml::Value = toml::from_str(
            r#"
            [kafka.properties]
            "security.protocol" = "SASL_SSL"
            "sasl.username" = "ledger"
            "sasl.password" = "hunter2"
            "ssl.key.password" = "pw"
            "#,
        )
        .unwrap();
        let shown = toml::to_string(&mask(value)).unwrap();
        assert!(
            !shown.contains("hunter2") && !shown.contains("\"pw\""),
            "{shown}"
        );
        assert!(
            shown.contains("SASL_SSL") && shown.contains("ledger"),
            "{shown}"
        );
    }

    #[test]
    fn the_server_table_overrides_defaults_field_by_field() {
        let file: SettingsFile = toml::from_str(
            r#"
            [server]
            listen = "0.0.0.0:8443"
            miss_limit = 5
            [server.tls]
            cert = "/etc/qledger/server.pem"
            key = "/etc/qledger/server.key"
            "#,
        )
        .unwrap();
        let server = file.server.unwrap();
        assert_eq!(server.listen, "0.0.0.0:8443");
        assert_eq!(server.miss_limit, 5);
        assert_eq!(server.partitions, ServerSettings::default().partitions);
        assert!(server.tls.is_some());
        assert!(toml::from_str::<SettingsFile>("[server]\nlisten_on = \"x\"").is_err());
    }
}
