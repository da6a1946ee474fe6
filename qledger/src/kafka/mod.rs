//! Running the ledger on a Kafka cluster: the topics, the relay from the
//! inbound topic, and the projectors' consumer group.
//!
//! Four topics, created on start when absent, all with
//! [`KafkaSettings::partitions`] partitions, unlimited retention and no
//! compaction:
//!
//! | topic (default name) | written by | read by |
//! | --- | --- | --- |
//! | `qledger.inbound` | insurers' own systems, any Kafka client | the [relay](relay) |
//! | `qledger.events` | the ledger only (intake, relay) | projectors, replay |
//! | `qledger.dead-letters` | the relay | operators |
//! | `qledger.notices` | link-completion notices (JSON, key: person) | the notifier; portals |
//!
//! The events topic is the log of record ([`KafkaLog`]); the ledger stamps
//! each record's time there (see [`ledger::log::kafka`]), so external
//! producers' clocks never decide a record time. Several `qledger serve`
//! processes share the work through two consumer groups: the relay's (each
//! inbound partition relayed by one process) and the projectors'
//! ([`group`]: each process projects the events partitions it is assigned,
//! reading from the offsets stored in its own views).
//!
//! Settings come from, in increasing precedence: defaults, a TOML file
//! (`[kafka]` table, see [`KafkaSettings`]), `QLEDGER_KAFKA_*` environment
//! variables, command-line flags.
//!
//! This module wires clients together; it holds no ledger logic (validation
//! is intake's, projection the projectors').

pub mod external;
pub mod group;
pub mod relay;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ledger::log::kafka::{self as kafka_log, KafkaConfig, KafkaLog, DEFAULT_TOPIC};
use ledger::log::LogError;
use serde::Deserialize;

/// Where the cluster is and what the ledger calls its topics and groups.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub bootstrap: String,
    /// Partitions of every topic (fixed once the events topic exists).
    pub partitions: u32,
    /// Replication factor for created topics; -1 takes the broker's default.
    pub replication_factor: i32,
    pub events_topic: String,
    pub inbound_topic: String,
    pub dead_letter_topic: String,
    pub notices_topic: String,
    /// The projectors' consumer group.
    pub projector_group: String,
    /// The relay's consumer group.
    pub relay_group: String,
    /// How long a record may wait for the broker's confirmation, in ms.
    pub delivery_timeout_ms: u64,
    /// How long metadata, offset and fetch requests may take, in ms.
    pub request_timeout_ms: u64,
    /// An external Confluent schema registry (`http://…`) whose ids the
    /// relay resolves when they are not the contract's own (see
    /// [`external`]); qledger's own registry needs no setting.
    pub schema_registry_url: Option<String>,
    /// librdkafka properties for every client (TLS, SASL, tuning), e.g.
    /// `"security.protocol" = "SSL"`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> KafkaSettings {
        KafkaSettings {
            bootstrap: String::new(),
            partitions: 8,
            replication_factor: -1,
            events_topic: DEFAULT_TOPIC.into(),
            inbound_topic: "qledger.inbound".into(),
            dead_letter_topic: "qledger.dead-letters".into(),
            notices_topic: "qledger.notices".into(),
            projector_group: "qledger.projector".into(),
            relay_group: "qledger.relay".into(),
            delivery_timeout_ms: 30_000,
            request_timeout_ms: 10_000,
            schema_registry_url: None,
            properties: BTreeMap::new(),
        }
    }
}

/// Errors reading the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("no Kafka bootstrap servers: give --kafka, QLEDGER_KAFKA_BOOTSTRAP or `bootstrap` in the [kafka] table")]
    NoBootstrap,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    kafka: Option<KafkaSettings>,
}

impl KafkaSettings {
    /// Defaults, overlaid with the `[kafka]` table of `file` (if given), then
    /// with `QLEDGER_KAFKA_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<KafkaSettings, SettingsError> {
        let mut settings = match file {
            None => KafkaSettings::default(),
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: shown.clone(),
                    source,
                })?;
                let parsed: File = toml::from_str(&text).map_err(|source| SettingsError::File {
                    path: shown,
                    source: Box::new(source),
                })?;
                parsed.kafka.unwrap_or_default()
            }
        };
        settings.overlay_env(env)?;
        Ok(settings)
    }

    /// Applies `QLEDGER_KAFKA_<FIELD>` variables; `QLEDGER_KAFKA_PROPERTIES`
    /// is `name=value` pairs separated by commas, added to the file's.
    fn overlay_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, SettingsError> {
            value.trim().parse().map_err(|_| SettingsError::Env {
                name: name.into(),
                reason: format!("{value:?} is not a number"),
            })
        }
        for (name, slot) in [
            ("QLEDGER_KAFKA_BOOTSTRAP", &mut self.bootstrap),
            ("QLEDGER_KAFKA_EVENTS_TOPIC", &mut self.events_topic),
            ("QLEDGER_KAFKA_INBOUND_TOPIC", &mut self.inbound_topic),
            (
                "QLEDGER_KAFKA_DEAD_LETTER_TOPIC",
                &mut self.dead_letter_topic,
            ),
            ("QLEDGER_KAFKA_NOTICES_TOPIC", &mut self.notices_topic),
            ("QLEDGER_KAFKA_PROJECTOR_GROUP", &mut self.projector_group),
            ("QLEDGER_KAFKA_RELAY_GROUP", &mut self.relay_group),
        ] {
            if let Some(value) = env(name) {
                *slot = value;
            }
        }
        if let Some(v) = env("QLEDGER_KAFKA_SCHEMA_REGISTRY_URL") {
            self.schema_registry_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = env("QLEDGER_KAFKA_PARTITIONS") {
            self.partitions = number("QLEDGER_KAFKA_PARTITIONS", &v)?;
        }
        if let Some(v) = env("QLEDGER_KAFKA_REPLICATION_FACTOR") {
            self.replication_factor = number("QLEDGER_KAFKA_REPLICATION_FACTOR", &v)?;
        }
        if let Some(v) = env("QLEDGER_KAFKA_DELIVERY_TIMEOUT_MS") {
            self.delivery_timeout_ms = number("QLEDGER_KAFKA_DELIVERY_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = env("QLEDGER_KAFKA_REQUEST_TIMEOUT_MS") {
            self.request_timeout_ms = number("QLEDGER_KAFKA_REQUEST_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = env("QLEDGER_KAFKA_PROPERTIES") {
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(SettingsError::Env {
                        name: "QLEDGER_KAFKA_PROPERTIES".into(),
                        reason: format!("{pair:?} is not name=value"),
                    });
                };
                self.properties
                    .insert(key.trim().to_owned(), value.trim().to_owned());
            }
        }
        Ok(())
    }

    /// Checks what must be set.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.bootstrap.trim().is_empty() {
            return Err(SettingsError::NoBootstrap);
        }
        Ok(())
    }

    /// The log configuration for `topic`.
    pub fn log_config(&self, topic: &str) -> KafkaConfig {
        KafkaConfig {
            topic: topic.to_owned(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            delivery_timeout: Duration::from_millis(self.delivery_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
            properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..KafkaConfig::new(self.bootstrap.clone())
        }
    }

    /// A consumer in `group` that commits only what its owner says, starts
    /// from the beginning when the group has no offset, and creates nothing.
    pub fn group_consumer_config(&self, group: &str) -> rdkafka::ClientConfig {
        let mut config = self.log_config(&self.events_topic).client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false");
        config
    }

    /// The settings with secret-looking properties masked, for printing.
    pub fn masked(&self) -> KafkaSettings {
        let mut shown = self.clone();
        for (key, value) in shown.properties.iter_mut() {
            let k = key.to_ascii_lowercase();
            if ["password", "secret", "key", "token", "jaas"]
                .iter()
                .any(|w| k.contains(w))
                && !k.ends_with(".location")
            {
                *value = "****".into();
            }
        }
        shown
    }
}

/// The ledger's topics on one cluster, connected: the events log of record
/// and the dead-letter log, with the inbound and notices topics ensured.
#[derive(Debug)]
pub struct Topics {
    pub events: KafkaLog,
    pub dead_letters: KafkaLog,
    /// Link-completion notices, for the holders' portal inbox.
    pub notices: KafkaLog,
}

impl Topics {
    /// Connects, creating any of the four topics that is absent.
    pub fn connect(settings: &KafkaSettings) -> Result<Topics, LogError> {
        let events = KafkaLog::connect(settings.log_config(&settings.events_topic))?;
        let dead_letters = KafkaLog::connect(settings.log_config(&settings.dead_letter_topic))?;
        let notices = KafkaLog::connect(settings.log_config(&settings.notices_topic))?;
        kafka_log::ensure_topic(&settings.log_config(&settings.inbound_topic))?;
        Ok(Topics {
            events,
            dead_letters,
            notices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qledger.toml");
        std::fs::write(
            &path,
            "[kafka]\nbootstrap = \"file:9092\"\npartitions = 4\ninbound_topic = \"in\"\n\
             [kafka.properties]\n\"security.protocol\" = \"SSL\"\n\"ssl.key.password\" = \"hunter2\"\n",
        )
        .unwrap();
        let settings = KafkaSettings::load(
            Some(&path),
            env(&[
                ("QLEDGER_KAFKA_BOOTSTRAP", "env:9092"),
                ("QLEDGER_KAFKA_PROPERTIES", "client.id=x, linger.ms = 5"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.bootstrap, "env:9092");
        assert_eq!(settings.partitions, 4);
        assert_eq!(settings.inbound_topic, "in");
        assert_eq!(settings.events_topic, "qledger.events");
        assert_eq!(settings.properties["linger.ms"], "5");
        assert_eq!(settings.properties["security.protocol"], "SSL");
        assert_eq!(settings.masked().properties["ssl.key.password"], "****");
        assert_eq!(settings.masked().properties["security.protocol"], "SSL");
    }

    #[test]
    fn bad_settings_name_the_culprit() {
        let err =
            KafkaSettings::load(None, env(&[("QLEDGER_KAFKA_PARTITIONS", "many")])).unwrap_err();
        assert!(
            err.to_string().contains("QLEDGER_KAFKA_PARTITIONS"),
            "{err}"
        );
        let err =
            KafkaSettings::load(None, env(&[("QLEDGER_KAFKA_PROPERTIES", "novalue")])).unwrap_err();
        assert!(err.to_string().contains("novalue"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[kafka]\nbootstrapp = \"x\"\n").unwrap();
        let err = KafkaSettings::load(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("bootstrapp"), "{err}");
        assert!(matches!(
            KafkaSettings::default().validate(),
            Err(SettingsError::NoBootstrap)
        ));
    }
}
