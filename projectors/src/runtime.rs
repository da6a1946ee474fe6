//! The projector runtime: consume the log partition by partition and apply
//! it to the views, one atomic write per batch of records.
//!
//! Offsets live in the views (same `WriteBatch` as the rows), so a crash at
//! any point resumes exactly: records already applied are skipped, none is
//! applied twice or lost. One thread per partition; partitions never write
//! the same keys. Which partitions this process projects is an
//! [`Assignment`]: all of them by default, or what a consumer group hands
//! out when several processes share a Kafka log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger::log::{EventLog, Offset, Partition};

use crate::error::ProjectorError;
use crate::store::{ApplyStats, Views};

/// The partitions this process projects now; changed at any time (a
/// consumer group's rebalance), read by the partition threads between batches.
#[derive(Debug)]
pub struct Assignment {
    owned: Vec<AtomicBool>,
    /// Held by a partition thread while it applies a batch, so
    /// [`Assignment::revoke`] returns only once no batch is in flight.
    busy: Vec<Mutex<()>>,
}

impl Assignment {
    /// Every one of `partitions` partitions.
    pub fn all(partitions: u32) -> Assignment {
        Assignment::with(partitions, true)
    }

    /// None of `partitions` partitions, until [`Assignment::assign`].
    pub fn none(partitions: u32) -> Assignment {
        Assignment::with(partitions, false)
    }

    fn with(partitions: u32, owned: bool) -> Assignment {
        Assignment {
            owned: (0..partitions).map(|_| AtomicBool::new(owned)).collect(),
            busy: (0..partitions).map(|_| Mutex::new(())).collect(),
        }
    }

    pub fn owns(&self, partition: Partition) -> bool {
        self.owned
            .get(partition as usize)
            .is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// The partitions owned now.
    pub fn owned(&self) -> Vec<Partition> {
        (0..self.owned.len() as Partition)
            .filter(|&p| self.owns(p))
            .collect()
    }

    /// Starts projecting `partitions` (out-of-range ones are ignored).
    pub fn assign(&self, partitions: &[Partition]) {
        for &p in partitions {
            if let Some(o) = self.owned.get(p as usize) {
                o.store(true, Ordering::Release);
            }
        }
    }

    /// Stops projecting `partitions`; returns once any batch of theirs in
    /// flight is written.
    pub fn revoke(&self, partitions: &[Partition]) {
        for &p in partitions {
            if let Some(o) = self.owned.get(p as usize) {
                o.store(false, Ordering::Release);
                drop(
                    self.busy[p as usize]
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                );
            }
        }
    }
}

/// How far each partition has been applied, with a way to wait for it.
#[derive(Debug)]
struct Progress {
    next: Mutex<Vec<Offset>>,
    changed: Condvar,
}

/// Keeps the views up to date with the log.
#[derive(Debug)]
pub struct Projector {
    views: Arc<Views>,
    log: Arc<dyn EventLog>,
    progress: Progress,
    batch_size: usize,
}

impl Projector {
    pub fn new(views: Arc<Views>, log: Arc<dyn EventLog>) -> Result<Projector, ProjectorError> {
        if let Some(identity) = log.identity() {
            views.bind_to_log(&identity)?;
        }
        let stored = views.offsets()?;
        let next = (0..log.partitions())
            .map(|p| stored.get(&p).copied().unwrap_or(0))
            .collect();
        // A log deriving record times from history need not re-read what
        // these views already applied.
        for (&partition, &next) in &stored {
            if let (Some(last), Some(time)) =
                (next.checked_sub(1), views.last_record_time(partition)?)
            {
                log.remember_record_time(partition, last, time);
            }
        }
        Ok(Projector {
            views,
            log,
            progress: Progress {
                next: Mutex::new(next),
                changed: Condvar::new(),
            },
            batch_size: 1_000,
        })
    }

    /// Records per atomic write.
    pub fn with_batch_size(mut self, n: usize) -> Projector {
        self.batch_size = n.max(1);
        self
    }

    pub fn views(&self) -> &Arc<Views> {
        &self.views
    }

    /// Applies the next batch of `partition`; returns how many records were read.
    pub fn step(&self, partition: Partition) -> Result<(usize, ApplyStats), ProjectorError> {
        let from = self.views.offset(partition)?;
        let records = self.log.read(partition, from, self.batch_size)?;
        if records.is_empty() {
            return Ok((0, ApplyStats::default()));
        }
        let stats = self.views.apply(partition, &records)?;
        let next = records.last().map(|r| r.offset + 1).unwrap_or(from);
        self.advance(partition, next);
        Ok((records.len(), stats))
    }

    fn advance(&self, partition: Partition, next: Offset) {
        let mut guard = self.progress.next.lock().expect("progress lock");
        if let Some(slot) = guard.get_mut(partition as usize) {
            *slot = (*slot).max(next);
        }
        self.progress.changed.notify_all();
    }

    /// Applies everything the log holds now, on every partition.
    pub fn catch_up(&self) -> Result<ApplyStats, ProjectorError> {
        let mut total = ApplyStats::default();
        for p in 0..self.log.partitions() {
            let end = self.log.end_offset(p)?;
            while self.views.offset(p)? < end {
                let (n, stats) = self.step(p)?;
                total += stats;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Blocks until `partition` has been applied past `offset`, or `timeout`.
    pub fn wait_applied(&self, partition: Partition, offset: Offset, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.progress.next.lock().expect("progress lock");
        loop {
            if guard.get(partition as usize).is_some_and(|&n| n > offset) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .progress
                .changed
                .wait_timeout(guard, deadline - now)
                .expect("progress lock")
                .0;
        }
    }

    /// Records not yet applied, per partition.
    pub fn lag(&self) -> Result<Vec<(Partition, u64)>, ProjectorError> {
        (0..self.log.partitions())
            .map(|p| {
                Ok((
                    p,
                    self.log
                        .end_offset(p)?
                        .saturating_sub(self.views.offset(p)?),
                ))
            })
            .collect()
    }

    /// Runs one thread per partition until `stop` is set.
    pub fn spawn(self: &Arc<Self>, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
        self.spawn_assigned(stop, Arc::new(Assignment::all(self.log.partitions())))
    }

    /// Runs one thread per partition until `stop` is set; each projects its
    /// partition only while `assignment` owns it.
    pub fn spawn_assigned(
        self: &Arc<Self>,
        stop: Arc<AtomicBool>,
        assignment: Arc<Assignment>,
    ) -> Vec<JoinHandle<()>> {
        (0..self.log.partitions())
            .map(|p| {
                let me = Arc::clone(self);
                let stop = Arc::clone(&stop);
                let assignment = Arc::clone(&assignment);
                std::thread::Builder::new()
                    .name(format!("projector-{p}"))
                    .spawn(move || me.run_partition(p, &stop, &assignment))
                    .expect("spawn projector thread")
            })
            .collect()
    }

    fn run_partition(&self, partition: Partition, stop: &AtomicBool, assignment: &Assignment) {
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            let busy = assignment.busy[partition as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !assignment.owns(partition) {
                drop(busy);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let stepped = self.step(partition);
            drop(busy);
            match stepped {
                Ok((0, _)) => {
                    let from = self.views.offset(partition).unwrap_or(0);
                    if let Err(e) = self
                        .log
                        .wait_for(partition, from, Duration::from_millis(200))
                    {
                        tracing::error!(partition, error = %e, "waiting on the log failed");
                        std::thread::sleep(backoff);
                    }
                }
                Ok((n, stats)) => {
                    backoff = Duration::from_millis(100);
                    tracing::debug!(
                        partition,
                        records = n,
                        applied = stats.applied,
                        dead_lettered = stats.dead_lettered,
                        "projected"
                    );
                }
                Err(e) => {
                    tracing::error!(partition, error = %e, "projection failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        if let Err(e) = self.views.flush() {
            tracing::error!(error = %e, "flushing views failed");
        }
    }
}
