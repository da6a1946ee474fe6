//! Claims at the service's edge: reading a claim (JSON), finding its
//! patient, registering it in the patient's partition, withdrawing it, and
//! checking one without registering it (請求前資格確認).
//!
//! The decisions themselves are the claims view's (`projectors::claims`),
//! derived from the log; this module only logs what the payer said.

use chrono::Utc;
use ledger::domain::{ClaimId, LinkNumber, PublisherId, RecordTime};
use ledger::error::FieldError;
use ledger::event::{json, ClaimSubmitted, ClaimWithdrawn, Event, Payload};
use projectors::claims::overlap::OverlapFeedEntry;
use projectors::claims::query::FeedCursor;
use projectors::claims::{ClaimState, Decision, Evaluation, FeedEntry};
use projectors::{ProjectorError, Views};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::service::{Ledger, ServiceError, Submitted, Wait};

/// How long registering a claim waits for its first decision.
const DECIDED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a claim from its JSON form: the fields of `ClaimSubmitted` (see
/// the README), validated like an event, with the field at fault named.
pub fn parse_claim(value: Value) -> Result<ClaimSubmitted, FieldError> {
    let Value::Object(mut fields) = value else {
        return Err(FieldError::new("", "a claim is a JSON object"));
    };
    for reserved in ["type", "envelope"] {
        if fields.contains_key(reserved) {
            return Err(FieldError::new(reserved, "is not a field of a claim"));
        }
    }
    fields.insert("type".into(), Value::String("ClaimSubmitted".into()));
    fields.insert(
        "envelope".into(),
        serde_json::json!({
            "event_id": Uuid::now_v7(),
            "source": "claim-intake",
            "link": "CLAIM-INTAKE",
            "produced_at": Utc::now(),
        }),
    );
    match json::from_value(Value::Object(fields))?.payload {
        Payload::ClaimSubmitted(c) => Ok(c),
        _ => unreachable!("the type was set to ClaimSubmitted"),
    }
}

/// What became of one claim sent to be registered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Registered {
    /// Logged now, and decided.
    Accepted {
        claim_id: ClaimId,
        link: LinkNumber,
        decision: Option<Decision>,
    },
    /// A claim with this id was registered for the patient before.
    Duplicate {
        claim_id: ClaimId,
        link: LinkNumber,
    },
    Rejected {
        error: FieldError,
    },
}

/// The answer of a pre-submission check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Checked {
    pub claim_id: ClaimId,
    /// The patient, when the ledger knows one for the card shown.
    pub link: Option<LinkNumber>,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

impl Ledger {
    /// The person a claim is for (see [`patient_of`]).
    pub fn patient_of(&self, claim: &ClaimSubmitted) -> Result<Option<LinkNumber>, ServiceError> {
        Ok(patient_of(self.views(), claim)?)
    }

    /// Registers claims (each already parsed, or its error), each in its
    /// patient's partition — a claim whose patient nobody knows under a
    /// person id of its own, `UNMATCHED-<claim id>`, where it is returned —
    /// and answers each with its first decision.
    pub fn register_claims(
        &self,
        claims: Vec<Result<ClaimSubmitted, FieldError>>,
        source: &PublisherId,
    ) -> Result<Vec<Registered>, ServiceError> {
        let mut events = Vec::new();
        let mut slots = Vec::new();
        for claim in claims {
            match claim {
                Err(error) => slots.push(Slot::Invalid(error)),
                Ok(claim) => {
                    let link = match self.patient_of(&claim)? {
                        Some(link) => link,
                        None => unmatched(&claim.claim_id),
                    };
                    // A claim sent again is acknowledged, not logged twice.
                    let known = self
                        .claim(&claim.claim_id)?
                        .into_iter()
                        .any(|(l, _)| l == link);
                    if known {
                        slots.push(Slot::Known(claim.claim_id.clone(), link));
                        continue;
                    }
                    slots.push(Slot::New(claim.claim_id.clone(), link.clone()));
                    events.push(Event::new(source, &link, claim.into()));
                }
            }
        }
        let mut outcomes = self
            .submit(events, Wait::Projected(DECIDED_WITHIN))?
            .into_iter();
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            let (claim_id, link) = match slot {
                Slot::Invalid(error) => {
                    out.push(Registered::Rejected { error });
                    continue;
                }
                Slot::Known(claim_id, link) => {
                    out.push(Registered::Duplicate { claim_id, link });
                    continue;
                }
                Slot::New(claim_id, link) => (claim_id, link),
            };
            out.push(match outcomes.next().expect("one outcome per event") {
                Submitted::Rejected { error } => Registered::Rejected { error },
                Submitted::Accepted(r) | Submitted::Duplicate(r) => match r.dead_letter {
                    Some(d) if d.reason.contains("already registered") => {
                        Registered::Duplicate { claim_id, link }
                    }
                    Some(d) => Registered::Rejected {
                        error: FieldError::new(d.field.unwrap_or_default(), d.reason),
                    },
                    None => {
                        let decision = self
                            .claim(&claim_id)?
                            .into_iter()
                            .find(|(l, _)| *l == link)
                            .and_then(|(_, s)| s.current().map(|d| d.evaluation.decision.clone()));
                        Registered::Accepted {
                            claim_id,
                            link,
                            decision,
                        }
                    }
                },
            });
        }
        Ok(out)
    }

    /// The claim with this id and its decision history, with its patient.
    pub fn claim(&self, id: &ClaimId) -> Result<Vec<(LinkNumber, ClaimState)>, ServiceError> {
        Ok(self.views().claims_by_id(id)?)
    }

    /// Withdraws a claim: it is no longer checked. `None` when no open
    /// claim has this id.
    pub fn withdraw_claim(
        &self,
        id: &ClaimId,
        reason: &str,
        source: &PublisherId,
    ) -> Result<Option<LinkNumber>, ServiceError> {
        let Some((link, _)) = self
            .claim(id)?
            .into_iter()
            .find(|(_, s)| s.withdrawn_by.is_none())
        else {
            return Ok(None);
        };
        let event = Event::new(
            source,
            &link,
            ClaimWithdrawn {
                claim_id: id.clone(),
                reason: reason.to_owned(),
            }
            .into(),
        );
        for outcome in self.submit(vec![event], Wait::Projected(DECIDED_WITHIN))? {
            if let Submitted::Rejected { error } = outcome {
                return Err(ServiceError::Encode(error.to_string()));
            }
        }
        Ok(Some(link))
    }

    /// Decides a claim without registering it (see [`check`]).
    pub fn check_claim(
        &self,
        claim: &ClaimSubmitted,
        as_of: Option<RecordTime>,
    ) -> Result<Checked, ServiceError> {
        Ok(check(self.views(), claim, as_of)?)
    }
}

/// The person a claim is for: the holder of its card serial, else the
/// person whose qualification carries its individual insured number (one
/// valid on the first service day first).
pub fn patient_of(
    views: &Views,
    claim: &ClaimSubmitted,
) -> Result<Option<LinkNumber>, ProjectorError> {
    if let Some(serial) = &claim.card_serial {
        if let Some(holder) = views.holders_of(serial)?.into_iter().next() {
            return Ok(Some(holder));
        }
    }
    let Some(Ok(number)) = claim.insured_number() else {
        return Ok(None);
    };
    let on = claim
        .days()
        .first()
        .copied()
        .unwrap_or_else(|| claim.service_month.first_day());
    let carriers = views.persons_carrying(&number, on)?;
    Ok(carriers
        .iter()
        .find(|(_, valid)| *valid)
        .or(carriers.first())
        .map(|(link, _)| link.clone()))
}

/// Decides a claim without registering it, on what the ledger knew at
/// `as_of` (`None`: now). A claim whose patient nobody knows is returned.
pub fn check(
    views: &Views,
    claim: &ClaimSubmitted,
    as_of: Option<RecordTime>,
) -> Result<Checked, ProjectorError> {
    let link = patient_of(views, claim)?;
    let evaluation = match &link {
        Some(link) => views.check_claim(link, claim, as_of)?,
        None => Evaluation {
            decision: Decision::Return {
                uncovered_days: claim.days(),
            },
            based_on: Vec::new(),
        },
    };
    Ok(Checked {
        claim_id: claim.claim_id.clone(),
        link,
        evaluation,
    })
}

/// A page of the decision feed as the API answers it: each entry with its
/// cursor, and `next`, the cursor to poll from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionsPage {
    pub decisions: Vec<DecisionsEntry>,
    /// The last entry's cursor (`after=` it to poll on); `null` on an empty page.
    pub next: Option<String>,
}

/// A decision of the feed with its cursor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionsEntry {
    #[serde(flatten)]
    pub entry: FeedEntry,
    pub cursor: String,
}

pub fn decisions_page(page: Vec<(FeedCursor, FeedEntry)>) -> DecisionsPage {
    let next = page.last().map(|(c, _)| c.to_string());
    let decisions = page
        .into_iter()
        .map(|(cursor, entry)| DecisionsEntry {
            entry,
            cursor: cursor.to_string(),
        })
        .collect();
    DecisionsPage { decisions, next }
}

/// A page of the overlap feed as the API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverlapsPage {
    pub overlaps: Vec<OverlapsEntry>,
    /// The last entry's cursor (`after=` it to poll on); `null` on an empty page.
    pub next: Option<String>,
}

/// An overlap notice's change with its cursor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverlapsEntry {
    #[serde(flatten)]
    pub entry: OverlapFeedEntry,
    pub cursor: String,
}

pub fn overlaps_page(page: Vec<(String, OverlapFeedEntry)>) -> OverlapsPage {
    let next = page.last().map(|(c, _)| c.clone());
    let overlaps = page
        .into_iter()
        .map(|(cursor, entry)| OverlapsEntry { entry, cursor })
        .collect();
    OverlapsPage { overlaps, next }
}

/// A claim sent to be registered, before its outcome is known.
enum Slot {
    Invalid(FieldError),
    /// Registered before for this patient.
    Known(ClaimId, LinkNumber),
    New(ClaimId, LinkNumber),
}

/// The person id of a claim whose patient the ledger does not know.
fn unmatched(id: &ClaimId) -> LinkNumber {
    let text = format!("UNMATCHED-{}", id.as_str());
    LinkNumber::parse(&text)
        .or_else(|_| LinkNumber::parse(&text[..64.min(text.len())]))
        .expect("a claim id makes a valid person id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim() -> Value {
        json!({
            "claim_id": "K-1",
            "institution": "1311234567",
            "kind": "MEDICAL",
            "payer": "SOCIAL_INSURANCE_FUND",
            "billed_insurer": "01130012",
            "card_symbol": "あいう",
            "card_number": "1234",
            "branch": "01",
            "service_month": "2024-04",
            "service_days": [2, 16],
            "total_points": 1234,
        })
    }

    #[test]
    fn claims_parse_with_their_faults_named() {
        let c = parse_claim(claim()).unwrap();
        assert_eq!(c.days().len(), 2);
        let mut bad = claim();
        bad["service_days"] = json!([2, 31]);
        assert_eq!(parse_claim(bad).unwrap_err().field, "service_days");
        let mut bad = claim();
        bad["diagnosis"] = json!("x");
        assert_eq!(parse_claim(bad).unwrap_err().field, "diagnosis");
        let mut bad = claim();
        bad["institution"] = json!("99");
        assert_eq!(parse_claim(bad).unwrap_err().field, "institution");
        let mut bad = claim();
        bad.as_object_mut().unwrap().remove("card_number");
        assert_eq!(parse_claim(bad).unwrap_err().field, "card_number");
        let mut bad = claim();
        bad["envelope"] = json!({});
        assert_eq!(parse_claim(bad).unwrap_err().field, "envelope");
    }
}
