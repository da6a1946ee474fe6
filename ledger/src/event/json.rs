//! The JSON form of events, used by the HTTP API and `qledger publish`.
//!
//! It mirrors the Avro record field for field, plus a top-level `type`:
//!
//! ```json
//! {"type": "QualificationLost",
//!  "envelope": {"event_id": "0190...", "source": "insurer-01130012",
//!               "link": "L-000001", "produced_at": "2024-05-20T01:00:00Z"},
//!  "qualification_id": "Q-1", "lost_on": "2024-04-01", "reason": "EMPLOYMENT_ENDED"}
//! ```
//!
//! Every refusal names the field as a dotted path (`envelope.link`,
//! `special_statuses[1]`) and the rule it broke.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::*;
use crate::error::FieldError;

/// Parses and validates one event from JSON text.
pub fn from_str(text: &str) -> Result<Event, FieldError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FieldError::new("$", format!("is not valid JSON: {e}")))?;
    from_value(value)
}

/// Parses and validates one event from a JSON value.
pub fn from_value(value: Value) -> Result<Event, FieldError> {
    let Value::Object(mut object) = value else {
        return Err(FieldError::new("$", "an event must be a JSON object"));
    };
    let event_type = match object.remove("type") {
        Some(Value::String(t)) => EventType::from_name(&t).ok_or_else(|| {
            FieldError::new(
                "type",
                format!("unknown event type {t:?}; known: {}", known_types()),
            )
        })?,
        Some(_) => return Err(FieldError::new("type", "must be a string")),
        None => {
            return Err(FieldError::new(
                "type",
                format!("is required; one of {}", known_types()),
            ))
        }
    };
    let mut envelope = match object.remove("envelope") {
        Some(Value::Object(e)) => e,
        Some(_) => return Err(FieldError::new("envelope", "must be an object")),
        None => return Err(FieldError::new("envelope", "is required")),
    };
    if let Some(declared) = envelope.remove("event_type") {
        if declared.as_str() != Some(event_type.name()) {
            return Err(FieldError::new(
                "envelope.event_type",
                format!("must equal type ({}), got {declared}", event_type.name()),
            ));
        }
    }
    let envelope: Envelope = typed(Value::Object(envelope), "envelope.")?;
    let payload = payload(event_type, Value::Object(object))?;
    let event = Event { envelope, payload };
    event.validate()?;
    Ok(event)
}

fn payload(t: EventType, body: Value) -> Result<Payload, FieldError> {
    Ok(match t {
        EventType::QualificationAcquired => Payload::QualificationAcquired(typed(body, "")?),
        EventType::QualificationChanged => Payload::QualificationChanged(typed(body, "")?),
        EventType::QualificationLost => Payload::QualificationLost(typed(body, "")?),
        EventType::QualificationRetracted => Payload::QualificationRetracted(typed(body, "")?),
        EventType::CertificateIssued => Payload::CertificateIssued(typed(body, "")?),
        EventType::CertificateEnded => Payload::CertificateEnded(typed(body, "")?),
        EventType::CardLinkRequested => Payload::CardLinkRequested(typed(body, "")?),
        EventType::CardLinked => Payload::CardLinked(typed(body, "")?),
        EventType::CardLinkRejected => Payload::CardLinkRejected(typed(body, "")?),
        EventType::CardUnlinked => Payload::CardUnlinked(typed(body, "")?),
        EventType::SubsidyGranted => Payload::SubsidyGranted(typed(body, "")?),
        EventType::SubsidyChanged => Payload::SubsidyChanged(typed(body, "")?),
        EventType::SubsidyEnded => Payload::SubsidyEnded(typed(body, "")?),
        EventType::NoticePublished => Payload::NoticePublished(typed(body, "")?),
        EventType::NoticeSendStarted => Payload::NoticeSendStarted(typed(body, "")?),
        EventType::NoticeDelivered => Payload::NoticeDelivered(typed(body, "")?),
        EventType::NoticeDeliveryFailed => Payload::NoticeDeliveryFailed(typed(body, "")?),
        EventType::ContactErased => Payload::ContactErased(typed(body, "")?),
        EventType::CertificateChanged => Payload::CertificateChanged(typed(body, "")?),
        EventType::ClaimSubmitted => Payload::ClaimSubmitted(typed(body, "")?),
        EventType::ClaimWithdrawn => Payload::ClaimWithdrawn(typed(body, "")?),
    })
}

/// Deserialises with the path of any failing field, prefixed by `prefix`.
fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde reports missing and unknown fields at the parent: name the field.
        let field = backticked(&message)
            .filter(|_| {
                message.starts_with("missing field") || message.starts_with("unknown field")
            })
            .map(|name| {
                if path == "." {
                    name.to_owned()
                } else if path == name || path.ends_with(&format!(".{name}")) {
                    // serde_path_to_error already points at an unknown field.
                    path.clone()
                } else {
                    format!("{path}.{name}")
                }
            })
            .unwrap_or(path);
        let rule = if message.starts_with("missing field") {
            "is required".to_owned()
        } else if message.starts_with("unknown field") {
            "is not a field of this event type".to_owned()
        } else {
            message
        };
        let field = if field == "." {
            prefix.trim_end_matches('.').to_owned()
        } else {
            format!("{prefix}{field}")
        };
        FieldError::new(
            if field.is_empty() {
                "$".to_owned()
            } else {
                field
            },
            rule,
        )
    })
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn known_types() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON form of an event (the inverse of [`from_value`]).
pub fn to_value(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert(
        "type".into(),
        Value::String(event.event_type().name().into()),
    );
    object.insert("envelope".into(), to_json(&event.envelope));
    let body = match &event.payload {
        Payload::QualificationAcquired(p) => to_json(p),
        Payload::QualificationChanged(p) => to_json(p),
        Payload::QualificationLost(p) => to_json(p),
        Payload::QualificationRetracted(p) => to_json(p),
        Payload::CertificateIssued(p) => to_json(p),
        Payload::CertificateEnded(p) => to_json(p),
        Payload::CardLinkRequested(p) => to_json(p),
        Payload::CardLinked(p) => to_json(p),
        Payload::CardLinkRejected(p) => to_json(p),
        Payload::CardUnlinked(p) => to_json(p),
        Payload::SubsidyGranted(p) => to_json(p),
        Payload::SubsidyChanged(p) => to_json(p),
        Payload::SubsidyEnded(p) => to_json(p),
        Payload::NoticePublished(p) => to_json(p),
        Payload::NoticeSendStarted(p) => to_json(p),
        Payload::NoticeDelivered(p) => to_json(p),
        Payload::NoticeDeliveryFailed(p) => to_json(p),
        Payload::ContactErased(p) => to_json(p),
        Payload::CertificateChanged(p) => to_json(p),
        Payload::ClaimSubmitted(p) => to_json(p),
        Payload::ClaimWithdrawn(p) => to_json(p),
    };
    if let Value::Object(fields) = body {
        // Absent optional fields are left out rather than written as null.
        object.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
    }
    Value::Object(object)
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("events serialise to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_fields_are_named_once() {
        let mut event = to_value(&crate::event::examples::all()[0]);
        event["diagnosis"] = Value::String("x".into());
        let e = from_value(event).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("diagnosis", "is not a field of this event type")
        );
        let mut event = to_value(&crate::event::examples::all()[0]);
        event["envelope"]["extra"] = Value::Bool(true);
        assert_eq!(from_value(event).unwrap_err().field, "envelope.extra");
        let mut event = to_value(&crate::event::examples::all()[0]);
        event.as_object_mut().unwrap().remove("card_number");
        let e = from_value(event).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("card_number", "is required")
        );
    }
}
