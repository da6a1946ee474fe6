//! The views database: open (checking the key format), apply batches of log
//! records atomically with their offsets, read back offsets and raw pairs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ledger::domain::RecordTime;
use ledger::log::{LogRecord, Offset, Partition};
use rocksdb::{Direction, IteratorMode, Options, WriteOptions, DB};

use crate::apply::{self, Outcome};
use crate::error::ProjectorError;
use crate::keys::{self, ViewKey, KEY_FORMAT_VERSION};
use crate::txn::{self, Txn};

/// A stored (key, value) pair.
pub type Pair = (Box<[u8]>, Box<[u8]>);

/// Counts from applying records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub applied: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    /// Records at offsets already consumed (re-delivered after a restart).
    pub skipped: u64,
}

impl std::ops::AddAssign for ApplyStats {
    fn add_assign(&mut self, o: ApplyStats) {
        self.applied += o.applied;
        self.duplicates += o.duplicates;
        self.dead_lettered += o.dead_lettered;
        self.skipped += o.skipped;
    }
}

/// The RocksDB views of one data directory.
#[derive(Debug)]
pub struct Views {
    pub(crate) db: DB,
    path: PathBuf,
    read_only: bool,
}

/// RocksDB options of the views (public so benchmarks compare against the
/// same engine). The projector's reads are point gets, most of them for keys
/// that do not exist yet (a new entity, an event id not yet applied): a Bloom
/// filter answers those without touching data blocks. Index and filter
/// blocks are partitioned, so only small pieces of them compete for the
/// fixed block cache (whole per-file index blocks were evicted at once and
/// re-read on every seek) and memory does not grow with the data.
pub fn view_options() -> Options {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(64 << 20));
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_metadata_block_size(4096);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.increase_parallelism(2);
    opts
}

fn storage(path: &Path) -> impl Fn(rocksdb::Error) -> ProjectorError + '_ {
    move |source| ProjectorError::Storage {
        path: path.display().to_string(),
        source,
    }
}

impl Views {
    /// Opens (creating if absent) the views at `dir`.
    pub fn open(dir: &Path) -> Result<Views, ProjectorError> {
        let mut opts = view_options();
        opts.create_if_missing(true);
        let db = DB::open(&opts, dir).map_err(storage(dir))?;
        let views = Views {
            db,
            path: dir.to_owned(),
            read_only: false,
        };
        match views.stored_format()? {
            None => views
                .db
                .put(
                    keys::meta_format().as_bytes(),
                    KEY_FORMAT_VERSION.to_be_bytes(),
                )
                .map_err(storage(dir))?,
            Some(f) if f == KEY_FORMAT_VERSION => {}
            Some(found) => {
                return Err(ProjectorError::FormatMismatch {
                    path: dir.display().to_string(),
                    found,
                    expected: KEY_FORMAT_VERSION,
                })
            }
        }
        Ok(views)
    }

    /// Opens existing views read-only (alongside a running server).
    pub fn open_read_only(dir: &Path) -> Result<Views, ProjectorError> {
        let db = DB::open_for_read_only(&view_options(), dir, false).map_err(storage(dir))?;
        let views = Views {
            db,
            path: dir.to_owned(),
            read_only: true,
        };
        if let Some(found) = views.stored_format()? {
            if found != KEY_FORMAT_VERSION {
                return Err(ProjectorError::FormatMismatch {
                    path: dir.display().to_string(),
                    found,
                    expected: KEY_FORMAT_VERSION,
                });
            }
        }
        Ok(views)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn stored_format(&self) -> Result<Option<u32>, ProjectorError> {
        let v = self
            .db
            .get(keys::meta_format().as_bytes())
            .map_err(storage(&self.path))?;
        Ok(v.and_then(|b| b.try_into().ok()).map(u32::from_be_bytes))
    }

    /// The next offset to consume, per partition (absent: 0).
    pub fn offsets(&self) -> Result<BTreeMap<Partition, Offset>, ProjectorError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.scan(&keys::offsets_prefix())? {
            if let Some(p) = keys::decode_offset_key(&k) {
                out.insert(p, txn::decode::<Offset>(&ViewKey::from_stored(&k), &v)?);
            }
        }
        Ok(out)
    }

    pub fn offset(&self, partition: Partition) -> Result<Offset, ProjectorError> {
        Ok(self.get_value(&keys::offset(partition))?.unwrap_or(0))
    }

    /// The stored value under `key`, decoded.
    pub(crate) fn get_value<T: serde::de::DeserializeOwned>(
        &self,
        key: &ViewKey,
    ) -> Result<Option<T>, ProjectorError> {
        match self.db.get(key.as_bytes()).map_err(storage(&self.path))? {
            None => Ok(None),
            Some(v) => txn::decode(key, &v).map(Some),
        }
    }

    pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &ViewKey,
    ) -> Result<Option<T>, ProjectorError> {
        match self.db.get(key.as_bytes()).map_err(storage(&self.path))? {
            None => Ok(None),
            Some(v) => txn::decode_json(key, &v).map(Some),
        }
    }

    /// Ties the views to the log named `identity`: the first time, the name is
    /// stored; afterwards another name is refused ([`ProjectorError::OtherLog`]).
    /// Views that have applied nothing yet take any log.
    pub fn bind_to_log(&self, identity: &str) -> Result<(), ProjectorError> {
        let key = keys::meta_log_identity();
        match self.db.get(key.as_bytes()).map_err(storage(&self.path))? {
            Some(stored) if stored == identity.as_bytes() => Ok(()),
            Some(stored) if !self.offsets()?.is_empty() => Err(ProjectorError::OtherLog {
                path: self.path.display().to_string(),
                built_from: String::from_utf8_lossy(&stored).into_owned(),
                log: identity.to_owned(),
            }),
            _ if self.read_only => Ok(()),
            _ => self
                .db
                .put(key.as_bytes(), identity.as_bytes())
                .map_err(storage(&self.path)),
        }
    }

    /// The record time of the last record applied from `partition`.
    pub fn last_record_time(
        &self,
        partition: Partition,
    ) -> Result<Option<RecordTime>, ProjectorError> {
        self.get_value(&keys::last_record_time(partition))
    }

    /// The dead letter a record became, if it did.
    pub fn dead_letter_at(
        &self,
        partition: Partition,
        offset: Offset,
    ) -> Result<Option<crate::model::DeadLetter>, ProjectorError> {
        self.get_value(&keys::dead_letter(partition, offset))
    }

    /// Applies records of one partition, in offset order, in one atomic
    /// write together with the new offset. Records before the stored offset
    /// are skipped (already applied); a gap is an error.
    pub fn apply(
        &self,
        partition: Partition,
        records: &[LogRecord],
    ) -> Result<ApplyStats, ProjectorError> {
        if self.read_only {
            return Err(ProjectorError::ReadOnly);
        }
        let mut next = self.offset(partition)?;
        let mut last_time = self.last_record_time(partition)?;
        let mut stats = ApplyStats::default();
        let mut txn = Txn::new(&self.db);
        for rec in records {
            debug_assert_eq!(rec.partition, partition);
            if rec.offset < next {
                stats.skipped += 1;
                continue;
            }
            if rec.offset > next {
                return Err(ProjectorError::Gap {
                    partition,
                    expected: next,
                    got: rec.offset,
                });
            }
            // Record times must increase within a partition for the
            // bitemporal rows to be well-formed. The embedded log guarantees
            // it; a log that does not (a Kafka leader change) is made to here.
            let adjusted;
            let rec = match last_time {
                Some(last) if rec.record_time <= last => {
                    adjusted = LogRecord {
                        record_time: last.next(),
                        ..rec.clone()
                    };
                    &adjusted
                }
                _ => rec,
            };
            last_time = Some(rec.record_time);
            match apply::record(&mut txn, rec)? {
                Outcome::Applied => stats.applied += 1,
                Outcome::Duplicate => stats.duplicates += 1,
                Outcome::DeadLettered => stats.dead_lettered += 1,
            }
            next = rec.offset + 1;
        }
        if stats.skipped as usize == records.len() && txn.is_empty() {
            return Ok(stats);
        }
        txn.put(keys::offset(partition), &next);
        if let Some(t) = last_time {
            txn.put(keys::last_record_time(partition), &t);
        }
        let mut opts = WriteOptions::default();
        // Views are derived: losing the last batches to a power cut is
        // repaired by re-projecting from the offsets that survived with them.
        opts.set_sync(false);
        self.db
            .write_opt(txn.into_batch(), &opts)
            .map_err(storage(&self.path))?;
        Ok(stats)
    }

    /// Every (key, value) under `prefix`, in key order.
    pub(crate) fn scan(&self, prefix: &ViewKey) -> Result<Vec<Pair>, ProjectorError> {
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator(IteratorMode::From(prefix.as_bytes(), Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(storage(&self.path))?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// Up to `limit` pairs under `prefix`, from `from` (inclusive) on.
    pub(crate) fn scan_from(
        &self,
        prefix: &ViewKey,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<Pair>, ProjectorError> {
        let mut out = Vec::new();
        let start = if from > prefix.as_bytes() {
            from
        } else {
            prefix.as_bytes()
        };
        let iter = self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward));
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(storage(&self.path))?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// Every (key, value) pair of the views in key order, streamed.
    pub fn pairs(&self) -> impl Iterator<Item = Result<Pair, ProjectorError>> + '_ {
        self.db
            .iterator(IteratorMode::Start)
            .map(|item| item.map_err(storage(&self.path)))
    }

    /// Visits every (key, value) pair of the views in key order, but the
    /// name of the log they were built from.
    pub fn for_each_pair(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<u64, ProjectorError> {
        let mut n = 0;
        let source = keys::meta_log_identity();
        for item in self.db.iterator(IteratorMode::Start) {
            let (k, v) = item.map_err(storage(&self.path))?;
            // Which log the views came from is not their content: a rebuild
            // from a copy of the log digests the same.
            if *k == *source.as_bytes() {
                continue;
            }
            f(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    /// Flushes memtables to disk (before a clean shutdown or a digest of files).
    pub fn flush(&self) -> Result<(), ProjectorError> {
        if self.read_only {
            return Ok(());
        }
        self.db.flush().map_err(storage(&self.path))
    }

    /// Flushes and waits until background compactions are done (for
    /// benchmarks that must not time them).
    pub fn settle(&self) -> Result<(), ProjectorError> {
        self.flush()?;
        if self.read_only {
            return Ok(());
        }
        self.db
            .wait_for_compact(&rocksdb::WaitForCompactOptions::default())
            .map_err(storage(&self.path))
    }
}
