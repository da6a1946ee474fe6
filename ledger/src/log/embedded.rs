//! The embedded event log: RocksDB in a local directory, durable before it acknowledges.
//!
//! [`EmbeddedLog`] is the default [`EventLog`]: one process, one directory, no
//! broker. It keeps the trait's promises: offsets dense from 0 per partition, a
//! [`RecordTime`] strictly increasing per partition and stored with the record,
//! and an event id appended at most once.
//!
//! ```
//! use ledger::log::{AppendRequest, Appended, EventLog};
//! use ledger::log::embedded::EmbeddedLog;
//!
//! let dir = tempfile::tempdir()?;
//! let log = EmbeddedLog::open(dir.path(), 4)?;
//! let event = AppendRequest {
//!     timestamp: None,
//!     key: b"LINK-000123".to_vec(),
//!     event_id: uuid::Uuid::now_v7(),
//!     headers: vec![],
//!     value: b"avro bytes".to_vec(),
//! };
//! let first = log.append(vec![event.clone()])?;
//! assert!(matches!(first[0], Appended::New(p) if p.offset == 0));
//! // Sent again (a client retry): acknowledged at the same place, stored once.
//! assert_eq!(log.append(vec![event])?[0], Appended::Duplicate(first[0].position()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Durability and group commit
//!
//! Every [`append`](EventLog::append) is sent over a channel to one writer
//! thread and waits for its answer. The writer takes the first request, drains
//! whatever else is queued (up to [`MAX_GROUP_RECORDS`]), assigns offsets and
//! record times, writes the whole group as one RocksDB `WriteBatch` with
//! `sync = true` (WAL on, fsync before the write returns) and only then answers
//! each caller. So an acknowledged append has reached the disk and survives
//! `kill -9` and power loss, and callers arriving while an fsync is in flight
//! share the next one. A `WriteBatch` is atomic, so after a crash a group is
//! there whole or not at all and offsets stay dense. RocksDB replays the WAL at
//! open in point-in-time mode: a torn tail (a group that was never
//! acknowledged) is dropped. If a write fails, that group's callers get the
//! error and the writer refuses all later appends until the log is reopened:
//! the failed group may yet be in the WAL, and only recovery knows.
//!
//! The writer alone assigns offsets and times, from its own copy of each
//! partition's next offset and last record time (recovered at open from the last
//! key of each partition). Once a group is durable it publishes the new end
//! offsets and wakes [`wait_for`](EventLog::wait_for) through a `Condvar`.
//! [`close`](EmbeddedLog::close) (or dropping the log) stops the writer after it
//! has answered everything already queued.
//!
//! # Layout
//!
//! Three column families; every byte is built in the `layout` module at the
//! bottom of this file, which owns [`FORMAT_VERSION`]:
//!
//! | family      | key                                   | value                              |
//! |-------------|---------------------------------------|------------------------------------|
//! | `records`   | partition u32 BE ++ offset u64 BE     | encoded record (first byte: version) |
//! | `event_ids` | event id, 16 bytes                    | partition u32 BE ++ offset u64 BE  |
//! | `meta`      | `format_version`, `partitions`        | u8; u32 BE                         |
//!
//! # Readers beside a running server
//!
//! [`EmbeddedLog::open_read_only`] opens the directory without taking RocksDB's
//! lock, for audits and CLI queries while a server appends. It sees the log as
//! it was when opened (synced appends included); reopen to see later ones.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode,
    Options, WriteBatch, WriteOptions, DB,
};
use uuid::Uuid;

use self::layout::RecordKey;
use super::{
    partitioner, AppendRequest, Appended, EventLog, LogError, LogRecord, Offset, Partition,
    Position, RecordTimePolicy,
};
use crate::domain::time::RecordTime;

pub use self::layout::FORMAT_VERSION;

/// The most records the writer puts in one group (one synced `WriteBatch`).
/// A single append larger than this still goes in whole, as its own group.
pub const MAX_GROUP_RECORDS: usize = 16_384;

/// The embedded, durable event log. See the [module docs](self).
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// The way to the writer thread; `None` once closed, and always for a
    /// read-only log.
    writer: Mutex<Option<WriterHandle>>,
    read_only: bool,
}

/// What the callers and the writer thread share.
struct Shared {
    db: DB,
    path: PathBuf,
    partitions: u32,
    /// Per partition, the offset after the last durable record.
    ends: Mutex<Vec<Offset>>,
    /// Notified after each durable group.
    appended: Condvar,
    /// How record times are chosen.
    policy: Mutex<RecordTimePolicy>,
    /// `embedded:<uuid>`, made when the log is first opened for writing.
    identity: Option<String>,
}

struct WriterHandle {
    jobs: Sender<Job>,
    thread: JoinHandle<()>,
}

/// One caller's append, waiting for the writer.
struct Job {
    batch: Vec<AppendRequest>,
    reply: SyncSender<Result<Vec<Appended>, LogError>>,
}

#[derive(Clone, Copy)]
enum OpenMode {
    Create(u32),
    Existing,
    ReadOnly,
}

impl EmbeddedLog {
    /// Opens the log in `dir`, creating it with `partitions` partitions if it
    /// does not exist yet.
    ///
    /// An existing log keeps the partition count it was created with; asking
    /// for another is [`LogError::PartitionCountMismatch`]. Zero partitions is
    /// refused as [`LogError::NoSuchPartition`].
    pub fn open(dir: &Path, partitions: u32) -> Result<EmbeddedLog, LogError> {
        if partitions == 0 {
            return Err(LogError::NoSuchPartition {
                partition: 0,
                partitions: 0,
            });
        }
        EmbeddedLog::open_with(dir, OpenMode::Create(partitions))
    }

    /// Opens an existing log with the partition count stored in it.
    pub fn open_existing(dir: &Path) -> Result<EmbeddedLog, LogError> {
        EmbeddedLog::open_with(dir, OpenMode::Existing)
    }

    /// Opens an existing log for reading only, beside a process that may have it
    /// open for appending. Sees the log as of this call; appends are refused.
    pub fn open_read_only(dir: &Path) -> Result<EmbeddedLog, LogError> {
        EmbeddedLog::open_with(dir, OpenMode::ReadOnly)
    }

    /// Chooses how record times are stamped from now on (default:
    /// [`RecordTimePolicy::LogAppendTime`]).
    pub fn set_record_time_policy(&self, policy: RecordTimePolicy) {
        *lock(&self.shared.policy) = policy;
    }

    /// The directory the log lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Stops the writer once it has answered every append already queued;
    /// later appends get [`LogError::Closed`]. Reads keep working. Closing
    /// twice is harmless; dropping the log closes it.
    pub fn close(&self) -> Result<(), LogError> {
        let Some(WriterHandle { jobs, thread }) = lock(&self.writer).take() else {
            return Ok(());
        };
        // The writer leaves its loop once every sender is gone and the queue
        // is empty; appends in flight hold their own clone until they have sent.
        drop(jobs);
        thread
            .join()
            .map_err(|_| LogError::Unavailable("the log writer thread panicked".into()))
    }

    fn open_with(dir: &Path, mode: OpenMode) -> Result<EmbeddedLog, LogError> {
        let storage = |source| LogError::Storage {
            path: dir.display().to_string(),
            source,
        };
        let create = matches!(mode, OpenMode::Create(_));

        let mut opts = Options::default();
        opts.create_if_missing(create);
        opts.create_missing_column_families(create);
        // Synced groups come before any torn tail, so stopping replay at the
        // first bad WAL record loses nothing that was acknowledged.
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        opts.set_keep_log_file_num(8);
        let families = layout::COLUMN_FAMILIES.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Lz4);
            if *name == layout::CF_EVENT_IDS {
                // Every append asks for ids that are almost never there:
                // bloom filters answer "absent" without reading a block, in
                // the files and in the memtable.
                let mut table = BlockBasedOptions::default();
                table.set_bloom_filter(10.0, false);
                table.set_whole_key_filtering(true);
                cf.set_block_based_table_factory(&table);
                cf.set_memtable_whole_key_filtering(true);
                cf.set_memtable_prefix_bloom_ratio(0.1);
            }
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = match mode {
            OpenMode::ReadOnly => DB::open_cf_descriptors_read_only(&opts, dir, families, false),
            OpenMode::Create(_) | OpenMode::Existing => {
                DB::open_cf_descriptors(&opts, dir, families)
            }
        }
        .map_err(storage)?;

        let partitions = read_or_create_meta(&db, dir, mode)?;
        let identity = log_identity(&db, dir, mode)?;
        let tails = recover_tails(&db, dir, partitions)?;
        let shared = Arc::new(Shared {
            db,
            path: dir.to_path_buf(),
            partitions,
            ends: Mutex::new(tails.iter().map(|t| t.next).collect()),
            appended: Condvar::new(),
            policy: Mutex::new(RecordTimePolicy::default()),
            identity,
        });

        let writer = match mode {
            OpenMode::ReadOnly => None,
            OpenMode::Create(_) | OpenMode::Existing => {
                let (jobs, queue) = mpsc::channel();
                let writer = Writer {
                    shared: Arc::clone(&shared),
                    tails,
                    failed: None,
                };
                let thread = std::thread::Builder::new()
                    .name("qledger-log-writer".into())
                    .spawn(move || writer.run(queue))
                    .map_err(|e| {
                        LogError::Unavailable(format!("cannot start the log writer: {e}"))
                    })?;
                Some(WriterHandle { jobs, thread })
            }
        };
        tracing::info!(path = %dir.display(), partitions, read_only = writer.is_none(), "event log opened");
        Ok(EmbeddedLog {
            shared,
            read_only: writer.is_none(),
            writer: Mutex::new(writer),
        })
    }

    fn check_partition(&self, partition: Partition) -> Result<usize, LogError> {
        if partition < self.shared.partitions {
            Ok(partition as usize)
        } else {
            Err(LogError::NoSuchPartition {
                partition,
                partitions: self.shared.partitions,
            })
        }
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the event log");
        }
    }
}

impl fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("path", &self.shared.path)
            .field("partitions", &self.shared.partitions)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl EventLog for EmbeddedLog {
    fn partitions(&self) -> u32 {
        self.shared.partitions
    }

    fn identity(&self) -> Option<String> {
        self.shared.identity.clone()
    }

    #[tracing::instrument(skip_all, fields(records = batch.len()))]
    fn append(&self, batch: Vec<AppendRequest>) -> Result<Vec<Appended>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = match &*lock(&self.writer) {
            Some(writer) => writer.jobs.clone(),
            None if self.read_only => {
                return Err(LogError::Unavailable(format!(
                    "the log at {} is open read-only; appends go through the process that owns it",
                    self.shared.path.display()
                )))
            }
            None => return Err(LogError::Closed),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        jobs.send(Job { batch, reply })
            .map_err(|_| LogError::Closed)?;
        drop(jobs);
        answer
            .recv()
            .map_err(|_| LogError::Unavailable("the log writer stopped before answering".into()))?
    }

    fn read(
        &self,
        partition: Partition,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        self.check_partition(partition)?;
        let mut records = Vec::new();
        if max == 0 {
            return Ok(records);
        }
        let mut it = self
            .shared
            .db
            .raw_iterator_cf(self.shared.cf(layout::CF_RECORDS));
        it.seek(RecordKey::new(partition, from));
        while records.len() < max {
            let Some((key, value)) = it.item() else { break };
            let key = RecordKey::decode(key).ok_or_else(|| LogError::Corrupt {
                partition,
                offset: from,
                reason: format!(
                    "a record key of {} bytes, expected {}",
                    key.len(),
                    RecordKey::LEN
                ),
            })?;
            if key.partition() != partition {
                break;
            }
            let offset = key.offset();
            let stored = layout::decode_record(value).map_err(|reason| LogError::Corrupt {
                partition,
                offset,
                reason,
            })?;
            records.push(LogRecord {
                partition,
                offset,
                record_time: stored.record_time,
                key: stored.key,
                event_id: stored.event_id,
                headers: stored.headers,
                value: stored.value,
                defect: None,
            });
            it.next();
        }
        it.status().map_err(|e| self.shared.storage(e))?;
        Ok(records)
    }

    fn end_offset(&self, partition: Partition) -> Result<Offset, LogError> {
        let p = self.check_partition(partition)?;
        Ok(lock(&self.shared.ends)[p])
    }

    fn wait_for(
        &self,
        partition: Partition,
        from: Offset,
        timeout: Duration,
    ) -> Result<bool, LogError> {
        let p = self.check_partition(partition)?;
        let deadline = Instant::now().checked_add(timeout);
        let mut ends = lock(&self.shared.ends);
        loop {
            if ends[p] > from {
                return Ok(true);
            }
            ends = match deadline {
                None => self
                    .shared
                    .appended
                    .wait(ends)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    self.shared
                        .appended
                        .wait_timeout(ends, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl Shared {
    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("every column family is opened with the log")
    }

    fn storage(&self, source: rocksdb::Error) -> LogError {
        LogError::Storage {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Where the event with this id is, if it is in the log.
    fn find_event(&self, event_id: Uuid) -> Result<Option<Position>, LogError> {
        let Some(entry) = self
            .db
            .get_pinned_cf(
                self.cf(layout::CF_EVENT_IDS),
                layout::event_id_key(event_id),
            )
            .map_err(|e| self.storage(e))?
        else {
            return Ok(None);
        };
        let key = RecordKey::decode(&entry).ok_or_else(|| LogError::Corrupt {
            partition: 0,
            offset: 0,
            reason: format!(
                "the index entry of event {event_id} is {} bytes, expected {}",
                entry.len(),
                RecordKey::LEN
            ),
        })?;
        let (partition, offset) = (key.partition(), key.offset());
        let corrupt = |reason| LogError::Corrupt {
            partition,
            offset,
            reason,
        };
        let bytes = self
            .db
            .get_pinned_cf(self.cf(layout::CF_RECORDS), key)
            .map_err(|e| self.storage(e))?
            .ok_or_else(|| corrupt(format!("indexed for event {event_id} but missing")))?;
        let stored = layout::decode_record(&bytes).map_err(corrupt)?;
        if stored.event_id != event_id {
            return Err(corrupt(format!(
                "indexed for event {event_id} but holds event {}",
                stored.event_id
            )));
        }
        Ok(Some(Position {
            partition,
            offset,
            record_time: stored.record_time,
        }))
    }
}

/// A partition's next offset and last record time, as the writer sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tail {
    next: Offset,
    last_time: RecordTime,
}

impl Tail {
    const EMPTY: Tail = Tail {
        next: 0,
        last_time: RecordTime::MIN,
    };
}

/// The single writer thread: the only code that assigns offsets and times.
struct Writer {
    shared: Arc<Shared>,
    tails: Vec<Tail>,
    /// Set when a write failed. The failed group may still be in the WAL, and
    /// reusing its offsets could put a second record under an event id's
    /// position, so the writer refuses everything until the log is reopened
    /// (which recovers the tails from what is really on disk).
    failed: Option<String>,
}

/// A group ready to be written: the batch, the tails after it, and each job's outcomes.
struct Staged {
    batch: WriteBatch,
    tails: Vec<Tail>,
    outcomes: Vec<Vec<Appended>>,
}

impl Writer {
    fn run(mut self, queue: Receiver<Job>) {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        sync.disable_wal(false);
        while let Ok(first) = queue.recv() {
            let mut records = first.batch.len();
            let mut group = vec![first];
            while records < MAX_GROUP_RECORDS {
                match queue.try_recv() {
                    Ok(job) => {
                        records += job.batch.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group, records, &sync);
        }
    }

    /// Stages the group, writes it synced, publishes the new ends and answers
    /// every job. On failure every job gets the error and nothing is assigned.
    fn commit(&mut self, group: Vec<Job>, records: usize, sync: &WriteOptions) {
        let started = Instant::now();
        let result = match &self.failed {
            Some(failure) => Err(LogError::Unavailable(format!(
                "an earlier write failed ({failure}); no appends until the log is reopened"
            ))),
            None => self.stage(&group).and_then(|staged| {
                let new = staged
                    .outcomes
                    .iter()
                    .flatten()
                    .filter(|a| matches!(a, Appended::New(_)))
                    .count();
                if new > 0 {
                    if let Err(e) = self.shared.db.write_opt(staged.batch, sync) {
                        self.failed = Some(e.to_string());
                        return Err(self.shared.storage(e));
                    }
                }
                Ok((staged.tails, staged.outcomes, new))
            }),
        };
        match result {
            Ok((tails, outcomes, new)) => {
                if new > 0 {
                    self.publish(tails);
                }
                tracing::debug!(
                    appends = group.len(),
                    records,
                    new,
                    micros = started.elapsed().as_micros() as u64,
                    "log group committed"
                );
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    // A caller that gave up waiting is no reason to stop.
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, appends = group.len(), records, "log group commit failed");
                for job in group {
                    let _ = job.reply.send(Err(replicate(&e)));
                }
            }
        }
    }

    fn stage(&self, group: &[Job]) -> Result<Staged, LogError> {
        let shared = &*self.shared;
        let (records_cf, event_ids_cf) = (
            shared.cf(layout::CF_RECORDS),
            shared.cf(layout::CF_EVENT_IDS),
        );
        let now = RecordTime::now();
        let policy = *lock(&shared.policy);
        let mut tails = self.tails.clone();
        let mut seen: HashMap<Uuid, Position> = HashMap::new();
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::with_capacity(group.len());
        for job in group {
            let mut outcome = Vec::with_capacity(job.batch.len());
            for request in &job.batch {
                let known = match seen.get(&request.event_id) {
                    Some(position) => Some(*position),
                    None => shared.find_event(request.event_id)?,
                };
                if let Some(original) = known {
                    seen.insert(request.event_id, original);
                    outcome.push(Appended::Duplicate(original));
                    continue;
                }
                let partition = partitioner::partition_for(&request.key, shared.partitions);
                let tail = &mut tails[partition as usize];
                let position = Position {
                    partition,
                    offset: tail.next,
                    record_time: policy.stamp(now, request.timestamp, Some(tail.last_time)),
                };
                let key = RecordKey::new(partition, position.offset);
                batch.put_cf(
                    records_cf,
                    key,
                    layout::encode_record(position.record_time, request),
                );
                batch.put_cf(event_ids_cf, layout::event_id_key(request.event_id), key);
                *tail = Tail {
                    next: position.offset + 1,
                    last_time: position.record_time,
                };
                seen.insert(request.event_id, position);
                outcome.push(Appended::New(position));
            }
            outcomes.push(outcome);
        }
        Ok(Staged {
            batch,
            tails,
            outcomes,
        })
    }

    fn publish(&mut self, tails: Vec<Tail>) {
        self.tails = tails;
        let mut ends = lock(&self.shared.ends);
        for (end, tail) in ends.iter_mut().zip(&self.tails) {
            *end = tail.next;
        }
        drop(ends);
        self.shared.appended.notify_all();
    }
}

/// The same error again, for each caller of a failed group.
fn replicate(e: &LogError) -> LogError {
    match e {
        LogError::Storage { path, source } => LogError::Storage {
            path: path.clone(),
            source: source.clone(),
        },
        LogError::Corrupt {
            partition,
            offset,
            reason,
        } => LogError::Corrupt {
            partition: *partition,
            offset: *offset,
            reason: reason.clone(),
        },
        LogError::NoSuchPartition {
            partition,
            partitions,
        } => LogError::NoSuchPartition {
            partition: *partition,
            partitions: *partitions,
        },
        LogError::PartitionCountMismatch {
            existing,
            requested,
        } => LogError::PartitionCountMismatch {
            existing: *existing,
            requested: *requested,
        },
        LogError::Closed => LogError::Closed,
        other => LogError::Unavailable(other.to_string()),
    }
}

/// Reads the stored format version and partition count, or stores them when
/// creating the log.
fn read_or_create_meta(db: &DB, dir: &Path, mode: OpenMode) -> Result<u32, LogError> {
    let storage = |source| LogError::Storage {
        path: dir.display().to_string(),
        source,
    };
    let meta = db
        .cf_handle(layout::CF_META)
        .expect("opened with the meta column family");
    let version = db
        .get_cf(meta, layout::META_FORMAT_VERSION)
        .map_err(storage)?;
    let stored = db.get_cf(meta, layout::META_PARTITIONS).map_err(storage)?;
    let not_a_log = |what: String| {
        LogError::Unavailable(format!(
            "{} does not hold a usable event log: {what}",
            dir.display()
        ))
    };
    match (version, stored) {
        (Some(version), Some(stored)) => {
            if version.as_slice() != [FORMAT_VERSION] {
                return Err(not_a_log(format!(
                    "format version {version:?}, this build reads [{FORMAT_VERSION}]"
                )));
            }
            let existing = layout::decode_partitions(&stored).ok_or_else(|| {
                not_a_log(format!(
                    "a stored partition count of {} bytes",
                    stored.len()
                ))
            })?;
            match mode {
                OpenMode::Create(requested) if requested != existing => {
                    Err(LogError::PartitionCountMismatch {
                        existing,
                        requested,
                    })
                }
                _ => Ok(existing),
            }
        }
        (None, None) => match mode {
            OpenMode::Create(partitions) => {
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, layout::META_FORMAT_VERSION, [FORMAT_VERSION]);
                batch.put_cf(
                    meta,
                    layout::META_PARTITIONS,
                    layout::encode_partitions(partitions),
                );
                let mut sync = WriteOptions::default();
                sync.set_sync(true);
                db.write_opt(batch, &sync).map_err(storage)?;
                Ok(partitions)
            }
            OpenMode::Existing | OpenMode::ReadOnly => {
                Err(not_a_log("no partition count stored".into()))
            }
        },
        (version, stored) => Err(not_a_log(format!(
            "format version {}, partition count {}",
            if version.is_some() {
                "present"
            } else {
                "missing"
            },
            if stored.is_some() {
                "present"
            } else {
                "missing"
            },
        ))),
    }
}

/// The log's name, made (and synced) the first time it is opened for writing.
fn log_identity(db: &DB, dir: &Path, mode: OpenMode) -> Result<Option<String>, LogError> {
    let storage = |source| LogError::Storage {
        path: dir.display().to_string(),
        source,
    };
    let meta = db
        .cf_handle(layout::CF_META)
        .expect("opened with the meta column family");
    if let Some(id) = db.get_cf(meta, layout::META_LOG_ID).map_err(storage)? {
        return Ok(Some(String::from_utf8_lossy(&id).into_owned()));
    }
    if matches!(mode, OpenMode::ReadOnly) {
        return Ok(None);
    }
    let id = format!("embedded:{}", Uuid::now_v7());
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.put_cf_opt(meta, layout::META_LOG_ID, id.as_bytes(), &sync)
        .map_err(storage)?;
    Ok(Some(id))
}

/// Each partition's next offset and last record time, from its last record.
fn recover_tails(db: &DB, dir: &Path, partitions: u32) -> Result<Vec<Tail>, LogError> {
    let records = db
        .cf_handle(layout::CF_RECORDS)
        .expect("opened with the records column family");
    let mut it = db.raw_iterator_cf(records);
    let mut tails = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        it.seek_for_prev(RecordKey::new(partition, Offset::MAX));
        let last = it
            .item()
            .and_then(|(key, value)| Some((RecordKey::decode(key)?, value)));
        let tail = match last {
            Some((key, value)) if key.partition() == partition => {
                let offset = key.offset();
                let stored = layout::decode_record(value).map_err(|reason| LogError::Corrupt {
                    partition,
                    offset,
                    reason,
                })?;
                Tail {
                    next: offset + 1,
                    last_time: stored.record_time,
                }
            }
            _ => Tail::EMPTY,
        };
        tails.push(tail);
    }
    it.status().map_err(|source| LogError::Storage {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(tails)
}

/// Locks, ignoring poisoning: every value behind these mutexes is whole at all times.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every byte the embedded log writes: column families, keys, record encoding.
///
/// Keys are big-endian so byte order is (partition, offset) order. Bump
/// [`FORMAT_VERSION`] on any change to the record encoding; an older log is
/// then refused at open.
mod layout {
    use uuid::Uuid;

    use crate::domain::time::RecordTime;
    use crate::log::{AppendRequest, Offset, Partition};

    /// The record encoding version, stored as each record's first byte and in `meta`.
    pub const FORMAT_VERSION: u8 = 1;

    pub const CF_RECORDS: &str = "records";
    pub const CF_EVENT_IDS: &str = "event_ids";
    pub const CF_META: &str = "meta";
    pub const COLUMN_FAMILIES: [&str; 3] = [CF_RECORDS, CF_EVENT_IDS, CF_META];

    pub const META_FORMAT_VERSION: &[u8] = b"format_version";
    pub const META_PARTITIONS: &[u8] = b"partitions";
    pub const META_LOG_ID: &[u8] = b"log_id";

    /// `partition u32 BE ++ offset u64 BE`: the key of a record, and the value
    /// of its `event_ids` entry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub struct RecordKey([u8; RecordKey::LEN]);

    impl RecordKey {
        pub const LEN: usize = 12;

        pub fn new(partition: Partition, offset: Offset) -> RecordKey {
            let mut key = [0; RecordKey::LEN];
            key[..4].copy_from_slice(&partition.to_be_bytes());
            key[4..].copy_from_slice(&offset.to_be_bytes());
            RecordKey(key)
        }

        pub fn decode(bytes: &[u8]) -> Option<RecordKey> {
            bytes.try_into().ok().map(RecordKey)
        }

        pub fn partition(&self) -> Partition {
            Partition::from_be_bytes(self.0[..4].try_into().expect("4 bytes"))
        }

        pub fn offset(&self) -> Offset {
            Offset::from_be_bytes(self.0[4..].try_into().expect("8 bytes"))
        }
    }

    impl AsRef<[u8]> for RecordKey {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    pub fn event_id_key(event_id: Uuid) -> [u8; 16] {
        *event_id.as_bytes()
    }

    pub fn encode_partitions(partitions: u32) -> [u8; 4] {
        partitions.to_be_bytes()
    }

    pub fn decode_partitions(bytes: &[u8]) -> Option<u32> {
        bytes.try_into().ok().map(u32::from_be_bytes)
    }

    /// A record as stored (its partition and offset are in the key).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct StoredRecord {
        pub record_time: RecordTime,
        pub key: Vec<u8>,
        pub event_id: Uuid,
        pub headers: Vec<(String, Vec<u8>)>,
        pub value: Vec<u8>,
    }

    /// Version 1:
    ///
    /// ```text
    /// u8        format version (1)
    /// i64 BE    record time, µs since the Unix epoch
    /// [u8; 16]  event id
    /// bytes     key
    /// varint    header count, then per header: bytes name (UTF-8), bytes value
    /// bytes     value
    /// ```
    ///
    /// `bytes` is a LEB128 varint length, then that many bytes. Nothing follows the value.
    pub fn encode_record(record_time: RecordTime, request: &AppendRequest) -> Vec<u8> {
        let headers: usize = request
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 20)
            .sum();
        let mut out =
            Vec::with_capacity(1 + 8 + 16 + 30 + request.key.len() + headers + request.value.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&record_time.micros().to_be_bytes());
        out.extend_from_slice(request.event_id.as_bytes());
        put_bytes(&mut out, &request.key);
        put_varint(&mut out, request.headers.len() as u64);
        for (name, value) in &request.headers {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value);
        }
        put_bytes(&mut out, &request.value);
        out
    }

    /// Decodes [`encode_record`]'s bytes; the error says what is wrong.
    pub fn decode_record(bytes: &[u8]) -> Result<StoredRecord, String> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.take(1, "format version")?[0];
        if version != FORMAT_VERSION {
            return Err(format!(
                "record format version {version}, this build reads {FORMAT_VERSION}"
            ));
        }
        let record_time = RecordTime::from_micros(i64::from_be_bytes(
            r.take(8, "record time")?.try_into().expect("8 bytes"),
        ));
        let event_id = Uuid::from_bytes(r.take(16, "event id")?.try_into().expect("16 bytes"));
        let key = r.bytes("key")?.to_vec();
        let count = r.varint("header count")?;
        // Each header takes at least two bytes, so a corrupt count cannot
        // make us reserve more than the record could hold.
        let mut headers = Vec::with_capacity((count as usize).min(r.remaining() / 2));
        for i in 0..count {
            let name = r.bytes("header name")?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| format!("header {i}: the name is not UTF-8"))?;
            headers.push((name, r.bytes("header value")?.to_vec()));
        }
        let value = r.bytes("value")?.to_vec();
        if r.remaining() != 0 {
            return Err(format!("{} bytes after the value", r.remaining()));
        }
        Ok(StoredRecord {
            record_time,
            key,
            event_id,
            headers,
            value,
        })
    }

    fn put_varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn remaining(&self) -> usize {
            self.bytes.len() - self.at
        }

        fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
            if n > self.remaining() {
                return Err(format!(
                    "truncated at byte {}: {what} needs {n} bytes, {} left",
                    self.at,
                    self.remaining()
                ));
            }
            let slice = &self.bytes[self.at..self.at + n];
            self.at += n;
            Ok(slice)
        }

        fn varint(&mut self, what: &str) -> Result<u64, String> {
            let mut n: u64 = 0;
            for shift in (0..64).step_by(7) {
                let byte = self.take(1, what)?[0];
                let bits = u64::from(byte & 0x7f);
                if shift == 63 && bits > 1 {
                    return Err(format!("{what}: varint overflows 64 bits"));
                }
                n |= bits << shift;
                if byte & 0x80 == 0 {
                    return Ok(n);
                }
            }
            Err(format!("{what}: varint longer than 10 bytes"))
        }

        fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
            let len = self.varint(what)?;
            let len =
                usize::try_from(len).map_err(|_| format!("{what}: length {len} too large"))?;
            self.take(len, what)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;

    use super::layout::{decode_record, encode_record, RecordKey, StoredRecord};
    use super::*;

    fn request(key: &str, value: &[u8]) -> AppendRequest {
        AppendRequest {
            timestamp: None,
            key: key.as_bytes().to_vec(),
            event_id: Uuid::now_v7(),
            headers: vec![("event-type".into(), b"QualificationAcquired".to_vec())],
            value: value.to_vec(),
        }
    }

    #[test]
    fn contract_suite_on_embedded() {
        let root = tempfile::tempdir().unwrap();
        let made = AtomicUsize::new(0);
        crate::log::contract::run_all(&|| {
            let dir = root
                .path()
                .join(format!("log-{}", made.fetch_add(1, Ordering::Relaxed)));
            Box::new(EmbeddedLog::open(&dir, 4).unwrap())
        });
    }

    #[test]
    fn reopen_keeps_offsets_record_times_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let first = request("LINK-000001", b"one");
        let before = {
            let log = EmbeddedLog::open(dir.path(), 3).unwrap();
            let out = log
                .append(vec![first.clone(), request("LINK-000001", b"two")])
                .unwrap();
            log.close().unwrap();
            assert!(matches!(
                log.append(vec![request("LINK-000001", b"x")]),
                Err(LogError::Closed)
            ));
            out
        };
        let log = EmbeddedLog::open_existing(dir.path()).unwrap();
        assert_eq!(log.partitions(), 3);
        let p = before[1].position();
        assert_eq!(log.end_offset(p.partition).unwrap(), p.offset + 1);
        assert_eq!(
            log.append(vec![first]).unwrap(),
            vec![Appended::Duplicate(before[0].position())]
        );
        let third = log.append(vec![request("LINK-000001", b"three")]).unwrap()[0].position();
        assert_eq!((third.partition, third.offset), (p.partition, p.offset + 1));
        assert!(third.record_time > p.record_time);
        let read = log.read(p.partition, 0, 10).unwrap();
        let values: Vec<&[u8]> = read.iter().map(|r| r.value.as_slice()).collect();
        assert_eq!(values, [&b"one"[..], b"two", b"three"]);
        assert_eq!(read[1].record_time, p.record_time);
    }

    #[test]
    fn partition_count_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path(), 4).unwrap());
        match EmbeddedLog::open(dir.path(), 8) {
            Err(LogError::PartitionCountMismatch {
                existing: 4,
                requested: 8,
            }) => {}
            other => panic!("expected a partition count mismatch, got {other:?}"),
        }
        assert_eq!(EmbeddedLog::open(dir.path(), 4).unwrap().partitions(), 4);
        assert!(matches!(
            EmbeddedLog::open(dir.path(), 0),
            Err(LogError::NoSuchPartition { .. })
        ));
    }

    #[test]
    fn open_existing_refuses_a_missing_log() {
        let dir = tempfile::tempdir().unwrap();
        assert!(EmbeddedLog::open_existing(&dir.path().join("nothing")).is_err());
        assert!(EmbeddedLog::open_read_only(&dir.path().join("nothing")).is_err());
    }

    #[test]
    fn read_only_opens_beside_the_writer_and_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        let at = log.append(vec![request("LINK-000007", b"v")]).unwrap()[0].position();
        let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
        assert!(reader.is_read_only());
        assert_eq!(reader.partitions(), 2);
        assert_eq!(reader.end_offset(at.partition).unwrap(), 1);
        assert_eq!(reader.read(at.partition, 0, 10).unwrap()[0].value, b"v");
        assert!(matches!(
            reader.append(vec![request("LINK-000007", b"w")]),
            Err(LogError::Unavailable(_))
        ));
        // The writer is unaffected.
        assert_eq!(
            log.append(vec![request("LINK-000007", b"w")]).unwrap()[0]
                .position()
                .offset,
            1
        );
    }

    #[test]
    fn a_corrupt_record_is_reported_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.append(vec![
            request("LINK-000001", b"a"),
            request("LINK-000001", b"b"),
        ])
        .unwrap();
        let records = log.shared.cf(layout::CF_RECORDS);
        log.shared
            .db
            .put_cf(records, RecordKey::new(0, 1), [FORMAT_VERSION, 0, 0])
            .unwrap();
        match log.read(0, 0, 10) {
            Err(LogError::Corrupt {
                partition: 0,
                offset: 1,
                reason,
            }) => {
                assert!(reason.contains("truncated"), "{reason}")
            }
            other => panic!("expected corruption at 0:1, got {other:?}"),
        }
        assert_eq!(log.read(0, 0, 1).unwrap().len(), 1);
    }

    #[test]
    fn record_encoding_round_trips_a_known_record() {
        let request = AppendRequest {
            timestamp: None,
            key: b"LINK-1".to_vec(),
            event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            headers: vec![("a".into(), vec![]), ("a".into(), vec![0, 255])],
            value: vec![7; 300],
        };
        let time = RecordTime::from_micros(1_712_102_400_000_000);
        let bytes = encode_record(time, &request);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(&bytes[1..9], &time.micros().to_be_bytes());
        assert_eq!(&bytes[9..25], request.event_id.as_bytes());
        // 300 takes two varint bytes.
        assert_eq!(&bytes[bytes.len() - 302..bytes.len() - 300], &[0xac, 0x02]);
        let decoded = decode_record(&bytes).unwrap();
        assert_eq!(
            decoded,
            StoredRecord {
                record_time: time,
                key: request.key,
                event_id: request.event_id,
                headers: request.headers,
                value: request.value,
            }
        );
    }

    #[test]
    fn record_decoding_refuses_other_versions_and_trailing_bytes() {
        let mut bytes = encode_record(RecordTime::from_micros(1), &request("k", b"v"));
        bytes.push(0);
        assert!(decode_record(&bytes)
            .unwrap_err()
            .contains("after the value"));
        bytes.pop();
        bytes[0] = FORMAT_VERSION + 1;
        assert!(decode_record(&bytes)
            .unwrap_err()
            .contains("format version"));
    }

    fn arb_request() -> impl Strategy<Value = AppendRequest> {
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<u128>(),
            proptest::collection::vec(
                (".{0,12}", proptest::collection::vec(any::<u8>(), 0..20)),
                0..5,
            ),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(key, id, headers, value)| AppendRequest {
                timestamp: None,
                key,
                event_id: Uuid::from_u128(id),
                headers,
                value,
            })
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(request in arb_request(), micros in any::<i64>()) {
            let time = RecordTime::from_micros(micros);
            let decoded = decode_record(&encode_record(time, &request)).unwrap();
            prop_assert_eq!(decoded.record_time, time);
            prop_assert_eq!(decoded.key, request.key);
            prop_assert_eq!(decoded.event_id, request.event_id);
            prop_assert_eq!(decoded.headers, request.headers);
            prop_assert_eq!(decoded.value, request.value);
        }

        #[test]
        fn every_truncation_is_an_error(request in arb_request(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_record(RecordTime::from_micros(0), &request);
            let cut = cut.index(bytes.len());
            prop_assert!(decode_record(&bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&bytes);
        }

        #[test]
        fn record_key_bytes_sort_like_partition_then_offset(
            a in (any::<u32>(), any::<u64>()),
            b in (any::<u32>(), any::<u64>()),
        ) {
            let (ka, kb) = (RecordKey::new(a.0, a.1), RecordKey::new(b.0, b.1));
            prop_assert_eq!(ka.as_ref().cmp(kb.as_ref()), a.cmp(&b));
            prop_assert_eq!((ka.partition(), ka.offset()), a);
            prop_assert_eq!(RecordKey::decode(ka.as_ref()), Some(ka));
        }
    }

    /// Not a benchmark: a rough figure of what group commit buys.
    /// `cargo test -p ledger --release group_commit_throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "prints throughput figures; run with --ignored --nocapture"]
    fn group_commit_throughput() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), 8).unwrap();
        let run_for = Duration::from_secs(3);
        for threads in [1usize, 8] {
            let total = AtomicUsize::new(0);
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (log, total) = (&log, &total);
                    s.spawn(move || {
                        let mut n = 0;
                        while started.elapsed() < run_for {
                            log.append(vec![request(&format!("LINK-{t}-{n}"), &[0; 200])])
                                .unwrap();
                            n += 1;
                        }
                        total.fetch_add(n, Ordering::Relaxed);
                    });
                }
            });
            let appends = total.load(Ordering::Relaxed);
            println!(
                "{threads:>2} thread(s): {appends} single-record appends in {:.1?}, {:.0}/s",
                started.elapsed(),
                appends as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}
