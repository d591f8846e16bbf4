"""Avro single-object encoding, writer-schema lookup by fingerprint, schema resolution.

The only module that touches Avro. A message on the bus is, per the Avro specification's
single-object encoding: ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema's Parsing Canonical Form, then the Avro binary body. A receiver looks the
writer schema up by fingerprint and resolves it against its own reader schema, so compatible
evolutions (a field added with a default) interoperate, while an unknown fingerprint is
``SCHEMA_UNKNOWN`` and an unresolvable pair ``SCHEMA_INCOMPATIBLE``, naming the schema,
both versions and the field. Beyond the schema, ``check`` refuses a header whose ``infno``
is not the message's transaction (``INFNO_MISMATCH``) and a required identifier sent empty
(``FIELD_REQUIRED``): a schema marks those fields ``"required": true``, an attribute the
parsing canonical form leaves out, so marking a field changes no fingerprint.

Hostile bytes end in a ``ClearsimError`` with a code, never in another exception: a message
longer than ``MAX_MESSAGE_BYTES`` is refused before it is read (``MESSAGE_TOO_LARGE``), and
``check`` refuses a text longer than its field's column can keep (``FIELD_TOO_LARGE``:
identifiers 64 characters, message ids 128, sentences 2,000).

Schemas ship inside the package, in ``clearsim/schemas/``, and are read with
``importlib.resources``: one file per message (``AdmitPatient.avsc``), one per shared named
type (``clearsim.Header.avsc``), older message versions in ``clearsim/schemas/history/``.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterable, Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from clearsim.errors import ClearsimError, ErrorCode

SCHEMAS: Traversable = files("clearsim") / "schemas"
MARKER = b"\xc3\x01"

# The longest message a node reads: far above any the run writes (a day's reconciliation
# details of a large region are tens of kilobytes) and above what a Kafka broker takes by
# default (1 MB), so only a hostile or broken sender reaches it.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# The longest text a field may carry, in characters: what the nodes' columns keep.
HEADER_TEXT = {"msgid": 128, "correlation_id": 128, "causation_id": 128, "sender": 64,
               "recipient": 64, "infno": 16}
ID_TEXT = 64                        # identifiers and codes: ids, regions, hospitals, rules
TEXT = {"inf_refmsgid": 128, "omsgid": 128, "repair_of_case": 128,      # message ids
        "field": 255, "clr_stas": 255,
        "message": 2000, "reason": 2000}                                 # sentences
_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's 64-bit Rabin fingerprint (CRC-64-AVRO)."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def single_object_fingerprint(data: bytes) -> bytes | None:
    """The writer-schema fingerprint of a single-object encoded message, if it is one."""
    if len(data) < 10 or data[:2] != MARKER:
        return None
    return data[2:10]


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


class _Schema:
    """One parsed message schema with its version and fingerprint."""

    def __init__(self, parsed: dict, raw: dict):
        self.parsed = parsed
        self.raw = raw
        self.fullname = parsed["name"]
        self.name = _short(self.fullname)
        self.version = int(raw.get("version", 1))
        self.infno = raw.get("infno", "")
        self.required = tuple(f["name"] for f in raw.get("fields", ()) if f.get("required"))
        canonical = to_parsing_canonical_form(parsed)
        self.fingerprint = crc64_avro(canonical.encode()).to_bytes(8, "little")
        self._sizes = None

    @property
    def sizes(self):
        """A function of a record: (field path, length, limit) of the first text longer
        than its field takes, or None (compiled on first use)."""
        if self._sizes is None:
            self._sizes = _sizes(self.parsed, self.parsed.get("__named_schemas", {}), "",
                                 HEADER_TEXT) or _nothing
        return self._sizes


class Codec:
    def __init__(self, schema_dir: Path | Traversable | None = None, *,
                 writer_overrides: Mapping[str, dict | Path] | None = None,
                 known_writers: Iterable[dict | Path] = ()):
        """The package's own schemas, or those of ``schema_dir`` (tests build older or
        newer interfaces in a temporary directory)."""
        schema_dir = SCHEMAS if schema_dir is None else schema_dir
        self._named: dict = {}
        for path in _avsc_files(schema_dir):
            if path.name.startswith("clearsim."):
                named = json.loads(path.read_text())
                self._named[f"{named['namespace']}.{named['name']}"] = named
        self._readers: dict[str, _Schema] = {}
        self._by_fingerprint: dict[bytes, _Schema] = {}
        for path in _avsc_files(schema_dir):
            if path.name.startswith("clearsim."):
                continue
            schema = self._parse(path)
            self._readers[schema.name] = schema
            self._by_fingerprint[schema.fingerprint] = schema
        for path in _avsc_files(schema_dir / "history"):
            self._learn(path)
        for extra in known_writers:
            self._learn(extra)
        self._writers = dict(self._readers)
        for name, source in (writer_overrides or {}).items():
            self._writers[name] = self._learn(source)
        self._resolved: dict[tuple[bytes, str], bool] = {}
        self._given: dict[str, _Schema] = {}    # schemas handed in as dicts, by their JSON

    # -- schemas ------------------------------------------------------------------

    def _parse(self, source: dict | Path | Traversable) -> _Schema:
        raw = source if isinstance(source, dict) else json.loads(source.read_text())
        parsed = parse_schema(_inline(copy.deepcopy(raw), self._named, set(), ""))
        return _Schema(parsed, raw)

    def _learn(self, source: dict | Path | Traversable) -> _Schema:
        schema = self._parse(source)
        self._by_fingerprint.setdefault(schema.fingerprint, schema)
        return schema

    def _of(self, raw: dict) -> _Schema:
        """A schema handed in as a dict, parsed once."""
        key = json.dumps(raw, sort_keys=True)
        schema = self._given.get(key)
        if schema is None:
            schema = self._given[key] = self._parse(raw)
        return schema

    def learn(self, schema: dict) -> int:
        """Make a writer schema known (as a national registry would hand it to every node):
        messages written with it are then resolved against the reader, not refused as
        ``SCHEMA_UNKNOWN``. Returns its version."""
        known = self._of(schema)
        self._by_fingerprint.setdefault(known.fingerprint, known)
        return known.version

    def names(self) -> list[str]:
        return sorted(self._readers)

    def fingerprint(self, name: str) -> bytes:
        return self._writer(name).fingerprint

    def version(self, name: str) -> int:
        return self._writer(name).version

    def infno(self, name: str) -> str:
        return self._writer(name).infno

    def reader_schema(self, name: str) -> dict:
        return self._readers[name].raw

    def required(self, name: str) -> tuple[str, ...]:
        """The national names of the fields ``name``'s reader schema marks required."""
        return self._readers[name].required

    def first_required(self, name: str) -> str:
        """The first required field of ``name`` (its first field after the header if its
        schema marks none)."""
        reader = self._readers[name]
        if reader.required:
            return reader.required[0]
        return next(f["name"] for f in reader.raw["fields"] if f["name"] != "header")

    def changed_schema(self, name: str, change: str, field: str | None = None,
                       to: str | None = None) -> dict:
        """The national schema of ``name`` as a node with another reading of the interface
        writes it: a raw schema, its version one above the national one.

        ``compatible`` adds an optional field ``to`` (default ``memo``) with a default;
        ``rename`` renames ``field`` to ``to`` (default ``FIELD_new``) without an alias;
        ``remove`` drops ``field``; ``retype`` gives ``field`` a type no reader promotes
        (a string or bytes becomes a long, anything else a string); ``infno`` labels the
        schema with another transaction's code (``to``, default the next code in the
        catalogue); ``empty`` keeps the schema (the sender leaves the string ``field``
        empty).
        ``field`` is the national field name (default: the first required field)."""
        reader = self._readers.get(name)
        if reader is None:
            raise ClearsimError(ErrorCode.MESSAGE_TYPE_UNEXPECTED,
                                f"no schema for message {name!r}", "kind")
        raw = copy.deepcopy(reader.raw)
        raw["version"] = reader.version + 1
        fields = raw["fields"]
        field = field or self.first_required(name)
        names = [f["name"] for f in fields]
        if change in ("rename", "remove", "retype", "empty") and (
                field not in names or field == "header"):
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"{name} has no field {field!r} to {change} (fields: "
                                f"{', '.join(n for n in names if n != 'header')})", "field")
        position = names.index(field) if field in names else None
        if change == "empty" and _base(fields[position]["type"]) != "string":
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"{name}.{field} is not a string: it cannot be sent empty",
                                "field")
        if change == "compatible":
            added = to or "memo"
            while added in names:
                added += "_ext"
            fields.append({"name": added, "type": ["null", "string"], "default": None,
                           "doc": "an addition this node's version makes"})
        elif change == "rename":
            fields[position] = {**fields[position], "name": to or f"{field}_new"}
        elif change == "remove":
            del fields[position]
        elif change == "retype":
            base = _base(fields[position]["type"])
            fields[position] = {k: v for k, v in fields[position].items() if k != "default"}
            fields[position]["type"] = "long" if base in ("string", "bytes") else "string"
        elif change == "infno":
            codes = sorted({s.infno for s in self._readers.values()} - {reader.infno})
            raw["infno"] = to or next((c for c in codes if c > reader.infno), codes[0])
        elif change != "empty":
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"{change!r} is not a schema change (compatible, rename, "
                                "remove, retype, infno, empty)", "change")
        return raw

    def parsed_reader(self, name: str) -> dict:
        """The reader schema as fastavro parsed it (shared types in ``__named_schemas``)."""
        try:
            return self._readers[name].parsed
        except KeyError:
            raise ClearsimError(ErrorCode.MESSAGE_TYPE_UNEXPECTED,
                                f"no schema for message {name!r}", "kind") from None

    def parsed_writer(self, name: str) -> dict:
        """The schema this codec writes ``name`` with, as fastavro parsed it."""
        return self._writer(name).parsed

    def _writer(self, name: str) -> _Schema:
        try:
            return self._writers[name]
        except KeyError:
            raise ClearsimError(ErrorCode.MESSAGE_TYPE_UNEXPECTED,
                                f"no schema for message {name!r}", "kind") from None

    # -- encoding -----------------------------------------------------------------

    def encode(self, name: str, record: dict) -> bytes:
        return _write(self._writer(name), record)

    def encode_with(self, schema: dict, record: dict) -> bytes:
        """``record`` written with ``schema`` (a raw message schema, known to this codec or
        not): what a node with another version of the interface puts on the wire."""
        return _write(self._of(schema), record)

    def read(self, data: bytes) -> tuple[str, dict]:
        """A message exactly as its writer wrote it (no resolution, no interface checks)."""
        fingerprint = single_object_fingerprint(data)
        writer = self._by_fingerprint.get(fingerprint) if fingerprint else None
        if writer is None:
            raise ClearsimError(ErrorCode.SCHEMA_UNKNOWN, "no known schema for this message",
                                "fingerprint")
        return writer.name, schemaless_reader(io.BytesIO(data[10:]), writer.parsed)

    def check(self, name: str, record: dict) -> None:
        """The interface beyond the schema, for a decoded message (``header`` included):
        no text is longer than its field takes (``FIELD_TOO_LARGE``), its header's
        ``infno`` is this message's transaction, and no required field is empty. Refuses
        with ``FIELD_TOO_LARGE``, ``INFNO_MISMATCH`` or ``FIELD_REQUIRED``, naming the field
        and the writer's and the reader's versions."""
        reader = self._readers[name]
        header = record.get("header") or {}
        sender = str(header.get("sender") or "?")[:HEADER_TEXT["sender"]]
        written = f"{name} v{header.get('infver', '?')} from {sender}"
        too_long = reader.sizes(record)
        if too_long is not None:
            path, length, limit = too_long
            raise ClearsimError(ErrorCode.FIELD_TOO_LARGE,
                                f"{written}: {path} is {length} characters long; "
                                f"{name} takes at most {limit}",
                                path.rsplit(".", 1)[-1].rstrip("[]{}"))
        infno = header.get("infno", "")
        if infno != reader.infno:
            others = sorted(s.name for s in self._readers.values() if s.infno == infno)
            what = f" (the code of {', '.join(others)})" if others else ""
            raise ClearsimError(ErrorCode.INFNO_MISMATCH,
                                f"{written} carries infno {infno or 'none'}{what}, but "
                                f"{name} v{reader.version} is transaction {reader.infno}: "
                                "the sender labels it with another interface's code",
                                "infno")
        for field in reader.required:
            if record.get(field) in ("", None):
                raise ClearsimError(ErrorCode.FIELD_REQUIRED,
                                    f"{written} leaves {field} empty; {name} "
                                    f"v{reader.version} requires it", field)

    def decode(self, data: bytes) -> tuple[str, dict]:
        if len(data) > MAX_MESSAGE_BYTES:
            raise ClearsimError(ErrorCode.MESSAGE_TOO_LARGE,
                                f"the message is {len(data)} bytes long; a node reads at most "
                                f"{MAX_MESSAGE_BYTES}", "message")
        fingerprint = single_object_fingerprint(data)
        if fingerprint is None:
            raise ClearsimError(ErrorCode.MESSAGE_MALFORMED,
                                "not an Avro single-object message (no C3 01 marker)", "marker")
        writer = self._by_fingerprint.get(fingerprint)
        if writer is None:
            raise ClearsimError(ErrorCode.SCHEMA_UNKNOWN,
                                f"no known schema has fingerprint {fingerprint.hex()}: the "
                                "sender writes an interface version this node was never "
                                "given", "fingerprint")
        reader = self._readers.get(writer.name)
        if reader is None:
            raise ClearsimError(ErrorCode.SCHEMA_UNKNOWN,
                                f"this node reads no {writer.name} messages (writer "
                                f"v{writer.version})", "kind")
        self._check_resolvable(writer, reader)
        try:
            record = schemaless_reader(io.BytesIO(data[10:]), writer.parsed, reader.parsed)
        except Exception as exc:
            raise ClearsimError(ErrorCode.MESSAGE_MALFORMED,
                                f"{writer.name} v{writer.version} body cannot be read: "
                                f"{type(exc).__name__}: {exc}", "body") from None
        return writer.name, record

    def _check_resolvable(self, writer: _Schema, reader: _Schema) -> None:
        key = (writer.fingerprint, reader.name)
        if self._resolved.get(key):
            return
        problem = _mismatch(writer.parsed, reader.parsed, self._named_of(writer),
                            self._named_of(reader), "")
        if problem is not None:
            field, why = problem
            raise ClearsimError(ErrorCode.SCHEMA_INCOMPATIBLE,
                                f"{writer.name} written with v{writer.version} cannot be read "
                                f"as v{reader.version}: field {field!r} {why}", field)
        self._resolved[key] = True

    @staticmethod
    def _named_of(schema: _Schema) -> dict:
        return schema.parsed.get("__named_schemas", {})


def _write(writer: _Schema, record: dict) -> bytes:
    """Single-object encoding of ``record`` with ``writer``; MESSAGE_MALFORMED naming the
    field that cannot be written."""
    out = io.BytesIO()
    out.write(MARKER)
    out.write(writer.fingerprint)
    try:
        schemaless_writer(out, writer.parsed, record)
    except Exception as exc:
        field, detail = _invalid_field(writer, record, exc)
        raise ClearsimError(ErrorCode.MESSAGE_MALFORMED,
                            f"{writer.name} v{writer.version} cannot be written: {detail}",
                            field) from None
    return out.getvalue()


def _avsc_files(directory: Path | Traversable) -> list[Traversable]:
    """The ``.avsc`` files of a directory, by name (none if it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted((f for f in directory.iterdir() if f.name.endswith(".avsc") and f.is_file()),
                  key=lambda f: f.name)


def _invalid_field(schema: _Schema, record, exc: Exception) -> tuple[str | None, str]:
    """Which field made a record unwritable, and why (fastavro's validator names it)."""
    try:
        validate(record, schema.parsed, raise_errors=True)
    except ValidationError as invalid:
        found = re.search(r"Field\(([^)]*)\) (.*?)\"?\s*\]", str(invalid), re.S)
        if found:
            return found.group(1).rsplit(".", 1)[-1], f"{found.group(1)} {found.group(2)}"
    except Exception:
        pass
    return None, f"{type(exc).__name__}: {exc}"


def _inline(schema, named: dict, seen: set, namespace: str):
    """A self-contained schema: every shared named type written out at its first use, by
    name afterwards, as the parsing canonical form requires (so the fingerprint covers the
    Header and every other shared type, not just their names)."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _inline(copy.deepcopy(named[schema]), named, seen, "")
        return schema
    if isinstance(schema, list):
        return [_inline(branch, named, seen, namespace) for branch in schema]
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        space = schema.pop("namespace", namespace)
        if "." not in schema["name"] and space:
            schema["name"] = f"{space}.{schema['name']}"
        seen.add(schema["name"])
        namespace = schema["name"].rsplit(".", 1)[0] if "." in schema["name"] else ""
    if kind == "record":
        for field in schema["fields"]:
            field["type"] = _inline(field["type"], named, seen, namespace)
    elif kind == "array":
        schema["items"] = _inline(schema["items"], named, seen, namespace)
    elif kind == "map":
        schema["values"] = _inline(schema["values"], named, seen, namespace)
    elif isinstance(kind, (dict, list)):
        schema["type"] = _inline(kind, named, seen, namespace)
    return schema


# -- the length of texts -----------------------------------------------------------

def _nothing(_value):
    return None


def _sizes(schema, named: dict, path: str, limits: Mapping[str, int]):
    """A function of a value of ``schema`` giving (path, length, limit) of its first text
    longer than its field takes, or None; None when ``schema`` holds no text. ``limits``:
    the limits of the fields of this record by name (the header's), else ``TEXT`` and
    ``ID_TEXT``."""
    if isinstance(schema, str):
        if schema in named:
            return _sizes(named[schema], named, path, limits)
        if schema != "string":
            return None
        name = path.rsplit(".", 1)[-1].rstrip("[]{}")
        limit = limits.get(name) or TEXT.get(name, ID_TEXT)

        def text(value):
            if isinstance(value, str) and len(value) > limit:
                return (path, len(value), limit)
            return None
        return text
    if isinstance(schema, list):
        checks = [c for c in (_sizes(b, named, path, limits) for b in schema) if c]
        if not checks:
            return None

        def union(value):            # each branch's check passes the others' values
            for check in checks:
                found = check(value)
                if found is not None:
                    return found
            return None
        return union
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _sizes(kind, named, path, limits)
    if schema.get("logicalType") or kind in ("bytes", "fixed", "enum"):
        return None
    if kind == "record":
        own = HEADER_TEXT if schema["name"].rsplit(".", 1)[-1] == "Header" else {}
        texts, others = [], []     # plain (or nullable) texts are looked at in one loop
        for f in schema["fields"]:
            where = f"{path}.{f['name']}" if path else f["name"]
            if _text_type(f["type"], named):
                texts.append((f["name"], where,
                              own.get(f["name"]) or TEXT.get(f["name"], ID_TEXT)))
            elif (check := _sizes(f["type"], named, where, own)) is not None:
                others.append((f["name"], check))
        if not texts and not others:
            return None

        def record(value):
            if not isinstance(value, dict):
                return None
            for name, where, limit in texts:
                item = value.get(name)
                if item.__class__ is str and len(item) > limit:
                    return (where, len(item), limit)
            for name, check in others:
                item = value.get(name)
                if item is not None:
                    found = check(item)
                    if found is not None:
                        return found
            return None
        return record
    if kind == "array":
        item = _sizes(schema["items"], named, f"{path}[]", limits)
        if item is None:
            return None

        def array(value):
            if not isinstance(value, list):
                return None
            for one in value:
                found = item(one)
                if found is not None:
                    return found
            return None
        return array
    if kind == "map":
        key_path = f"{path}{{}}"
        values = _sizes(schema["values"], named, key_path, limits)

        def mapping(value):
            if not isinstance(value, dict):
                return None
            for key, one in value.items():
                if len(key) > ID_TEXT:
                    return (key_path, len(key), ID_TEXT)
                found = values(one) if values is not None else None
                if found is not None:
                    return found
            return None
        return mapping
    return _sizes(kind, named, path, limits)


def _text_type(schema, named: dict) -> bool:
    """Whether ``schema`` is ``string`` or a union of ``null`` and ``string``."""
    if isinstance(schema, list):
        return sorted(b for b in schema if isinstance(b, str)) == ["null", "string"] \
            and len(schema) == 2
    return schema == "string"


# -- schema resolution check (Avro specification, "Schema Resolution") ---------------

_PROMOTIONS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
               ("long", "double"), ("float", "double"), ("string", "bytes"),
               ("bytes", "string")}


def _deref(schema, named: dict):
    if isinstance(schema, str) and schema in named:
        return named[schema]
    return schema


def _base(schema) -> str:
    """The Avro type under a schema's logical type, or a nullable union's other branch."""
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return _base(branches[0]) if branches else "null"
    if isinstance(schema, dict):
        return _base(schema["type"])
    return schema


def _kind(schema) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return schema["type"]
    return schema


def _mismatch(writer, reader, wnamed: dict, rnamed: dict, path: str):
    """(field, why) for the first place a writer cannot be resolved to a reader, or None."""
    writer, reader = _deref(writer, wnamed), _deref(reader, rnamed)
    wk, rk = _kind(writer), _kind(reader)
    if wk == "union":
        for branch in writer:
            problem = _mismatch(branch, reader, wnamed, rnamed, path)
            if problem is not None:
                return problem
        return None
    if rk == "union":
        if any(_mismatch(writer, branch, wnamed, rnamed, path) is None for branch in reader):
            return None
        return path or "value", f"has type {wk}, which no branch of the reader's union accepts"
    if wk != rk and (wk, rk) not in _PROMOTIONS:
        return path or "value", f"has type {wk} in the writer and {rk} in the reader"
    if rk == "record":
        if _short(writer["name"]) != _short(reader["name"]):
            return path or "value", (f"is record {writer['name']} in the writer and "
                                     f"{reader['name']} in the reader")
        wfields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            name = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] not in wfields:
                if "default" not in field:
                    return name, "is required by the reader, has no default, and the writer lacks it"
                continue
            problem = _mismatch(wfields[field["name"]]["type"], field["type"], wnamed, rnamed,
                                name)
            if problem is not None:
                return problem
    elif rk == "array":
        return _mismatch(writer["items"], reader["items"], wnamed, rnamed, f"{path}[]")
    elif rk == "map":
        return _mismatch(writer["values"], reader["values"], wnamed, rnamed, f"{path}{{}}")
    elif rk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return path or "value", f"has symbols {sorted(missing)} the reader does not know"
    elif rk == "fixed" and writer.get("size") != reader.get("size"):
        return path or "value", "has a different fixed size"
    return None
