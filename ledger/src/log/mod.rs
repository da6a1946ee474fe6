//! The event log of record: an append-only, partitioned sequence of events.
//!
//! One interface, [`EventLog`], with the embedded RocksDB log as the default
//! ([`embedded::EmbeddedLog`]) and Kafka behind the same trait. Records are
//! keyed by the person's link number (紐付番号); the key picks the partition, so
//! one person's events are totally ordered. The log stamps each record with its
//! [`RecordTime`], monotonic per partition and stored with the record, so every
//! replay sees the same times.
//!
//! The log stores opaque bytes (Avro single-object encoded events); it does not
//! decode or validate them — that is intake's and the projectors' job.

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod partitioner;

use std::time::Duration;

use uuid::Uuid;

use crate::domain::time::RecordTime;

/// A partition number, `0..partitions`.
pub type Partition = u32;
/// An offset within a partition; the first record has offset 0.
pub type Offset = u64;

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    /// Partitioning key: the person's link number, as bytes.
    pub key: Vec<u8>,
    /// The event's id (UUIDv7), used to acknowledge a re-sent event again
    /// without appending it twice where the log can tell.
    pub event_id: Uuid,
    /// Kafka-style headers (name, value), kept with the record.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The encoded event.
    pub value: Vec<u8>,
    /// The producer's timestamp (Kafka's CreateTime). Used as the record
    /// time only under [`RecordTimePolicy::CreateTime`], and then clamped.
    pub timestamp: Option<RecordTime>,
}

/// How the log chooses a record's time. Either way record times strictly
/// increase within a partition and are stored with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordTimePolicy {
    /// The log's clock when it appends (Kafka's `LogAppendTime`). The default.
    #[default]
    LogAppendTime,
    /// The producer's timestamp where given (Kafka's `CreateTime`), clamped
    /// to at most `max_future_micros` past the log's clock, so a skewed
    /// producer cannot drag later record times of its partition into the
    /// future. For importing history whose producers' times are the truth.
    CreateTime { max_future_micros: i64 },
}

impl RecordTimePolicy {
    /// The record time of a request appended at `now` after `last`.
    pub fn stamp(
        self,
        now: RecordTime,
        timestamp: Option<RecordTime>,
        last: Option<RecordTime>,
    ) -> RecordTime {
        let base = match (self, timestamp) {
            (RecordTimePolicy::CreateTime { max_future_micros }, Some(ts)) => ts.min(
                RecordTime::from_micros(now.micros().saturating_add(max_future_micros)),
            ),
            _ => now,
        };
        match last {
            Some(last) => base.max(last.next()),
            None => base,
        }
    }
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: Partition,
    pub offset: Offset,
    pub record_time: RecordTime,
}

/// The outcome of one append request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Newly and durably appended.
    New(Position),
    /// An event with this id was already in the log; this is where it is.
    Duplicate(Position),
}

impl Appended {
    pub fn position(&self) -> Position {
        match self {
            Appended::New(p) | Appended::Duplicate(p) => *p,
        }
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub partition: Partition,
    pub offset: Offset,
    pub record_time: RecordTime,
    pub key: Vec<u8>,
    pub event_id: Uuid,
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
    /// Set when the log cannot vouch for the record, with the reason (Kafka:
    /// a record written straight to the events topic, not through the
    /// ledger, so it has no record time of the ledger's). The projector
    /// dead-letters such a record. Always `None` in the embedded log.
    pub defect: Option<String>,
}

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("log storage at {path}: {source}")]
    Storage {
        path: String,
        source: rocksdb::Error,
    },
    #[error("log record {partition}:{offset} is corrupt: {reason}")]
    Corrupt {
        partition: Partition,
        offset: Offset,
        reason: String,
    },
    #[error("partition {partition} does not exist (the log has {partitions})")]
    NoSuchPartition {
        partition: Partition,
        partitions: u32,
    },
    #[error("the log was created with {existing} partitions, not {requested}")]
    PartitionCountMismatch { existing: u32, requested: u32 },
    #[error("the log is closed")]
    Closed,
    #[error("topic {0} does not exist (and was not to be created)")]
    NoSuchTopic(String),
    #[error("log unavailable, retry later: {0}")]
    Unavailable(String),
}

/// The event log: durable, append-only, partitioned by key.
pub trait EventLog: Send + Sync + std::fmt::Debug {
    /// Number of partitions; fixed for the life of the log.
    fn partitions(&self) -> u32;

    /// The partition a key's records go to.
    fn partition_for(&self, key: &[u8]) -> Partition {
        partitioner::partition_for(key, self.partitions())
    }

    /// Appends the batch; returns once every record is durable (synced), one
    /// outcome per request, in order.
    fn append(&self, batch: Vec<AppendRequest>) -> Result<Vec<Appended>, LogError>;

    /// Up to `max` records of `partition` from offset `from` on, in offset order.
    fn read(
        &self,
        partition: Partition,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError>;

    /// The offset the next appended record of `partition` will get.
    fn end_offset(&self, partition: Partition) -> Result<Offset, LogError>;

    /// A stable name of this log (`embedded:<uuid>`, `kafka:<cluster>/<topic>`),
    /// which views store so they are never resumed over another log. `None`
    /// when the log cannot name itself (an old embedded log opened read-only).
    fn identity(&self) -> Option<String> {
        None
    }

    /// Tells the log the record time it gave the record at `offset` of
    /// `partition`, as a reader stored it (a projector's last applied
    /// record), so a log that derives record times from the partition's
    /// history (Kafka) can start there instead of at offset 0. It must be
    /// exactly the time this log reported. The embedded log stores every
    /// record's time and ignores it.
    fn remember_record_time(&self, partition: Partition, offset: Offset, time: RecordTime) {
        let _ = (partition, offset, time);
    }

    /// Blocks until `partition` has a record at `from` or later, or `timeout`
    /// passes; returns whether one is there.
    fn wait_for(
        &self,
        partition: Partition,
        from: Offset,
        timeout: Duration,
    ) -> Result<bool, LogError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(micros: i64) -> RecordTime {
        RecordTime::from_micros(micros)
    }

    #[test]
    fn log_append_time_ignores_producer_clocks_and_never_goes_back() {
        let p = RecordTimePolicy::LogAppendTime;
        assert_eq!(p.stamp(t(100), Some(t(5)), None), t(100));
        assert_eq!(p.stamp(t(100), None, Some(t(150))), t(151));
    }

    #[test]
    fn create_time_clamps_a_skewed_future_producer() {
        let p = RecordTimePolicy::CreateTime {
            max_future_micros: 10,
        };
        // History: the producer's time is used.
        assert_eq!(p.stamp(t(1_000), Some(t(50)), Some(t(40))), t(50));
        // A producer far in the future is clamped to now + 10 ...
        let skewed = p.stamp(t(1_000), Some(t(9_999_999)), Some(t(50)));
        assert_eq!(skewed, t(1_010));
        // ... so the next honest record is not dragged past it by much.
        assert_eq!(p.stamp(t(1_001), Some(t(1_001)), Some(skewed)), t(1_011));
        // Never backwards within a partition.
        assert_eq!(p.stamp(t(2_000), Some(t(10)), Some(t(1_500))), t(1_501));
        // No producer timestamp: the log's clock.
        assert_eq!(p.stamp(t(2_000), None, None), t(2_000));
    }
}
