"""Interface mismatches (DOMAIN.md §6): a sender writes a message with another schema."""

from __future__ import annotations

from clearsim.codec import Codec
from clearsim.faults import FaultPlan


def rewrite(plan: FaultPlan, codec: Codec, sender: str, receiver: str, kind: str,
            correlation_id: str, value: bytes) -> bytes:
    """``value`` as the faulty sender writes it (unchanged when no schema fault strikes)."""
    return value


def damage(plan: FaultPlan, sender: str, receiver: str, kind: str, correlation_id: str,
           msgid: str, value: bytes) -> bytes:
    """``value`` with bytes damaged by a ``corrupt`` fault on the link (else unchanged)."""
    return value
