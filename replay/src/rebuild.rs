//! Rebuild views from the log into a fresh directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ledger::domain::RecordTime;
use ledger::log::{EventLog, Offset, Partition};
use projectors::{ApplyStats, Views};
use sha2::{Digest as _, Sha256};

use crate::error::ReplayError;

/// How much of the log to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// Everything the log holds now.
    End,
    /// Records with record time at or before this instant.
    RecordTime(RecordTime),
    /// Per partition, records before this offset (absent partitions: none).
    Offsets(BTreeMap<Partition, Offset>),
}

/// SHA-256 of the views' (key, value) pairs in key order.
#[derive(Clone, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// The outcome of a rebuild.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub digest: Digest,
    /// Records replayed.
    pub records: u64,
    pub stats: ApplyStats,
    /// Next offset per partition in the rebuilt views.
    pub offsets: BTreeMap<Partition, Offset>,
    /// Key/value pairs digested.
    pub pairs: u64,
}

/// Digest of a set of views.
pub fn digest(views: &Views) -> Result<(Digest, u64), ReplayError> {
    let mut h = Sha256::new();
    let pairs = views.for_each_pair(|k, v| {
        h.update((k.len() as u32).to_be_bytes());
        h.update(k);
        h.update((v.len() as u32).to_be_bytes());
        h.update(v);
    })?;
    Ok((Digest(h.finalize().into()), pairs))
}

fn ensure_fresh(dir: &Path) -> Result<(), ReplayError> {
    let io = |source| ReplayError::Io {
        path: dir.to_owned(),
        source,
    };
    if dir.exists() {
        if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
            return Err(ReplayError::TargetNotEmpty(dir.to_owned()));
        }
    } else {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    Ok(())
}

/// Replays `log` (up to `until`) into fresh views at `into`.
#[tracing::instrument(skip_all, fields(into = %into.display()))]
pub fn rebuild(log: &dyn EventLog, into: &Path, until: &Until) -> Result<Rebuild, ReplayError> {
    ensure_fresh(into)?;
    let views = Views::open(into)?;
    let mut stats = ApplyStats::default();
    let mut records = 0u64;
    const BATCH: usize = 2_000;
    for p in 0..log.partitions() {
        let end = match until {
            Until::Offsets(o) => o.get(&p).copied().unwrap_or(0).min(log.end_offset(p)?),
            _ => log.end_offset(p)?,
        };
        let mut next = 0;
        'partition: while next < end {
            let mut batch = log.read(p, next, BATCH.min((end - next) as usize))?;
            if batch.is_empty() {
                break;
            }
            if let Until::RecordTime(t) = until {
                // Record times increase within a partition: stop at the first later one.
                if let Some(cut) = batch.iter().position(|r| r.record_time > *t) {
                    batch.truncate(cut);
                    if !batch.is_empty() {
                        records += batch.len() as u64;
                        stats += views.apply(p, &batch)?;
                    }
                    break 'partition;
                }
            }
            next = batch.last().map(|r| r.offset + 1).unwrap_or(end);
            records += batch.len() as u64;
            stats += views.apply(p, &batch)?;
        }
    }
    views.flush()?;
    let (digest, pairs) = digest(&views)?;
    let offsets = views.offsets()?;
    Ok(Rebuild {
        digest,
        records,
        stats,
        offsets,
        pairs,
    })
}
