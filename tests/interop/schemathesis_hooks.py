"""Schemathesis hooks for qledger's API (scripts/schemathesis).

JSON lines (`application/x-ndjson`: the verification records, the batch
check's answers) are one JSON value per line, each documented by the
response schema. Schemathesis has no deserializer for them: this one parses
every line, checks each against the documented schema, and hands the first
to Schemathesis's own check (an empty body has nothing to check).
"""

import json

import schemathesis


@schemathesis.deserializer("application/x-ndjson")
def json_lines(ctx, response):
    text = response.content.decode("utf-8")
    # Lines end at "\n" only: str.splitlines() would also cut at U+0085,
    # U+2028 and U+2029, which a JSON string may hold unescaped.
    lines = [json.loads(line) for line in text.split("\n") if line.strip()]
    if not lines:
        raise NotImplementedError("an empty body: nothing to validate")
    definition = ctx.operation.responses.find_by_status_code(response.status_code)
    if definition is not None:
        resolved = definition.get_schema("application/x-ndjson")
        if resolved.schema is not None:
            validator = definition.get_validator(resolved.media_type, resolved.schema)
            for number, line in enumerate(lines, start=1):
                errors = [e.message for e in validator.iter_errors(line)] if validator else []
                if errors:
                    raise ValueError(f"line {number} violates the schema: {errors[0]}: {json.dumps(line)[:500]}")
    return lines[0]
