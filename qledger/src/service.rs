//! The ledger as a service: the log, the views and the projector of one data
//! directory, and the operations the HTTP API and the CLI share (intake,
//! eligibility, history, dead letters). Both front ends call only this.
//!
//! Layout of a data directory: `log/` (the embedded event log, the record of
//! truth) and `views/` (derived; dropped and rebuilt from the log when their
//! key format changes).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ledger::domain::{
    CardSerial, Day, IndividualInsuredNumber, LinkNumber, PublisherId, RecordTime, ServiceMonth,
};
use ledger::error::FieldError;
use ledger::event::{avro, json, Event, LinkRejectionReason, UnlinkReason};
use ledger::log::embedded::EmbeddedLog;
use ledger::log::{AppendRequest, Appended, EventLog, LogError, Position, RecordTimePolicy};
use projectors::model::{DeadLetter, QualificationSnapshot};
use projectors::{Assignment, History, Lookup, LookupKey, Projector, ProjectorError, Views};
use serde::Serialize;

use crate::usage::{MeterRow, UsageStore};
use uuid::Uuid;

use crate::cardcert::{self, CardAuthority, CertificateRefusal};
use crate::cardlink::{
    CertificateCheck, DecideError, Decider, LinkDecision, LinkRequest, Unlinked,
};
use crate::contact::ContactKeys;
use crate::notices::{NoticeSettings, Notifier};

/// The publisher id of the unlinks the CRL sweep logs.
pub const REVOCATION_SOURCE: &str = "qledger.revocations";

/// Default number of log partitions for a new data directory.
pub const DEFAULT_PARTITIONS: u32 = 8;

/// Errors of the service layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Views(#[from] ProjectorError),
    #[error("cannot prepare data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode event: {0}")]
    Encode(String),
    #[error("contact key store: {0}")]
    Keys(String),
    #[error(transparent)]
    Usage(#[from] crate::usage::UsageError),
    #[error("{0}")]
    Internal(String),
}

/// How far the projector is behind the log in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub partition: u32,
    /// The log's end offset (the next offset to be written).
    pub end: u64,
    /// The next offset the projector will apply.
    pub next: u64,
    /// Whether this process projects the partition (with Kafka, the
    /// consumer group shares the partitions out).
    pub projected_here: bool,
}

impl PartitionLag {
    /// Events written and not yet applied.
    pub fn lag(&self) -> u64 {
        self.end.saturating_sub(self.next)
    }
}

/// How long intake waits, after the durable append, for the projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Acknowledge once durable in the log (the default).
    #[default]
    Durable,
    /// Also wait (up to the timeout) until the views reflect the event.
    Projected(Duration),
}

/// The outcome of submitting one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Submitted {
    /// Durably appended now.
    Accepted(Receipt),
    /// The same event was appended before; this is where it is. Applied once.
    Duplicate(Receipt),
    /// Refused; nothing was appended.
    Rejected { error: FieldError },
}

/// Where an acknowledged event is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub partition: u32,
    pub offset: u64,
    pub record_time: RecordTime,
    /// With [`Wait::Projected`]: whether the projector processed it in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected: Option<bool>,
    /// Set when the projector could not apply the event: it is in the log
    /// (and the dead-letter view) but changed no view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterNote>,
}

/// Why a logged event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterNote {
    pub field: Option<String>,
    pub reason: String,
}

/// The log record of a validated event: its Avro single-object encoding,
/// keyed by the person's link number, with its type as a header and the
/// producer's timestamp (the record time under `CreateTime`). Intake and
/// `qledger import` build every record they append here.
pub fn append_request(event: &Event) -> Result<AppendRequest, ServiceError> {
    let value = avro::encode(event).map_err(|e| ServiceError::Encode(e.to_string()))?;
    Ok(AppendRequest {
        timestamp: Some(RecordTime::from_micros(
            event.envelope.produced_at.timestamp_micros(),
        )),
        key: event.envelope.link.as_str().as_bytes().to_vec(),
        event_id: event.envelope.event_id,
        headers: vec![(
            "qledger.event_type".into(),
            event.event_type().name().as_bytes().to_vec(),
        )],
        value,
    })
}

/// The log, the views and the projector of a ledger: what appending and
/// reading need, shareable across threads.
#[derive(Debug, Clone)]
pub struct Core {
    log: Arc<dyn EventLog>,
    views: Arc<Views>,
    projector: Arc<Projector>,
}

impl Core {
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Waits (up to `timeout`) until the views hold everything `partition`
    /// held when called; `false` if they did not get there in time.
    pub fn caught_up(&self, partition: u32, timeout: Duration) -> Result<bool, ServiceError> {
        let end = self.log.end_offset(partition)?;
        Ok(end == 0 || self.projector.wait_applied(partition, end - 1, timeout))
    }

    pub fn views(&self) -> &Arc<Views> {
        &self.views
    }

    /// Validates and appends JSON events; one outcome per event, in order.
    /// Invalid events are refused without affecting the others.
    pub fn submit_json(
        &self,
        events: Vec<serde_json::Value>,
        wait: Wait,
    ) -> Result<Vec<Submitted>, ServiceError> {
        let parsed: Vec<Result<Event, FieldError>> =
            events.into_iter().map(json::from_value).collect();
        self.submit_parsed(parsed, wait)
    }

    /// Appends already-built events (validated here too).
    pub fn submit(&self, events: Vec<Event>, wait: Wait) -> Result<Vec<Submitted>, ServiceError> {
        let parsed = events
            .into_iter()
            .map(|e| e.validate().map(|_| e))
            .collect();
        self.submit_parsed(parsed, wait)
    }

    /// Appends the events parsed (and validated) by the caller; each error
    /// becomes that slot's rejection. One outcome per item, in order.
    #[tracing::instrument(skip_all, fields(events = parsed.len()))]
    pub fn submit_parsed(
        &self,
        parsed: Vec<Result<Event, FieldError>>,
        wait: Wait,
    ) -> Result<Vec<Submitted>, ServiceError> {
        let mut requests = Vec::new();
        let mut slots = Vec::with_capacity(parsed.len());
        for item in parsed {
            match item {
                Err(error) => slots.push(Err(Submitted::Rejected { error })),
                Ok(event) => {
                    let request = append_request(&event)?;
                    slots.push(Ok((event.envelope.event_id, event.event_type().name())));
                    requests.push(request);
                }
            }
        }
        let values: Vec<Vec<u8>> = requests.iter().map(|r| r.value.clone()).collect();
        let appended = if requests.is_empty() {
            Vec::new()
        } else {
            self.log.append(requests)?
        };
        let mut appended = appended.into_iter().zip(values);
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Err(rejected) => out.push(rejected),
                Ok((event_id, event_type)) => {
                    let (outcome, value) = appended.next().expect("one outcome per request");
                    let receipt = |p: Position| Receipt {
                        event_id,
                        event_type,
                        partition: p.partition,
                        offset: p.offset,
                        record_time: p.record_time,
                        projected: None,
                        dead_letter: None,
                    };
                    out.push(match outcome {
                        Appended::New(p) => Submitted::Accepted(receipt(p)),
                        Appended::Duplicate(p) => {
                            if self.same_as_logged(p, &value)? {
                                Submitted::Duplicate(receipt(p))
                            } else {
                                Submitted::Rejected {
                                    error: FieldError::new(
                                        "envelope.event_id",
                                        "is already used by a different event; a re-sent event must be identical",
                                    ),
                                }
                            }
                        }
                    });
                }
            }
        }
        for s in &mut out {
            let (r, duplicate) = match s {
                Submitted::Accepted(r) => (r, false),
                Submitted::Duplicate(r) => (r, true),
                Submitted::Rejected { .. } => continue,
            };
            if let Wait::Projected(timeout) = wait {
                r.projected = Some(self.projector.wait_applied(r.partition, r.offset, timeout));
            }
            // A re-sent event that was dead-lettered was never applied: say so.
            if duplicate || r.projected == Some(true) {
                r.dead_letter =
                    self.views
                        .dead_letter_at(r.partition, r.offset)?
                        .map(|d| DeadLetterNote {
                            field: d.field,
                            reason: d.reason,
                        });
            }
        }
        Ok(out)
    }

    fn same_as_logged(&self, p: Position, value: &[u8]) -> Result<bool, ServiceError> {
        let logged = self.log.read(p.partition, p.offset, 1)?;
        Ok(logged.first().is_some_and(|r| r.value == value))
    }
}

/// One data directory, open.
#[derive(Debug)]
pub struct Ledger {
    data: PathBuf,
    log: Arc<dyn EventLog>,
    views: Arc<Views>,
    projector: Arc<Projector>,
    stop: Arc<AtomicBool>,
    /// Projector threads and [attached](Ledger::attach) ones, joined at shutdown.
    threads: Vec<JoinHandle<()>>,
    projecting: bool,
    /// Verifies card certificates for link requests, when configured.
    cards: Option<Arc<CardAuthority>>,
    decider: Decider,
    /// The erasable key store of sealed contact addresses (`keys/`).
    contacts: Arc<ContactKeys>,
    /// Where completion notices are published: the notices topic, or the
    /// embedded `notices/` log, opened when the notifier starts.
    notices_log: Option<Arc<dyn EventLog>>,
    /// The partitions this process projects (and notifies for).
    assignment: Option<Arc<Assignment>>,
    /// The CRL generation whose revoked cards were last unlinked.
    revocations_swept: std::sync::Mutex<u64>,
    /// Verification records and metering (`usage/`): reads, not derived.
    usage: Arc<UsageStore>,
    /// The notifier thread and its own stop flag: it stops first at
    /// shutdown, while the projectors still run, so every progress event it
    /// logged is also projected.
    notifier: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// Why a link request got no decision.
#[derive(Debug, thiserror::Error)]
pub enum LinkRequestError {
    /// No trust anchors are configured (`[cards]` in the settings file).
    #[error(
        "card certificate verification is not configured (the [cards] table of the settings file)"
    )]
    NotConfigured,
    /// The request or its certificate is unusable (which field, why).
    #[error("{0}")]
    Invalid(FieldError),
    #[error(transparent)]
    Decide(#[from] DecideError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ServiceError + '_ {
    move |source| ServiceError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Ledger {
    /// Opens (creating if needed) the data directory with the embedded log.
    /// Views in an old key format are dropped and rebuilt from the log.
    pub fn open(data: &Path, partitions: u32) -> Result<Ledger, ServiceError> {
        Ledger::open_with(data, partitions, RecordTimePolicy::LogAppendTime)
    }

    /// Like [`Ledger::open`], choosing how the log stamps record times
    /// (`CreateTime` for importing history with its producers' times).
    pub fn open_with(
        data: &Path,
        partitions: u32,
        policy: RecordTimePolicy,
    ) -> Result<Ledger, ServiceError> {
        std::fs::create_dir_all(data).map_err(io(data))?;
        let log_dir = data.join("log");
        let log = if log_dir.join("CURRENT").exists() {
            EmbeddedLog::open_existing(&log_dir)?
        } else {
            EmbeddedLog::open(&log_dir, partitions)?
        };
        log.set_record_time_policy(policy);
        Ledger::with_log(data, Arc::new(log))
    }

    /// Opens the views of `data` over any event log.
    pub fn with_log(data: &Path, log: Arc<dyn EventLog>) -> Result<Ledger, ServiceError> {
        let views_dir = data.join("views");
        let views = match Views::open(&views_dir) {
            Err(ProjectorError::FormatMismatch {
                found, expected, ..
            }) => {
                tracing::warn!(
                    found,
                    expected,
                    "views are in an old format; rebuilding from the log"
                );
                std::fs::remove_dir_all(&views_dir).map_err(io(&views_dir))?;
                Views::open(&views_dir)?
            }
            other => other?,
        };
        let views = Arc::new(views);
        let projector = Arc::new(Projector::new(Arc::clone(&views), Arc::clone(&log))?);
        let keys_dir = data.join("keys");
        let contacts =
            ContactKeys::open(&keys_dir).map_err(|e| ServiceError::Keys(e.to_string()))?;
        let usage = UsageStore::open(&data.join("usage"))?;
        Ok(Ledger {
            data: data.to_owned(),
            log,
            views,
            projector,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            projecting: false,
            cards: None,
            decider: Decider::default(),
            contacts: Arc::new(contacts),
            notices_log: None,
            assignment: None,
            revocations_swept: std::sync::Mutex::new(0),
            usage: Arc::new(usage),
            notifier: None,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn views(&self) -> &Arc<Views> {
        &self.views
    }

    pub fn projector(&self) -> &Arc<Projector> {
        &self.projector
    }

    /// Starts the projector threads (one per partition).
    pub fn start_projector(&mut self) {
        let all = Arc::new(Assignment::all(self.log.partitions()));
        self.start_projector_assigned(all);
    }

    /// Starts the projector threads, projecting only what `assignment` owns
    /// (a consumer group's share, with a Kafka log).
    pub fn start_projector_assigned(&mut self, assignment: Arc<Assignment>) {
        if !self.projecting {
            self.projecting = true;
            self.assignment = Some(Arc::clone(&assignment));
            let threads = self
                .projector
                .spawn_assigned(Arc::clone(&self.stop), assignment);
            self.threads.extend(threads);
        }
    }

    /// Joins `thread` at shutdown; it must end soon after
    /// [`stop_flag`](Ledger::stop_flag) is set.
    pub fn attach(&mut self, thread: JoinHandle<()>) {
        self.threads.push(thread);
    }

    /// The erasable key store of sealed contact addresses.
    pub fn contacts(&self) -> &Arc<ContactKeys> {
        &self.contacts
    }

    /// Publishes completion notices to `log` (the notices topic) instead of
    /// the embedded `notices/` log.
    pub fn set_notices_log(&mut self, log: Arc<dyn EventLog>) {
        self.notices_log = Some(log);
    }

    /// Starts the notifier thread (see [`crate::notices`]) for the
    /// partitions this process projects; call after the projector started.
    pub fn start_notifier(&mut self, settings: NoticeSettings) -> Result<(), ServiceError> {
        let notices = match &self.notices_log {
            Some(log) => Arc::clone(log),
            None => {
                let dir = self.data.join("notices");
                let log = if dir.join("CURRENT").exists() {
                    EmbeddedLog::open_existing(&dir)?
                } else {
                    EmbeddedLog::open(&dir, self.log.partitions())?
                };
                let log: Arc<dyn EventLog> = Arc::new(log);
                self.notices_log = Some(Arc::clone(&log));
                log
            }
        };
        let assignment = self
            .assignment
            .clone()
            .unwrap_or_else(|| Arc::new(Assignment::all(self.log.partitions())));
        let notifier = Notifier::new(settings, notices, Arc::clone(&self.contacts), assignment);
        let core = self.core();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || notifier.run(&core, &stopping))
            .map_err(|source| ServiceError::Io {
                path: self.data.clone(),
                source,
            })?;
        self.notifier = Some((stop, thread));
        Ok(())
    }

    /// Verifies link requests' certificates with `cards` from now on.
    pub fn set_card_authority(&mut self, cards: Arc<CardAuthority>) {
        self.cards = Some(cards);
    }

    /// Decides a card holder's link request (see [`crate::cardlink`]): the
    /// certificate is verified now, against the configured anchors and CRLs,
    /// and the decision, on today's date in Japan, is logged.
    pub fn request_card_link(
        &self,
        request: &LinkRequest,
        certificate: &[u8],
    ) -> Result<LinkDecision, LinkRequestError> {
        let cards = self.cards.as_ref().ok_or(LinkRequestError::NotConfigured)?;
        let check = match cards.verify(certificate, RecordTime::now()) {
            Ok(serial) => CertificateCheck::Valid(serial),
            Err(refusal) => {
                // The serial of a refused certificate is still logged with
                // the refusal; one that cannot even be read is bad input.
                let serial = cardcert::unverified_serial(certificate).map_err(|e| {
                    LinkRequestError::Invalid(FieldError::new("certificate", e.to_string()))
                })?;
                let reason = match refusal {
                    CertificateRefusal::Expired { .. } => LinkRejectionReason::CertificateExpired,
                    CertificateRefusal::Revoked { .. } => LinkRejectionReason::CertificateRevoked,
                    _ => LinkRejectionReason::CertificateInvalid,
                };
                CertificateCheck::Refused {
                    serial,
                    reason,
                    detail: format!("{}: {refusal}", refusal.reason_code()),
                }
            }
        };
        Ok(self
            .decider
            .decide(self, request, check, Day::today_in_japan())?)
    }

    /// The card-certificate verifier, when configured.
    pub fn card_authority(&self) -> Option<&Arc<CardAuthority>> {
        self.cards.as_ref()
    }

    /// Unlinks every linked card whose certificate the CRLs in force revoke
    /// (`CERTIFICATE_REVOKED`, from the revocation date in Japan), once per
    /// CRL set: the CRL files are looked at now and reloaded if changed.
    pub fn sweep_revoked_cards(&self) -> Result<Vec<Unlinked>, DecideError> {
        let Some(cards) = &self.cards else {
            return Ok(Vec::new());
        };
        // A broken file is logged by the authority; the set in force stays.
        let _ = cards.reload_crls();
        let (generation, revoked) = cards.revoked_cards();
        let mut swept = self
            .revocations_swept
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *swept == generation {
            return Ok(Vec::new());
        }
        let source: PublisherId = REVOCATION_SOURCE.parse().expect("a valid publisher id");
        let mut out = Vec::new();
        for card in revoked {
            let day = Day::in_japan(card.revoked_at);
            if let Some(u) = self
                .decider
                .unlink_revoked(self, &card.serial, day, &source)?
            {
                tracing::info!(unlinked_on = %u.unlinked_on, "a linked card's certificate is revoked: unlinked");
                out.push(u);
            }
        }
        *swept = generation;
        Ok(out)
    }

    /// Ends the link of `serial` on `on` (see [`Decider::unlink`]); `None`
    /// when it is linked to nobody now.
    pub fn unlink_card(
        &self,
        serial: &CardSerial,
        on: Day,
        reason: UnlinkReason,
        source: &PublisherId,
    ) -> Result<Option<Unlinked>, DecideError> {
        self.decider.unlink(self, serial, on, reason, source)
    }

    /// Set when the ledger shuts down; background tasks tied to it stop.
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// Projects everything in the log now, on the calling thread.
    pub fn catch_up(&self) -> Result<projectors::ApplyStats, ServiceError> {
        Ok(self.projector.catch_up()?)
    }

    /// The log, views and projector as a cloneable handle, for workers
    /// (the notifier) that append and read from their own threads.
    pub fn core(&self) -> Core {
        Core {
            log: Arc::clone(&self.log),
            views: Arc::clone(&self.views),
            projector: Arc::clone(&self.projector),
        }
    }

    /// Validates and appends JSON events; one outcome per event, in order.
    /// Invalid events are refused without affecting the others.
    pub fn submit_json(
        &self,
        events: Vec<serde_json::Value>,
        wait: Wait,
    ) -> Result<Vec<Submitted>, ServiceError> {
        self.core().submit_json(events, wait)
    }

    /// Appends already-built events (validated here too).
    pub fn submit(&self, events: Vec<Event>, wait: Wait) -> Result<Vec<Submitted>, ServiceError> {
        self.core().submit(events, wait)
    }

    /// Appends events the caller parsed with [`json::from_value`] (which
    /// validates); each error becomes that slot's rejection.
    pub fn submit_parsed(
        &self,
        parsed: Vec<Result<Event, FieldError>>,
        wait: Wait,
    ) -> Result<Vec<Submitted>, ServiceError> {
        self.core().submit_parsed(parsed, wait)
    }

    pub fn eligibility(
        &self,
        key: &LookupKey,
        on: Day,
        as_of: Option<RecordTime>,
    ) -> Result<Lookup, ServiceError> {
        Ok(self.views.eligibility(key, on, as_of)?)
    }

    /// [`Ledger::eligibility`] for a caller who must know the holder's date
    /// of birth: a mismatch is answered as [`Lookup::NotFound`].
    pub fn eligibility_of_holder(
        &self,
        key: &LookupKey,
        birth_date: Day,
        on: Day,
        as_of: Option<RecordTime>,
    ) -> Result<Lookup, ServiceError> {
        Ok(self
            .views
            .eligibility_of_holder(key, birth_date, on, as_of)?)
    }

    /// The qualification an insured number names for a holder born on
    /// `birth_date`, valid on `on` or not (the online check's result reports
    /// a lost one with its dates and reason).
    pub fn qualification_named(
        &self,
        number: &IndividualInsuredNumber,
        birth_date: Day,
        on: Day,
        as_of: Option<RecordTime>,
    ) -> Result<Option<QualificationSnapshot>, ServiceError> {
        Ok(self
            .views
            .qualification_named(number, birth_date, on, as_of)?)
    }

    pub fn history(&self, link: &LinkNumber) -> Result<Option<History>, ServiceError> {
        Ok(self.views.history(link)?)
    }

    pub fn dead_letters(
        &self,
        after: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, ServiceError> {
        Ok(self.views.dead_letters(after, limit)?)
    }

    /// Per partition: the log's end, the projector's position, and whether
    /// this process projects it.
    pub fn projection_lag(&self) -> Result<Vec<PartitionLag>, ServiceError> {
        let positions = self.views.offsets()?;
        (0..self.log.partitions())
            .map(|partition| {
                Ok(PartitionLag {
                    partition,
                    end: self.log.end_offset(partition)?,
                    next: positions.get(&partition).copied().unwrap_or(0),
                    projected_here: self.assignment.as_ref().is_some_and(|a| a.owns(partition)),
                })
            })
            .collect()
    }

    /// Verification records and metering.
    pub fn usage(&self) -> &Arc<UsageStore> {
        &self.usage
    }

    /// For each insurer: answers served in `month` and persons insured in
    /// it (insurers with either).
    pub fn metering(&self, month: ServiceMonth) -> Result<Vec<MeterRow>, ServiceError> {
        crate::usage::metering(&self.views, Some(&self.usage), month)
    }

    /// The embedded log's directory, when it is the log of record.
    pub fn embedded_log_dir(&self) -> Option<PathBuf> {
        let dir = self.data.join("log");
        dir.join("CURRENT").exists().then_some(dir)
    }

    /// Stops the projector threads after their current batch and flushes.
    pub fn shutdown(&mut self) {
        if let Some((stop, thread)) = self.notifier.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Err(e) = self.views.flush() {
            tracing::error!(error = %e, "flushing views at shutdown failed");
        }
        if let Err(e) = self.usage.flush() {
            tracing::error!(error = %e, "writing the last answers of the usage store failed");
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}
