//! FHIR R4 forms of an eligibility answer, for clients that send
//! `Accept: application/fhir+json`: a `CoverageEligibilityResponse` with
//! the patient and one `Coverage` per qualification valid on the date
//! contained in it; a miss is an `OperationOutcome`.
//!
//! Identifiers use JP Core's systems where it has them: 保険者番号
//! `urn:oid:1.2.392.100495.20.3.61`, the individual insured number
//! (記号・番号・枝番) `urn:oid:1.2.392.100495.20.3.51.1`. This module only
//! shapes JSON; the answer itself comes from the views.

use ledger::domain::{Day, RecordTime};
use projectors::{Eligibility, Lookup, LookupKey, QualificationAnswer};
use serde_json::{json, Value};
use uuid::Uuid;

/// The media type.
pub const FHIR_JSON: &str = "application/fhir+json";

const INSURER_SYSTEM: &str = "urn:oid:1.2.392.100495.20.3.61";
const INSURED_SYSTEM: &str = "urn:oid:1.2.392.100495.20.3.51.1";
const CARD_SERIAL_SYSTEM: &str = "urn:qledger:card-serial";

/// Whether an `Accept` header asks for FHIR JSON.
pub fn wants_fhir(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .any(|m| m.split(';').next().unwrap_or("").trim() == FHIR_JSON)
    })
}

fn identifier_of(key: &LookupKey) -> Value {
    match key {
        LookupKey::Insured(n) => json!({"system": INSURED_SYSTEM, "value": n.to_string()}),
        LookupKey::Card(s) => json!({"system": CARD_SERIAL_SYSTEM, "value": s.to_string()}),
    }
}

/// The day before `day` (FHIR periods end on the last day covered).
fn last_day_before(day: Day) -> Option<String> {
    Day::from_days_since_epoch(day.days_since_epoch() - 1).map(|d| d.to_string())
}

fn coverage(id: &str, q: &QualificationAnswer) -> Value {
    let s = &q.qualification;
    let mut period = json!({"start": s.acquired_on.to_string()});
    if let Some(end) = s.lost_on.and_then(last_day_before) {
        period["end"] = json!(end);
    }
    let relationship = match s.relationship {
        ledger::domain::Relationship::Insured => "self",
        ledger::domain::Relationship::Dependent => "other",
    };
    let mut classes = Vec::new();
    if let Some(symbol) = &s.card_symbol {
        classes.push(json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]},
            "value": symbol.to_string(),
            "name": "記号",
        }));
    }
    classes.push(json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
        "value": s.card_kind.symbol(),
        "name": s.card_kind.japanese(),
    }));
    let mut identifier = Vec::new();
    if let Some(n) = s.insured_number() {
        identifier.push(json!({"system": INSURED_SYSTEM, "value": n.to_string()}));
    }
    json!({
        "resourceType": "Coverage",
        "id": id,
        "status": "active",
        "identifier": identifier,
        "subscriberId": s.card_number.to_string(),
        "beneficiary": {"reference": "#patient"},
        "relationship": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
            "code": relationship,
        }], "text": s.relationship.japanese()},
        "period": period,
        "payor": [{
            "identifier": {"system": INSURER_SYSTEM, "value": s.insurer_number.to_string()},
            "display": s.insurer_kind.japanese(),
        }],
        "class": classes,
        "costToBeneficiary": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/coverage-copay-type",
                "code": "copaypct",
            }]},
            "valueQuantity": {
                "value": s.copay_percent.percent(),
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            },
        }],
    })
}

/// A `CoverageEligibilityResponse` for a found key: complete, with a
/// contained `Patient` (from the first qualification; absent when none is
/// valid on the date) and `Coverage` per qualification valid on the date.
pub fn eligibility_response(answer: &Eligibility, key: &LookupKey, created: RecordTime) -> Value {
    let request = Uuid::now_v7();
    let mut contained = Vec::new();
    let patient_reference = match answer.qualifications.first() {
        Some(q) => {
            let s = &q.qualification;
            contained.push(json!({
                "resourceType": "Patient",
                "id": "patient",
                "identifier": [identifier_of(key)],
                "name": [
                    {"use": "official", "text": s.name.to_string()},
                    {"use": "usual", "text": s.name_kana.to_string(),
                     "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "SYL"}]},
                ],
                "gender": match s.sex { ledger::domain::Sex::Male => "male", ledger::domain::Sex::Female => "female" },
                "birthDate": s.birth_date.to_string(),
            }));
            json!({"reference": "#patient"})
        }
        None => json!({"identifier": identifier_of(key)}),
    };
    let mut insurance = Vec::new();
    for (i, q) in answer.qualifications.iter().enumerate() {
        let id = format!("coverage-{}", i + 1);
        contained.push(coverage(&id, q));
        insurance.push(json!({"coverage": {"reference": format!("#{id}")}, "inforce": true}));
    }
    let insurer = match answer.qualifications.first() {
        Some(q) => json!({
            "identifier": {"system": INSURER_SYSTEM, "value": q.qualification.insurer_number.to_string()},
        }),
        None => json!({"display": "no insurer: no qualification is valid on the date"}),
    };
    let mut response = json!({
        "resourceType": "CoverageEligibilityResponse",
        "status": "active",
        "purpose": ["validation"],
        "patient": patient_reference,
        "servicedDate": answer.on.to_string(),
        "created": created.to_string(),
        "request": {"identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{request}")}},
        "outcome": "complete",
        "disposition": if insurance.is_empty() { "no qualification is valid on the date" } else { "qualifications valid on the date" },
        "insurer": insurer,
    });
    if !contained.is_empty() {
        response["contained"] = Value::Array(contained);
    }
    if !insurance.is_empty() {
        response["insurance"] = Value::Array(insurance);
    }
    response
}

/// An `OperationOutcome` with one error issue.
/// A lookup's FHIR answer: a `CoverageEligibilityResponse` when found
/// (`true`), else an `OperationOutcome` (`false`; the HTTP routes send 404).
/// `what` names the key in the outcome's text ("insured number", "card").
pub fn answer(lookup: &Lookup, key: &LookupKey, what: &str, created: RecordTime) -> (bool, Value) {
    match lookup {
        Lookup::Found(e) => (true, eligibility_response(e, key, created)),
        Lookup::NotFound => (
            false,
            operation_outcome("not-found", &format!("no such {what} is known")),
        ),
        Lookup::NotLinked { since } => (
            false,
            operation_outcome(
                "not-found",
                &format!("the card serial was linked, but the link ended on {since}"),
            ),
        ),
    }
}

pub fn operation_outcome(code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_are_read_by_media_type() {
        assert!(wants_fhir(Some("application/fhir+json")));
        assert!(wants_fhir(Some(
            "text/html, application/fhir+json; fhirVersion=4.0"
        )));
        assert!(!wants_fhir(Some("application/json")));
        assert!(!wants_fhir(None));
    }
}
