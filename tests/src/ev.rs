//! Terse builders of valid events for scenarios.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};
use ledger::domain::*;
use ledger::event::*;
use uuid::Uuid;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A fresh UUIDv7 (time-ordered) event id.
pub fn event_id() -> Uuid {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) as u128;
    Uuid::from_u128(
        (0x0190_a000_0000u128 << 80)
            | (0x7u128 << 76)
            | (0x8u128 << 60)
            | (n << 16)
            | (std::process::id() as u128 & 0xffff),
    )
}

pub fn event(link: &str, source: &str, payload: impl Into<Payload>) -> Event {
    Event {
        envelope: Envelope {
            event_id: event_id(),
            source: source.parse().unwrap(),
            link: link.parse().unwrap(),
            produced_at: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        },
        payload: payload.into(),
    }
}

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// An individual insured number: insurer, symbol, number, branch.
pub fn insured(
    insurer: &str,
    symbol: Option<&str>,
    number: &str,
    branch: Option<&str>,
) -> IndividualInsuredNumber {
    IndividualInsuredNumber::new(
        insurer.parse().unwrap(),
        symbol.map(|s| s.parse().unwrap()),
        number.parse().unwrap(),
        branch.map(|b| b.parse().unwrap()),
    )
    .unwrap()
}

/// 資格取得 with ordinary defaults (本人, 30 %, the card kind the insurer issues).
pub fn acquired(link: &str, qualification: &str, n: &IndividualInsuredNumber, on: &str) -> Event {
    let kind = n.insurer().kind();
    let card_kind = match kind {
        InsurerKind::LateElderly => CardKind::LateElderly,
        InsurerKind::NationalHealthInsurance => CardKind::NationalHealthInsurance,
        InsurerKind::SeamenInsurance => CardKind::SeamenInsurance,
        _ => CardKind::HealthInsurance,
    };
    let copay = if kind == InsurerKind::LateElderly {
        10
    } else {
        30
    };
    event(
        link,
        &format!("insurer-{}", n.insurer()),
        QualificationAcquired {
            qualification_id: qualification.parse().unwrap(),
            insurer_number: n.insurer().clone(),
            card_symbol: n.symbol().cloned(),
            card_number: n.number().clone(),
            branch: n.branch().cloned(),
            relationship: Relationship::Insured,
            name: "試験 太郎".parse().unwrap(),
            name_kana: "シケン タロウ".parse().unwrap(),
            sex: Sex::Male,
            birth_date: day("1960-06-15"),
            acquired_on: day(on),
            card_kind,
            copay: CopayRate::from_percent(copay).unwrap(),
            card_valid_until: None,
            special_statuses: vec![],
        },
    )
}

/// 資格喪失 on `on` (first day not covered).
pub fn lost(link: &str, source: &str, qualification: &str, on: &str) -> Event {
    event(
        link,
        source,
        QualificationLost {
            qualification_id: qualification.parse().unwrap(),
            lost_on: day(on),
            reason: LossReason::EmploymentEnded,
        },
    )
}

/// A copay change effective on `on`.
pub fn copay_changed(
    link: &str,
    source: &str,
    qualification: &str,
    on: &str,
    percent: u8,
) -> Event {
    event(
        link,
        source,
        QualificationChanged {
            copay: Some(CopayRate::from_percent(percent).unwrap()),
            ..QualificationChanged::effective(qualification.parse().unwrap(), day(on))
        },
    )
}

pub fn retract_event(link: &str, source: &str, target: &Event) -> Event {
    event(
        link,
        source,
        QualificationRetracted {
            retracted_event_id: Some(target.envelope.event_id),
            retracted_qualification_id: None,
            reason: "keyed in error".into(),
        },
    )
}

pub fn retract_qualification(link: &str, source: &str, qualification: &str) -> Event {
    event(
        link,
        source,
        QualificationRetracted {
            retracted_event_id: None,
            retracted_qualification_id: Some(qualification.parse().unwrap()),
            reason: "recorded for the wrong person".into(),
        },
    )
}

pub fn card_linked(link: &str, serial: &str, n: &IndividualInsuredNumber, on: &str) -> Event {
    event(
        link,
        "portal",
        CardLinked {
            request_id: None,
            card_serial: serial.parse().unwrap(),
            insurer_number: n.insurer().clone(),
            card_symbol: n.symbol().cloned(),
            card_number: n.number().clone(),
            branch: n.branch().cloned(),
            linked_on: day(on),
        },
    )
}

pub fn card_unlinked(link: &str, serial: &str, on: &str) -> Event {
    event(
        link,
        "portal",
        CardUnlinked {
            card_serial: serial.parse().unwrap(),
            unlinked_on: day(on),
            reason: UnlinkReason::CardRenewed,
        },
    )
}

pub fn certificate(
    link: &str,
    source: &str,
    id: &str,
    qualification: &str,
    from: &str,
    until: Option<&str>,
) -> Event {
    event(
        link,
        source,
        CertificateIssued {
            certificate_id: id.parse().unwrap(),
            qualification_id: qualification.parse().unwrap(),
            kind: CertificateKind::LimitApplication,
            valid_from: day(from),
            valid_until: until.map(day),
            limit_category: Some(LimitCategory::C),
            disease: None,
            monthly_cap_yen: None,
            copay: None,
        },
    )
}

pub fn subsidy(
    link: &str,
    id: &str,
    serial: Option<&str>,
    from: &str,
    until: Option<&str>,
) -> Event {
    event(
        link,
        "municipality-131016",
        SubsidyGranted {
            subsidy_id: id.parse().unwrap(),
            municipality: "131016".parse().unwrap(),
            programme: SubsidyProgramme::Child,
            payer_number: "88130109".parse().unwrap(),
            recipient_number: "1234566".parse().unwrap(),
            card_serial: serial.map(|s| s.parse().unwrap()),
            copay_percent: Some(0),
            copay_amount_yen: None,
            valid_from: day(from),
            valid_until: until.map(day),
            method: SubsidyMethod::InKind,
            remarks: None,
        },
    )
}
