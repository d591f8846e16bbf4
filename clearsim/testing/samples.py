"""A valid sample record for any message schema, built from the schema alone (for tests)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal


def sample_value(schema, named: dict, name: str = "x"):
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):          # a union: take its last (non-null) branch
        return sample_value(schema[-1], named, name)
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical == "decimal":
            scale = schema["scale"]
            return Decimal(1234567).scaleb(-scale).quantize(Decimal(1).scaleb(-scale)) \
                if scale <= 4 else Decimal("0.654321")
        if logical == "date":
            return date(2019, 3, 2)
        if logical in ("timestamp-millis", "timestamp-micros"):
            return datetime(2019, 3, 2, 8, 30, 15, 123000, tzinfo=timezone.utc)
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: sample_value(f["type"], named, f["name"]) for f in schema["fields"]}
        if kind == "array":
            return [sample_value(schema["items"], named, name) for _ in range(2)]
        if kind == "map":
            return {"k": sample_value(schema["values"], named, name)}
        if kind == "enum":
            return schema["symbols"][0]
        return sample_value(kind, named, name)
    return {"string": f"{name}-value", "int": 42, "long": 4200000000, "boolean": True,
            "bytes": b"\x01\x02", "float": 0.5, "double": 0.25, "null": None}[schema]


def sample_record(codec, name: str) -> dict:
    """A record every field of which is filled, valid for ``codec``'s schema of ``name``."""
    schema = codec._writer(name).parsed
    return sample_value(schema, schema.get("__named_schemas", {}), name)
