//! The relay: from the inbound topic, where insurers' own systems publish
//! with any Kafka client, to the events topic of record.
//!
//! Each inbound record is decoded (Avro single-object encoding or the
//! Confluent wire format, see [`avro::decode_any`]) and validated exactly as
//! HTTP intake validates, then appended to the events log, where the ledger
//! stamps its record time: the publisher's clock never decides it. A record
//! that cannot be relayed (undecodable bytes, an unknown fingerprint or
//! schema id, an invalid event, a key that is not the event's link number)
//! goes to the dead-letter topic unchanged, with the reason in headers
//! ([`REASON_HEADER`] and the others below); it never stops the relay.
//!
//! Delivery is at least once: inbound offsets are committed (consumer group
//! [`KafkaSettings::relay_group`]) only after the batch's appends and dead
//! letters are confirmed; a failure rewinds to the batch's start and retries.
//! A crash between the two relays a batch twice; the projectors apply an
//! event id once per partition, so the views are the same.
//!
//! The relay must not decide anything about the ledger's state: it checks
//! each event on its own, like intake.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ledger::event::avro::{self, AvroError};
use ledger::log::{AppendRequest, EventLog, LogError};
use rdkafka::config::FromClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::external::{ExternalRegistry, Unreachable};
use super::KafkaSettings;
use crate::service::{append_request, ServiceError};

/// Why the record was not relayed.
pub const REASON_HEADER: &str = "qledger.dead_letter.reason";
/// The field at fault, when one is.
pub const FIELD_HEADER: &str = "qledger.dead_letter.field";
/// The event type, when the bytes told it.
pub const EVENT_TYPE_HEADER: &str = "qledger.dead_letter.event_type";
/// Where the record was: `topic/partition/offset`.
pub const SOURCE_HEADER: &str = "qledger.dead_letter.source";
/// Set when the dead letter keeps only the first [`MAX_DEAD_LETTER_VALUE`]
/// bytes of the record: its full length.
pub const TRUNCATED_HEADER: &str = "qledger.dead_letter.truncated_from";
/// The most of an inbound record's value a dead letter keeps (well under
/// the brokers' default 1 MB message limit, headers and key included).
pub const MAX_DEAD_LETTER_VALUE: usize = 512 * 1024;

/// Errors that stop one relay step (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("inbound consumer: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Registry(#[from] Unreachable),
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    pub relayed: u64,
    pub dead_lettered: u64,
}

impl std::ops::AddAssign for RelayStats {
    fn add_assign(&mut self, other: RelayStats) {
        self.relayed += other.relayed;
        self.dead_lettered += other.dead_lettered;
    }
}

/// Relays the inbound topic to the events log. See the [module docs](self).
pub struct Relay {
    consumer: BaseConsumer,
    /// Resolves Confluent schema ids that are not the contract's own.
    external: Option<ExternalRegistry>,
    events: Arc<dyn EventLog>,
    dead_letters: Arc<dyn EventLog>,
    inbound_topic: String,
    batch: usize,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("inbound_topic", &self.inbound_topic)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Joins the relay's consumer group on the inbound topic.
    pub fn new(
        settings: &KafkaSettings,
        events: Arc<dyn EventLog>,
        dead_letters: Arc<dyn EventLog>,
    ) -> Result<Relay, RelayError> {
        let config = settings.group_consumer_config(&settings.relay_group);
        let external = match &settings.schema_registry_url {
            Some(url) => Some(ExternalRegistry::new(url)?),
            None => None,
        };
        let consumer = BaseConsumer::from_config(&config)?;
        consumer.subscribe(&[settings.inbound_topic.as_str()])?;
        Ok(Relay {
            consumer,
            external,
            events,
            dead_letters,
            inbound_topic: settings.inbound_topic.clone(),
            batch: 2_000,
        })
    }

    /// Records per step.
    pub fn with_batch(mut self, n: usize) -> Relay {
        self.batch = n.max(1);
        self
    }

    /// Waits up to `wait` for inbound records, relays up to a batch of them
    /// and commits their offsets. On an error nothing of the batch is
    /// committed and the consumer is rewound to the batch's start.
    pub fn step(&self, wait: Duration) -> Result<RelayStats, RelayError> {
        let mut messages = Vec::new();
        let mut timeout = wait;
        while messages.len() < self.batch {
            match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => messages.push(m.detach()),
                Some(Err(e)) => {
                    // librdkafka recovers from transient trouble itself.
                    tracing::debug!(error = %e, "inbound consumer");
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        if messages.is_empty() {
            return Ok(RelayStats::default());
        }
        match self.relay(&messages) {
            Ok(stats) => {
                self.commit(&messages)?;
                Ok(stats)
            }
            Err(e) => {
                self.rewind(&messages);
                Err(e)
            }
        }
    }

    fn relay(&self, messages: &[OwnedMessage]) -> Result<RelayStats, RelayError> {
        let mut requests = Vec::new();
        let mut dead = Vec::new();
        for m in messages {
            match self.check(m)? {
                Ok(request) => requests.push(request),
                Err(refusal) => dead.push(self.dead_letter(m, refusal)),
            }
        }
        let stats = RelayStats {
            relayed: requests.len() as u64,
            dead_lettered: dead.len() as u64,
        };
        if !requests.is_empty() {
            self.events.append(requests)?;
        }
        if !dead.is_empty() {
            tracing::warn!(records = dead.len(), topic = %self.inbound_topic, "inbound records dead-lettered");
            self.dead_letters.append(dead)?;
        }
        Ok(stats)
    }

    fn dead_letter(&self, m: &OwnedMessage, refusal: Refusal) -> AppendRequest {
        let source = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
        // The same inbound record always makes the same dead letter id.
        let digest = Sha256::digest(source.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id[6] = (id[6] & 0x0f) | 0x80; // version 8: custom
        id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
        let mut headers: Vec<(String, Vec<u8>)> = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        headers.push((REASON_HEADER.into(), refusal.reason.into_bytes()));
        if let Some(field) = refusal.field {
            headers.push((FIELD_HEADER.into(), field.into_bytes()));
        }
        if let Some(event_type) = refusal.event_type {
            headers.push((EVENT_TYPE_HEADER.into(), event_type.into_bytes()));
        }
        headers.push((SOURCE_HEADER.into(), source.into_bytes()));
        let mut value = m.payload().unwrap_or_default();
        if value.len() > MAX_DEAD_LETTER_VALUE {
            // The record plus our headers could exceed what the broker takes,
            // and a dead letter that cannot be written would stall the relay.
            headers.push((
                TRUNCATED_HEADER.into(),
                value.len().to_string().into_bytes(),
            ));
            value = &value[..MAX_DEAD_LETTER_VALUE];
        }
        AppendRequest {
            key: m.key().unwrap_or_default().to_vec(),
            event_id: Uuid::from_bytes(id),
            headers,
            value: value.to_vec(),
            timestamp: None,
        }
    }

    /// Commits the offset after each partition's last relayed record.
    fn commit(&self, messages: &[OwnedMessage]) -> Result<(), RelayError> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in messages {
            let slot = next.entry(m.partition()).or_insert(0);
            *slot = (*slot).max(m.offset() + 1);
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(&self.inbound_topic, partition, KafkaOffset::Offset(offset))?;
        }
        self.consumer.commit(&list, CommitMode::Sync)?;
        Ok(())
    }

    /// Seeks each partition back to the batch's first record of it.
    fn rewind(&self, messages: &[OwnedMessage]) {
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for m in messages {
            let slot = first.entry(m.partition()).or_insert(i64::MAX);
            *slot = (*slot).min(m.offset());
        }
        for (partition, offset) in first {
            if let Err(e) = self.consumer.seek(
                &self.inbound_topic,
                partition,
                KafkaOffset::Offset(offset),
                Duration::from_secs(10),
            ) {
                tracing::error!(partition, offset, error = %e, "cannot rewind the inbound consumer");
            }
        }
    }

    /// Relays on a thread until `stop` is set; errors are logged and retried
    /// with back-off.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || {
                let mut backoff = Duration::from_millis(100);
                while !stop.load(Ordering::Relaxed) {
                    match self.step(Duration::from_millis(200)) {
                        Ok(stats) => {
                            backoff = Duration::from_millis(100);
                            if stats != RelayStats::default() {
                                tracing::debug!(
                                    relayed = stats.relayed,
                                    dead_lettered = stats.dead_lettered,
                                    "relayed"
                                );
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "relaying failed; retrying");
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    }
                }
            })
            .expect("spawn relay thread")
    }
}

/// Why an inbound record is dead-lettered.
#[derive(Debug)]
struct Refusal {
    field: Option<String>,
    event_type: Option<String>,
    reason: String,
}

impl Relay {
    /// The events-log record for an inbound record, or why there is none;
    /// `Err` when the external registry cannot be asked (retried).
    fn check(&self, m: &OwnedMessage) -> Result<Result<AppendRequest, Refusal>, RelayError> {
        let payload = m.payload().unwrap_or_default();
        // With an external registry, Confluent ids are that registry's.
        let decoded = match (&self.external, payload.first()) {
            (Some(external), Some(&avro::CONFLUENT_MAGIC)) => external.decode(payload)?,
            _ => avro::decode_any(payload),
        };
        Ok(check(m, decoded))
    }
}

/// The events-log record for a decoded inbound record, or why there is none.
fn check(
    m: &OwnedMessage,
    decoded: Result<ledger::event::Event, AvroError>,
) -> Result<AppendRequest, Refusal> {
    let event = decoded.map_err(|e| match e {
        AvroError::Invalid { event_type, error } => Refusal {
            field: Some(error.field.to_string()),
            event_type: Some(event_type.name().into()),
            reason: error.rule.to_string(),
        },
        other => Refusal {
            field: None,
            event_type: None,
            reason: other.to_string(),
        },
    })?;
    let event_type = event.event_type().name();
    if m.key() != Some(event.envelope.link.as_str().as_bytes()) {
        return Err(Refusal {
            field: Some("envelope.link".into()),
            event_type: Some(event_type.into()),
            reason: "does not match the record key (publish each event keyed by its link number)"
                .into(),
        });
    }
    append_request(&event).map_err(|e| Refusal {
        field: None,
        event_type: Some(event_type.into()),
        reason: e.to_string(),
    })
}
