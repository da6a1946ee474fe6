//! What held on each service day of a claim, from a person's version rows:
//! the input of [`super::decide`]. The caller chooses the rows (as known
//! now, or at an instant); this module only reads them.

use ledger::domain::{CardKind, CertificateKind, CopayRate, Day, InsurerKind, InsurerNumber};

use super::decide::{DayCover, InsurerCover};
use crate::model::{CertificateSnapshot, EventRef, QualificationSnapshot, Snapshot};

/// A version of one of the person's records, valid on `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    pub from: Day,
    pub to: Option<Day>,
    pub snapshot: &'a Snapshot,
    pub by: &'a EventRef,
}

impl Version<'_> {
    fn holds_on(&self, day: Day) -> bool {
        self.from <= day && self.to.is_none_or(|to| day < to)
    }
}

/// What held on each of `days`.
pub fn on_days(versions: &[Version<'_>], days: &[Day]) -> Vec<DayCover> {
    days.iter().map(|&day| on_day(versions, day)).collect()
}

fn on_day(versions: &[Version<'_>], day: Day) -> DayCover {
    let valid: Vec<&Version<'_>> = versions.iter().filter(|v| v.holds_on(day)).collect();
    let certificates: Vec<&CertificateSnapshot> = valid
        .iter()
        .filter_map(|v| match v.snapshot {
            Snapshot::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let mut insurers = Vec::new();
    let mut public_expense = Vec::new();
    for v in &valid {
        match v.snapshot {
            Snapshot::Qualification(q) => insurers.push(cover_of(q, v.by, &certificates)),
            Snapshot::Subsidy(s) => public_expense.push(s.payer_number.clone()),
            Snapshot::Certificate(_) | Snapshot::CardLink(_) => {}
        }
    }
    // p18: benefits after loss — a 特別療養証明書 or a 船員保険 継続療養受療証明書
    // valid on the day makes the lost qualification's insurer owe them.
    for c in certificates.iter().filter(|c| c.kind.pays_after_loss()) {
        if insurers
            .iter()
            .any(|i: &InsurerCover| i.qualification == c.qualification_id)
        {
            continue;
        }
        let last = versions
            .iter()
            .filter(|v| v.from <= day)
            .filter_map(|v| match v.snapshot {
                Snapshot::Qualification(q) if q.qualification_id == c.qualification_id => {
                    Some((v.from, q, v.by))
                }
                _ => None,
            })
            .max_by_key(|(from, _, _)| *from);
        if let Some((_, q, by)) = last {
            let mut cover = cover_of(q, by, &certificates);
            cover.benefits = true;
            cover.after_loss = true;
            insurers.push(cover);
        }
    }
    insurers.sort_by(|a, b| a.insurer.cmp(&b.insurer));
    DayCover {
        day,
        insurers,
        public_expense,
    }
}

/// What a qualification gives on a day, with the day's certificates.
fn cover_of(
    q: &QualificationSnapshot,
    by: &EventRef,
    certificates: &[&CertificateSnapshot],
) -> InsurerCover {
    let mut cover = InsurerCover {
        qualification: q.qualification_id.clone(),
        insurer: q.insurer_number.clone(),
        payer: q.insurer_kind.payer(),
        copay: q.copay_percent,
        // p18: a 日雇特例 enrolment pays benefits only under a valid
        // 受給資格者票 (or, until one is issued, the 特別療養費受給票 card).
        benefits: q.insurer_kind != InsurerKind::DayLabourer
            || q.card_kind == CardKind::DayLabourerSpecialBenefit,
        after_loss: false,
        limit_categories: Vec::new(),
        diseases: Vec::new(),
        source: by.clone(),
    };
    for c in certificates
        .iter()
        .filter(|c| c.qualification_id == q.qualification_id)
    {
        match c.kind {
            CertificateKind::LimitApplication | CertificateKind::LimitApplicationReduction => {
                cover.limit_categories.extend(c.limit_category)
            }
            CertificateKind::SpecificDisease => cover.diseases.extend(c.disease),
            CertificateKind::ElderlyRecipient => {
                if let Some(copay) = c.copay_percent {
                    cover.copay = copay;
                }
            }
            CertificateKind::DayLabourerEligibility => cover.benefits = true,
            CertificateKind::SpecialCareAfterLoss | CertificateKind::SeamenContinuedCare => {}
        }
    }
    cover
}

/// The copay the billed insurer's qualification gave: on the first service
/// day if it held then, else its latest version starting before that day,
/// else its earliest. `None` when the person has no qualification with it.
pub fn billed_copay(
    versions: &[Version<'_>],
    billed: &InsurerNumber,
    first_day: Day,
) -> Option<CopayRate> {
    let mut of_billed: Vec<(Day, CopayRate, bool)> = versions
        .iter()
        .filter_map(|v| match v.snapshot {
            Snapshot::Qualification(q) if &q.insurer_number == billed => {
                Some((v.from, q.copay_percent, v.holds_on(first_day)))
            }
            _ => None,
        })
        .collect();
    of_billed.sort_by_key(|(from, _, _)| *from);
    of_billed
        .iter()
        .find(|(_, _, holds)| *holds)
        .or_else(|| {
            of_billed
                .iter()
                .rev()
                .find(|(from, _, _)| *from <= first_day)
        })
        .or(of_billed.first())
        .map(|(_, copay, _)| *copay)
}
