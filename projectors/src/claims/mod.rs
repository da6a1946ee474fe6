//! The claims view: registered claims (レセプト), each with its decision
//! history, re-evaluated whenever an event changes what held on its
//! service days.
//!
//! - [`decide`]: the pure decision function.
//! - [`coverage`]: what held on each service day, built from a person's
//!   version rows (as known now, or at an instant).
//! - The projector (`apply`) keeps, per claim, every decision with the
//!   record time of the event that caused it; a re-evaluation giving the
//!   same decision adds nothing. Claims live in their patient's partition,
//!   and a per-person index by service month bounds the re-evaluation to
//!   the claims of the months an event touched.
//!
//! Decisions are derived like every view: a replay gives the same ones.

pub mod coverage;
pub mod decide;
pub mod overlap;
pub mod query;

use ledger::domain::{ClaimId, PayerOrganisation};
use ledger::event::ClaimSubmitted;
use serde::{Deserialize, Serialize};

pub use decide::{
    decide, ClaimPart, ClaimTerms, DayCover, Decision, Evaluation, InsurerCover, ReviewReason,
};

use crate::model::EventRef;

/// A registered claim and its decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimState {
    pub claim: ClaimSubmitted,
    pub submitted_by: EventRef,
    pub withdrawn_by: Option<EventRef>,
    /// Every decision, oldest first; the last one holds.
    pub decisions: Vec<DecisionRecord>,
}

impl ClaimState {
    pub fn current(&self) -> Option<&DecisionRecord> {
        self.decisions.last()
    }
}

impl ClaimTerms {
    /// What the decision reads of a claim.
    pub fn of(c: &ClaimSubmitted) -> ClaimTerms {
        ClaimTerms {
            billed_insurer: c.billed_insurer.clone(),
            payer: c.payer,
            days: c.days(),
            limit_category: c.limit_category,
            specific_disease: c.specific_disease,
            public_expense_payer: c.public_expense_payer.clone(),
        }
    }
}

/// Decides `claim` on the person's `versions` (qualifications, certificates
/// and subsidies, as known at whatever instant the caller chose).
pub fn evaluate(claim: &ClaimSubmitted, versions: &[coverage::Version<'_>]) -> Evaluation {
    let terms = ClaimTerms::of(claim);
    let cover = coverage::on_days(versions, &terms.days);
    let first = terms
        .days
        .first()
        .copied()
        .unwrap_or(ledger::domain::Day::MIN);
    let billed = coverage::billed_copay(versions, &terms.billed_insurer, first);
    decide(&terms, &cover, billed)
}

/// A decision and the event whose record caused it (the claim's own
/// submission, or a change of the person's qualifications).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionRecord {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The event that made the ledger decide again; its record time is the
    /// decision's.
    pub caused_by: EventRef,
}

/// A person's claims by service month (month index → claim ids): what an
/// event of the person may affect, read with one point lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimIndex {
    pub months: std::collections::BTreeMap<u32, Vec<ClaimId>>,
}

/// One entry of the decision feed a payer polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEntry {
    pub claim_id: ClaimId,
    /// The patient's person id.
    pub link: String,
    /// The organisation the claim was registered with.
    pub payer: PayerOrganisation,
    #[serde(flatten)]
    pub record: DecisionRecord,
}
