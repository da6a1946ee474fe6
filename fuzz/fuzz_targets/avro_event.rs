//! Fuzzes the Avro decoders of the log and the Kafka relay
//! ([`ledger::event::avro`]) with arbitrary bytes.
//!
//! Checks that decoding never panics, and that:
//!
//! - [`avro::decode_any`] answers as the decoder of the framing it picks
//!   ([`avro::decode`] for `C3 01`, [`avro::decode_confluent`] for `00`) and
//!   refuses every other first byte;
//! - the same datum in the other framing (the writer schema's Confluent id
//!   for its single-object fingerprint, and back) decodes the same way;
//! - a decoded event re-encodes, and decodes again to the same event, in
//!   both framings and through its JSON form ([`json`]).
//!
//! Seeds: the golden vectors in `schemas/golden/` (every schema version, in
//! single-object encoding); the second property carries each into the
//! Confluent framing.

#![no_main]

use ledger::event::avro::{self, AvroError, Contract, CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC};
use ledger::event::{json, registry, Event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let any = avro::decode_any(data);
    match data {
        [0xC3, 0x01, ..] => same("decode_any and decode", &any, &avro::decode(data)),
        [CONFLUENT_MAGIC, ..] => same(
            "decode_any and decode_confluent",
            &any,
            &avro::decode_confluent(data),
        ),
        _ => assert!(
            matches!(any, Err(AvroError::UnknownFraming(_))),
            "an unknown framing was accepted: {any:?}"
        ),
    }
    if let Some(other) = reframed(data) {
        same(
            "the two framings of one datum",
            &any,
            &avro::decode_any(&other),
        );
    }
    if let Ok(event) = any {
        round_trips(&event);
    }
});

/// Both decoded the same event, or both refused it for the same reason.
fn same(what: &str, a: &Result<Event, AvroError>, b: &Result<Event, AvroError>) {
    match (a, b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "{what} decode different events"),
        (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{what} differ"),
        _ => panic!("{what} disagree: {a:?} against {b:?}"),
    }
}

/// The datum of a single-object message under the Confluent id of its
/// writer schema, or of a Confluent message under its writer's fingerprint;
/// `None` when the header names no known schema.
fn reframed(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    if let Ok((fingerprint, datum)) = avro::split_single_object(data) {
        let writer = Contract::get().by_fingerprint(fingerprint)?;
        out.push(CONFLUENT_MAGIC);
        out.extend_from_slice(
            &registry::schema_id(writer.event_type, writer.version).to_be_bytes(),
        );
        out.extend_from_slice(datum);
    } else if let Ok((id, datum)) = avro::split_confluent(data) {
        let writer = registry::by_id(id)?.schema;
        out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
        out.extend_from_slice(&writer.fingerprint.to_le_bytes());
        out.extend_from_slice(datum);
    } else {
        return None;
    }
    Some(out)
}

fn round_trips(event: &Event) {
    let bytes = avro::encode(event)
        .unwrap_or_else(|e| panic!("a decoded event does not encode: {e}\n{event:?}"));
    same(
        "single-object round trip",
        &Ok(event.clone()),
        &avro::decode(&bytes),
    );

    let bytes = avro::encode_confluent(event)
        .unwrap_or_else(|e| panic!("a decoded event does not encode: {e}\n{event:?}"));
    same(
        "Confluent round trip",
        &Ok(event.clone()),
        &avro::decode_confluent(&bytes),
    );

    let value = json::to_value(event);
    match json::from_value(value.clone()) {
        Ok(again) => assert_eq!(&again, event, "JSON round trip changed the event: {value}"),
        Err(e) => panic!("the JSON form of a decoded event is refused: {e:?}\n{value}"),
    }
}
