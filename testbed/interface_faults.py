"""Interface mismatches and corrupted bytes (DOMAIN.md §6), done to what a node puts on the wire.

``rewrite``: a ``schema`` fault makes its node write one message type with another schema
than the national one, below the node's translator: the Avro bytes the node produced are
read back, the record changed to fit the changed schema (``Codec.changed_schema``) and
written again with it. A changed schema that is ``registered`` is made known to every node
(the run shares one codec, as a national registry would give it to all), so receivers
resolve it and refuse it as ``SCHEMA_INCOMPATIBLE`` naming the field and both versions;
one that is not is ``SCHEMA_UNKNOWN``. A wrong ``infno`` or a required field left empty
keeps the schema's shape and is refused by the receiver's interface check
(``INFNO_MISMATCH``, ``FIELD_REQUIRED``). A ``compatible`` change still flows.

``damage``: a ``corrupt`` fault damages bytes of messages on a link, always some of the
marker or the writer-schema fingerprint, so the receiver refuses the message
(``MESSAGE_MALFORMED`` or ``SCHEMA_UNKNOWN``) and never reads a damaged body as if it
were sound. Whether a sending is damaged is drawn per message (its claim, type, link and
rank among such messages, not its random msgid: a run is reproducible) and per sending, so
a resend of the same message can pass.
"""

from __future__ import annotations

import random
import threading
import weakref
import zlib
from collections import Counter
from datetime import datetime
from decimal import Decimal

from clearsim.codec import MARKER, Codec
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.faults import FaultPlan

# The messages of a claim before its insuring region records a settlement: refused for
# good, the claim can still go to manual reimbursement without being paid twice. Any other
# message can only wait until the fault is over (``fallback = "hold"``).
BEFORE_SETTLEMENT = ("AdmitPatient", "AdmissionVerified", "AdmissionAnswered",
                     "UploadCharges", "ChargesAnswered", "SettleClaim", "ClaimSettled")


def validate(plan: FaultPlan, codec: Codec) -> None:
    """Refuse, before the run starts, a ``schema`` fault that could never be injected (a
    message or field the national interface does not have) or whose fallback cannot
    happen (manual reimbursement for a message sent after the settlement was recorded)."""
    for fault in plan.of("schema"):
        where = f"fault {fault.id}"
        kind = fault.get("message")
        if kind not in codec.names():
            raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                                f"{where}: {kind!r} is not a message type (see "
                                "clearsim/schemas/README.md)", f"{where}.message")
        try:
            codec.changed_schema(kind, fault.get("change"), fault.get("field"))
        except ClearsimError as exc:
            raise ClearsimError(ErrorCode.SCENARIO_INVALID, f"{where}: {exc.rejection.message}",
                                f"{where}.field") from None
        if (fault.get("change") != "compatible" and fault.get("fallback") == "manual"
                and kind not in BEFORE_SETTLEMENT):
            raise ClearsimError(
                ErrorCode.SCENARIO_INVALID,
                f"{where}: a refused {kind} cannot fall back to manual reimbursement (only "
                f"a claim not yet settled can: {', '.join(BEFORE_SETTLEMENT)}); set "
                'fallback = "hold" to send it again once the fault is over',
                f"{where}.fallback")


def schema_faults(plan: FaultPlan, sender: str, kind: str, correlation_id: str) -> list:
    """The ``schema`` faults that strike this sending: the sender's, on this message type,
    active on the run's day and drawn for this claim."""
    return [f for f in plan.of("schema")
            if f.get("node") == sender and f.get("message") == kind and plan.active(f)
            and f.draws(correlation_id, kind)]


def rewrite(plan: FaultPlan, codec: Codec, sender: str, receiver: str, kind: str,
            correlation_id: str, value: bytes) -> bytes:
    """``value`` as the faulty sender writes it (unchanged when no schema fault strikes)."""
    faults = schema_faults(plan, sender, kind, correlation_id) if plan else []
    if not faults:
        return value
    fault = faults[0]
    change, field = fault.get("change"), fault.get("field") or codec.first_required(kind)
    schema = codec.changed_schema(kind, change, field)
    if fault.get("registered"):
        codec.learn(schema)
    name, record = codec.read(value)
    record = changed_record(record, schema, change, field)
    what = {"compatible": "a field added", "infno": f"infno {schema['infno']}"}.get(
        change, f"{change} {field}")
    registry = "registered" if fault.get("registered") else "not registered"
    plan.record(fault, "injected", claim_id=correlation_id, node=sender, day=plan.today,
                detail=f"{kind} to {receiver} written as v{schema['version']}: {what} "
                       f"({registry})")
    return codec.encode_with(schema, record)


def changed_record(record: dict, schema: dict, change: str, field: str) -> dict:
    """``record`` (national names, as written) fitted to the changed ``schema``."""
    record = {**record, "header": {**record["header"], "infver": schema["version"]}}
    fields = {f["name"]: f for f in schema["fields"]}
    if change == "compatible":
        added = schema["fields"][-1]["name"]
        record[added] = f"written by {record['header']['sender']} v{schema['version']}"
    elif change == "rename":
        renamed = next(f["name"] for f in schema["fields"] if f["name"] not in record)
        record[renamed] = record.pop(field)
    elif change == "remove":
        record.pop(field, None)
    elif change == "retype":
        record[field] = _retyped(record.get(field), fields[field]["type"])
    elif change == "infno":
        record["header"]["infno"] = schema["infno"]
    elif change == "empty":
        record[field] = ""
    return record


def _retyped(value, to: str):
    """A value written in the type the changed schema gives its field."""
    if to == "long":
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, Decimal):
            return int(value.scaleb(2))
        return zlib.crc32(repr(value).encode())
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


# -- corrupted bytes ---------------------------------------------------------------------

class _Sendings:
    """What the corrupting links of one run have carried: per message, its number among
    the messages of its claim and type on its link, and how often it was sent."""

    def __init__(self):
        self.messages: Counter = Counter()
        self.number: dict[str, int] = {}
        self.attempts: Counter = Counter()


_lock = threading.Lock()
_sendings: "weakref.WeakKeyDictionary[FaultPlan, _Sendings]" = weakref.WeakKeyDictionary()


def damage(plan: FaultPlan, sender: str, receiver: str, kind: str, correlation_id: str,
           msgid: str, value: bytes) -> bytes:
    """``value`` with bytes damaged by a ``corrupt`` fault on the link (else unchanged)."""
    if not plan:
        return value
    faults = [f for f in plan.of("corrupt") if f.on_link(sender, receiver) and plan.active(f)]
    if not faults:
        return value
    with _lock:
        seen = _sendings.setdefault(plan, _Sendings())
        key = (correlation_id, kind, receiver)
        if msgid not in seen.number:
            seen.number[msgid] = seen.messages[key]
            seen.messages[key] += 1
        which = (*key, seen.number[msgid], seen.attempts[msgid])
        seen.attempts[msgid] += 1
    for fault in faults:
        # Drawn on what the message is (the n-th of its type for its claim on this link)
        # and which sending of it this is: reproducible from the seed (msgids are random),
        # and a resend, or the next refusal of a refusal, is a new draw.
        if not fault.draws(*which):
            continue
        rng = random.Random(f"{fault.seed}:{fault.id}:" + ":".join(map(str, which)))
        attempt = which[-1]
        damaged = bytearray(value)
        head = len(MARKER) + 8                      # marker and fingerprint
        count = max(1, int(fault.get("bytes")))
        positions = [rng.randrange(min(head, len(damaged)))]
        rest = [i for i in range(len(damaged)) if i != positions[0]]
        positions += rng.sample(rest, min(count - 1, len(rest)))
        for position in positions:
            damaged[position] ^= rng.randrange(1, 256)
        plan.record(fault, "injected", claim_id=correlation_id, node=sender, day=plan.today,
                    detail=f"{kind} {msgid} to {receiver}, sending {attempt + 1}: "
                           f"{len(positions)} bytes damaged at {sorted(positions)}")
        return bytes(damaged)
    return value
