#!/usr/bin/env python3
"""Checks swiftmalloc's JSON statistics against docs/stats-schema.json.

    tools/check-stats-json.py [--consistent] [--schema FILE] REPORT...

Each REPORT file holds one JSON object (what swm_stats_json() writes, or
what SWIFTMALLOC_STATS=json prints at exit). It is parsed with Python's json
module and checked against the schema by the small validator below (the
keywords the schema uses: type, const, pattern, minimum, maximum, required,
properties, additionalProperties, items, minItems, maxItems, $ref); when the
jsonschema package is installed, it checks too.

--consistent also checks the arithmetic that holds in a report taken while
no other thread allocates: the "where" bytes add up to the heap and to the
bytes in use, each class's blocks add up to its spans, and so on.

Prints one line per report; exits 1 if any is wrong.
"""
import json
import pathlib
import re
import sys

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def resolve(schema, root):
    while "$ref" in schema:
        path = schema["$ref"]
        if not path.startswith("#/"):
            raise ValueError("only local $ref is supported: " + path)
        target = root
        for part in path[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def validate(value, schema, root, where="$"):
    """The list of what is wrong with `value` under `schema`."""
    schema = resolve(schema, root)
    errors = []
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: {value!r} is not an integer"]
    elif kind is not None and not isinstance(value, TYPES[kind]):
        return [f"{where}: {type(value).__name__} where {kind} is expected"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: no member {name!r}")
        for name, member in value.items():
            if name in properties:
                errors += validate(member, properties[name], root, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected member {name!r}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: {len(value)} items, fewer than {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: {len(value)} items, more than {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(item, schema["items"], root, f"{where}[{i}]")
    return errors


def consistent(report):
    """The arithmetic of a report taken in a quiet process."""
    errors = []
    b, w, h = report["bytes"], report["where"], report["heap"]
    for name in ("in_use", "requested", "process_resident"):
        if b[name]["peak"] < b[name]["current"]:
            errors.append(f"bytes.{name}: peak {b[name]['peak']} < current {b[name]['current']}")
    if w["program"] + w["thread_caches"] != b["in_use"]["current"]:
        errors.append(f"where.program + where.thread_caches = {w['program'] + w['thread_caches']}, "
                      f"bytes.in_use.current = {b['in_use']['current']}")
    heap = h["sbrk"] + h["mmap_regions"]
    parts = sum(w[k] for k in ("program", "thread_caches", "central_lists", "span_tails", "quarantine",
                               "guard_pages", "free_dirty", "free_decommitted"))
    if parts != heap + w["mmap_blocks"]:
        errors.append(f"the where bytes add up to {parts}, the heap and mmap blocks to {heap + w['mmap_blocks']}")
    if h["peak"] < heap:
        errors.append(f"heap.peak {h['peak']} < sbrk + mmap_regions {heap}")
    if b["requested"]["current"] < heap + w["mmap_blocks"] + w["metadata_reserved"]:
        errors.append("bytes.requested.current is less than the heap, mmap blocks and metadata")
    if w["metadata_resident"] > w["metadata_reserved"]:
        errors.append("more metadata resident than reserved")
    cached = central = tails = quarantined = 0
    for i, c in enumerate(report["classes"]):
        if c["class"] != i + 1:
            errors.append(f"classes[{i}].class is {c['class']}")
        if c["spans"] * c["blocks_per_span"] != c["in_use"] + c["cached"] + c["central"] + c["quarantined"]:
            errors.append(f"class {c['class']}: {c['spans']} spans x {c['blocks_per_span']} "
                          "!= in use + cached + central + quarantined")
        tail = c["span_pages"] * 4096 - c["blocks_per_span"] * c["size"]
        if c["waste_bytes"] != c["spans"] * tail:
            errors.append(f"class {c['class']}: waste {c['waste_bytes']} != {c['spans']} x {tail}")
        cached += c["cached"] * c["size"]
        central += c["central"] * c["size"]
        tails += c["waste_bytes"]
        quarantined += c["quarantined"] * c["size"]
    for name, total in (("thread_caches", cached), ("central_lists", central), ("span_tails", tails),
                        ("quarantine", quarantined)):
        if w[name] != total:
            errors.append(f"where.{name} = {w[name]}, the classes add up to {total}")
    return errors


def main(argv):
    check_sums = "--consistent" in argv
    argv = [a for a in argv if a != "--consistent"]
    schema_path = pathlib.Path(__file__).resolve().parent.parent / "docs" / "stats-schema.json"
    if "--schema" in argv:
        i = argv.index("--schema")
        schema_path = pathlib.Path(argv[i + 1])
        del argv[i:i + 2]
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    schema = json.loads(schema_path.read_text())
    try:
        import jsonschema  # optional
    except ImportError:
        jsonschema = None
    bad = 0
    for name in argv:
        try:
            report = json.loads(pathlib.Path(name).read_text())
        except (OSError, ValueError) as e:
            print(f"FAIL {name}: not one JSON object: {e}")
            bad += 1
            continue
        errors = validate(report, schema, schema)
        if jsonschema is not None and not errors:
            errors = [f"jsonschema: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(report)]
        if check_sums and not errors:
            errors = consistent(report)
        if errors:
            bad += 1
            print(f"FAIL {name}: " + "; ".join(errors[:10]))
        else:
            print(f"OK {name}: schema {report['schema']}, {report['program']} pid {report['pid']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
