"""Validates FHIR R4 JSON files with fhir.resources (an independent
implementation): each file must parse as the resource its resourceType
names, with every contained resource valid too. Prints one line per file;
exits 1 if any is invalid.

    python fhir_validate.py FILE...
"""
import json
import sys

from fhir.resources import construct_fhir_element


def main(paths):
    bad = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        kind = data.get("resourceType")
        try:
            resource = construct_fhir_element(kind, data)
            for inner in getattr(resource, "contained", None) or []:
                construct_fhir_element(inner.resource_type, inner.dict())
            print(f"valid {kind}: {path}")
        except Exception as e:  # the library raises pydantic errors
            bad += 1
            print(f"INVALID {kind}: {path}\n{e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
