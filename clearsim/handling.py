"""What every node's handlers share, so the three node packages read alike.

A handler is a plain function ``(message, context) -> list[Outgoing]`` (STYLE.md habit 2).
Its context is a ``Context``: the transaction's connection, the node's frozen configuration,
the node id and an injected clock (handlers never reach for the wall clock themselves).
``require`` looks a row up in the states a message may find it in; ``Transitions`` says
which moves between a node's claim states are allowed, and refuses any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Generic, TypeVar

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.faults import NO_FAULTS, Faults


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


C = TypeVar("C")


@dataclass
class Context(Generic[C]):
    """The world a handler sees: one transaction, one node's configuration, one clock,
    and the run's fail points."""

    conn: Any
    config: C
    node_id: str
    clock: Callable[[], datetime] = field(default=wall_clock)
    faults: Faults = field(default=NO_FAULTS)   # the fail points a run's faults strike

    def now(self) -> datetime:
        """Wall-clock time of handling (for measured latencies, never for business dates)."""
        return self.clock()


def require(row: Mapping | None, *states: str, what: str, holder: str, kind: str,
            field: str = "correlation_id") -> Mapping:
    """``row``, which must exist and (if ``states`` are given) be in one of them.

    ``what`` names the row for a person ("claim C-001"), ``holder`` the node that looked
    ("region 360400"), ``kind`` the message that needed it."""
    if row is None:
        raise ClearsimError(ErrorCode.CLAIM_UNKNOWN, f"{holder} holds no {what}", field)
    if states and row["state"] not in states:
        raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                            f"{kind} for {what} arrived in state {row['state']!r}; expected "
                            f"{' or '.join(str(s) for s in states)}", "state")
    return row


S = TypeVar("S", bound=StrEnum)


class Transitions(Generic[S]):
    """The moves allowed between the states of one node's claims."""

    def __init__(self, moves: Mapping[S | None, Iterable[S]]):
        self.moves = {start: frozenset(ends) for start, ends in moves.items()}

    def allowed(self, start: S | None, end: S) -> bool:
        return end in self.moves.get(start, ())

    def check(self, start: S | None, end: S, *, what: str) -> S:
        """``end``, if a claim in ``start`` may move there; CLAIM_STATE_INVALID otherwise."""
        if not self.allowed(start, end):
            raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID,
                                f"{what} cannot move from {start or 'nothing'} to {end}",
                                "state")
        return end
