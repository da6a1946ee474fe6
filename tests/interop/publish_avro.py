#!/usr/bin/env python3
"""Publishes events to Kafka the way a non-Rust publisher would: Avro
single-object encoding with the Apache Avro reference library, from the
committed schemas.

    python3 tests/interop/publish_avro.py --bootstrap 127.0.0.1:9092 \
        --topic qledger.events --schemas schemas --events events.jsonl

Each line of the events file is
``{"type": "<Avro record name>", "key": "<link number>", "datum": {...}}``,
the datum a plain JSON value of the record as its .avsc describes it: unions
as the bare value (or null), enums as symbols, ``date`` as days since
1970-01-01 (or ISO text), ``timestamp-micros`` as microseconds since the epoch
(or RFC 3339 text), ``uuid`` as text. Every message is
``C3 01 | CRC-64-AVRO fingerprint (8 bytes, little-endian) of the schema's
Parsing Canonical Form | binary datum``, keyed by the link number, sent to the
partition Kafka's murmur2 partitioner picks (as qledger's own producer does),
and awaited; the script prints how many were delivered.

Requirements: ``pip install -r tests/interop/requirements.txt``.
"""

import argparse
import datetime
import io
import json
import pathlib
import sys

try:
    import avro.io
    import avro.schema
    from confluent_kafka import Producer
except ImportError as e:  # pragma: no cover - reported to the caller
    sys.exit(f"publish_avro.py: {e}; run: pip install -r tests/interop/requirements.txt")

MAGIC = b"\xc3\x01"
EVENT_ID_HEADER = "qledger.event_id"

# --- Parsing Canonical Form and CRC-64-AVRO --------------------------------
# Computed here from the schema JSON, per the Avro specification: a primitive
# is its bare name even where it carries a logical type, so
# {"type": "string", "logicalType": "uuid"} is "string". The avro library's own
# Schema.fingerprint() (1.12.2) keeps {"type":"string"} there, as did the Rust
# apache-avro crate that qledger used before it followed the specification;
# qledger still reads that "legacy" fingerprint, and --fingerprint legacy
# writes it (for readers that know nothing else).

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
NAMED = {"record", "error", "enum", "fixed"}


def _text(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _fullname(name, namespace):
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def canonical_form(schema, namespace=None, seen=None, legacy=False):
    """The Parsing Canonical Form of a schema given as parsed JSON (with
    ``legacy``, the form whose primitives keep their logical types' braces)."""
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        return _text(schema if schema in PRIMITIVES else _fullname(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace, seen, legacy) for s in schema) + "]"
    kind = schema["type"]
    if not isinstance(kind, str):
        return canonical_form(kind, namespace, seen, legacy)
    if kind in PRIMITIVES:
        # Every other attribute (logicalType) is stripped.
        if legacy and len(schema) > 1:
            return f'{{"type":{_text(kind)}}}'
        return _text(kind)
    if kind in NAMED:
        name = schema["name"]
        if "." in name:
            namespace = name.rsplit(".", 1)[0]
        else:
            namespace = schema.get("namespace", namespace)
        full = _fullname(name, namespace)
        if full in seen:
            return _text(full)
        seen.add(full)
        parts = [f'"name":{_text(full)}', f'"type":{_text(kind)}']
        if kind in ("record", "error"):
            fields = ",".join(
                f'{{"name":{_text(f["name"])},"type":{canonical_form(f["type"], namespace, seen, legacy)}}}'
                for f in schema["fields"]
            )
            parts.append(f'"fields":[{fields}]')
        elif kind == "enum":
            parts.append(f'"symbols":{_text(schema["symbols"])}')
        else:
            parts.append(f'"size":{int(schema["size"])}')
        return "{" + ",".join(parts) + "}"
    if kind == "array":
        return f'{{"type":"array","items":{canonical_form(schema["items"], namespace, seen, legacy)}}}'
    if kind == "map":
        return f'{{"type":"map","values":{canonical_form(schema["values"], namespace, seen, legacy)}}}'
    raise ValueError(f"unknown schema type {kind!r}")


CRC64_EMPTY = 0xC15D213AA4D7A795
_CRC64_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (CRC64_EMPTY & -(_fp & 1))
    _CRC64_TABLE.append(_fp)


def crc64_avro(data):
    """The CRC-64-AVRO (Rabin) fingerprint of bytes, as a number."""
    fp = CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def fingerprint(schema_json, legacy=False):
    """The 8 fingerprint bytes (little-endian) of a schema given as parsed JSON."""
    form = canonical_form(schema_json, legacy=legacy)
    return crc64_avro(form.encode("utf-8")).to_bytes(8, "little")


# --- Datums -----------------------------------------------------------------

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_python(schema, datum):
    """The datum as the avro library wants it: dates, datetimes, defaults."""
    logical = getattr(schema, "logical_type", None)
    if isinstance(schema, avro.schema.RecordSchema):
        if not isinstance(datum, dict):
            raise ValueError(f"{schema.fullname}: expected an object, got {datum!r}")
        out = {}
        for field in schema.fields:
            if field.name in datum:
                out[field.name] = to_python(field.type, datum[field.name])
            elif field.has_default:
                out[field.name] = to_python(field.type, field.default)
            else:
                raise ValueError(f"{schema.fullname}: field {field.name} is missing")
        return out
    if isinstance(schema, avro.schema.UnionSchema):
        if datum is None:
            return None
        for branch in schema.schemas:
            if branch.type == "null":
                continue
            try:
                value = to_python(branch, datum)
            except (ValueError, TypeError):
                continue
            if avro.io.validate(branch, value):
                return value
        raise ValueError(f"{datum!r} fits no branch of {schema}")
    if isinstance(schema, avro.schema.ArraySchema):
        return [to_python(schema.items, item) for item in datum]
    if schema.type == "bytes" and isinstance(datum, list):
        # Bytes travel as a JSON array of byte values.
        return bytes(datum)
    if isinstance(schema, avro.schema.MapSchema):
        return {k: to_python(schema.values, v) for k, v in datum.items()}
    if logical == "date":
        if isinstance(datum, str):
            return datetime.date.fromisoformat(datum)
        if isinstance(datum, int) and not isinstance(datum, bool):
            return datetime.date(1970, 1, 1) + datetime.timedelta(days=datum)
    if logical == "timestamp-micros":
        if isinstance(datum, str):
            return datetime.datetime.fromisoformat(datum.replace("Z", "+00:00"))
        if isinstance(datum, int) and not isinstance(datum, bool):
            return EPOCH + datetime.timedelta(microseconds=datum)
    return datum


class Writer:
    """Single-object encoder for one schema file."""

    def __init__(self, path, legacy=False):
        text = path.read_text(encoding="utf-8")
        self.schema = avro.schema.parse(text)
        self.header = MAGIC + fingerprint(json.loads(text), legacy)
        self.writer = avro.io.DatumWriter(self.schema)

    def encode(self, datum):
        out = io.BytesIO()
        out.write(self.header)
        self.writer.write(to_python(self.schema, datum), avro.io.BinaryEncoder(out))
        return out.getvalue()


def load_writers(directory, legacy=False):
    writers = {}
    for path in sorted(pathlib.Path(directory).glob("*.avsc")):
        writer = Writer(path, legacy)
        writers[writer.schema.name] = writer
        writers[writer.schema.fullname] = writer
    if not writers:
        sys.exit(f"publish_avro.py: no .avsc files in {directory}")
    return writers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="bootstrap.servers")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--schemas", required=True, help="directory of .avsc files")
    parser.add_argument("--events", required=True, help="JSON-lines file of events")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery")
    parser.add_argument(
        "--fingerprint",
        choices=["spec", "legacy"],
        default="spec",
        help="canonical form to fingerprint: the specification's (default) or qledger's legacy one",
    )
    args = parser.parse_args()

    writers = load_writers(args.schemas, legacy=args.fingerprint == "legacy")
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            # qledger's partitioner: Kafka's murmur2 of the key.
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(args.timeout * 1000),
        }
    )
    failures = []
    delivered = 0

    def report(error, message):
        nonlocal delivered
        if error is not None:
            failures.append(f"offset {message.offset()}: {error}")
        else:
            delivered += 1

    with open(args.events, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            writer = writers.get(event["type"])
            if writer is None:
                sys.exit(f"publish_avro.py: line {number}: no schema for type {event['type']!r}")
            try:
                value = writer.encode(event["datum"])
            except Exception as e:  # noqa: BLE001 - reported with the line
                sys.exit(f"publish_avro.py: line {number} ({event['type']}): {e}")
            headers = [("event-type", writer.schema.name.encode())]
            event_id = event["datum"].get("envelope", {}).get("event_id")
            if event_id:
                headers.append((EVENT_ID_HEADER, str(event_id).encode()))
            producer.produce(
                args.topic,
                key=event["key"].encode("utf-8"),
                value=value,
                headers=headers,
                on_delivery=report,
            )
            producer.poll(0)

    left = producer.flush(args.timeout)
    if left:
        failures.append(f"{left} messages not delivered within {args.timeout} s")
    if failures:
        sys.exit("publish_avro.py: " + "; ".join(failures))
    print(delivered)


if __name__ == "__main__":
    main()
