"""Dead letters: what a node refused, parked with the reason and the original record.

Every refusal the node loop records is also staged in the refusing node's outbox as a
``DeadLettered`` message to ``{prefix}.dlq`` (``clearsim/node.py``), in the same
transaction: a dead letter is on the topic once the node has relayed it, and stays in the
node's outbox as the very bytes that went there. This module reads them back, from either
place, for ``clearsim dlq``: one ``Parked`` per dead letter, and views of it in which no
person id appears in full.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from clearsim.codec import Codec
from clearsim.db import outbox
from clearsim.errors import ClearsimError, ErrorCode

KIND = "DeadLettered"
# National names of fields that hold a person's identity: never shown in full.
PERSONAL = frozenset({"psn_no", "person_id"})


@dataclass(frozen=True)
class Parked:
    """One dead letter: ``id`` is its own message id (the one ``show`` and ``replay`` take)."""

    id: str
    node: str                     # the node that refused and parked it
    parked_at: datetime           # the node's clock
    sim_time: datetime | None     # the refused message's simulated time, when known
    code: str
    field: str | None
    message: str
    msgid: str | None             # the refused message's own id
    kind: str
    infno: str
    sender: str | None
    consumed: bool
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes
    length: int
    sha256: str

    @property
    def whole(self) -> bool:
        """Whether the parked bytes are every byte that arrived (else it cannot be
        replayed)."""
        return len(self.value) == self.length


def read(codec: Codec, data: bytes) -> Parked:
    """A dead letter's bytes (from the topic or an outbox) as a ``Parked``."""
    kind, record = codec.decode(data)
    if kind != KIND:
        raise ClearsimError(ErrorCode.MESSAGE_TYPE_UNEXPECTED,
                            f"a {kind} message is not a dead letter", "kind")
    header, error = record["header"], record["error"]
    return Parked(
        id=header["msgid"], node=header["sender"], parked_at=header["sent_at"],
        sim_time=header["sim_time"], code=error["code"], field=error["field"],
        message=error["message"], msgid=record["omsgid"], kind=record["okind"],
        infno=record["oinfno"], sender=record["original_sender"],
        consumed=record["consumed"], topic=record["original_topic"],
        partition=record["original_partition"], offset=record["original_offset"],
        key=record["original_key"],
        headers=tuple((h["name"], h["value"]) for h in record["original_headers"]),
        value=record["original_value"], length=record["original_length"],
        sha256=record["original_sha256"])


def parked_in(conn) -> list[tuple[str, bytes]]:
    """(id, bytes) of every dead letter a node's outbox holds, in the order it parked
    them."""
    rows = conn.execute(select(outbox.c.msgid, outbox.c.value)
                        .where(outbox.c.kind == KIND).order_by(outbox.c.id)).all()
    return [(r.msgid, r.value) for r in rows]


# -- what people see ---------------------------------------------------------------------

def mask(text: str) -> str:
    """An identifier with its middle hidden: at most two characters kept at each end, and
    never more than a third of it ("P-JJ-001" -> "P-****01")."""
    keep = max(0, min(2, (len(text) - 3) // 2))
    return text[:keep] + "*" * (len(text) - 2 * keep) + (text[-keep:] if keep else "")


def personal_values(record) -> set[str]:
    """Every person id a decoded record holds, at any depth."""
    found: set[str] = set()

    def walk(value, name: str = "") -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, key)
        elif isinstance(value, list):
            for item in value:
                walk(item, name)
        elif isinstance(value, str) and name in PERSONAL and value:
            found.add(value)
    walk(record)
    return found


def masked(text: str, personal: Iterable[str]) -> str:
    """``text`` with every person id of ``personal`` in it masked."""
    for value in sorted(personal, key=len, reverse=True):
        text = text.replace(value, mask(value))
    return text


def original(codec: Codec, parked: Parked) -> tuple[str, dict] | None:
    """The refused message as its writer wrote it (kind, record), or None when its bytes
    cannot be read (unknown schema, damaged, cut)."""
    if not parked.whole:
        return None
    try:
        return codec.read(parked.value)
    except ClearsimError:
        return None
    except Exception:        # bytes a known schema cannot read are the sender's problem
        return None


def plain(value, personal: Iterable[str] = ()):
    """A decoded record as JSON takes it (decimals and times as strings, bytes as hex),
    every person id masked."""
    personal = tuple(personal)
    if isinstance(value, dict):
        return {k: (mask(v) if k in PERSONAL and isinstance(v, str) and v
                    else plain(v, personal)) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, personal) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return masked(value, personal)
    return value


_PRINTABLE = frozenset((string.ascii_letters + string.digits + string.punctuation + " ")
                       .encode())


def hex_dump(data: bytes, limit: int = 512) -> list[str]:
    """The first ``limit`` bytes as hex and text, 16 a line. Any run of five or more
    printable characters (which may be a person id the bytes carry) shows only its ends,
    in both columns."""
    shown = bytearray(data[:limit])
    hidden = [False] * len(shown)
    start = None
    for i in range(len(shown) + 1):
        printable = i < len(shown) and shown[i] in _PRINTABLE
        if printable and start is None:
            start = i
        elif not printable and start is not None:
            if i - start >= 5:
                keep = max(0, min(2, (i - start - 3) // 2))
                for j in range(start + keep, i - keep):
                    hidden[j] = True
            start = None
    lines = []
    for row in range(0, len(shown), 16):
        cells = range(row, min(row + 16, len(shown)))
        hexes = " ".join("**" if hidden[i] else f"{shown[i]:02x}" for i in cells)
        text = "".join("*" if hidden[i] else chr(shown[i]) if shown[i] in _PRINTABLE
                       else "." for i in cells)
        lines.append(f"{row:08x}  {hexes:<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return lines
