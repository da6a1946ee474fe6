//! The claim decision: a pure function from a claim and what held on its
//! service days to what the payer must do with it.
//!
//! No storage, no clock: the same input gives the same decision, which is
//! why replays reproduce every decision. The claims projector builds the
//! input from the views ([`super::coverage`]) and keeps the history.

use std::collections::BTreeMap;

use ledger::domain::{
    CopayRate, Day, InsurerNumber, LimitCategory, PayerOrganisation, PublicExpensePayerNumber,
    QualificationId, SpecificDisease,
};
use serde::{Deserialize, Serialize};

use crate::model::EventRef;

/// What a claim says that the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimTerms {
    pub billed_insurer: InsurerNumber,
    pub payer: PayerOrganisation,
    /// Service days, increasing.
    pub days: Vec<Day>,
    pub limit_category: Option<LimitCategory>,
    pub specific_disease: Option<SpecificDisease>,
    pub public_expense_payer: Option<PublicExpensePayerNumber>,
}

/// One qualification that held on a day, with what came with it that day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerCover {
    /// The qualification it comes from.
    pub qualification: QualificationId,
    pub insurer: InsurerNumber,
    pub payer: PayerOrganisation,
    pub copay: CopayRate,
    /// Whether this enrolment pays benefits on the day (an enrolment
    /// without benefit is no payer).
    pub benefits: bool,
    /// Benefits after the qualification was lost, under a certificate
    /// (特別療養証明書, 継続療養受療証明書): they keep a claim billed to this
    /// insurer, but no other claim is moved to it.
    pub after_loss: bool,
    /// 適用区分 of the 限度額 certificates valid that day.
    pub limit_categories: Vec<LimitCategory>,
    /// Diseases of the 特定疾病 certificates valid that day.
    pub diseases: Vec<SpecificDisease>,
    /// The event that made the qualification's version used.
    pub source: EventRef,
}

/// What held on one service day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCover {
    pub day: Day,
    pub insurers: Vec<InsurerCover>,
    /// 公費負担者番号 of the subsidies valid that day.
    pub public_expense: Vec<PublicExpensePayerNumber>,
}

/// A part of a split claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimPart {
    pub insurer: InsurerNumber,
    pub payer: PayerOrganisation,
    pub days: Vec<Day>,
}

/// What the payer must do with the claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// The billed insurer is valid (one of the valid ones) on every day.
    Keep,
    /// 振替: bill another insurer of the same payer organisation.
    Reroute {
        insurer: InsurerNumber,
        payer: PayerOrganisation,
    },
    /// 振替 to an insurer the other payer organisation serves: the claim
    /// moves there.
    MovePayer {
        insurer: InsurerNumber,
        payer: PayerOrganisation,
    },
    /// レセプト分割: parts by service days, each with its insurer. With
    /// `caps_per_period`, the 限度額 and 特定疾病 caps apply per enrolment
    /// period.
    Split {
        parts: Vec<ClaimPart>,
        caps_per_period: bool,
    },
    /// The content may change: a person must look before anything moves.
    Review {
        #[schema(no_recursion)]
        proposed: Box<Decision>,
        reasons: Vec<ReviewReason>,
    },
    /// 返戻: some service day has no valid qualification.
    Return { uncovered_days: Vec<Day> },
}

/// Why a claim needs review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewReason {
    /// The claim applied a 適用区分 the paying insurer's certificates do not
    /// give on these days.
    LimitCategoryDiffers {
        claimed: LimitCategory,
        valid: Option<LimitCategory>,
    },
    /// The claim applied a 特定疾病 the paying insurer has not certified on
    /// these days (certification does not carry over to a new insurer).
    SpecificDiseaseNotCertified { disease: SpecificDisease },
    /// The copay differs between the billed insurer and the paying one.
    CopayDiffers { billed: CopayRate, valid: CopayRate },
    /// The claim billed a public expense (公費) not valid on these days.
    PublicExpenseNotValid {
        payer_number: PublicExpensePayerNumber,
    },
}

/// A decision with the events it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evaluation {
    pub decision: Decision,
    /// The events that made the qualification versions the decision used.
    pub based_on: Vec<EventRef>,
}

/// Decides. `billed_copay` is the copay the billed insurer's qualification
/// gave (as last known), to tell whether moving the claim changes it.
pub fn decide(
    claim: &ClaimTerms,
    cover: &[DayCover],
    billed_copay: Option<CopayRate>,
) -> Evaluation {
    let uncovered: Vec<Day> = cover
        .iter()
        .filter(|d| paying(claim, d).is_empty())
        .map(|d| d.day)
        .collect();
    if !uncovered.is_empty() {
        let based_on = sources(cover.iter().flat_map(|d| paying(claim, d)));
        return Evaluation {
            decision: Decision::Return {
                uncovered_days: uncovered,
            },
            based_on,
        };
    }
    // One insurer valid on every day takes the whole claim: the billed one
    // if it is (keep), else one the claim's payer organisation serves, else
    // the lowest number. Otherwise the claim splits: each day to the billed
    // insurer where it is valid, else to the insurer valid on the most days.
    // Days on which each insurer pays (an insurer listed twice on a day,
    // through two qualifications, counts once).
    let mut valid_days: BTreeMap<&InsurerNumber, usize> = BTreeMap::new();
    for d in cover {
        let mut that_day: Vec<&InsurerNumber> =
            paying(claim, d).into_iter().map(|i| &i.insurer).collect();
        that_day.sort();
        that_day.dedup();
        for i in that_day {
            *valid_days.entry(i).or_default() += 1;
        }
    }
    let everywhere: Vec<&InsurerCover> = cover
        .first()
        .map(|d| paying(claim, d))
        .unwrap_or_default()
        .into_iter()
        .filter(|i| valid_days[&i.insurer] == cover.len())
        .collect();
    let whole = everywhere
        .iter()
        .find(|i| i.insurer == claim.billed_insurer)
        .or_else(|| {
            everywhere
                .iter()
                .filter(|i| i.payer == claim.payer)
                .min_by(|a, b| a.insurer.cmp(&b.insurer))
        })
        .or_else(|| everywhere.iter().min_by(|a, b| a.insurer.cmp(&b.insurer)));
    let pick = |d: &DayCover| -> InsurerCover {
        let candidates = paying(claim, d);
        let chosen = match whole {
            Some(w) => candidates.iter().find(|i| i.insurer == w.insurer),
            None => candidates
                .iter()
                .find(|i| i.insurer == claim.billed_insurer)
                .or_else(|| {
                    candidates.iter().max_by(|a, b| {
                        valid_days[&a.insurer]
                            .cmp(&valid_days[&b.insurer])
                            .then_with(|| b.insurer.cmp(&a.insurer))
                    })
                }),
        };
        (*chosen.expect("every day is covered")).clone()
    };
    let chosen: Vec<(Day, InsurerCover)> = cover.iter().map(|d| (d.day, pick(d))).collect();
    let based_on = sources(chosen.iter().map(|(_, i)| i));
    let mut insurers: Vec<&InsurerCover> = Vec::new();
    for (_, i) in &chosen {
        if !insurers.iter().any(|x| x.insurer == i.insurer) {
            insurers.push(i);
        }
    }
    let proposed = match insurers.as_slice() {
        [only] if only.insurer == claim.billed_insurer => Decision::Keep,
        [only] if only.payer == claim.payer => Decision::Reroute {
            insurer: only.insurer.clone(),
            payer: only.payer,
        },
        [only] => Decision::MovePayer {
            insurer: only.insurer.clone(),
            payer: only.payer,
        },
        _ => {
            let mut parts: Vec<ClaimPart> = Vec::new();
            for (day, i) in &chosen {
                match parts.iter_mut().find(|p| p.insurer == i.insurer) {
                    Some(p) => p.days.push(*day),
                    None => parts.push(ClaimPart {
                        insurer: i.insurer.clone(),
                        payer: i.payer,
                        days: vec![*day],
                    }),
                }
            }
            Decision::Split {
                parts,
                caps_per_period: claim.limit_category.is_some() || claim.specific_disease.is_some(),
            }
        }
    };
    let reasons = review_reasons(claim, cover, &chosen, billed_copay);
    let decision = if reasons.is_empty() {
        proposed
    } else {
        Decision::Review {
            proposed: Box::new(proposed),
            reasons,
        }
    };
    Evaluation { decision, based_on }
}

/// The enrolments that pay `claim`'s benefits on the day: benefits after
/// loss only for the insurer billed.
fn paying<'a>(claim: &ClaimTerms, d: &'a DayCover) -> Vec<&'a InsurerCover> {
    d.insurers
        .iter()
        .filter(|i| i.benefits && (!i.after_loss || i.insurer == claim.billed_insurer))
        .collect()
}

/// Where the claim's terms no longer hold for whoever pays each day.
fn review_reasons(
    claim: &ClaimTerms,
    cover: &[DayCover],
    chosen: &[(Day, InsurerCover)],
    billed_copay: Option<CopayRate>,
) -> Vec<ReviewReason> {
    let mut reasons = Vec::new();
    if let Some(claimed) = claim.limit_category {
        if let Some((_, i)) = chosen
            .iter()
            .find(|(_, i)| !i.limit_categories.contains(&claimed))
        {
            reasons.push(ReviewReason::LimitCategoryDiffers {
                claimed,
                valid: i.limit_categories.first().copied(),
            });
        }
    }
    if let Some(disease) = claim.specific_disease {
        if chosen.iter().any(|(_, i)| !i.diseases.contains(&disease)) {
            reasons.push(ReviewReason::SpecificDiseaseNotCertified { disease });
        }
    }
    if let Some(billed) = billed_copay {
        if let Some((_, i)) = chosen
            .iter()
            .find(|(_, i)| i.insurer != claim.billed_insurer && i.copay != billed)
        {
            reasons.push(ReviewReason::CopayDiffers {
                billed,
                valid: i.copay,
            });
        }
    }
    if let Some(payer_number) = &claim.public_expense_payer {
        if cover
            .iter()
            .any(|d| !d.public_expense.contains(payer_number))
        {
            reasons.push(ReviewReason::PublicExpenseNotValid {
                payer_number: payer_number.clone(),
            });
        }
    }
    reasons
}

fn sources<'a>(covers: impl Iterator<Item = &'a InsurerCover>) -> Vec<EventRef> {
    let mut out: Vec<EventRef> = Vec::new();
    for c in covers {
        if !out.iter().any(|e| e.event_id == c.source.event_id) {
            out.push(c.source.clone());
        }
    }
    out.sort_by_key(|e| (e.partition, e.offset));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::domain::RecordTime;
    use proptest::prelude::*;
    use uuid::Uuid;

    const A: &str = "01130012";
    const B: &str = "06139000";
    const NHI: &str = "138057";
    const SEAMEN: &str = "02130011";
    const PAYER_SI: PayerOrganisation = PayerOrganisation::SocialInsuranceFund;
    const PAYER_NHI: PayerOrganisation = PayerOrganisation::NhiFederation;

    fn d(day: u32) -> Day {
        Day::from_ymd(2024, 4, day).unwrap()
    }

    fn insurer(n: &str) -> InsurerNumber {
        n.parse().unwrap()
    }

    fn source(n: u64) -> EventRef {
        EventRef {
            event_id: Uuid::from_u128(u128::from(n) + 1),
            source: "insurer".parse().unwrap(),
            partition: 0,
            offset: n,
            record_time: RecordTime::from_micros(n as i64),
        }
    }

    fn cover(n: &str, copay: u8) -> InsurerCover {
        let i = insurer(n);
        InsurerCover {
            qualification: format!("Q-{n}").parse().unwrap(),
            payer: i.kind().payer(),
            insurer: i,
            after_loss: false,
            copay: CopayRate::from_percent(copay).unwrap(),
            benefits: true,
            limit_categories: vec![],
            diseases: vec![],
            source: source(n.len() as u64 + u64::from(copay)),
        }
    }

    fn day(n: u32, insurers: Vec<InsurerCover>) -> DayCover {
        DayCover {
            day: d(n),
            insurers,
            public_expense: vec![],
        }
    }

    fn claim(billed: &str, days: &[u32]) -> ClaimTerms {
        let i = insurer(billed);
        ClaimTerms {
            payer: i.kind().payer(),
            billed_insurer: i,
            days: days.iter().map(|n| d(*n)).collect(),
            limit_category: None,
            specific_disease: None,
            public_expense_payer: None,
        }
    }

    #[test]
    fn keep_when_the_billed_insurer_is_one_of_the_valid_ones() {
        let c = claim(A, &[2, 20]);
        let days = [
            day(2, vec![cover(A, 30), cover("39132014", 10)]),
            day(20, vec![cover("39132014", 10), cover(A, 30)]),
        ];
        assert_eq!(decide(&c, &days, None).decision, Decision::Keep);
    }

    #[test]
    fn reroute_within_the_payer_organisation() {
        // p17: moved from A to B on 1 April, billed to A for 2 April.
        let c = claim(A, &[2]);
        let e = decide(
            &c,
            &[day(2, vec![cover(B, 30)])],
            Some(CopayRate::from_percent(30).unwrap()),
        );
        assert_eq!(
            e.decision,
            Decision::Reroute {
                insurer: insurer(B),
                payer: PAYER_SI
            }
        );
        assert_eq!(e.based_on.len(), 1);
    }

    #[test]
    fn move_to_the_other_payer_organisation() {
        let c = claim(NHI, &[2]);
        assert_eq!(c.payer, PAYER_NHI);
        let e = decide(&c, &[day(2, vec![cover(A, 30)])], None);
        assert_eq!(
            e.decision,
            Decision::MovePayer {
                insurer: insurer(A),
                payer: PAYER_SI
            }
        );
    }

    #[test]
    fn split_by_service_days_when_the_insurer_changed_mid_month() {
        let c = claim(A, &[10, 20]);
        let days = [day(10, vec![cover(A, 30)]), day(20, vec![cover(B, 30)])];
        assert_eq!(
            decide(&c, &days, None).decision,
            Decision::Split {
                parts: vec![
                    ClaimPart {
                        insurer: insurer(A),
                        payer: PAYER_SI,
                        days: vec![d(10)]
                    },
                    ClaimPart {
                        insurer: insurer(B),
                        payer: PAYER_SI,
                        days: vec![d(20)]
                    },
                ],
                caps_per_period: false,
            }
        );
    }

    #[test]
    fn return_when_a_day_has_no_paying_qualification() {
        let c = claim(A, &[2, 20]);
        let mut no_benefit = cover(B, 30);
        no_benefit.benefits = false;
        let days = [day(2, vec![cover(A, 30)]), day(20, vec![no_benefit])];
        assert_eq!(
            decide(&c, &days, None).decision,
            Decision::Return {
                uncovered_days: vec![d(20)]
            }
        );
    }

    #[test]
    fn review_when_terms_differ_never_a_silent_reroute() {
        let mut c = claim(A, &[2]);
        c.limit_category = Some(LimitCategory::C);
        let mut new = cover(B, 30);
        new.limit_categories = vec![LimitCategory::D];
        let e = decide(&c, &[day(2, vec![new])], None);
        assert_eq!(
            e.decision,
            Decision::Review {
                proposed: Box::new(Decision::Reroute {
                    insurer: insurer(B),
                    payer: PAYER_SI
                }),
                reasons: vec![ReviewReason::LimitCategoryDiffers {
                    claimed: LimitCategory::C,
                    valid: Some(LimitCategory::D)
                }],
            }
        );
        // The 70–74 copay differs between the old and the new insurer.
        let c = claim(A, &[2]);
        let e = decide(
            &c,
            &[day(2, vec![cover(B, 20)])],
            CopayRate::from_percent(30).ok(),
        );
        assert!(matches!(
            e.decision,
            Decision::Review { ref reasons, .. } if reasons == &vec![ReviewReason::CopayDiffers {
                billed: CopayRate::from_percent(30).unwrap(),
                valid: CopayRate::from_percent(20).unwrap(),
            }]
        ));
        // 特定疾病 is certified by the old insurer only.
        let mut c = claim(A, &[2]);
        c.specific_disease = Some(SpecificDisease::Hemophilia);
        let e = decide(&c, &[day(2, vec![cover(B, 30)])], None);
        assert!(matches!(e.decision, Decision::Review { .. }));
        // A split that relies on caps says they apply per period.
        let mut c = claim(A, &[10, 20]);
        c.limit_category = Some(LimitCategory::C);
        let mut a = cover(A, 30);
        a.limit_categories = vec![LimitCategory::C];
        let mut b = cover(B, 30);
        b.limit_categories = vec![LimitCategory::C];
        let e = decide(&c, &[day(10, vec![a]), day(20, vec![b])], None);
        assert!(matches!(
            e.decision,
            Decision::Split {
                caps_per_period: true,
                ..
            }
        ));
    }

    #[test]
    fn a_public_expense_no_longer_valid_needs_review() {
        let mut c = claim(A, &[2]);
        let payer: PublicExpensePayerNumber = "88130109".parse().unwrap();
        c.public_expense_payer = Some(payer.clone());
        let mut covered = day(2, vec![cover(A, 30)]);
        assert!(matches!(
            decide(&c, std::slice::from_ref(&covered), None).decision,
            Decision::Review { .. }
        ));
        covered.public_expense = vec![payer];
        assert_eq!(decide(&c, &[covered], None).decision, Decision::Keep);
    }

    #[test]
    fn benefits_after_loss_keep_only_the_claim_billed_to_that_insurer() {
        let mut continued = cover(SEAMEN, 30);
        continued.after_loss = true;
        let c = claim(SEAMEN, &[5]);
        assert_eq!(
            decide(&c, &[day(5, vec![continued.clone()])], None).decision,
            Decision::Keep
        );
        // Billed elsewhere: the continuation is not a payer to move it to.
        let c = claim(A, &[5]);
        assert_eq!(
            decide(&c, &[day(5, vec![continued])], None).decision,
            Decision::Return {
                uncovered_days: vec![d(5)]
            }
        );
    }

    /// The oracle: the same rules, written as plainly as possible.
    fn oracle(billed: &InsurerNumber, days: &[Vec<(InsurerNumber, bool)>]) -> &'static str {
        if days.iter().any(|d| !d.iter().any(|(_, b)| *b)) {
            return "return";
        }
        if days
            .iter()
            .all(|d| d.iter().any(|(i, b)| *b && i == billed))
        {
            return "keep";
        }
        let first: Vec<&InsurerNumber> =
            days[0].iter().filter(|(_, b)| *b).map(|(i, _)| i).collect();
        let common = first
            .iter()
            .any(|i| days.iter().all(|d| d.iter().any(|(j, b)| *b && j == *i)));
        if common {
            "one insurer"
        } else {
            "split"
        }
    }

    proptest! {
        #[test]
        fn decisions_agree_with_the_oracle(
            days in proptest::collection::vec(
                proptest::collection::vec((0usize..4, proptest::bool::weighted(0.85)), 0..3),
                1..6,
            ),
            billed in 0usize..4,
        ) {
            let pool = [A, B, NHI, "39132014"];
            let c = claim(pool[billed], &(1..=days.len() as u32).collect::<Vec<_>>());
            let mut covers = Vec::new();
            let mut plain = Vec::new();
            for (n, insurers) in days.iter().enumerate() {
                // The same insurer may be listed twice on a day (two
                // qualifications with it).
                let mut list = Vec::new();
                let mut plain_day = Vec::new();
                for (i, benefits) in insurers {
                    let mut ic = cover(pool[*i], 30);
                    ic.benefits = *benefits;
                    plain_day.push((ic.insurer.clone(), *benefits));
                    list.push(ic);
                }
                covers.push(day(n as u32 + 1, list));
                plain.push(plain_day);
            }
            let got = decide(&c, &covers, None).decision;
            let kind = match &got {
                Decision::Return { .. } => "return",
                Decision::Keep => "keep",
                Decision::Reroute { .. } | Decision::MovePayer { .. } => "one insurer",
                Decision::Split { parts, .. } => {
                    // Every day is in exactly one part, with an insurer valid that day.
                    let mut all: Vec<Day> = parts.iter().flat_map(|p| p.days.clone()).collect();
                    all.sort();
                    prop_assert_eq!(all, c.days.clone());
                    for p in parts {
                        for day in &p.days {
                            let dc = covers.iter().find(|x| x.day == *day).unwrap();
                            prop_assert!(dc.insurers.iter().any(|i| i.benefits && i.insurer == p.insurer));
                        }
                    }
                    "split"
                }
                Decision::Review { .. } => "review",
            };
            prop_assert_eq!(kind, oracle(&c.billed_insurer, &plain));
        }
    }
}
