//! Applying one log record to the views, inside a [`Txn`].
//!
//! Decode, check it against what the ledger holds, update the entity's
//! facts, recompute its timeline and write the difference as version rows:
//! segments that no longer hold are closed at this record's time, new ones
//! opened. An event that cannot be applied is written to the dead-letter
//! view with its reason and changes nothing else; it never stops the
//! projector. Every write is keyed by the person, so partitions never
//! touch the same keys and a rebuild in any interleaving gives the same bytes.

use ledger::domain::*;
use ledger::event::{avro, Event, Payload, QualificationRetracted};
use ledger::log::LogRecord;

use crate::claims::overlap::{self, OverlapFeedEntry, OverlapNotice};
use crate::claims::{self, coverage, ClaimIndex, ClaimState, Decision, DecisionRecord, FeedEntry};
use crate::error::ProjectorError;
use crate::keys::{self, EntityKind};
use crate::model::*;
use crate::timeline;
use crate::txn::Txn;

/// What became of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The same event id was already applied from this partition.
    Duplicate,
    DeadLettered,
}

/// What the projector keeps of an applied event id: where it was applied
/// from and a digest of its content, to tell a re-sent event from a
/// different one reusing the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct AppliedMark {
    offset: ledger::log::Offset,
    digest: [u8; 16],
}

/// SHA-256 (first 16 bytes) of the event's datum under the current schema:
/// the record's own datum when it was written with the current schema (Avro
/// binary encoding is deterministic), re-encoded otherwise, so the same event
/// written under an older schema version digests the same.
fn content_digest(value: &[u8], event: &Event) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let current = avro::Contract::get()
        .current(event.event_type())
        .fingerprint;
    let hash = match avro::split_single_object(value) {
        Ok((fp, datum)) if fp == current => Sha256::digest(datum),
        _ => match avro::encode_datum(event) {
            Ok(datum) => Sha256::digest(&datum),
            Err(_) => Sha256::digest(value),
        },
    };
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out
}

/// Why an event cannot be applied.
#[derive(Debug)]
struct Reject {
    field: Option<String>,
    reason: String,
}

fn reject(reason: impl Into<String>) -> Reject {
    Reject {
        field: None,
        reason: reason.into(),
    }
}

fn reject_at(field: &str, reason: impl Into<String>) -> Reject {
    Reject {
        field: Some(field.to_owned()),
        reason: reason.into(),
    }
}

enum Step {
    Done,
    Rejected(Reject),
}

impl From<Reject> for Step {
    fn from(r: Reject) -> Step {
        Step::Rejected(r)
    }
}

/// Applies one record; storage errors are the only errors.
pub(crate) fn record(txn: &mut Txn<'_>, rec: &LogRecord) -> Result<Outcome, ProjectorError> {
    let dead = |txn: &mut Txn<'_>, event_type: Option<String>, r: Reject| {
        let letter = DeadLetter {
            partition: rec.partition,
            offset: rec.offset,
            record_time: rec.record_time,
            event_id: rec.event_id,
            event_type,
            field: r.field,
            reason: r.reason,
        };
        tracing::warn!(partition = rec.partition, offset = rec.offset, event_id = %rec.event_id,
            field = letter.field.as_deref().unwrap_or(""), "event dead-lettered");
        txn.put(keys::dead_letter(rec.partition, rec.offset), &letter);
        Outcome::DeadLettered
    };
    if let Some(defect) = &rec.defect {
        return Ok(dead(txn, None, reject(defect.clone())));
    }
    let event = match avro::decode(&rec.value) {
        Ok(e) => e,
        Err(avro::AvroError::Invalid { event_type, error }) => {
            return Ok(dead(
                txn,
                Some(event_type.name().into()),
                reject_at(&error.field, error.rule),
            ))
        }
        Err(e) => return Ok(dead(txn, None, reject(e.to_string()))),
    };
    let event_type = Some(event.event_type().name().to_owned());
    if rec.key != event.envelope.link.as_str().as_bytes() {
        return Ok(dead(
            txn,
            event_type,
            reject_at(
                "envelope.link",
                "does not match the record key (the partitioning key must be the link number)",
            ),
        ));
    }
    if event.envelope.event_id != rec.event_id {
        return Ok(dead(
            txn,
            event_type,
            reject_at("envelope.event_id", "does not match the record's event id"),
        ));
    }
    let applied_key = keys::applied(rec.partition, rec.event_id);
    let digest = content_digest(&rec.value, &event);
    if let Some(first) = txn.get::<AppliedMark>(&applied_key)? {
        if first.digest == digest {
            return Ok(Outcome::Duplicate);
        }
        // A log that cannot refuse a reused id at intake (Kafka) lets it
        // through; applying it once more, or silently not, would both be wrong.
        return Ok(dead(
            txn,
            event_type,
            reject_at(
                "envelope.event_id",
                format!(
                    "is already used by a different event (applied from offset {}); a re-sent event must be identical",
                    first.offset
                ),
            ),
        ));
    }
    let by = EventRef {
        event_id: event.envelope.event_id,
        source: event.envelope.source.clone(),
        partition: rec.partition,
        offset: rec.offset,
        record_time: rec.record_time,
    };
    let mut ctx = Ctx {
        txn,
        link: event.envelope.link.as_str().to_owned(),
        by,
        touched: Vec::new(),
        qualification_changed: false,
    };
    match ctx.event(&event)? {
        Step::Done => {
            ctx.reevaluate_claims()?;
            let mark = AppliedMark {
                offset: rec.offset,
                digest,
            };
            ctx.txn.put(applied_key, &mark);
            Ok(Outcome::Applied)
        }
        Step::Rejected(r) => Ok(dead(ctx.txn, event_type, r)),
    }
}

struct Ctx<'t, 'db> {
    txn: &'t mut Txn<'db>,
    link: String,
    by: EventRef,
    /// Valid-time ranges whose qualifications, certificates or subsidies
    /// this event changed: the months of the claims to decide again.
    touched: Vec<(Day, Option<Day>)>,
    /// Whether a qualification's timeline changed (overlaps may have).
    qualification_changed: bool,
}

type Res = Result<Step, ProjectorError>;

impl Ctx<'_, '_> {
    fn event(&mut self, event: &Event) -> Res {
        let p = &event.payload;
        match p {
            Payload::QualificationAcquired(a) => {
                let state = self.entity(EntityKind::Qualification, a.qualification_id.as_str())?;
                if has_acquisition(&state) {
                    return Ok(reject_at("qualification_id", "this qualification is already acquired; a re-join is a new qualification id, a correction is QualificationChanged or a retraction").into());
                }
                self.change(
                    EntityKind::Qualification,
                    a.qualification_id.as_str(),
                    state,
                    p,
                )
            }
            Payload::QualificationChanged(c) => {
                let state = self.entity(EntityKind::Qualification, c.qualification_id.as_str())?;
                let Some(acq) = acquisition(&state) else {
                    return Ok(
                        reject_at("qualification_id", "change of an unknown qualification").into(),
                    );
                };
                if c.effective_on < acq.acquired_on {
                    return Ok(reject_at(
                        "effective_on",
                        format!(
                            "is before the qualification was acquired ({})",
                            acq.acquired_on
                        ),
                    )
                    .into());
                }
                // The attributes from effective_on on, with this change applied last.
                let mut after = timeline::qualification_base(acq);
                let mut earlier: Vec<&ledger::event::QualificationChanged> = state
                    .facts
                    .iter()
                    .filter_map(|f| match &f.payload {
                        Payload::QualificationChanged(e) if e.effective_on <= c.effective_on => {
                            Some(e)
                        }
                        _ => None,
                    })
                    .collect();
                earlier.sort_by_key(|e| e.effective_on);
                for e in earlier {
                    timeline::apply_change(&mut after, e);
                }
                timeline::apply_change(&mut after, c);
                if let Err(e) = IndividualInsuredNumber::new(
                    after.insurer_number.clone(),
                    after.card_symbol.clone(),
                    after.card_number.clone(),
                    after.branch.clone(),
                ) {
                    return Ok(reject_at(&e.field, e.rule).into());
                }
                if let Err(v) = after.card_kind.allowed_for(after.insurer_kind) {
                    return Ok(reject_at("card_kind", v.rule()).into());
                }
                self.change(
                    EntityKind::Qualification,
                    c.qualification_id.as_str(),
                    state,
                    p,
                )
            }
            Payload::QualificationLost(l) => {
                let state = self.entity(EntityKind::Qualification, l.qualification_id.as_str())?;
                let Some(acq) = acquisition(&state) else {
                    return Ok(
                        reject_at("qualification_id", "loss of an unknown qualification").into(),
                    );
                };
                if l.lost_on <= acq.acquired_on {
                    return Ok(reject_at(
                        "lost_on",
                        format!(
                            "loss before acquisition: must be after acquired_on ({})",
                            acq.acquired_on
                        ),
                    )
                    .into());
                }
                self.change(
                    EntityKind::Qualification,
                    l.qualification_id.as_str(),
                    state,
                    p,
                )
            }
            Payload::QualificationRetracted(r) => self.retract(r),
            Payload::CertificateIssued(c) => {
                let qual = self.entity(EntityKind::Qualification, c.qualification_id.as_str())?;
                if !has_acquisition(&qual) {
                    return Ok(reject_at(
                        "qualification_id",
                        "certificate for an unknown qualification of this person",
                    )
                    .into());
                }
                if let Some(r) =
                    self.not_owner(EntityKind::Qualification, c.qualification_id.as_str(), &qual)
                {
                    return Ok(r.into());
                }
                let state = self.entity(EntityKind::Certificate, c.certificate_id.as_str())?;
                if !state.facts.is_empty() {
                    return Ok(
                        reject_at("certificate_id", "this certificate is already issued").into(),
                    );
                }
                self.change(EntityKind::Certificate, c.certificate_id.as_str(), state, p)
            }
            Payload::CertificateChanged(c) => {
                let state = self.entity(EntityKind::Certificate, c.certificate_id.as_str())?;
                let Some(issued) = timeline::certificate_issued(&state.facts) else {
                    return Ok(
                        reject_at("certificate_id", "change of an unknown certificate").into(),
                    );
                };
                if c.effective_on < issued.valid_from {
                    return Ok(reject_at(
                        "effective_on",
                        format!("is before the certificate is valid ({})", issued.valid_from),
                    )
                    .into());
                }
                let kind = issued.kind;
                let applies = |present: bool, field: &str, ok: bool| {
                    (present && !ok).then(|| {
                        reject_at(field, format!("does not apply to a {} certificate", kind.symbol()))
                    })
                };
                use ledger::domain::CertificateKind as K;
                let limit = matches!(kind, K::LimitApplication | K::LimitApplicationReduction);
                if let Some(r) = applies(c.limit_category.is_some(), "limit_category", limit)
                    .or_else(|| {
                        applies(
                            c.monthly_cap_yen.is_some(),
                            "monthly_cap_yen",
                            kind == K::SpecificDisease,
                        )
                    })
                    .or_else(|| {
                        applies(c.copay.is_some(), "copay_percent", kind == K::ElderlyRecipient)
                    })
                {
                    return Ok(r.into());
                }
                self.change(EntityKind::Certificate, c.certificate_id.as_str(), state, p)
            }
            Payload::CertificateEnded(e) => {
                let state = self.entity(EntityKind::Certificate, e.certificate_id.as_str())?;
                let Some(issued) = state.facts.iter().find_map(|f| match &f.payload {
                    Payload::CertificateIssued(c) => Some(c),
                    _ => None,
                }) else {
                    return Ok(reject_at("certificate_id", "end of an unknown certificate").into());
                };
                if e.ended_on <= issued.valid_from {
                    return Ok(reject_at(
                        "ended_on",
                        format!("must be after valid_from ({})", issued.valid_from),
                    )
                    .into());
                }
                self.change(EntityKind::Certificate, e.certificate_id.as_str(), state, p)
            }
            Payload::CardLinkRequested(r) => {
                let key = keys::link_request(&self.link, r.request_id.as_str());
                if self.txn.exists(&key)? {
                    return Ok(
                        reject_at("request_id", "a request with this id already exists").into(),
                    );
                }
                let status = LinkRequestStatus {
                    request_id: r.request_id.clone(),
                    card_serial: r.card_serial.clone(),
                    notice_requested: r.notice_requested,
                    requested_by: self.by.clone(),
                    outcome: None,
                    contact_key: r.contact.as_ref().map(|c| c.key_id),
                    contact_erased_by: None,
                    notice: None,
                };
                self.txn
                    .put(keys::request_index(r.request_id.as_str(), &self.link), &());
                self.txn.put(key, &status);
                Ok(Step::Done)
            }
            Payload::CardLinkRejected(r) => self.request(&r.request_id, |status, by| {
                if status.outcome.is_some() {
                    return Err(reject_at("request_id", "the link request is already decided"));
                }
                status.outcome = Some(LinkOutcome::Rejected {
                    by: by.clone(),
                    reason: r.reason,
                });
                Ok(())
            }),
            Payload::CardLinked(l) => {
                let insured = match l.insured_number() {
                    Ok(n) => n,
                    Err(e) => return Ok(reject_at(&e.field, e.rule).into()),
                };
                if !self.holds_live_qualification(&insured)? {
                    return Ok(reject_at("card_number", "link to an unknown individual insured number: no qualification of this person carries it").into());
                }
                let state = self.entity(EntityKind::CardLink, l.card_serial.as_str())?;
                if state.current.iter().any(|s| s.valid_to.is_none()) {
                    return Ok(reject_at("card_serial", "this serial is already linked").into());
                }
                if let Some(last_end) = state.current.iter().filter_map(|s| s.valid_to).max() {
                    if l.linked_on < last_end {
                        return Ok(reject_at(
                            "linked_on",
                            format!("overlaps the previous link, which ended on {last_end}"),
                        )
                        .into());
                    }
                }
                if let Some(request_id) = &l.request_id {
                    let key = keys::link_request(&self.link, request_id.as_str());
                    if self.txn.exists(&key)? {
                        let step = self.request(request_id, |status, by| {
                            if status.outcome.is_some() {
                                return Err(reject_at(
                                    "request_id",
                                    "the link request is already decided",
                                ));
                            }
                            status.outcome = Some(LinkOutcome::Linked { by: by.clone() });
                            if status.notice_requested {
                                status.notice = Some(NoticeStatus {
                                    notice_id: by.event_id,
                                    state: NoticeState::Pending,
                                    email: status.contact_key.is_some(),
                                    attempts: 0,
                                    retry_at: None,
                                    message_id: None,
                                    relay_reply: None,
                                    last_failure: None,
                                    trail: vec![by.clone()],
                                });
                            }
                            Ok(())
                        })?;
                        if let Step::Rejected(r) = step {
                            return Ok(Step::Rejected(r));
                        }
                    }
                }
                self.txn
                    .put(keys::serial_index(l.card_serial.as_str(), &self.link), &());
                self.change(EntityKind::CardLink, l.card_serial.as_str(), state, p)
            }
            Payload::CardUnlinked(u) => {
                let state = self.entity(EntityKind::CardLink, u.card_serial.as_str())?;
                let Some(open) = state.current.iter().find(|s| s.valid_to.is_none()) else {
                    return Ok(reject_at(
                        "card_serial",
                        "this serial is not linked to this person",
                    )
                    .into());
                };
                // On linked_on itself: the link is void (a card replaced the
                // day it was linked); its period is empty.
                if u.unlinked_on < open.valid_from {
                    return Ok(reject_at(
                        "unlinked_on",
                        format!("must not be before linked_on ({})", open.valid_from),
                    )
                    .into());
                }
                self.change(EntityKind::CardLink, u.card_serial.as_str(), state, p)
            }
            Payload::SubsidyGranted(g) => {
                let state = self.entity(EntityKind::Subsidy, g.subsidy_id.as_str())?;
                if !state.facts.is_empty() {
                    return Ok(reject_at("subsidy_id", "this subsidy is already granted").into());
                }
                // Subsidy data is held only for linked card holders (source p10).
                let Some(serial) = &g.card_serial else {
                    return Ok(reject_at(
                        "card_serial",
                        "subsidy data is held only for linked My Number card holders: give the serial of the person's linked card (publish again once the person has linked one)",
                    )
                    .into());
                };
                let link = self.entity(EntityKind::CardLink, serial.as_str())?;
                if !link.current.iter().any(|s| s.valid_to.is_none()) {
                    return Ok(reject_at(
                        "card_serial",
                        "subsidy data is held only for linked My Number card holders: this serial is not linked to this person now (publish again once it is)",
                    )
                    .into());
                }
                self.change(EntityKind::Subsidy, g.subsidy_id.as_str(), state, p)
            }
            Payload::SubsidyChanged(c) => {
                let state = self.entity(EntityKind::Subsidy, c.subsidy_id.as_str())?;
                let Some(from) = subsidy_from(&state) else {
                    return Ok(reject_at("subsidy_id", "change of an unknown subsidy").into());
                };
                if c.effective_on < from {
                    return Ok(reject_at(
                        "effective_on",
                        format!("is before the subsidy starts ({from})"),
                    )
                    .into());
                }
                self.change(EntityKind::Subsidy, c.subsidy_id.as_str(), state, p)
            }
            Payload::SubsidyEnded(e) => {
                let state = self.entity(EntityKind::Subsidy, e.subsidy_id.as_str())?;
                let Some(from) = subsidy_from(&state) else {
                    return Ok(reject_at("subsidy_id", "end of an unknown subsidy").into());
                };
                if e.ended_on <= from {
                    return Ok(
                        reject_at("ended_on", format!("must be after valid_from ({from})")).into(),
                    );
                }
                self.change(EntityKind::Subsidy, e.subsidy_id.as_str(), state, p)
            }
            Payload::ClaimSubmitted(c) => self.submit_claim(c),
            Payload::ClaimWithdrawn(w) => {
                let key = keys::claim(&self.link, w.claim_id.as_str());
                let Some(mut state) = self.txn.get_json::<ClaimState>(&key)? else {
                    return Ok(reject_at("claim_id", "no claim of this person has this id").into());
                };
                if state.withdrawn_by.is_some() {
                    return Ok(reject_at("claim_id", "the claim is already withdrawn").into());
                }
                state.withdrawn_by = Some(self.by.clone());
                let mut index = self.claim_index()?;
                let month = state.claim.service_month.index();
                if let Some(ids) = index.months.get_mut(&month) {
                    ids.retain(|id| id != &w.claim_id);
                    if ids.is_empty() {
                        index.months.remove(&month);
                    }
                }
                self.txn.put(keys::claim_index(&self.link), &index);
                self.txn.put_json(key, &state);
                Ok(Step::Done)
            }
            Payload::NoticePublished(n) => self.notice(&n.request_id, |notice, _| {
                if notice.state != NoticeState::Pending {
                    return Err(reject_at("request_id", "the notice is already published"));
                }
                if n.notice_id != notice.notice_id {
                    return Err(reject_at(
                        "notice_id",
                        format!("must be the notice's id {}", notice.notice_id),
                    ));
                }
                notice.state = NoticeState::Published;
                Ok(())
            }),
            Payload::NoticeSendStarted(n) => self.notice(&n.request_id, |notice, _| {
                if !(notice.email && notice.state == NoticeState::Published) {
                    return Err(reject_at(
                        "request_id",
                        "no e-mail of this notice is due (not yet published, settled, or without an address)",
                    ));
                }
                next_attempt(notice, n.attempt)?;
                notice.state = NoticeState::Sending;
                notice.message_id = Some(n.message_id.clone());
                Ok(())
            }),
            Payload::NoticeDelivered(n) => self.notice(&n.request_id, |notice, _| {
                if !(notice.state == NoticeState::Sending && notice.attempts == n.attempt) {
                    return Err(reject_at(
                        "attempt",
                        "no e-mail attempt with this number is in progress",
                    ));
                }
                notice.state = NoticeState::Delivered;
                notice.relay_reply = Some(n.relay_reply.clone());
                notice.retry_at = None;
                Ok(())
            }),
            Payload::NoticeDeliveryFailed(n) => self.notice(&n.request_id, |notice, _| {
                match notice.state {
                    // An attempt that failed after it was handed to the relay.
                    NoticeState::Sending if notice.attempts == n.attempt => {}
                    // One that failed before (no connection, refused sender).
                    NoticeState::Published if notice.email => next_attempt(notice, n.attempt)?,
                    _ => {
                        return Err(reject_at(
                            "attempt",
                            "no e-mail attempt with this number is due or in progress",
                        ))
                    }
                }
                notice.state = match n.retry_at {
                    Some(_) => NoticeState::Published,
                    None => NoticeState::Parked,
                };
                notice.retry_at = n.retry_at;
                notice.last_failure = Some((n.failure, n.detail.clone()));
                Ok(())
            }),
            Payload::ContactErased(e) => self.request(&e.request_id, |status, by| {
                if status.contact_key != Some(e.key_id) {
                    return Err(reject_at(
                        "key_id",
                        "is not the request's contact key, or it is erased already",
                    ));
                }
                if status.notice.as_ref().is_some_and(|n| !n.is_settled()) {
                    return Err(reject_at(
                        "request_id",
                        "the notice still needs the address: erase it once delivered or parked",
                    ));
                }
                status.contact_key = None;
                status.contact_erased_by = Some(by.clone());
                Ok(())
            }),
        }
    }

    /// Changes the person's link request `request_id` with `f`, keeping the
    /// notices outbox in step; an unknown request or a refusal by `f` is
    /// rejected.
    fn request(
        &mut self,
        request_id: &RequestId,
        f: impl FnOnce(&mut LinkRequestStatus, &EventRef) -> Result<(), Reject>,
    ) -> Res {
        let key = keys::link_request(&self.link, request_id.as_str());
        let Some(mut status) = self.txn.get::<LinkRequestStatus>(&key)? else {
            return Ok(
                reject_at("request_id", "no link request of this person has this id").into(),
            );
        };
        if let Err(r) = f(&mut status, &self.by) {
            return Ok(r.into());
        }
        let outbox = keys::notice_outbox(request_id.as_str(), &self.link);
        if status.has_work() {
            self.txn.put(outbox, &());
        } else {
            self.txn.delete(outbox);
        }
        self.txn.put(key, &status);
        Ok(Step::Done)
    }

    /// Changes the completion notice of `request_id` with `f`.
    fn notice(
        &mut self,
        request_id: &RequestId,
        f: impl FnOnce(&mut NoticeStatus, &EventRef) -> Result<(), Reject>,
    ) -> Res {
        self.request(request_id, |status, by| {
            let Some(notice) = status.notice.as_mut() else {
                return Err(reject_at(
                    "request_id",
                    "no completion notice is due for this request",
                ));
            };
            f(notice, by)?;
            notice.trail.push(by.clone());
            Ok(())
        })
    }

    /// Registers a claim and decides it on what the ledger holds now.
    fn submit_claim(&mut self, c: &ledger::event::ClaimSubmitted) -> Res {
        let key = keys::claim(&self.link, c.claim_id.as_str());
        if self.txn.exists(&key)? {
            return Ok(reject_at(
                "claim_id",
                "a claim with this id is already registered for this person",
            )
            .into());
        }
        let mut state = ClaimState {
            claim: c.clone(),
            submitted_by: self.by.clone(),
            withdrawn_by: None,
            decisions: Vec::new(),
        };
        let versions = self.person_versions()?;
        self.decide_claim(&mut state, &versions);
        let mut index = self.claim_index()?;
        let ids = index.months.entry(c.service_month.index()).or_default();
        if !ids.contains(&c.claim_id) {
            ids.push(c.claim_id.clone());
        }
        self.txn.put(keys::claim_index(&self.link), &index);
        self.txn
            .put(keys::claim_by_id(c.claim_id.as_str(), &self.link), &());
        self.txn.put_json(key, &state);
        Ok(Step::Done)
    }

    /// After an event changed the person's qualifications, certificates or
    /// subsidies: refreshes the overlap notices and decides again every
    /// open claim of the months it touched (a changed decision is recorded
    /// and fed, a same one not).
    fn reevaluate_claims(&mut self) -> Result<(), ProjectorError> {
        if self.touched.is_empty() {
            return Ok(());
        }
        let touched = std::mem::take(&mut self.touched);
        let index = self.claim_index()?;
        let affected: Vec<ledger::domain::ClaimId> = index
            .months
            .iter()
            .filter(|(month, _)| {
                let Some(month) = ServiceMonth::from_index(**month) else {
                    return false;
                };
                let first = month.first_day();
                let next = first.add_days(month.days() as i32);
                touched
                    .iter()
                    .any(|(from, to)| *from < next && to.is_none_or(|to| first < to))
            })
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        // Most events change no claim and no overlap: read nothing more.
        if affected.is_empty() && !self.qualification_changed {
            return Ok(());
        }
        let versions = self.person_versions()?;
        if self.qualification_changed {
            self.refresh_overlaps(&versions)?;
        }
        for id in affected {
            let key = keys::claim(&self.link, id.as_str());
            let Some(mut state) = self.txn.get_json::<ClaimState>(&key)? else {
                continue;
            };
            if self.decide_claim(&mut state, &versions) {
                self.txn.put_json(key, &state);
            }
        }
        Ok(())
    }

    /// Raises the overlap notices that appeared and clears those that went,
    /// each fed to its 国保 insurer.
    fn refresh_overlaps(&mut self, versions: &[OwnedVersion]) -> Result<(), ProjectorError> {
        let borrowed = borrow(versions);
        let now = overlap::open_overlaps(&borrowed);
        let key = keys::overlaps(&self.link);
        let mut notices: Vec<OverlapNotice> = self.txn.get_json(&key)?.unwrap_or_default();
        if now.is_empty() && notices.iter().all(|n| n.cleared_by.is_some()) {
            return Ok(());
        }
        let mut changed = Vec::new();
        for n in notices.iter_mut().filter(|n| n.cleared_by.is_none()) {
            let same = |o: &overlap::Overlap| {
                o.nhi_qualification == n.overlap.nhi_qualification
                    && o.employee_qualification == n.overlap.employee_qualification
            };
            if !now.iter().any(same) {
                n.cleared_by = Some(self.by.clone());
                changed.push(("cleared", n.clone()));
            }
        }
        for o in now {
            let open = notices.iter().any(|n| {
                n.cleared_by.is_none()
                    && n.overlap.nhi_qualification == o.nhi_qualification
                    && n.overlap.employee_qualification == o.employee_qualification
            });
            if !open {
                let notice = OverlapNotice {
                    overlap: o,
                    raised_by: self.by.clone(),
                    cleared_by: None,
                };
                changed.push(("raised", notice.clone()));
                notices.push(notice);
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        for (change, notice) in changed {
            let tail = format!(
                "{}\u{1f}{}",
                self.link,
                notice.overlap.employee_qualification.as_str()
            );
            self.txn.put_json(
                keys::overlap_feed(
                    notice.overlap.nhi_insurer.as_str(),
                    self.by.record_time,
                    self.by.partition,
                    self.by.offset,
                    &tail,
                ),
                &OverlapFeedEntry {
                    link: self.link.clone(),
                    change: change.to_owned(),
                    notice,
                },
            );
        }
        self.txn.put_json(key, &notices);
        Ok(())
    }

    /// Decides `state`'s claim; records and feeds the decision if it differs
    /// from the last one. Returns whether it did.
    fn decide_claim(&mut self, state: &mut ClaimState, versions: &[OwnedVersion]) -> bool {
        let borrowed = borrow(versions);
        let evaluation = claims::evaluate(&state.claim, &borrowed);
        if state
            .current()
            .is_some_and(|d| d.evaluation.decision == evaluation.decision)
        {
            return false;
        }
        let record = DecisionRecord {
            evaluation,
            caused_by: self.by.clone(),
        };
        let mut payers = vec![state.claim.payer];
        for p in decision_payers(&record.evaluation.decision) {
            if !payers.contains(&p) {
                payers.push(p);
            }
        }
        for payer in payers {
            self.txn.put_json(
                keys::decision_feed(
                    payer_byte(payer),
                    self.by.record_time,
                    self.by.partition,
                    self.by.offset,
                    state.claim.claim_id.as_str(),
                ),
                &FeedEntry {
                    claim_id: state.claim.claim_id.clone(),
                    link: self.link.clone(),
                    payer: state.claim.payer,
                    record: record.clone(),
                },
            );
        }
        state.decisions.push(record);
        true
    }

    /// The person's qualification, certificate and subsidy versions as
    /// known now.
    fn person_versions(&self) -> Result<Vec<OwnedVersion>, ProjectorError> {
        let entities: Vec<EntityRef> = self
            .txn
            .get(&keys::person_entities(&self.link))?
            .unwrap_or_default();
        let mut out = Vec::new();
        for e in entities.iter().filter(|e| e.kind != EntityKind::CardLink) {
            let state = self.entity(e.kind, &e.id)?;
            out.extend(
                state
                    .current
                    .into_iter()
                    .map(|s| (s.valid_from, s.valid_to, s.snapshot, s.created_by)),
            );
        }
        Ok(out)
    }

    fn claim_index(&self) -> Result<ClaimIndex, ProjectorError> {
        Ok(self
            .txn
            .get(&keys::claim_index(&self.link))?
            .unwrap_or_default())
    }

    fn register_entity(&mut self, kind: EntityKind, id: &str) -> Result<(), ProjectorError> {
        let key = keys::person_entities(&self.link);
        let mut entities: Vec<EntityRef> = self.txn.get(&key)?.unwrap_or_default();
        if !entities.iter().any(|e| e.kind == kind && e.id == id) {
            entities.push(EntityRef {
                kind,
                id: id.to_owned(),
            });
            self.txn.put(key, &entities);
        }
        Ok(())
    }

    fn entity(&self, kind: EntityKind, id: &str) -> Result<EntityState, ProjectorError> {
        Ok(self
            .txn
            .get(&keys::entity(&self.link, kind, id))?
            .unwrap_or_default())
    }

    /// Adds the event to the entity's facts and writes the new timeline.
    fn change(
        &mut self,
        kind: EntityKind,
        id: &str,
        mut state: EntityState,
        payload: &Payload,
    ) -> Res {
        if let Some(r) = self.not_owner(kind, id, &state) {
            return Ok(r.into());
        }
        if state.facts.is_empty() {
            self.register_entity(kind, id)?;
        }
        state.facts.push(Fact {
            by: self.by.clone(),
            payload: payload.clone(),
        });
        self.txn.put(
            keys::event(&self.link, self.by.event_id),
            &EntityRef {
                kind,
                id: id.to_owned(),
            },
        );
        self.rewrite(kind, id, state)
    }

    /// A qualification, certificate or subsidy is changed, ended or retracted
    /// only by the publisher that founded it (the `envelope.source` of its
    /// acquisition, issue or grant): intake holds each client to its own
    /// source, so this keeps an insurer off another insurer's records. Card
    /// links are the ledger's decisions and are exempt.
    fn not_owner(&self, kind: EntityKind, id: &str, state: &EntityState) -> Option<Reject> {
        if kind == EntityKind::CardLink {
            return None;
        }
        let founder = state
            .facts
            .iter()
            .find(|f| {
                matches!(
                    f.payload,
                    Payload::QualificationAcquired(_)
                        | Payload::CertificateIssued(_)
                        | Payload::SubsidyGranted(_)
                )
            })
            .or(state.facts.first())?;
        (founder.by.source != self.by.source).then(|| {
            reject_at(
                "envelope.source",
                format!(
                    "{} {id} belongs to publisher {}; only it may change it",
                    match kind {
                        EntityKind::Qualification => "qualification",
                        EntityKind::Certificate => "certificate",
                        EntityKind::Subsidy => "subsidy",
                        EntityKind::CardLink => "card link",
                    },
                    founder.by.source
                ),
            )
        })
    }

    /// Recomputes the timeline from the facts; closes what no longer holds,
    /// opens what is new, keeps what is unchanged.
    fn rewrite(&mut self, kind: EntityKind, id: &str, mut state: EntityState) -> Res {
        let spans = timeline::of(kind, &state.facts);
        let mut old = std::mem::take(&mut state.current);
        if kind != EntityKind::CardLink {
            // Only the days whose attributes changed can change a claim.
            let before: Vec<(Day, Option<Day>, &Snapshot)> = old
                .iter()
                .map(|s| (s.valid_from, s.valid_to, &s.snapshot))
                .collect();
            let after: Vec<(Day, Option<Day>, &Snapshot)> =
                spans.iter().map(|(f, t, s)| (*f, *t, s)).collect();
            let changed = timeline::changed_ranges(&before, &after);
            self.qualification_changed |= kind == EntityKind::Qualification && !changed.is_empty();
            self.touched.extend(changed);
        }
        let mut next = Vec::with_capacity(spans.len());
        for (from, to, snapshot) in spans {
            if let Some(i) = old
                .iter()
                .position(|o| o.valid_from == from && o.valid_to == to && o.snapshot == snapshot)
            {
                next.push(old.swap_remove(i));
                continue;
            }
            if let Snapshot::Qualification(q) = &snapshot {
                self.index_insured(q)?;
            }
            let seg = Segment {
                valid_from: from,
                valid_to: to,
                snapshot,
                recorded_from: self.by.record_time,
                created_by: self.by.clone(),
            };
            self.put_row(kind, id, &seg, None);
            next.push(seg);
        }
        for closed in &old {
            let by = self.by.clone();
            self.put_row(kind, id, closed, Some(by));
        }
        next.sort_by_key(|s| s.valid_from);
        state.current = next;
        self.txn.put(keys::entity(&self.link, kind, id), &state);
        Ok(Step::Done)
    }

    fn put_row(&mut self, kind: EntityKind, id: &str, seg: &Segment, closed_by: Option<EventRef>) {
        let row = VersionRow {
            valid_from: seg.valid_from,
            valid_to: seg.valid_to,
            recorded_from: seg.recorded_from,
            recorded_to: closed_by.as_ref().map(|b| b.record_time),
            created_by: seg.created_by.clone(),
            closed_by,
            snapshot: seg.snapshot.clone(),
        };
        let key = keys::version(
            &self.link,
            kind,
            id,
            seg.valid_from,
            seg.recorded_from,
            seg.created_by.offset,
        );
        self.txn.put(key, &row);
    }

    /// Records that this person's qualification carries this number.
    fn index_insured(&mut self, q: &QualificationSnapshot) -> Result<(), ProjectorError> {
        let Some(number) = q.insured_number() else {
            return Ok(());
        };
        let key = keys::insured_index(&number.index_key(), &self.link);
        let mut ids: Vec<QualificationId> = self.txn.get(&key)?.unwrap_or_default();
        if !ids.contains(&q.qualification_id) {
            ids.push(q.qualification_id.clone());
            ids.sort();
            self.txn.put(key, &ids);
        }
        Ok(())
    }

    /// Whether a qualification of this person currently carries `number`.
    fn holds_live_qualification(
        &self,
        number: &IndividualInsuredNumber,
    ) -> Result<bool, ProjectorError> {
        let key = keys::insured_index(&number.index_key(), &self.link);
        let ids: Vec<QualificationId> = self.txn.get(&key)?.unwrap_or_default();
        for id in ids {
            let state = self.entity(EntityKind::Qualification, id.as_str())?;
            let carries = state.current.iter().any(|s| match &s.snapshot {
                Snapshot::Qualification(q) => q.insured_number().as_ref() == Some(number),
                _ => false,
            });
            if carries {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn retract(&mut self, r: &QualificationRetracted) -> Res {
        let (kind, id, event_id) = match (&r.retracted_event_id, &r.retracted_qualification_id) {
            (Some(event_id), None) => {
                let Some(target) = self
                    .txn
                    .get::<EntityRef>(&keys::event(&self.link, *event_id))?
                else {
                    return Ok(reject_at(
                        "retracted_event_id",
                        "retraction of an unknown event of this person",
                    )
                    .into());
                };
                (target.kind, target.id, Some(*event_id))
            }
            (None, Some(q)) => (EntityKind::Qualification, q.as_str().to_owned(), None),
            _ => {
                return Ok(reject_at("retracted_event_id", "exactly one target must be set").into())
            }
        };
        if kind == EntityKind::CardLink {
            return Ok(reject_at(
                "retracted_event_id",
                "card links are ended by CardUnlinked, not retracted",
            )
            .into());
        }
        let mut state = self.entity(kind, &id)?;
        if let Some(r) = self.not_owner(kind, &id, &state) {
            return Ok(r.into());
        }
        match event_id {
            None => {
                if !has_acquisition(&state) {
                    return Ok(reject_at(
                        "retracted_qualification_id",
                        "retraction of an unknown or already retracted qualification",
                    )
                    .into());
                }
                state.facts.clear();
            }
            Some(event_id) => {
                let Some(pos) = state.facts.iter().position(|f| f.by.event_id == event_id) else {
                    return Ok(
                        reject_at("retracted_event_id", "the event is already retracted").into(),
                    );
                };
                let founding = matches!(
                    state.facts[pos].payload,
                    Payload::QualificationAcquired(_)
                        | Payload::CertificateIssued(_)
                        | Payload::SubsidyGranted(_)
                );
                if founding {
                    // Without its founding event the record never existed.
                    state.facts.clear();
                } else {
                    state.facts.remove(pos);
                }
            }
        }
        self.rewrite(kind, &id, state)
    }
}

/// A version owned: from, to, snapshot, the event that made it.
type OwnedVersion = (Day, Option<Day>, Snapshot, EventRef);

fn borrow(versions: &[OwnedVersion]) -> Vec<coverage::Version<'_>> {
    versions
        .iter()
        .map(|(from, to, snapshot, by)| coverage::Version {
            from: *from,
            to: *to,
            snapshot,
            by,
        })
        .collect()
}

/// The payer organisations a decision sends the claim to.
fn decision_payers(d: &Decision) -> Vec<PayerOrganisation> {
    match d {
        Decision::Reroute { payer, .. } | Decision::MovePayer { payer, .. } => vec![*payer],
        Decision::Split { parts, .. } => parts.iter().map(|p| p.payer).collect(),
        Decision::Review { proposed, .. } => decision_payers(proposed),
        Decision::Keep | Decision::Return { .. } => Vec::new(),
    }
}

/// The payer organisation's byte in feed keys.
pub(crate) fn payer_byte(p: PayerOrganisation) -> u8 {
    match p {
        PayerOrganisation::SocialInsuranceFund => 1,
        PayerOrganisation::NhiFederation => 2,
    }
}

/// Numbers a new e-mail attempt: the one after the last.
fn next_attempt(notice: &mut NoticeStatus, attempt: u32) -> Result<(), Reject> {
    if attempt != notice.attempts + 1 {
        return Err(reject_at(
            "attempt",
            format!("must be {}, the next attempt", notice.attempts + 1),
        ));
    }
    notice.attempts = attempt;
    Ok(())
}

fn acquisition(state: &EntityState) -> Option<&ledger::event::QualificationAcquired> {
    state.facts.iter().find_map(|f| match &f.payload {
        Payload::QualificationAcquired(a) => Some(a),
        _ => None,
    })
}

fn has_acquisition(state: &EntityState) -> bool {
    acquisition(state).is_some()
}

fn subsidy_from(state: &EntityState) -> Option<Day> {
    state.facts.iter().find_map(|f| match &f.payload {
        Payload::SubsidyGranted(g) => Some(g.valid_from),
        _ => None,
    })
}
