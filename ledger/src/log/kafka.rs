//! The event log on a Kafka topic: the log of record once a deployment outgrows one machine.
//!
//! [`KafkaLog`] keeps the [`EventLog`] contract on one topic (default
//! [`DEFAULT_TOPIC`]) through librdkafka, so intake, projectors and replay run
//! unchanged on the embedded log or on a broker. Built only with the `kafka`
//! feature.
//!
//! ```no_run
//! use ledger::log::kafka::{KafkaConfig, KafkaLog};
//! use ledger::log::EventLog;
//!
//! let log = KafkaLog::connect(KafkaConfig::new("127.0.0.1:9092"))?;
//! assert_eq!(log.partitions(), 8);
//! # Ok::<(), ledger::log::LogError>(())
//! ```
//!
//! # Appending
//!
//! One idempotent producer (`enable.idempotence=true`, `acks=all`) per log.
//! Each record goes to the partition [`partitioner::partition_for`] picks for
//! its key (Kafka's murmur2, so the embedded log and the topic put a person on
//! the same partition number), keyed by the link number, with the request's
//! headers followed by [`EVENT_ID_HEADER`] (the event id as hyphenated text)
//! and [`RECORD_TIME_HEADER`] (the ledger's stamp, below). [`append`]
//! returns only when every record of the batch has its delivery report; a
//! record not confirmed within [`KafkaConfig::delivery_timeout`]
//! (`message.timeout.ms`) makes the whole call [`LogError::Unavailable`],
//! which the caller retries. Kafka cannot tell a re-sent event: every append
//! is [`Appended::New`], and a retry after a failure may store some events
//! twice (those confirmed before the failure), so projectors de-duplicate by
//! event id per partition.
//!
//! # Record time
//!
//! The ledger is the only writer of the events topic (external producers
//! publish to an inbound topic, which the ledger relays), and it stamps every
//! record it writes with [`RECORD_TIME_HEADER`]: the ledger's clock in µs
//! since the Unix epoch, as decimal text, chosen by the log's
//! [`RecordTimePolicy`] (by default the ledger's clock, whatever the
//! producer's clock says; with `CreateTime`, the producer's time clamped to
//! the ledger's clock plus a bound). Kafka's own message timestamp is set to
//! the stamp too, for tools, but never read: with `CreateTime` it is whatever
//! a client sent, and brokers differ in whether they honour `LogAppendTime`.
//!
//! Readers derive the record time from the stamps alone, so every reader of
//! the same topic computes the same times: for the record at offset `i`,
//!
//! ```text
//! record_time(i) = max(stamp(i), record_time(i - 1) + 1 µs)    (stamped)
//! record_time(i) = record_time(i - 1) + 1 µs                   (no stamp: a defect)
//! record_time(-1) = the Unix epoch
//! ```
//!
//! The max only matters when two ledger processes append to one partition at
//! once and their records land in another order than their stamps. A record
//! without a readable stamp was written straight to the events topic by
//! someone else; it reads with [`LogRecord::defect`] set (the projector
//! dead-letters it) and its own Kafka timestamp, however far in the future,
//! moves nothing. A record's time can depend on the partition before it, so
//! the log remembers record times it has computed (every 4096th offset and
//! the ends of recent reads and appends, and what readers tell it with
//! [`EventLog::remember_record_time`]: a projector, the time of the last
//! record it applied) and a read resumes from the nearest one before it; a
//! reader with nothing remembered starts from offset 0.
//! `append` computes its records' times itself when it knows the time of the
//! record before them and nobody else wrote between; otherwise it reads its
//! records back.
//!
//! # What the topic must be
//!
//! - Never trimmed: `cleanup.policy=delete` with `retention.ms=-1` and
//!   `retention.bytes=-1`, no compaction, no transactions (offsets dense). A
//!   read that would have to start below the partition's first offset is
//!   refused as [`LogError::Corrupt`], since the times after it are no longer
//!   derivable.
//! - Never repartitioned: the partition count is checked at connect
//!   ([`LogError::PartitionCountMismatch`]); adding partitions moves people.
//! - Written only by the ledger (ACLs on a real cluster); others publish to
//!   the inbound topic.
//!
//! [`connect`](KafkaLog::connect) creates the topic with that configuration
//! when it is absent (admin API) and accepts an existing topic as it is.
//!
//! # What it must not do
//!
//! It does not decode, validate or de-duplicate events, commit consumer
//! offsets or join a consumer group (reads assign partitions by hand), and it
//! never reports an append as done before the broker confirmed it.
//!
//! [`append`]: EventLog::append
//! [`RecordTimePolicy`]: super::RecordTimePolicy

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::Client;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset as KafkaOffset, TopicPartitionList};
use uuid::Uuid;

use super::{
    partitioner, AppendRequest, Appended, EventLog, LogError, LogRecord, Offset, Partition,
    Position, RecordTimePolicy,
};
use crate::domain::time::RecordTime;

/// The events topic's default name.
pub const DEFAULT_TOPIC: &str = "qledger.events";

/// The header carrying the event id, as hyphenated UUID text. Records without
/// it (or with an unreadable one) read with the nil id, for the projector to
/// dead-letter.
pub const EVENT_ID_HEADER: &str = "qledger.event_id";

/// The header carrying the ledger's record-time stamp: µs since the Unix
/// epoch as decimal text. See the [module docs](self#record-time).
pub const RECORD_TIME_HEADER: &str = "qledger.record_time";

/// The group id readers carry (librdkafka wants one to assign partitions);
/// never joined, nothing committed.
pub const READER_GROUP: &str = "qledger.log-reader";

/// Record times are remembered at every offset that is a multiple of this.
const CHECKPOINT_EVERY: Offset = 4096;
/// How many other remembered record times (ends of recent reads) a partition keeps.
const RECENT_CHECKPOINTS: usize = 64;
/// How many idle consumers the log keeps for later reads.
const IDLE_CONSUMERS: usize = 8;
/// How often [`EventLog::wait_for`] asks for the end offset.
const WAIT_POLL: Duration = Duration::from_millis(25);

/// Where the log is and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// The events topic.
    pub topic: String,
    /// Partitions of the topic, to create it with and to expect of an existing one.
    pub partitions: u32,
    /// Replication factor to create the topic with; -1 takes the broker's
    /// `default.replication.factor`.
    pub replication_factor: i32,
    /// Topic configuration to create the topic with (see the [module docs](self)).
    pub topic_config: Vec<(String, String)>,
    /// Create the topic when it is absent (otherwise [`LogError::NoSuchTopic`]:
    /// readers such as replay never create one).
    pub create_topic: bool,
    /// How long a record may wait for the broker's confirmation before the
    /// append fails as unavailable (`message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How long metadata, offset and fetch requests may take.
    pub request_timeout: Duration,
    /// Further librdkafka properties for every client (TLS, SASL, tuning),
    /// applied after the defaults; the producer's idempotence and `acks`, and
    /// the readers' offset handling, are not overridable.
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    /// The defaults for a cluster at `bootstrap_servers`: topic
    /// [`DEFAULT_TOPIC`], 8 partitions, the broker's replication factor,
    /// unlimited retention, 30 s to confirm a record.
    pub fn new(bootstrap_servers: impl Into<String>) -> KafkaConfig {
        let pairs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            topic: DEFAULT_TOPIC.to_string(),
            partitions: 8,
            replication_factor: -1,
            topic_config: pairs(&[
                ("cleanup.policy", "delete"),
                ("retention.ms", "-1"),
                ("retention.bytes", "-1"),
            ]),
            create_topic: true,
            delivery_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            properties: Vec::new(),
        }
    }

    /// The settings every client of this cluster gets: the bootstrap servers
    /// and [`KafkaConfig::properties`] (TLS, SASL, tuning).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("allow.auto.create.topics", "false")
            .set(
                "message.timeout.ms",
                millis(self.delivery_timeout).to_string(),
            );
        config
    }

    fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        // librdkafka assigns partitions only with a group id; the group is
        // never joined and no offset is ever committed to it.
        config.set("group.id", READER_GROUP);
        config.set("bootstrap.servers", &self.bootstrap_servers);
        // A reader stops at the end it asked for; a fetch the broker holds
        // open there (500 ms by default) would only delay the next read.
        config.set("fetch.wait.max.ms", "10");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .set("auto.offset.reset", "error");
        config
    }
}

/// The event log on a Kafka topic. See the [module docs](self).
pub struct KafkaLog {
    topic: String,
    partitions: u32,
    producer: ThreadedProducer<Deliveries>,
    consumer_config: ClientConfig,
    /// Idle readers, each unassigned.
    consumers: Mutex<Vec<BaseConsumer>>,
    /// Per partition, record times already computed.
    times: Vec<Mutex<TimeIndex>>,
    /// `kafka:<cluster id>/<topic>`.
    identity: String,
    /// How records are stamped; held while stamping and handing a batch to
    /// the producer, so stamps go out in the order they were taken.
    policy: Mutex<RecordTimePolicy>,
    delivery_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Connects to the cluster, creating the topic if it is absent.
    ///
    /// An existing topic is used as it is, provided it has
    /// `config.partitions` partitions ([`LogError::PartitionCountMismatch`]
    /// otherwise). A cluster that cannot be reached, or refuses to create the
    /// topic, is [`LogError::Unavailable`].
    pub fn connect(config: KafkaConfig) -> Result<KafkaLog, LogError> {
        let unavailable = |what: &str, e: KafkaError| {
            LogError::Unavailable(format!("{what} (topic {}): {e}", config.topic))
        };
        let producer: ThreadedProducer<Deliveries> =
            ThreadedProducer::from_config_and_context(&config.producer_config(), Deliveries)
                .map_err(|e| unavailable("creating the producer", e))?;

        let partitions = ensure_topic_with(producer.client(), &config)?;
        let cluster = producer
            .client()
            .fetch_cluster_id(config.request_timeout)
            .unwrap_or_else(|| "unknown-cluster".into());
        tracing::info!(topic = %config.topic, partitions, "kafka event log connected");
        Ok(KafkaLog {
            partitions,
            producer,
            consumer_config: config.consumer_config(),
            consumers: Mutex::new(Vec::new()),
            times: (0..partitions).map(|_| Mutex::default()).collect(),
            policy: Mutex::new(RecordTimePolicy::default()),
            identity: format!("kafka:{cluster}/{}", config.topic),
            delivery_timeout: config.delivery_timeout,
            request_timeout: config.request_timeout,
            topic: config.topic,
        })
    }

    /// The events topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Chooses how later appends stamp record times (the default is the
    /// ledger's clock; `CreateTime` only for importing history).
    pub fn set_record_time_policy(&self, policy: RecordTimePolicy) {
        *lock(&self.policy) = policy;
    }

    fn check(&self, partition: Partition) -> Result<(), LogError> {
        if partition < self.partitions {
            Ok(())
        } else {
            Err(LogError::NoSuchPartition {
                partition,
                partitions: self.partitions,
            })
        }
    }

    /// The partition's first and next offsets.
    fn watermarks(&self, partition: Partition) -> Result<(Offset, Offset), LogError> {
        let (low, high) = self
            .producer
            .client()
            .fetch_watermarks(&self.topic, partition as i32, self.request_timeout)
            .map_err(|e| {
                LogError::Unavailable(format!("offsets of {}:{partition}: {e}", self.topic))
            })?;
        Ok((low.max(0) as Offset, high.max(0) as Offset))
    }

    /// Stamps and sends the batch and waits for every delivery report; the
    /// position and stamp of each request, in order.
    fn produce(
        &self,
        batch: &[AppendRequest],
    ) -> Result<Vec<(Partition, Offset, RecordTime)>, LogError> {
        let (reports, delivered) = mpsc::channel();
        let deadline = Instant::now() + self.delivery_timeout;
        let mut refused = None;
        let mut stamps = Vec::with_capacity(batch.len());
        let policy = lock(&self.policy);
        let now = RecordTime::now();
        let mut last: BTreeMap<Partition, Option<RecordTime>> = BTreeMap::new();
        for (index, request) in batch.iter().enumerate() {
            let partition = partitioner::partition_for(&request.key, self.partitions);
            let previous = last
                .entry(partition)
                .or_insert_with(|| lock(&self.times[partition as usize]).latest());
            // Never before the epoch: readers take only unsigned stamps.
            let stamp = policy
                .stamp(now, request.timestamp, *previous)
                .max(RecordTime::from_micros(0));
            *previous = Some(stamp);
            stamps.push(stamp);
            let stamp_text = stamp.micros().to_string();
            let id = request.event_id.hyphenated().to_string();
            let mut headers = OwnedHeaders::new_with_capacity(request.headers.len() + 2);
            for (key, value) in &request.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_slice()),
                });
            }
            headers = headers
                .insert(Header {
                    key: EVENT_ID_HEADER,
                    value: Some(id.as_bytes()),
                })
                .insert(Header {
                    key: RECORD_TIME_HEADER,
                    value: Some(stamp_text.as_bytes()),
                });
            let ticket = Box::new(Ticket {
                index,
                reports: reports.clone(),
            });
            let mut record = BaseRecord::with_opaque_to(&self.topic, ticket)
                .partition(partition as i32)
                .key(request.key.as_slice())
                .payload(request.value.as_slice())
                .headers(headers)
                .timestamp(stamp.micros().div_euclid(1000));
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        refused = Some(format!("record {index} (event {id}) refused: {e}"));
                        break;
                    }
                }
            }
            if refused.is_some() {
                break;
            }
        }
        drop(policy);
        drop(reports);

        // Every record handed over gets exactly one report (librdkafka's
        // guarantee, within message.timeout.ms); the channel closes once the
        // last ticket is gone. Wait for all of them even after a failure, so
        // nothing of this batch is still in flight when we answer.
        let mut positions = vec![None; batch.len()];
        let mut failed = refused;
        // librdkafka times each record out message.timeout.ms after it was
        // handed over; past that (and a margin) something is badly wrong.
        let grace = Instant::now() + self.delivery_timeout + Duration::from_secs(10);
        loop {
            let wait = grace.saturating_duration_since(Instant::now());
            match delivered.recv_timeout(wait) {
                Ok((index, Ok(at))) => positions[index] = Some(at),
                Ok((index, Err(e))) => {
                    failed.get_or_insert_with(|| {
                        format!(
                            "record {index} (event {}) not confirmed: {e}",
                            batch[index].event_id
                        )
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    failed.get_or_insert_with(|| "no delivery report in time".into());
                    break;
                }
            }
        }
        if let Some(reason) = failed {
            return Err(LogError::Unavailable(format!(
                "appending {} records to {}: {reason}",
                batch.len(),
                self.topic
            )));
        }
        positions
            .into_iter()
            .zip(stamps)
            .enumerate()
            .map(|(index, (at, stamp))| {
                let (partition, offset) = at.ok_or_else(|| {
                    LogError::Unavailable(format!("record {index}: no delivery report"))
                })?;
                Ok((partition, offset, stamp))
            })
            .collect()
    }

    /// Reads `partition` over `[from, end)` (`end` at most the next offset),
    /// giving each record its record time; see the [module docs](self).
    fn scan(
        &self,
        partition: Partition,
        from: Offset,
        end: Offset,
        first: Offset,
        mut emit: impl FnMut(LogRecord),
    ) -> Result<(), LogError> {
        let times = &self.times[partition as usize];
        let (mut next, mut last) = match lock(times).before(from) {
            Some((offset, time)) => (offset + 1, Some(time)),
            None => (0, None),
        };
        if next >= end {
            return Ok(());
        }
        if next < first {
            return Err(LogError::Corrupt {
                partition,
                offset: next,
                reason: format!(
                    "records before offset {first} were deleted from {}, so record times \
                     after them cannot be derived (the topic must keep every record)",
                    self.topic
                ),
            });
        }
        let unavailable =
            |e: String| LogError::Unavailable(format!("reading {}:{partition}: {e}", self.topic));

        let consumer = self.take_consumer()?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(
                &self.topic,
                partition as i32,
                KafkaOffset::Offset(next as i64),
            )
            .map_err(|e| unavailable(e.to_string()))?;
        consumer
            .assign(&assignment)
            .map_err(|e| unavailable(e.to_string()))?;
        let mut deadline = Instant::now() + self.request_timeout;
        // librdkafka reports transient trouble (a broker connection lost and
        // retried) as consumer errors and recovers by itself: keep polling
        // until the deadline, and name the last such error if it passes.
        let mut trouble = None;
        while next < end {
            if Instant::now() >= deadline {
                let trouble = trouble.map(|e| format!(" (last error: {e})"));
                return Err(unavailable(format!(
                    "no record at offset {next} within {:?}{}",
                    self.request_timeout,
                    trouble.unwrap_or_default()
                )));
            }
            let message = match consumer.poll(deadline.saturating_duration_since(Instant::now())) {
                Some(Ok(message)) => message,
                Some(Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset),
                ))) => {
                    return Err(LogError::Corrupt {
                        partition,
                        offset: next,
                        reason: format!("{} has no record there any more: {code}", self.topic),
                    })
                }
                Some(Err(e)) => {
                    tracing::debug!(partition, offset = next, error = %e, "reading again");
                    trouble = Some(e);
                    continue;
                }
                None => continue,
            };
            let offset = message.offset();
            if message.partition() != partition as i32 || offset < next as i64 {
                continue; // left over from an earlier assignment
            }
            let offset = offset as Offset;
            let (time, defect) = record_time(stamp_of(&message), last, &self.topic);
            last = Some(time);
            next = offset + 1;
            deadline = Instant::now() + self.request_timeout;
            if offset % CHECKPOINT_EVERY == 0 {
                lock(times).note(offset, time);
            }
            if offset >= from && offset < end {
                emit(to_record(&message, partition, offset, time, defect));
            }
        }
        if let Some(time) = last {
            lock(times).note(next - 1, time);
        }
        consumer
            .unassign()
            .map_err(|e| unavailable(e.to_string()))?;
        let mut idle = lock(&self.consumers);
        if idle.len() < IDLE_CONSUMERS {
            idle.push(consumer);
        }
        Ok(())
    }

    fn take_consumer(&self) -> Result<BaseConsumer, LogError> {
        if let Some(consumer) = lock(&self.consumers).pop() {
            return Ok(consumer);
        }
        BaseConsumer::from_config(&self.consumer_config)
            .map_err(|e| LogError::Unavailable(format!("creating a reader: {e}")))
    }
}

impl EventLog for KafkaLog {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    #[tracing::instrument(skip_all, fields(records = batch.len()))]
    fn append(&self, batch: Vec<AppendRequest>) -> Result<Vec<Appended>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let at = self.produce(&batch)?;
        let mut times: BTreeMap<(Partition, Offset), RecordTime> = BTreeMap::new();
        let mut spans: BTreeMap<Partition, Vec<(Offset, RecordTime)>> = BTreeMap::new();
        for &(partition, offset, stamp) in &at {
            spans.entry(partition).or_default().push((offset, stamp));
        }
        for (partition, mut ours) in spans {
            self.check(partition)?;
            ours.sort_unstable_by_key(|&(offset, _)| offset);
            let (low, high) = (ours[0].0, ours[ours.len() - 1].0);
            let dense = high - low + 1 == ours.len() as Offset;
            // The time of the record before ours, when known (`Some(None)`:
            // ours are the partition's first).
            let prior = match lock(&self.times[partition as usize]).before(low) {
                _ if low == 0 => Some(None),
                Some((offset, time)) if offset + 1 == low => Some(Some(time)),
                _ => None,
            };
            match prior {
                // Nobody else wrote between our records, and the time of
                // the record before them is known: every reader's rule,
                // computed here.
                Some(mut last) if dense => {
                    for (offset, stamp) in ours {
                        let (time, _) = record_time(Some(stamp), last, &self.topic);
                        times.insert((partition, offset), time);
                        last = Some(time);
                    }
                    if let Some(time) = last {
                        lock(&self.times[partition as usize]).note(high, time);
                    }
                }
                // Otherwise read the span back, others' records included.
                _ => {
                    let (first, _) = self.watermarks(partition)?;
                    self.scan(partition, low, high + 1, first, |r| {
                        times.insert((partition, r.offset), r.record_time);
                    })?;
                }
            }
        }
        at.into_iter()
            .map(|(partition, offset, _)| {
                let record_time = *times.get(&(partition, offset)).ok_or_else(|| {
                    LogError::Unavailable(format!(
                        "{}:{partition}:{offset} was confirmed but could not be read back",
                        self.topic
                    ))
                })?;
                Ok(Appended::New(Position {
                    partition,
                    offset,
                    record_time,
                }))
            })
            .collect()
    }

    fn read(
        &self,
        partition: Partition,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        self.check(partition)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let (first, next) = self.watermarks(partition)?;
        let end = next.min(from.saturating_add(max as Offset));
        let mut records = Vec::new();
        if from < end {
            self.scan(partition, from, end, first, |r| records.push(r))?;
        }
        Ok(records)
    }

    fn end_offset(&self, partition: Partition) -> Result<Offset, LogError> {
        self.check(partition)?;
        Ok(self.watermarks(partition)?.1)
    }

    fn identity(&self) -> Option<String> {
        Some(self.identity.clone())
    }

    fn remember_record_time(&self, partition: Partition, offset: Offset, time: RecordTime) {
        if let Some(times) = self.times.get(partition as usize) {
            lock(times).note(offset, time);
        }
    }

    fn wait_for(
        &self,
        partition: Partition,
        from: Offset,
        timeout: Duration,
    ) -> Result<bool, LogError> {
        self.check(partition)?;
        let deadline = Instant::now() + timeout;
        loop {
            if self.watermarks(partition)?.1 > from {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(left.min(WAIT_POLL));
        }
    }
}

/// The ledger's stamp on a record, if it has a readable one (the last
/// [`RECORD_TIME_HEADER`]).
fn stamp_of(message: &BorrowedMessage<'_>) -> Option<RecordTime> {
    let headers = message.headers()?;
    let value = headers
        .iter()
        .filter(|h| h.key == RECORD_TIME_HEADER)
        .last()?
        .value?;
    parse_stamp(value)
}

fn parse_stamp(value: &[u8]) -> Option<RecordTime> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().map(RecordTime::from_micros)
}

/// The record time of a record with `stamp` after one at `last`, and the
/// defect of an unstamped record. See the [module docs](self#record-time).
fn record_time(
    stamp: Option<RecordTime>,
    last: Option<RecordTime>,
    topic: &str,
) -> (RecordTime, Option<String>) {
    let after = last.map_or(RecordTime::from_micros(0), RecordTime::next);
    match stamp {
        Some(stamp) => (stamp.max(after), None),
        None => (
            last.map_or(RecordTime::from_micros(0), |l| l.next()),
            Some(format!(
                "the record has no {RECORD_TIME_HEADER} stamp: it was written straight to \
                 the events topic {topic}, not through the ledger (publish to the inbound \
                 topic instead)"
            )),
        ),
    }
}

fn to_record(
    message: &BorrowedMessage<'_>,
    partition: Partition,
    offset: Offset,
    record_time: RecordTime,
    defect: Option<String>,
) -> LogRecord {
    let mut headers: Vec<(String, Vec<u8>)> = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    // Ours are the last ones of their names; anything before was the producer's own.
    if let Some(i) = headers.iter().rposition(|(k, _)| k == RECORD_TIME_HEADER) {
        headers.remove(i);
    }
    let event_id = match headers.iter().rposition(|(k, _)| k == EVENT_ID_HEADER) {
        Some(i) => {
            let (_, id) = headers.remove(i);
            Uuid::try_parse_ascii(&id).unwrap_or(Uuid::nil())
        }
        None => Uuid::nil(),
    };
    LogRecord {
        partition,
        offset,
        record_time,
        key: message.key().unwrap_or_default().to_vec(),
        event_id,
        headers,
        value: message.payload().unwrap_or_default().to_vec(),
        defect,
    }
}

/// Makes sure `config.topic` exists with `config.partitions` partitions:
/// creates it (with `config.topic_config`) when absent, refuses an existing
/// one with another partition count. For the ledger's other topics (inbound,
/// dead letters, notices), which follow the events topic's rules.
pub fn ensure_topic(config: &KafkaConfig) -> Result<u32, LogError> {
    let client: BaseConsumer = BaseConsumer::from_config(&config.client_config()).map_err(|e| {
        LogError::Unavailable(format!("connecting for topic {}: {e}", config.topic))
    })?;
    ensure_topic_with(client.client(), config)
}

fn ensure_topic_with<C: ClientContext>(
    client: &Client<C>,
    config: &KafkaConfig,
) -> Result<u32, LogError> {
    if config.partitions == 0 {
        return Err(LogError::NoSuchPartition {
            partition: 0,
            partitions: 0,
        });
    }
    let partitions = match topic_partitions(client, &config.topic, config.request_timeout)? {
        Some(n) => n,
        None if !config.create_topic => return Err(LogError::NoSuchTopic(config.topic.clone())),
        None => {
            create_topic(config)?;
            wait_for_topic(client, &config.topic, config.request_timeout)?
        }
    };
    if partitions != config.partitions {
        return Err(LogError::PartitionCountMismatch {
            existing: partitions,
            requested: config.partitions,
        });
    }
    Ok(partitions)
}

/// The topic's partition count, or `None` if the cluster does not know it.
fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<u32>, LogError> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| LogError::Unavailable(format!("metadata of topic {topic}: {e}")))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None if !found.partitions().is_empty() => Ok(Some(found.partitions().len() as u32)),
        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
        Some(e) => Err(LogError::Unavailable(format!(
            "metadata of topic {topic}: {e}"
        ))),
    }
}

fn create_topic(config: &KafkaConfig) -> Result<(), LogError> {
    let topic = &config.topic;
    let admin: AdminClient<_> = AdminClient::from_config(&config.client_config())
        .map_err(|e| LogError::Unavailable(format!("creating topic {topic}: {e}")))?;
    let mut new = NewTopic::new(
        topic,
        config.partitions as i32,
        TopicReplication::Fixed(config.replication_factor),
    );
    for (key, value) in &config.topic_config {
        new = new.set(key, value);
    }
    let options = AdminOptions::new()
        .request_timeout(Some(config.request_timeout))
        .operation_timeout(Some(config.request_timeout));
    let results = block_on(admin.create_topics([&new], &options))
        .map_err(|e| LogError::Unavailable(format!("creating topic {topic}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, e)) => {
                return Err(LogError::Unavailable(format!(
                    "creating topic {topic}: {e}"
                )))
            }
        }
    }
    tracing::info!(%topic, partitions = config.partitions, "created a topic");
    Ok(())
}

/// Waits for a just-created topic to show in the metadata.
fn wait_for_topic<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<u32, LogError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(n) = topic_partitions(client, topic, timeout)? {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(LogError::Unavailable(format!(
                "topic {topic} was created but is not in the metadata after {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What remembers record times along a partition.
#[derive(Debug, Default)]
struct TimeIndex {
    /// At every [`CHECKPOINT_EVERY`]th offset.
    every: BTreeMap<Offset, RecordTime>,
    /// Ends of recent reads, the oldest dropped first.
    recent: BTreeMap<Offset, RecordTime>,
}

impl TimeIndex {
    /// The remembered record time at the greatest offset before `offset`.
    fn before(&self, offset: Offset) -> Option<(Offset, RecordTime)> {
        let a = self.every.range(..offset).next_back();
        let b = self.recent.range(..offset).next_back();
        a.max(b).map(|(o, t)| (*o, *t))
    }

    /// The remembered time at the greatest offset.
    fn latest(&self) -> Option<RecordTime> {
        self.before(Offset::MAX).map(|(_, t)| t)
    }

    fn note(&mut self, offset: Offset, time: RecordTime) {
        if offset % CHECKPOINT_EVERY == 0 {
            self.every.insert(offset, time);
        } else {
            self.recent.insert(offset, time);
            if self.recent.len() > RECENT_CHECKPOINTS {
                self.recent.pop_first();
            }
        }
    }
}

/// One record's delivery report: its index in the batch and where it landed.
type Report = (usize, Result<(Partition, Offset), KafkaError>);

/// Where one record's delivery report goes.
struct Ticket {
    index: usize,
    reports: mpsc::Sender<Report>,
}

/// The producer context: hands each delivery report to the append waiting for it.
struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let report = match result {
            Ok(m) => Ok((m.partition() as Partition, m.offset() as Offset)),
            Err((e, _)) => Err(e.clone()),
        };
        // The append may have given up waiting; then nobody listens.
        let _ = ticket.reports.send((ticket.index, report));
    }
}

/// Runs a future to completion on this thread (the admin client's futures
/// are completed by rdkafka's own thread; no runtime needed).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(micros: i64) -> RecordTime {
        RecordTime::from_micros(micros)
    }

    #[test]
    fn record_time_is_the_stamp_made_strictly_increasing() {
        let time = |stamp, last| record_time(stamp, last, "events").0;
        assert_eq!(time(Some(t(5_000)), None), t(5_000));
        assert_eq!(time(Some(t(5_000)), Some(t(4_000))), t(5_000));
        // Same microsecond: one on.
        assert_eq!(time(Some(t(5_000)), Some(t(5_000))), t(5_001));
        // A stamp going back does not take the record time with it.
        assert_eq!(time(Some(t(1)), Some(t(5_001))), t(5_002));
    }

    #[test]
    fn an_unstamped_record_is_a_defect_that_moves_time_by_one_microsecond() {
        let (time, defect) = record_time(None, Some(t(9)), "events");
        assert_eq!(time, t(10));
        let defect = defect.expect("a defect");
        assert!(
            defect.contains(RECORD_TIME_HEADER) && defect.contains("events"),
            "{defect}"
        );
        assert_eq!(record_time(None, None, "events").0, t(0));
    }

    #[test]
    fn stamps_are_plain_decimal_microseconds() {
        assert_eq!(
            parse_stamp(b"1712102400000000"),
            Some(t(1_712_102_400_000_000))
        );
        for bad in [
            &b""[..],
            b"-5",
            b"+5",
            b"1e6",
            b" 5",
            b"99999999999999999999",
            b"\xff",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn time_index_finds_the_nearest_earlier_time_and_stays_bounded() {
        let mut index = TimeIndex::default();
        assert_eq!(index.before(10), None);
        index.note(0, t(1));
        index.note(CHECKPOINT_EVERY, t(2));
        index.note(CHECKPOINT_EVERY + 5, t(3));
        assert_eq!(index.before(0), None);
        assert_eq!(index.before(1), Some((0, t(1))));
        assert_eq!(
            index.before(CHECKPOINT_EVERY + 5),
            Some((CHECKPOINT_EVERY, t(2)))
        );
        assert_eq!(index.before(u64::MAX), Some((CHECKPOINT_EVERY + 5, t(3))));
        for i in 1..1000 {
            index.note(CHECKPOINT_EVERY * 3 + i, t(i as i64));
        }
        assert_eq!(index.recent.len(), RECENT_CHECKPOINTS);
        assert_eq!(index.every.len(), 2);
    }

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        use std::pin::Pin;
        use std::sync::atomic::{AtomicBool, Ordering};

        struct SetLater(Arc<AtomicBool>, bool);
        impl Future for SetLater {
            type Output = u32;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
                if self.0.load(Ordering::SeqCst) {
                    return Poll::Ready(7);
                }
                if !self.1 {
                    self.1 = true;
                    let (flag, waker) = (self.0.clone(), cx.waker().clone());
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(20));
                        flag.store(true, Ordering::SeqCst);
                        waker.wake();
                    });
                }
                Poll::Pending
            }
        }
        assert_eq!(block_on(SetLater(Arc::default(), false)), 7);
    }
}
