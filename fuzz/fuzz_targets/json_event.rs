//! Fuzzes the JSON event decoder of `POST /v1/events` and `qledger publish`
//! ([`ledger::event::json`]) with arbitrary bytes.
//!
//! Checks that decoding never panics, from text ([`json::from_str`]) or from
//! a parsed value ([`json::from_value`] of `serde_json::from_slice`, as the
//! HTTP body arrives), and that both ways agree. An event that decodes must
//! survive what intake and the API do with it:
//!
//! - its JSON form ([`json::to_value`]) decodes to the same event;
//! - its Avro form, which intake appends to the log ([`avro::encode`]),
//!   decodes ([`avro::decode`]) to the same event at microsecond precision
//!   (the schemas' `timestamp-micros`), the only precision the log keeps.

#![no_main]

use chrono::{DateTime, Utc};
use ledger::error::FieldError;
use ledger::event::{avro, json, Event, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from_text = std::str::from_utf8(data).ok().map(json::from_str);
    let from_value = serde_json::from_slice(data).ok().map(json::from_value);
    if let (Some(text), Some(value)) = (&from_text, &from_value) {
        assert_eq!(
            text.as_ref().ok(),
            value.as_ref().ok(),
            "from_str and from_value disagree"
        );
    }
    for decoded in [from_text, from_value].into_iter().flatten() {
        check(decoded);
    }
});

fn check(decoded: Result<Event, FieldError>) {
    let Ok(event) = decoded else { return };

    let value = json::to_value(&event);
    match json::from_value(value.clone()) {
        Ok(again) => assert_eq!(again, event, "JSON round trip changed the event: {value}"),
        Err(e) => panic!("the JSON form of a decoded event is refused: {e:?}\n{value}"),
    }

    let bytes = avro::encode(&event)
        .unwrap_or_else(|e| panic!("a decoded event does not encode: {e}\n{event:?}"));
    match avro::decode(&bytes) {
        Ok(logged) => assert_eq!(
            logged,
            at_micros(event),
            "the Avro form of the event decodes to another event"
        ),
        Err(e) => panic!("the Avro form of a decoded event is refused: {e}\n{event:?}"),
    }
}

/// The event with its instants cut to whole microseconds, as Avro's
/// `timestamp-micros` carries them.
fn at_micros(mut event: Event) -> Event {
    event.envelope.produced_at = micros(event.envelope.produced_at);
    if let Payload::NoticeDeliveryFailed(p) = &mut event.payload {
        p.retry_at = p.retry_at.map(micros);
    }
    event
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).expect("in range")
}
