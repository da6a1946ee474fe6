//! Deciding a card holder's link request (初回紐付け): is this My Number
//! card's serial to identify the person who carries this individual insured
//! number?
//!
//! The decision reads the views as they are now and is then itself written
//! to the log, in the person's partition, as events: `CardLinkRequested`,
//! then `CardLinked` (preceded by `CardUnlinked` for a card it replaces) or
//! `CardLinkRejected` with the reason. Replays apply those events; they never
//! decide again, so every replay reproduces the decision.
//!
//! Rules, in order:
//! 1. the certificate must be valid ([`CertificateCheck`], verified by the
//!    caller against the configured trust anchors and CRLs): otherwise
//!    rejected as `CERTIFICATE_EXPIRED`, `CERTIFICATE_REVOKED` or
//!    `CERTIFICATE_INVALID`;
//! 2. some person's qualification must carry the individual insured number
//!    (`NO_SUCH_QUALIFICATION`), and one of them must be valid on the
//!    request date (`QUALIFICATION_LOST`);
//! 3. the serial must not be linked to anyone else (`SERIAL_LINKED_ELSEWHERE`);
//!    linked to this person already, the request changes nothing;
//! 4. any other card linked to the person is a renewed or reissued card:
//!    its link ends on the request date (`CARD_RENEWED`), and the new serial
//!    is linked from that date. An old card linked that same day never
//!    identified the person on any day: its link ends the day it began.
//!
//! A request whose number nobody carries is logged under a person id of its
//! own (`UNMATCHED-<request id>`), so rejected requests are in the log too.
//! Decisions are serialised in this process; two processes deciding for one
//! serial at once are not (see the README).
//!
//! This module must not verify certificates itself, nor keep anything of
//! them but the serial.

use std::sync::Mutex;
use std::time::Duration;

use ledger::domain::{
    Branch, CardNumber, CardSerial, CardSymbol, Day, IndividualInsuredNumber, InsurerNumber,
    LinkNumber, PublisherId, RequestId, SealedContact,
};
use ledger::error::FieldError;
use ledger::event::{
    CardLinkRejected, CardLinkRequested, CardLinked, CardUnlinked, Event, LinkRejectionReason,
    Payload, UnlinkReason,
};
use serde::Serialize;

use crate::contact::{ContactAddress, ContactError};
use crate::service::{Ledger, ServiceError, Submitted, Wait};

/// How long a decision waits for its events to reach the views, so the next
/// decision sees it.
const PROJECTED_WITHIN: Duration = Duration::from_secs(10);

/// A holder's link request, the certificate already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    pub request_id: RequestId,
    pub insurer_number: InsurerNumber,
    pub card_symbol: Option<CardSymbol>,
    pub card_number: CardNumber,
    pub branch: Option<Branch>,
    pub notice_requested: bool,
    /// Where to e-mail the notice, if the holder gave an address. Used only
    /// for a completed link with a notice asked for, and then sealed.
    pub contact: Option<ContactAddress>,
    /// Who forwarded the request (the portal).
    pub source: PublisherId,
}

impl LinkRequest {
    pub fn insured_number(&self) -> Result<IndividualInsuredNumber, FieldError> {
        IndividualInsuredNumber::new(
            self.insurer_number.clone(),
            self.card_symbol.clone(),
            self.card_number.clone(),
            self.branch.clone(),
        )
    }
}

/// What the certificate check found: the serial is taken from the
/// certificate even when it is refused, so the refusal can be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateCheck {
    Valid(CardSerial),
    Refused {
        serial: CardSerial,
        reason: LinkRejectionReason,
        /// Why, without personal data (e.g. `CERTIFICATE_EXPIRED: …`).
        detail: String,
    },
}

/// The ledger's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum LinkDecision {
    Linked {
        request_id: RequestId,
        card_serial: CardSerial,
        linked_on: Day,
        /// Serials of cards this one replaces, unlinked on `linked_on`.
        replaced: Vec<CardSerial>,
    },
    /// The serial already identified this person; nothing was logged.
    AlreadyLinked {
        request_id: RequestId,
        card_serial: CardSerial,
        linked_on: Day,
    },
    Rejected {
        request_id: RequestId,
        card_serial: CardSerial,
        reason: LinkRejectionReason,
        detail: String,
    },
}

/// Serialises decisions: each reads the views the previous one wrote.
#[derive(Debug, Default)]
pub struct Decider {
    lock: Mutex<()>,
}

impl Decider {
    /// Decides `request` on `today` (Japan) and logs the decision.
    pub fn decide(
        &self,
        ledger: &Ledger,
        request: &LinkRequest,
        check: CertificateCheck,
        today: Day,
    ) -> Result<LinkDecision, DecideError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let number = request.insured_number().map_err(DecideError::Invalid)?;
        let views = ledger.views();
        let carriers = views.persons_carrying(&number, today)?;
        let serial = match &check {
            CertificateCheck::Valid(s) | CertificateCheck::Refused { serial: s, .. } => s.clone(),
        };
        let person = carriers
            .iter()
            .find(|(_, valid)| *valid)
            .or(carriers.first())
            .map(|(link, _)| link.clone());
        let unmatched = || {
            LinkNumber::parse(&format!("UNMATCHED-{}", request.request_id.as_str()))
                .expect("a request id makes a valid person id")
        };
        let reject = |link: LinkNumber, reason: LinkRejectionReason, detail: String| {
            // No notice follows a rejection: the address is dropped unsealed.
            let events = vec![
                self.event(request, &link, requested(request, &serial, None)),
                self.event(
                    request,
                    &link,
                    Payload::CardLinkRejected(CardLinkRejected {
                        request_id: request.request_id.clone(),
                        card_serial: serial.clone(),
                        reason,
                    }),
                ),
            ];
            log(ledger, events)?;
            Ok(LinkDecision::Rejected {
                request_id: request.request_id.clone(),
                card_serial: serial.clone(),
                reason,
                detail,
            })
        };
        if let CertificateCheck::Refused { reason, detail, .. } = check {
            return reject(person.unwrap_or_else(unmatched), reason, detail);
        }
        let Some(person) = person else {
            return reject(
                unmatched(),
                LinkRejectionReason::NoSuchQualification,
                "no qualification carries this individual insured number".into(),
            );
        };
        if !carriers.iter().any(|(_, valid)| *valid) {
            return reject(
                person,
                LinkRejectionReason::QualificationLost,
                format!(
                    "the qualification with this individual insured number is not valid on {today}"
                ),
            );
        }
        let holders = views.holders_of(&serial)?;
        if holders.iter().any(|h| *h != person) {
            return reject(
                person,
                LinkRejectionReason::SerialLinkedElsewhere,
                "this card is linked to another person".into(),
            );
        }
        let open = views.open_card_links(&person)?;
        if let Some((_, linked_on)) = open.iter().find(|(s, _)| *s == serial) {
            return Ok(LinkDecision::AlreadyLinked {
                request_id: request.request_id.clone(),
                card_serial: serial,
                linked_on: *linked_on,
            });
        }
        let contact = match (&request.contact, request.notice_requested) {
            (Some(address), true) => Some(ledger.contacts().seal(&request.request_id, address)?),
            _ => None,
        };
        let mut events = vec![self.event(request, &person, requested(request, &serial, contact))];
        let mut replaced = Vec::new();
        for (old, _) in open {
            events.push(self.event(
                request,
                &person,
                Payload::CardUnlinked(CardUnlinked {
                    card_serial: old.clone(),
                    unlinked_on: today,
                    reason: UnlinkReason::CardRenewed,
                }),
            ));
            replaced.push(old);
        }
        events.push(self.event(
            request,
            &person,
            Payload::CardLinked(CardLinked {
                request_id: Some(request.request_id.clone()),
                card_serial: serial.clone(),
                insurer_number: request.insurer_number.clone(),
                card_symbol: request.card_symbol.clone(),
                card_number: request.card_number.clone(),
                branch: request.branch.clone(),
                linked_on: today,
            }),
        ));
        log(ledger, events)?;
        Ok(LinkDecision::Linked {
            request_id: request.request_id.clone(),
            card_serial: serial,
            linked_on: today,
            replaced,
        })
    }

    fn event(&self, request: &LinkRequest, link: &LinkNumber, payload: Payload) -> Event {
        Event::new(&request.source, link, payload)
    }

    /// Ends the link of `serial` on `on` (a lost card, a revoked certificate,
    /// the holder's wish): a `CardUnlinked` in the holder's partition. `None`
    /// when the serial is linked to nobody now.
    pub fn unlink(
        &self,
        ledger: &Ledger,
        serial: &CardSerial,
        on: Day,
        reason: UnlinkReason,
        source: &PublisherId,
    ) -> Result<Option<Unlinked>, DecideError> {
        self.end_link(ledger, serial, reason, source, |since| {
            if on < since {
                return Err(DecideError::Invalid(FieldError::new(
                    "on",
                    format!("must not be before the day the card was linked ({since})"),
                )));
            }
            Ok(on)
        })
    }

    /// Ends the link of a card whose certificate a CRL revoked at
    /// `revoked_on` (Japan): from that day, or from the link's first day if
    /// the link came later (the link is then void). `None` when the serial
    /// is linked to nobody now.
    pub fn unlink_revoked(
        &self,
        ledger: &Ledger,
        serial: &CardSerial,
        revoked_on: Day,
        source: &PublisherId,
    ) -> Result<Option<Unlinked>, DecideError> {
        self.end_link(
            ledger,
            serial,
            UnlinkReason::CertificateRevoked,
            source,
            |since| Ok(revoked_on.max(since)),
        )
    }

    /// Logs `CardUnlinked` for every open link of `serial`, on the day `on`
    /// chooses from the link's first day.
    fn end_link(
        &self,
        ledger: &Ledger,
        serial: &CardSerial,
        reason: UnlinkReason,
        source: &PublisherId,
        on: impl Fn(Day) -> Result<Day, DecideError>,
    ) -> Result<Option<Unlinked>, DecideError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let views = ledger.views();
        let mut events = Vec::new();
        let mut ended_on = None;
        for holder in views.holders_of(serial)? {
            let Some(since) = views
                .open_card_links(&holder)?
                .into_iter()
                .find(|(s, _)| s == serial)
                .map(|(_, since)| since)
            else {
                continue;
            };
            let day = on(since)?;
            ended_on = Some(day);
            events.push(Event::new(
                source,
                &holder,
                Payload::CardUnlinked(CardUnlinked {
                    card_serial: serial.clone(),
                    unlinked_on: day,
                    reason,
                }),
            ));
        }
        let Some(unlinked_on) = ended_on else {
            return Ok(None);
        };
        log(ledger, events)?;
        Ok(Some(Unlinked {
            card_serial: serial.clone(),
            unlinked_on,
            reason,
        }))
    }
}

/// A link ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Unlinked {
    pub card_serial: CardSerial,
    /// First day the serial is not linked.
    pub unlinked_on: Day,
    pub reason: UnlinkReason,
}

fn requested(
    request: &LinkRequest,
    serial: &CardSerial,
    contact: Option<SealedContact>,
) -> Payload {
    Payload::CardLinkRequested(CardLinkRequested {
        request_id: request.request_id.clone(),
        card_serial: serial.clone(),
        insurer_number: request.insurer_number.clone(),
        card_symbol: request.card_symbol.clone(),
        card_number: request.card_number.clone(),
        branch: request.branch.clone(),
        notice_requested: request.notice_requested,
        contact,
    })
}

/// Appends the decision's events together and waits until they are in the
/// views; an event refused at intake is a bug, reported as such.
fn log(ledger: &Ledger, events: Vec<Event>) -> Result<(), DecideError> {
    for outcome in ledger.submit(events, Wait::Projected(PROJECTED_WITHIN))? {
        match outcome {
            Submitted::Rejected { error } => return Err(DecideError::Invalid(error)),
            Submitted::Accepted(r) | Submitted::Duplicate(r) => {
                if let Some(d) = r.dead_letter {
                    return Err(DecideError::NotApplied(d.reason));
                }
            }
        }
    }
    Ok(())
}

/// Why no decision could be made or logged.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The request itself is malformed (which field, why).
    #[error("{0}")]
    Invalid(FieldError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Views(#[from] projectors::ProjectorError),
    /// The contact address could not be sealed (key store unwritable).
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The decision's events were logged but the projector refused one.
    #[error("the decision was logged but could not be applied: {0}")]
    NotApplied(String),
}
