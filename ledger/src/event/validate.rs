//! Cross-field rules of the event catalogue. Single fields validate
//! themselves when parsed; what needs two fields or the event type is here.
//! Rules that need the ledger's state (is there such a qualification?) are
//! the projectors' and end in the dead-letter view, not here.

use crate::domain::*;
use crate::error::FieldError;

use super::*;

const MAX_FREE_TEXT: usize = 500;
/// The largest fixed copay a subsidy may carry (yen); far above any programme.
const MAX_COPAY_AMOUNT_YEN: u32 = 1_000_000;

pub(super) fn event(e: &Event) -> Result<(), FieldError> {
    envelope(&e.envelope)?;
    match &e.payload {
        Payload::QualificationAcquired(p) => acquired(p),
        Payload::QualificationChanged(p) => changed(p),
        Payload::QualificationLost(_) => Ok(()),
        Payload::QualificationRetracted(p) => retracted(p),
        Payload::CertificateIssued(p) => certificate(p),
        Payload::CertificateEnded(_) => Ok(()),
        Payload::CertificateChanged(p) => certificate_changed(p),
        Payload::ClaimSubmitted(p) => claim_submitted(p),
        Payload::ClaimWithdrawn(p) => one_line("reason", &p.reason, MAX_FREE_TEXT),
        Payload::CardLinkRequested(p) => {
            p.insured_number()?;
            match &p.contact {
                Some(c) => c.validate("contact"),
                None => Ok(()),
            }
        }
        Payload::CardLinked(p) => p.insured_number().map(drop),
        Payload::CardLinkRejected(_) | Payload::CardUnlinked(_) => Ok(()),
        Payload::SubsidyGranted(p) => subsidy_granted(p),
        Payload::SubsidyChanged(p) => subsidy_changed(p),
        Payload::SubsidyEnded(_) => Ok(()),
        Payload::NoticePublished(_) | Payload::ContactErased(_) => Ok(()),
        Payload::NoticeSendStarted(p) => {
            attempt(p.attempt)?;
            one_line("message_id", &p.message_id, MAX_MESSAGE_ID)
        }
        Payload::NoticeDelivered(p) => {
            attempt(p.attempt)?;
            one_line("relay_reply", &p.relay_reply, MAX_FREE_TEXT)
        }
        Payload::NoticeDeliveryFailed(p) => {
            attempt(p.attempt)?;
            one_line("detail", &p.detail, MAX_FREE_TEXT)
        }
    }
}

/// RFC 5322's line limit, which bounds a `Message-ID`.
const MAX_MESSAGE_ID: usize = 998;

/// The most attempts an event can carry: the schemas' `int` holds no more.
const MAX_ATTEMPT: u32 = i32::MAX as u32;

fn attempt(n: u32) -> Result<(), FieldError> {
    if n == 0 {
        return Err(FieldError::new("attempt", "must be 1 or more"));
    }
    if n > MAX_ATTEMPT {
        return Err(FieldError::new(
            "attempt",
            format!("must be at most {MAX_ATTEMPT}, got {n}"),
        ));
    }
    Ok(())
}

/// Free text on one line, at most `max` characters, with no address in it.
fn one_line(field: &str, text: &str, max: usize) -> Result<(), FieldError> {
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text.contains(['\r', '\n']) {
        return Err(FieldError::new(field, "must be one line"));
    }
    Ok(())
}

fn envelope(e: &Envelope) -> Result<(), FieldError> {
    let version = e.event_id.get_version_num();
    if version != 7 {
        return Err(FieldError::new(
            "envelope.event_id",
            format!("must be a UUIDv7 (time-ordered), got version {version}"),
        ));
    }
    Ok(())
}

fn acquired(p: &QualificationAcquired) -> Result<(), FieldError> {
    let insured = p.insured_number()?;
    p.card_kind
        .allowed_for(insured.insurer().kind())
        .map_err(|v| v.at("card_kind"))?;
    if p.birth_date > p.acquired_on {
        return Err(FieldError::new(
            "birth_date",
            format!(
                "must not be after acquired_on ({}), got {}",
                p.acquired_on, p.birth_date
            ),
        ));
    }
    if let Some(until) = p.card_valid_until {
        if until < p.acquired_on {
            return Err(FieldError::new(
                "card_valid_until",
                format!(
                    "must not be before acquired_on ({}), got {until}",
                    p.acquired_on
                ),
            ));
        }
    }
    no_duplicates(&p.special_statuses, "special_statuses")
}

fn changed(p: &QualificationChanged) -> Result<(), FieldError> {
    let QualificationChanged {
        qualification_id: _,
        effective_on: _,
        card_symbol,
        card_number,
        branch,
        relationship,
        name,
        name_kana,
        card_kind,
        copay,
        card_valid_until,
        special_statuses,
    } = p;
    let changes_something = card_symbol.is_some()
        || card_number.is_some()
        || branch.is_some()
        || relationship.is_some()
        || name.is_some()
        || name_kana.is_some()
        || card_kind.is_some()
        || copay.is_some()
        || card_valid_until.is_some()
        || special_statuses.is_some();
    if !changes_something {
        return Err(FieldError::new(
            "effective_on",
            "a change must set at least one attribute",
        ));
    }
    if let Some(s) = special_statuses {
        no_duplicates(s, "special_statuses")?;
    }
    Ok(())
}

fn retracted(p: &QualificationRetracted) -> Result<(), FieldError> {
    match (&p.retracted_event_id, &p.retracted_qualification_id) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(FieldError::new(
                "retracted_event_id",
                "exactly one of retracted_event_id and retracted_qualification_id must be set",
            ))
        }
        _ => {}
    }
    free_text(&p.reason, "reason", true)
}

fn certificate(p: &CertificateIssued) -> Result<(), FieldError> {
    if let Some(until) = p.valid_until {
        if until < p.valid_from {
            return Err(FieldError::new(
                "valid_until",
                format!(
                    "must not be before valid_from ({}), got {until}",
                    p.valid_from
                ),
            ));
        }
    }
    let kind = p.kind;
    let required = |present: bool, field: &str| {
        if present {
            Ok(())
        } else {
            Err(FieldError::new(
                field,
                format!("is required for a {} certificate", kind.symbol()),
            ))
        }
    };
    let forbidden = |present: bool, field: &str| {
        if present {
            Err(FieldError::new(
                field,
                format!("does not apply to a {} certificate", kind.symbol()),
            ))
        } else {
            Ok(())
        }
    };
    match kind {
        CertificateKind::LimitApplication | CertificateKind::LimitApplicationReduction => {
            required(p.limit_category.is_some(), "limit_category")?;
            forbidden(p.disease.is_some(), "disease")?;
            forbidden(p.monthly_cap_yen.is_some(), "monthly_cap_yen")?;
            forbidden(p.copay.is_some(), "copay_percent")
        }
        CertificateKind::SpecificDisease => {
            required(p.disease.is_some(), "disease")?;
            match p.monthly_cap_yen {
                Some(10_000) | Some(20_000) => {}
                Some(other) => {
                    return Err(FieldError::new(
                        "monthly_cap_yen",
                        format!("特定疾病 caps are 10000 or 20000 yen a month, got {other}"),
                    ))
                }
                None => required(false, "monthly_cap_yen")?,
            }
            forbidden(p.limit_category.is_some(), "limit_category")?;
            forbidden(p.copay.is_some(), "copay_percent")
        }
        CertificateKind::ElderlyRecipient => {
            required(p.copay.is_some(), "copay_percent")?;
            forbidden(p.limit_category.is_some(), "limit_category")?;
            forbidden(p.disease.is_some(), "disease")?;
            forbidden(p.monthly_cap_yen.is_some(), "monthly_cap_yen")
        }
        CertificateKind::SpecialCareAfterLoss
        | CertificateKind::SeamenContinuedCare
        | CertificateKind::DayLabourerEligibility => {
            required(p.valid_until.is_some(), "valid_until")?;
            forbidden(p.limit_category.is_some(), "limit_category")?;
            forbidden(p.disease.is_some(), "disease")?;
            forbidden(p.monthly_cap_yen.is_some(), "monthly_cap_yen")?;
            forbidden(p.copay.is_some(), "copay_percent")
        }
    }
}

/// The largest claim total: far above any real claim (points are 10 yen).
const MAX_TOTAL_POINTS: u32 = 100_000_000;

fn claim_submitted(p: &ClaimSubmitted) -> Result<(), FieldError> {
    match p.insured_number() {
        Some(n) => n.map(drop)?,
        None if p.card_serial.is_some() => {}
        None => {
            return Err(FieldError::new(
                "card_number",
                "is required unless the patient is identified by card_serial",
            ))
        }
    }
    crate::domain::claim::check_service_days(p.service_month, &p.service_days)
        .map_err(|v| v.at("service_days"))?;
    if p.public_expense_payer.is_some() != p.recipient_number.is_some() {
        return Err(FieldError::new(
            "recipient_number",
            "public_expense_payer and recipient_number come together",
        ));
    }
    if p.total_points > MAX_TOTAL_POINTS {
        return Err(FieldError::new(
            "total_points",
            format!("must be at most {MAX_TOTAL_POINTS}"),
        ));
    }
    Ok(())
}

fn certificate_changed(p: &CertificateChanged) -> Result<(), FieldError> {
    let any = p.limit_category.is_some()
        || p.monthly_cap_yen.is_some()
        || p.copay.is_some()
        || p.valid_until.is_some();
    if !any {
        return Err(FieldError::new(
            "certificate_id",
            "a change must set at least one of limit_category, monthly_cap_yen, copay_percent, valid_until",
        ));
    }
    if let Some(cap) = p.monthly_cap_yen.filter(|c| ![10_000, 20_000].contains(c)) {
        return Err(FieldError::new(
            "monthly_cap_yen",
            format!("特定疾病 caps are 10000 or 20000 yen a month, got {cap}"),
        ));
    }
    if let Some(until) = p.valid_until.filter(|u| *u < p.effective_on) {
        return Err(FieldError::new(
            "valid_until",
            format!(
                "must not be before effective_on ({}), got {until}",
                p.effective_on
            ),
        ));
    }
    Ok(())
}

fn subsidy_granted(p: &SubsidyGranted) -> Result<(), FieldError> {
    subsidy_copay(p.copay_percent)?;
    subsidy_amount(p.copay_amount_yen)?;
    if let Some(until) = p.valid_until {
        if until < p.valid_from {
            return Err(FieldError::new(
                "valid_until",
                format!(
                    "must not be before valid_from ({}), got {until}",
                    p.valid_from
                ),
            ));
        }
    }
    if let Some(r) = &p.remarks {
        free_text(r, "remarks", false)?;
    }
    Ok(())
}

fn subsidy_changed(p: &SubsidyChanged) -> Result<(), FieldError> {
    let any = p.recipient_number.is_some()
        || p.copay_percent.is_some()
        || p.copay_amount_yen.is_some()
        || p.valid_until.is_some()
        || p.method.is_some()
        || p.remarks.is_some();
    if !any {
        return Err(FieldError::new(
            "effective_on",
            "a change must set at least one attribute",
        ));
    }
    subsidy_copay(p.copay_percent)?;
    subsidy_amount(p.copay_amount_yen)?;
    if let Some(r) = &p.remarks {
        free_text(r, "remarks", false)?;
    }
    Ok(())
}

fn subsidy_amount(a: Option<u32>) -> Result<(), FieldError> {
    match a {
        Some(a) if a > MAX_COPAY_AMOUNT_YEN => Err(FieldError::new(
            "copay_amount_yen",
            format!("must be at most {MAX_COPAY_AMOUNT_YEN} yen, got {a}"),
        )),
        _ => Ok(()),
    }
}

fn subsidy_copay(p: Option<u8>) -> Result<(), FieldError> {
    match p {
        Some(p) if p > 30 => Err(FieldError::new(
            "copay_percent",
            format!("a subsidy's copay is 0 to 30 percent, got {p}"),
        )),
        _ => Ok(()),
    }
}

fn free_text(s: &str, field: &str, required: bool) -> Result<(), FieldError> {
    if required && s.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if s.chars().count() > MAX_FREE_TEXT {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_FREE_TEXT} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn no_duplicates<T: PartialEq + Copy + std::fmt::Debug>(
    items: &[T],
    field: &str,
) -> Result<(), FieldError> {
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            return Err(FieldError::new(field, format!("lists {a:?} twice")));
        }
    }
    Ok(())
}
