#!/usr/bin/env python3
"""Serializes events the way a Confluent producer would, against qledger's
own schema registry: confluent-kafka's ``SchemaRegistryClient`` and
``AvroSerializer`` (fastavro underneath), nothing of qledger's.

    python3 tests/interop/confluent_client.py \
        --url http://127.0.0.1:8080/schema-registry --schemas schemas \
        --events events.jsonl --out framed.hex

Each line of the events file is ``{"type": "<record name>", "datum": {...}}``
(the simple or the fully qualified name), the datum as fastavro takes it:
unions as the bare value or null, enums as symbols, ``date`` as days since
1970-01-01, ``timestamp-micros`` as microseconds since the epoch, ``uuid`` as
text. The serializer holds the committed ``schemas/<Type>.avsc`` (as a
producer compiled against the contract would), does not register it
(``auto.register.schemas=False``) nor take the subject's latest version
(``use.latest.version=False``): it looks the schema up by content under the
``RecordNameStrategy`` subject ``jp.qledger.events.<Type>`` and frames each
datum as ``00 | schema id (4 bytes, big-endian) | binary datum``. One framed
message per line, in hex, goes to the output file.

On the way it checks the registry answers a Confluent client relies on —
schema types, subjects, global compatibility level, lookup, schema by id,
latest version, compatibility checks both ways, registration of a contract
schema (its id) and of a changed one (refused with 409), the
``TopicRecordNameStrategy`` subject, not-found codes — and reads each framed
message back with ``AvroDeserializer``. Any surprise exits non-zero with a
message; missing packages exit 3.

With ``--bootstrap HOST:PORT --topic T`` it also produces every framed
message to topic ``T`` with confluent-kafka's ``Producer``, keyed by the
event's link number (``datum["envelope"]["link"]``), partitioned by Kafka's
murmur2 as qledger partitions, and waits for every delivery report; a message
not delivered exits non-zero. ``--out`` is then optional. (Point it at the
ledger's inbound topic: only the ledger writes its events topic.)

Requirements: ``pip install -r tests/interop/requirements-confluent.txt``.
"""

import argparse
import json
import pathlib
import sys
import uuid

try:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.schema_registry import (
        Schema,
        SchemaRegistryClient,
        record_subject_name_strategy,
        topic_record_subject_name_strategy,
    )
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.serialization import MessageField, SerializationContext
    from fastavro import parse_schema
    from fastavro.schema import to_parsing_canonical_form
except ImportError as e:  # pragma: no cover - reported to the caller
    print(
        f"confluent_client.py: missing Python package ({e}); run: "
        "pip install -r tests/interop/requirements-confluent.txt",
        file=sys.stderr,
    )
    sys.exit(3)

NAMESPACE = "jp.qledger.events"


class Surprise(Exception):
    """The registry or the client did something unexpected."""


def check(condition, message):
    if not condition:
        raise Surprise(message)


def expect_error(call, http_status, error_code, what):
    try:
        result = call()
    except SchemaRegistryError as e:
        check(
            (e.http_status_code, e.error_code) == (http_status, error_code),
            f"{what}: expected HTTP {http_status} / {error_code}, got {e}",
        )
        return e
    raise Surprise(f"{what}: expected HTTP {http_status} / {error_code}, got {result!r}")


def pcf(schema_str):
    return to_parsing_canonical_form(parse_schema(json.loads(schema_str)))


def with_field(schema_str, field):
    schema = json.loads(schema_str)
    schema["fields"].append(field)
    return json.dumps(schema)


def simple_name(name):
    return name.rsplit(".", 1)[-1]


def with_bytes(schema, datum, named=None):
    """The datum with its ``bytes`` fields (JSON arrays of byte values in the
    events file) as Python bytes, which fastavro requires."""
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema == "bytes" and isinstance(datum, list):
            return bytes(datum)
        return with_bytes(named[schema], datum, named) if schema in named else datum
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return None if datum is None else with_bytes(branches[0], datum, named)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        return {
            f["name"]: with_bytes(f["type"], datum[f["name"]], named)
            for f in schema["fields"]
            if f["name"] in datum
        }
    if kind == "array":
        return [with_bytes(schema["items"], item, named) for item in datum]
    return with_bytes(kind, datum, named) if isinstance(kind, (str, list, dict)) else datum


def exercise_registry(client, schemas, topic):
    """Endpoint by endpoint, what a Confluent client expects."""
    check("AVRO" in client.get_schema_types(), "schema types lack AVRO")
    subjects = client.get_subjects()
    for name in schemas:
        check(f"{NAMESPACE}.{name}" in subjects, f"{NAMESPACE}.{name} not in {subjects}")
    level = client.get_compatibility()
    check(level == "FULL_TRANSITIVE", f"global compatibility level {level!r}")

    for name, text in schemas.items():
        subject = f"{NAMESPACE}.{name}"
        local = Schema(text, "AVRO")

        found = client.lookup_schema(subject, local)
        check(found.schema_id is not None and found.version is not None, f"lookup {subject}: {found}")
        by_id = client.get_schema(found.schema_id)
        check(by_id.schema_type == "AVRO", f"schema {found.schema_id}: type {by_id.schema_type}")
        check(pcf(by_id.schema_str) == pcf(text), f"schema {found.schema_id} is not {name}.avsc")

        latest = client.get_latest_version(subject)
        check(
            (latest.schema_id, latest.version) == (found.schema_id, found.version),
            f"{subject}: latest {latest.schema_id} v{latest.version}, looked up "
            f"{found.schema_id} v{found.version}",
        )
        versions = client.get_versions(subject)
        check(found.version in versions, f"{subject}: version {found.version} not in {versions}")
        pinned = client.get_version(subject, found.version)
        check(pinned.schema_id == found.schema_id, f"{subject} v{found.version}: {pinned}")

        # The TopicRecordNameStrategy subject resolves to the same schema.
        topical = client.lookup_schema(f"{topic}-{subject}", local)
        check(topical.schema_id == found.schema_id, f"{topic}-{subject}: {topical}")

        # Registering what is already in the contract answers its id.
        check(client.register_schema(subject, local) == found.schema_id, f"register {subject}")

        check(client.test_compatibility(subject, local), f"{subject}: not compatible with itself")
        optional = Schema(
            with_field(text, {"name": "interop_extra", "type": ["null", "string"], "default": None}),
            "AVRO",
        )
        check(client.test_compatibility(subject, optional), f"{subject}: optional field refused")
        check(
            client.test_compatibility_all_versions(subject, optional),
            f"{subject}: optional field refused against all versions",
        )
        required = Schema(with_field(text, {"name": "interop_required", "type": "string"}), "AVRO")
        check(
            not client.test_compatibility(subject, required, version=found.version),
            f"{subject}: a new required field passed as compatible",
        )
        expect_error(
            lambda: client.register_schema(subject, optional), 409, 409, f"register changed {subject}"
        )

    any_subject = f"{NAMESPACE}.{next(iter(schemas))}"
    any_text = next(iter(schemas.values()))
    expect_error(
        lambda: client.lookup_schema(f"{topic}-value", Schema(any_text, "AVRO")),
        404,
        40401,
        "TopicNameStrategy subject",
    )
    expect_error(lambda: client.get_version(any_subject, 999), 404, 40402, "version 999")
    expect_error(lambda: client.get_schema(999), 404, 40403, "schema id 999")


def serialize(client, schemas, events, topic):
    serializers = {}
    framed = []
    for i, event in enumerate(events):
        name = simple_name(event["type"])
        check(name in schemas, f"event {i}: no schemas/{name}.avsc")
        if name not in serializers:
            serializers[name] = AvroSerializer(
                client,
                schemas[name],
                conf={
                    "auto.register.schemas": False,
                    "use.latest.version": False,
                    "subject.name.strategy": record_subject_name_strategy,
                },
            )
        ctx = SerializationContext(topic, MessageField.VALUE)
        data = serializers[name](with_bytes(json.loads(schemas[name]), event["datum"]), ctx)
        check(data[:1] == b"\x00" and len(data) > 5, f"event {i}: not Confluent framing: {data[:8].hex()}")
        schema_id = int.from_bytes(data[1:5], "big")
        expected = client.lookup_schema(f"{NAMESPACE}.{name}", Schema(schemas[name], "AVRO")).schema_id
        check(schema_id == expected, f"event {i}: framed with id {schema_id}, registry says {expected}")
        framed.append(data)

    # The same bytes under TopicRecordNameStrategy: the subject differs, the id does not.
    first = events[0]
    name = simple_name(first["type"])
    topical = AvroSerializer(
        client,
        schemas[name],
        conf={
            "auto.register.schemas": False,
            "use.latest.version": False,
            "subject.name.strategy": topic_record_subject_name_strategy,
        },
    )
    again = topical(first["datum"], SerializationContext(topic, MessageField.VALUE))
    check(again == framed[0], "TopicRecordNameStrategy framed other bytes")
    return framed


def read_back(client, events, framed, topic):
    """A Confluent consumer reads every message with the registry's schema."""
    deserializer = AvroDeserializer(client)
    for i, (event, data) in enumerate(zip(events, framed)):
        value = deserializer(data, SerializationContext(topic, MessageField.VALUE))
        sent = event["datum"]["envelope"]["event_id"]
        got = value["envelope"]["event_id"]
        got = str(got) if isinstance(got, uuid.UUID) else got
        check(got == sent, f"event {i}: read back event id {got}, sent {sent}")


def produce(bootstrap, topic, events, framed, timeout):
    """Produces each framed message to ``topic``, keyed by its event's link
    number, and waits for every delivery; returns how many were delivered."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            # qledger's partitioner: Kafka's murmur2 of the key.
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(timeout * 1000),
        }
    )
    failures = []
    delivered = 0

    def report(error, message):
        nonlocal delivered
        if error is not None:
            failures.append(f"key {message.key()!r}: {error}")
        else:
            delivered += 1

    for i, (event, data) in enumerate(zip(events, framed)):
        link = event["datum"].get("envelope", {}).get("link")
        check(isinstance(link, str) and link, f"event {i}: no envelope.link in the datum")
        producer.produce(topic, key=link.encode("utf-8"), value=data, on_delivery=report)
        producer.poll(0)
    left = producer.flush(timeout)
    check(left == 0, f"{left} messages not delivered to {topic} within {timeout} s")
    check(not failures, f"delivery to {topic} failed: " + "; ".join(failures))
    check(delivered == len(framed), f"{delivered} of {len(framed)} messages delivered to {topic}")
    return delivered


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="registry base URL, e.g. http://127.0.0.1:8080/schema-registry")
    parser.add_argument("--schemas", required=True, type=pathlib.Path, help="the repository's schemas/ directory")
    parser.add_argument("--events", required=True, type=pathlib.Path, help="JSON lines: {type, datum}")
    parser.add_argument("--out", type=pathlib.Path, help="framed messages, hex, one per line")
    parser.add_argument(
        "--topic",
        help="the topic the messages are for (default qledger.events); with --bootstrap, the topic to produce to",
    )
    parser.add_argument("--bootstrap", help="bootstrap.servers: also produce every framed message to --topic")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery (--bootstrap)")
    args = parser.parse_args()
    if args.bootstrap is not None and args.topic is None:
        parser.error("--bootstrap needs --topic (the inbound topic: only the ledger writes its events topic)")
    if args.bootstrap is None and args.out is None:
        parser.error("the following arguments are required: --out")
    topic = args.topic if args.topic is not None else "qledger.events"

    events = [json.loads(line) for line in args.events.read_text().splitlines() if line.strip()]
    schemas = {p.stem: p.read_text() for p in sorted(args.schemas.glob("*.avsc"))}
    try:
        check(events, "no events given")
        check(schemas, f"no schemas in {args.schemas}")
        client = SchemaRegistryClient({"url": args.url})
        exercise_registry(client, schemas, topic)
        framed = serialize(client, schemas, events, topic)
        read_back(client, events, framed, topic)
        if args.out is not None:
            args.out.write_text("".join(data.hex() + "\n" for data in framed))
        print(f"confluent_client.py: {len(framed)} events framed by confluent-kafka's AvroSerializer")
        if args.bootstrap is not None:
            delivered = produce(args.bootstrap, topic, events, framed, args.timeout)
            print(f"confluent_client.py: {delivered} messages delivered to {topic}")
    except (Surprise, SchemaRegistryError, KafkaException) as e:
        print(f"confluent_client.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
