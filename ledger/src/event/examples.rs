//! One valid example of every event type, for documentation, golden vectors
//! and tests. Deterministic: the same bytes on every run.

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::*;

fn day(s: &str) -> Day {
    s.parse().expect("example date")
}

fn envelope(n: u128, source: &str) -> Envelope {
    // A fixed UUIDv7: 48-bit ms timestamp, version 7, variant 10.
    let raw = (0x0190_a1b2_c3d4u128 << 80) | (0x7u128 << 76) | (0x8u128 << 60) | n;
    Envelope {
        event_id: Uuid::from_u128(raw),
        source: source.parse().expect("example source"),
        link: "L-0000000001".parse().expect("example link"),
        produced_at: Utc
            .with_ymd_and_hms(2024, 4, 1, 0, 0, n as u32 % 60)
            .single()
            .expect("example time"),
    }
}

/// One example per event type, in [`EventType::ALL`] order.
pub fn all() -> Vec<Event> {
    let insurer = "01130012";
    let acquired = QualificationAcquired {
        qualification_id: "Q-01130012-0001".parse().unwrap(),
        insurer_number: insurer.parse().unwrap(),
        card_symbol: Some("あいう".parse().unwrap()),
        card_number: "1234".parse().unwrap(),
        branch: Some("01".parse().unwrap()),
        relationship: Relationship::Insured,
        name: "山田 太郎".parse().unwrap(),
        name_kana: "ヤマダ タロウ".parse().unwrap(),
        sex: Sex::Male,
        birth_date: day("1980-05-12"),
        acquired_on: day("2024-04-01"),
        card_kind: CardKind::HealthInsurance,
        copay: CopayRate::from_percent(30).unwrap(),
        card_valid_until: None,
        special_statuses: vec![],
    };
    let payloads: Vec<(&str, Payload)> = vec![
        ("insurer-01130012", acquired.into()),
        (
            "insurer-01130012",
            QualificationChanged {
                card_number: Some("5678".parse().unwrap()),
                copay: Some(CopayRate::from_percent(20).unwrap()),
                ..QualificationChanged::effective(
                    "Q-01130012-0001".parse().unwrap(),
                    day("2024-10-01"),
                )
            }
            .into(),
        ),
        (
            "insurer-01130012",
            QualificationLost {
                qualification_id: "Q-01130012-0001".parse().unwrap(),
                lost_on: day("2025-04-01"),
                reason: LossReason::EmploymentEnded,
            }
            .into(),
        ),
        (
            "insurer-01130012",
            QualificationRetracted {
                retracted_event_id: Some(envelope(2, "insurer-01130012").event_id),
                retracted_qualification_id: None,
                reason: "effective date keyed wrongly".into(),
            }
            .into(),
        ),
        (
            "insurer-01130012",
            CertificateIssued {
                certificate_id: "C-0001".parse().unwrap(),
                qualification_id: "Q-01130012-0001".parse().unwrap(),
                kind: CertificateKind::SpecificDisease,
                valid_from: day("2024-04-01"),
                valid_until: Some(day("2025-03-31")),
                limit_category: None,
                disease: Some(SpecificDisease::ChronicRenalFailure),
                monthly_cap_yen: Some(10_000),
                copay: None,
            }
            .into(),
        ),
        (
            "insurer-01130012",
            CertificateEnded {
                certificate_id: "C-0001".parse().unwrap(),
                ended_on: day("2024-12-01"),
            }
            .into(),
        ),
        (
            "portal",
            CardLinkRequested {
                request_id: "R-0001".parse().unwrap(),
                card_serial: "0A1B2C3D4E5F".parse().unwrap(),
                insurer_number: insurer.parse().unwrap(),
                card_symbol: Some("あいう".parse().unwrap()),
                card_number: "1234".parse().unwrap(),
                branch: Some("01".parse().unwrap()),
                notice_requested: true,
                contact: Some(SealedContact {
                    key_id: Uuid::from_u128(0x0190_a1b2_c3d4_7000_8000_0000_0000_00c1),
                    nonce: (0..12).collect(),
                    ciphertext: (0..40).map(|i| i * 3).collect(),
                }),
            }
            .into(),
        ),
        (
            "portal",
            CardLinked {
                request_id: Some("R-0001".parse().unwrap()),
                card_serial: "0A1B2C3D4E5F".parse().unwrap(),
                insurer_number: insurer.parse().unwrap(),
                card_symbol: Some("あいう".parse().unwrap()),
                card_number: "1234".parse().unwrap(),
                branch: Some("01".parse().unwrap()),
                linked_on: day("2024-04-10"),
            }
            .into(),
        ),
        (
            "portal",
            CardLinkRejected {
                request_id: "R-0002".parse().unwrap(),
                card_serial: "0A1B2C3D4E60".parse().unwrap(),
                reason: LinkRejectionReason::NoSuchQualification,
            }
            .into(),
        ),
        (
            "portal",
            CardUnlinked {
                card_serial: "0A1B2C3D4E5F".parse().unwrap(),
                unlinked_on: day("2029-05-12"),
                reason: UnlinkReason::CardRenewed,
            }
            .into(),
        ),
        (
            "municipality-131016",
            SubsidyGranted {
                subsidy_id: "S-0001".parse().unwrap(),
                municipality: "131016".parse().unwrap(),
                programme: SubsidyProgramme::Child,
                payer_number: "88130109".parse().unwrap(),
                recipient_number: "1234566".parse().unwrap(),
                card_serial: Some("0A1B2C3D4E5F".parse().unwrap()),
                copay_percent: Some(0),
                copay_amount_yen: None,
                valid_from: day("2024-04-01"),
                valid_until: Some(day("2025-09-30")),
                method: SubsidyMethod::InKind,
                remarks: None,
            }
            .into(),
        ),
        (
            "municipality-131016",
            SubsidyChanged {
                subsidy_id: "S-0001".parse().unwrap(),
                effective_on: day("2024-10-01"),
                recipient_number: None,
                copay_percent: None,
                copay_amount_yen: Some(200),
                valid_until: None,
                method: None,
                remarks: Some("200 yen per visit from October".into()),
            }
            .into(),
        ),
        (
            "municipality-131016",
            SubsidyEnded {
                subsidy_id: "S-0001".parse().unwrap(),
                ended_on: day("2025-04-01"),
            }
            .into(),
        ),
        (
            "qledger.notifier",
            NoticePublished {
                request_id: "R-0001".parse().unwrap(),
                notice_id: Uuid::from_u128(0x0190_a1b2_c3d4_7000_8000_0000_0000_00d1),
            }
            .into(),
        ),
        (
            "qledger.notifier",
            NoticeSendStarted {
                request_id: "R-0001".parse().unwrap(),
                attempt: 1,
                message_id: "<0190a1b2-c3d4-7000-8000-0000000000d1@notices.qledger.invalid>".into(),
            }
            .into(),
        ),
        (
            "qledger.notifier",
            NoticeDelivered {
                request_id: "R-0001".parse().unwrap(),
                attempt: 2,
                relay_reply: "250 2.0.0 Ok: queued as 4Z8K1".into(),
            }
            .into(),
        ),
        (
            "qledger.notifier",
            NoticeDeliveryFailed {
                request_id: "R-0001".parse().unwrap(),
                attempt: 1,
                failure: NoticeFailure::TemporaryFailure,
                detail: "421 4.3.2 service not available".into(),
                retry_at: Some(Utc.with_ymd_and_hms(2024, 4, 10, 0, 5, 0).single().unwrap()),
            }
            .into(),
        ),
        (
            "qledger.notifier",
            ContactErased {
                request_id: "R-0001".parse().unwrap(),
                key_id: Uuid::from_u128(0x0190_a1b2_c3d4_7000_8000_0000_0000_00c1),
            }
            .into(),
        ),
        (
            "insurer-01130012",
            CertificateChanged {
                certificate_id: "C-0001".parse().unwrap(),
                effective_on: day("2024-08-01"),
                limit_category: None,
                monthly_cap_yen: Some(20_000),
                copay: None,
                valid_until: None,
            }
            .into(),
        ),
        (
            "payer-social-insurance-fund",
            ClaimSubmitted {
                claim_id: "K-202404-0001".parse().unwrap(),
                institution: "1311234567".parse().unwrap(),
                kind: ClaimKind::Medical,
                payer: PayerOrganisation::SocialInsuranceFund,
                billed_insurer: insurer.parse().unwrap(),
                card_symbol: Some("あいう".parse().unwrap()),
                card_number: Some("1234".parse().unwrap()),
                branch: Some("01".parse().unwrap()),
                card_serial: None,
                service_month: "2024-04".parse().unwrap(),
                service_days: vec![2, 16],
                limit_category: None,
                specific_disease: None,
                public_expense_payer: None,
                recipient_number: None,
                total_points: 1_234,
            }
            .into(),
        ),
        (
            "payer-social-insurance-fund",
            ClaimWithdrawn {
                claim_id: "K-202404-0001".parse().unwrap(),
                reason: "returned to the institution".into(),
            }
            .into(),
        ),
    ];
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, (source, payload))| Event {
            envelope: envelope(i as u128 + 1, source),
            payload,
        })
        .collect()
}
