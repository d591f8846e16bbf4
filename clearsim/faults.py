"""Faults a run injects (DOMAIN.md §6): the catalogue, a fault's declaration, the run's plan.

A fault has a kind (``clearsim faults`` lists them), a target (a node, or a link between
two nodes with a direction), a window in simulated time (``from`` inclusive, ``until``
exclusive; open ends by default), a rate (the probability that one claim or message it
could touch is touched) and a seed, so a run is reproducible: whether a fault fires for a
given claim or message is decided by hashing the fault's seed with that claim's or
message's own identity, never by the order threads happen to run in.

Faults are declared in a scenario (``[[fault]]`` tables) or on the command line
(``--fault KIND:key=value,...``); both go through ``parse_fault``. A ``FaultPlan`` holds a
run's faults, the simulated day the run is on and the log of what was injected and what
the testbed saw happen; nodes reach it through named fail points (``Faults.fire``), the way
fail-rs and gofail expose fail points to a test harness, so node code names the place a
fault may strike and never knows which fault it is.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from tenacity import RetryCallState, wait_exponential

from clearsim.errors import ClearsimError, ErrorCode

INTERFACE = "interface mismatch"
PARAMETER = "parameter mismatch"
IDENTITY = "identity inconsistency"
UNAVAILABLE = "unavailability"
TRANSPORT = "transport"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                 # "str" | "int" | "decimal" | "bool" | "date" | one of choices
    default: object = None
    help: str = ""
    choices: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Kind:
    name: str
    family: str
    summary: str
    target: str               # "node" | "link" | "region" | "run"
    params: tuple[Param, ...]
    example: str
    detected_by: str          # where and with which code it is noticed


_COMMON = (
    Param("id", "str", None, "a name for the report (default: the kind and its position)"),
    Param("from", "date", None, "first simulated day the fault is active (default: always)"),
    Param("until", "date", None, "first simulated day it is no longer active (default: "
                                  "never)"),
    Param("rate", "decimal", "1", "probability that a claim or message it could touch is "
                                  "touched (0..1)"),
    Param("seed", "int", None, "seed of the rate's draws (default: the scenario's seed)"),
)

_RETRY = (
    Param("attempts", "int", 4, "requests sent in all before the fallback (tenacity "
                                "stop_after_attempt)"),
    Param("initial_ms", "int", 100, "wait for an answer after the first request, doubled "
                                    "after each further one"),
    Param("max_ms", "int", 1000, "longest wait for an answer"),
    Param("jitter_ms", "int", 50, "random extra wait added to each"),
)

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("schema", INTERFACE,
         "a node writes one message type with another schema than the national one",
         "node", (
             Param("node", "str", None, "the sender (hub, region-CODE, hospitals-CODE)",
                   required=True),
             Param("message", "str", None, "the message type it writes wrongly",
                   required=True),
             Param("change", "choice", "rename", "what differs",
                   ("compatible", "rename", "remove", "retype", "infno", "empty")),
             Param("field", "str", None, "the national field name changed (default: the "
                                         "first required field of the message)"),
             Param("registered", "bool", True, "the changed schema is in the national "
                                               "registry (receivers refuse it as "
                                               "SCHEMA_INCOMPATIBLE; else SCHEMA_UNKNOWN)"),
             Param("fallback", "choice", "manual", "what the sender does once its resends "
                                                   "are refused: manual (the patient is "
                                                   "reimbursed at home; only for a message "
                                                   "sent before the settlement is recorded) "
                                                   "or hold (sent again once the window "
                                                   "ends)", ("manual", "hold")),
         ),
         "schema:node=region-110000,message=ClaimSettled,change=rename,field=psn_no",
         "the receiver: SCHEMA_INCOMPATIBLE / SCHEMA_UNKNOWN / INFNO_MISMATCH / "
         "FIELD_REQUIRED, naming the field and both versions"),
    Kind("policy", PARAMETER,
         "a treating region settles with a stale or corrupted copy of an insuring region's "
         "policy", "node", (
             Param("node", "str", None, "the treating region (region-CODE)", required=True),
             Param("region", "str", None, "the insuring region whose copy is wrong "
                                          "(default: any)"),
             Param("change", "choice", "ratio", "what is wrong in the copy",
                   ("stale", "deductible", "ratio", "cap")),
             Param("value", "decimal", None, "the wrong value: a ratio for ratio (and for "
                                             "stale: the older version's ratio), yuan for "
                                             "deductible and cap (default: the ratio 0.10 "
                                             "higher, half the deductible, half the cap; "
                                             "stale: the same figures)"),
             Param("tier", "str", None, "only this tier, e.g. cross_region.referred "
                                        "(default: every tier)"),
         ),
         "policy:node=region-110000,region=360400,change=ratio,value=0.60",
         "the insuring region's recomputation: POLICY_VERSION_MISMATCH / "
         "POLICY_PARAMETER_MISMATCH"),
    Kind("mapping", PARAMETER,
         "a treating region classes a catalog item wrongly (对照错误)", "node", (
             Param("node", "str", None, "the treating region (region-CODE)", required=True),
             Param("code", "str", None, "the catalog code mapped wrongly (one the treating "
                                        "catalog lists)", required=True),
             Param("class", "choice", "A", "the class it is wrongly given", ("A", "B", "C")),
             Param("share", "decimal", "0.10", "the self-pay share when the wrong class "
                                               "is B"),
         ),
         "mapping:node=region-110000,code=T300,class=A",
         "the insuring region's recomputation: CATALOG_MAPPING_MISMATCH"),
    Kind("identity", IDENTITY,
         "a hospital's card data differs from the national record at admission", "node", (
             Param("node", "str", None, "the hospitals node (hospitals-CODE)", required=True),
             Param("field", "choice", "insurance_code", "what differs on the card",
                   ("insurance_code", "person_id")),
         ),
         "identity:node=hospitals-110000,rate=0.2",
         "the insuring region at admission: IDENTITY_MISMATCH / PERSON_UNKNOWN"),
    Kind("outage", UNAVAILABLE,
         "a node is down (an upgrade, the year-end closure 年底封账, a failure)", "node", (
             Param("node", "str", None, "hub, region-CODE or hospitals-CODE", required=True),
             Param("reason", "choice", "upgrade", "why it is down",
                   ("upgrade", "year_end", "failure")),
             Param("fallback", "choice", "wait", "what a hospital does once its retries are "
                                                 "spent", ("wait", "manual")),
             *_RETRY,
         ),
         "outage:node=region-360400,reason=year_end,from=2019-03-04,until=2019-03-06",
         "the hospitals: no answer within their retries (ANSWER_TIMEOUT)"),
    Kind("delay", TRANSPORT, "messages on a link arrive late", "link", (
        Param("link", "str", "*->*", "FROM->TO node ids, * for any"),
        Param("ms", "int", 200, "fixed delay"),
        Param("jitter_ms", "int", 100, "random extra delay"),
    ), "delay:link=region-110000->hub,ms=300", "latency only: nothing is refused"),
    Kind("drop", TRANSPORT, "messages on a link are lost before the broker acknowledges "
                            "them", "link", (
        Param("link", "str", "*->*", "FROM->TO node ids, * for any"),
    ), "drop:link=hub->region-360400,rate=0.3",
        "the sender: no acknowledgement (BROKER_UNAVAILABLE), resent from its outbox"),
    Kind("duplicate", TRANSPORT, "messages on a link are delivered twice", "link", (
        Param("link", "str", "*->*", "FROM->TO node ids, * for any"),
    ), "duplicate:link=*->hub,rate=0.5", "the receiver's message-id check (absorbed)"),
    Kind("reorder", TRANSPORT, "messages on a link overtake one another (never two of one "
                               "claim: a partition keeps a key's order)", "link", (
        Param("link", "str", "*->*", "FROM->TO node ids, * for any"),
    ), "reorder:link=*->hub", "nothing to detect: each claim's order is kept"),
    Kind("corrupt", TRANSPORT, "bytes of messages on a link are damaged", "link", (
        Param("link", "str", "*->*", "FROM->TO node ids, * for any"),
        Param("bytes", "int", 1, "how many bytes are damaged"),
    ), "corrupt:link=hospitals-110000->region-110000,rate=0.2",
        "the receiver: MESSAGE_MALFORMED / SCHEMA_UNKNOWN; the sender resends"),
    Kind("pause", TRANSPORT, "a node's process is paused and resumed (SIGSTOP/SIGCONT)",
         "node", (
             Param("node", "str", None, "hub, region-CODE or hospitals-CODE", required=True),
         ), "pause:node=hub,from=2019-03-04,until=2019-03-05",
         "nothing is refused: work waits on the bus and resumes"),
    Kind("skew", TRANSPORT, "a node's clock is wrong", "node", (
        Param("node", "str", None, "hub, region-CODE or hospitals-CODE", required=True),
        Param("seconds", "int", 300, "how far ahead (negative: behind) its clock is"),
    ), "skew:node=region-360400,seconds=-600",
        "the receivers: CLOCK_SKEW (a sent time in the future); no money changes"),
    Kind("partition", TRANSPORT, "a region and the hub cannot reach each other", "node", (
        Param("node", "str", None, "the region (region-CODE)", required=True),
    ), "partition:node=region-360400,from=2019-03-04,until=2019-03-05",
        "the senders: no acknowledgement (BROKER_UNAVAILABLE), resent when it heals"),
    Kind("broker_restart", TRANSPORT, "the Kafka broker is stopped and started again "
                                      "mid-run", "run", (
        Param("down_seconds", "decimal", "3", "how long it stays down (wall seconds)"),
    ), "broker_restart:from=2019-03-05,down_seconds=5",
        "every node: sends fail and are retried from the outboxes (BROKER_UNAVAILABLE)"),
)}

FAMILIES = (INTERFACE, PARAMETER, IDENTITY, UNAVAILABLE, TRANSPORT)


@dataclass(frozen=True)
class Fault:
    id: str
    kind: str
    params: Mapping[str, object]
    start: date | None = None      # ``from``
    until: date | None = None
    rate: Decimal = Decimal(1)
    seed: int = 0

    @property
    def family(self) -> str:
        return KINDS[self.kind].family

    def get(self, name: str):
        return self.params.get(name)

    @property
    def target(self) -> str:
        """The node, link or run it strikes, for people."""
        spec = KINDS[self.kind]
        if spec.target == "link":
            return str(self.params["link"])
        if spec.target == "run":
            return "the broker"
        return str(self.params["node"])

    def active_on(self, day: date | None) -> bool:
        if day is None:
            return self.start is None
        return ((self.start is None or day >= self.start)
                and (self.until is None or day < self.until))

    def draws(self, *key) -> bool:
        """Does it strike the claim or message ``key`` names? Same answer in every run."""
        if self.rate >= 1:
            return True
        if self.rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}:{self.id}:{':'.join(map(str, key))}".encode())
        return Decimal(int.from_bytes(digest.digest()[:8], "big")) / Decimal(2 ** 64) < self.rate

    def on_link(self, sender: str, receiver: str) -> bool:
        src, _, dst = str(self.params.get("link", "*->*")).partition("->")
        return src in ("*", sender) and dst in ("*", receiver)

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if v is not None}
        window = ""
        if self.start or self.until:
            window = f" {self.start or '…'}..{self.until or '…'}"
        rate = "" if self.rate == 1 else f" rate {self.rate}"
        return (f"{self.id}: {self.kind} on {self.target}{window}{rate} "
                f"({', '.join(f'{k}={v}' for k, v in shown.items())})")


def _fraction(fault: Fault, *key) -> float:
    """A number in [0, 1) drawn from the fault's seed and ``key``: the same in every run."""
    digest = hashlib.sha256(f"{fault.seed}:{fault.id}:{':'.join(map(str, key))}:u".encode())
    return int.from_bytes(digest.digest()[:8], "big") / 2 ** 64


def jitter_ms(fault: Fault, *key) -> int:
    """The fault's ``jitter_ms`` scaled by a reproducible draw for ``key``."""
    return int(_fraction(fault, *key) * int(fault.get("jitter_ms") or 0))


def retry_waits_ms(fault: Fault, *key) -> list[int]:
    """An outage fault's retry schedule for one request ``key``, in wall milliseconds: how
    long the sender waits for an answer after each of its ``attempts`` requests before
    sending it again (after the last one: before its fallback). Tenacity's exponential
    wait from ``initial_ms``, doubled each time and capped at ``max_ms``, plus a jitter up
    to ``jitter_ms`` drawn from the request's identity, so a run is reproducible."""
    exponential = wait_exponential(multiplier=int(fault.get("initial_ms")),
                                   max=int(fault.get("max_ms")))
    waits = []
    for attempt in range(1, int(fault.get("attempts")) + 1):
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        waits.append(int(exponential(state)) + jitter_ms(fault, *key, attempt))
    return waits


def retry_budget_ms(fault: Fault) -> int:
    """The longest a sender spends on one request before its fallback (every jitter at its
    largest): what ``retry_waits_ms`` adds up to at most."""
    exponential = wait_exponential(multiplier=int(fault.get("initial_ms")),
                                   max=int(fault.get("max_ms")))
    total = 0
    for attempt in range(1, int(fault.get("attempts")) + 1):
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        total += int(exponential(state)) + int(fault.get("jitter_ms") or 0)
    return total


# -- declaring faults ------------------------------------------------------------------

def _fail(where: str, what: str) -> ClearsimError:
    return ClearsimError(ErrorCode.SCENARIO_INVALID, f"{where}: {what}", where)


def _value(param: Param, raw, where: str):
    if param.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false", "yes", "no", "1", "0"):
            return raw.lower() in ("true", "yes", "1")
        raise _fail(where, f"must be true or false, not {raw!r}")
    if param.kind == "int":
        if isinstance(raw, bool):
            raise _fail(where, f"must be an integer, not {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise _fail(where, f"must be an integer, not {raw!r}") from None
    if param.kind == "decimal":
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise _fail(where, f"must be a decimal such as \"0.50\", not {raw!r}") from None
        if not value.is_finite():
            raise _fail(where, f"must be a finite decimal, not {raw!r}")
        return value
    if param.kind == "date":
        if isinstance(raw, date):
            return raw
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise _fail(where, f"{raw!r} is not a date (YYYY-MM-DD)") from None
    if param.kind == "choice":
        if raw not in param.choices:
            raise _fail(where, f"{raw!r} is not one of {', '.join(param.choices)}")
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(where, "must be a non-empty string")
    return raw


def parse_fault(raw: Mapping, where: str, *, index: int, seed: int,
                nodes: Iterable[str] | None = None) -> Fault:
    """One fault from a ``[[fault]]`` table (or a parsed ``--fault`` argument). ``nodes``:
    the node ids of the run, to refuse a target that does not exist."""
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a table")
    kind_name = raw.get("kind")
    if kind_name not in KINDS:
        raise _fail(f"{where}.kind", f"{kind_name!r} is not a fault kind (see `clearsim "
                                     f"faults`: {', '.join(KINDS)})")
    spec = KINDS[kind_name]
    known = {p.name: p for p in (*_COMMON, *spec.params)}
    for key in raw:
        if key != "kind" and key not in known:
            raise _fail(f"{where}.{key}", f"unknown key for a {kind_name} fault (allowed: "
                                          f"{', '.join(sorted(known))})")
    values = {}
    for name, param in known.items():
        if name in raw:
            values[name] = _value(param, raw[name], f"{where}.{name}")
        elif param.required:
            raise _fail(f"{where}.{name}", f"is required for a {kind_name} fault")
        else:
            values[name] = param.default
    rate = values.pop("rate")
    rate = Decimal(str(rate))
    if not Decimal(0) <= rate <= Decimal(1):
        raise _fail(f"{where}.rate", f"must be between 0 and 1, not {rate}")
    start, until = values.pop("from"), values.pop("until")
    if start and until and until <= start:
        raise _fail(f"{where}.until", f"{until} is not after from = {start}")
    fault_id = values.pop("id") or f"{kind_name}-{index + 1}"
    fault_seed = values.pop("seed")
    fault = Fault(fault_id, kind_name, values, start, until, rate,
                  seed if fault_seed is None else fault_seed)
    if nodes is not None:
        _check_targets(fault, set(nodes), where)
    return fault


def _check_targets(fault: Fault, nodes: set[str], where: str) -> None:
    spec = KINDS[fault.kind]
    if spec.target == "link":
        src, arrow, dst = str(fault.params["link"]).partition("->")
        if not arrow:
            raise _fail(f"{where}.link", f"{fault.params['link']!r} is not FROM->TO")
        for end in (src, dst):
            if end != "*" and end not in nodes:
                raise _fail(f"{where}.link", f"no node {end!r} in this run (nodes: "
                                             f"{', '.join(sorted(nodes))})")
    elif spec.target == "node":
        node = fault.params["node"]
        if node not in nodes:
            raise _fail(f"{where}.node", f"no node {node!r} in this run (nodes: "
                                         f"{', '.join(sorted(nodes))})")
        wanted = {"policy": "region-", "mapping": "region-", "partition": "region-",
                  "identity": "hospitals-"}.get(fault.kind)
        if wanted and not node.startswith(wanted):
            raise _fail(f"{where}.node", f"a {fault.kind} fault strikes a {wanted}CODE node, "
                                         f"not {node!r}")


def parse_fault_arg(text: str) -> dict:
    """``KIND:key=value,key=value`` (the ``--fault`` syntax) as a ``[[fault]]`` table."""
    kind, _, rest = text.partition(":")
    table: dict = {"kind": kind.strip()}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ClearsimError(ErrorCode.SCENARIO_INVALID,
                                f"--fault {text!r}: {pair!r} is not key=value", "--fault")
        table[key.strip()] = value.strip()
    return table


# -- a run's faults ----------------------------------------------------------------------

@dataclass
class Event:
    """Something the testbed injected or saw: one row of the fault report's raw log."""
    fault: str
    what: str                      # injected | detected | resent | held | released | ...
    claim_id: str | None = None
    node: str | None = None
    code: str | None = None
    day: date | None = None        # simulated
    wall: float = field(default_factory=time.time)
    detail: str = ""


class FaultPlan:
    """A run's faults, the simulated day it is on, and the log of what happened."""

    def __init__(self, faults: Iterable[Fault] = (), *, repair: bool = True):
        self.faults = list(faults)
        self.repair = repair
        self.today: date | None = None    # the simulated day the run is on
        self.closed = False                # every window has ended (the claim days are over)
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.faults)

    def of(self, *kinds: str) -> list[Fault]:
        return [f for f in self.faults if f.kind in kinds]

    def active(self, fault: Fault, day: date | None = None) -> bool:
        """Is ``fault`` active on ``day`` (default: the day the run is on)?"""
        return not self.closed and fault.active_on(self.today if day is None else day)

    def close(self) -> None:
        """End every window: the run's business cycles (reconciliation, clearing) run
        with every node up and every link sound."""
        self.closed = True

    def record(self, fault: Fault | str, what: str, **kw) -> None:
        event = Event(fault if isinstance(fault, str) else fault.id, what, **kw)
        with self._lock:
            self._events.append(event)

    def events(self, fault: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self._events if fault is None or e.fault == fault]

    @staticmethod
    def points(plan: "FaultPlan | None", node_id: str) -> "Faults":
        """The fail points of one node (``NO_FAULTS`` when the run injects nothing)."""
        return Faults(plan, node_id) if plan else NO_FAULTS


class Faults:
    """What one node's code sees of the plan: named fail points.

    ``fire(kind, day, key, **match)`` answers the fault of ``kind`` that strikes here on the
    simulated ``day`` for the claim or message ``key`` (and whose parameters equal
    ``match``), recording the injection; or None. ``NO_FAULTS`` never fires."""

    def __init__(self, plan: FaultPlan | None, node_id: str):
        self.plan = plan
        self.node_id = node_id

    @property
    def repair(self) -> bool:
        return self.plan is None or self.plan.repair

    def fire(self, kind: str, day: date | None, key: str, claim_id: str | None = None,
             **match) -> Fault | None:
        if not self.plan:
            return None
        for fault in self.plan.of(kind):
            if fault.params.get("node") != self.node_id or not self.plan.active(fault, day):
                continue
            if any(fault.params.get(k) not in (None, v) for k, v in match.items()):
                continue
            if fault.draws(key):
                self.plan.record(fault, "injected", claim_id=claim_id or key,
                                 node=self.node_id, day=day)
                return fault
        return None

    def explain(self, kind: str, receiver: str, claim_id: str) -> Fault | None:
        """The fault that makes ``receiver`` refuse what this node sends of ``kind`` for
        ``claim_id``: a ``schema`` fault of this node on that message that drew the claim
        (one active today first: a window may have closed while the refusals came back),
        else corrupted bytes on the link today; None when no fault explains it."""
        if not self.plan:
            return None
        schema = [f for f in self.plan.of("schema")
                  if f.get("node") == self.node_id and f.get("message") == kind
                  and f.draws(claim_id, kind)]
        today = self.plan.today
        for fault in [f for f in schema if self.plan.active(f)] + [
                f for f in schema if self.plan.closed
                or (f.until is not None and today is not None and today >= f.until)]:
            return fault
        for fault in self.plan.of("corrupt"):
            if fault.on_link(self.node_id, receiver) and self.plan.active(fault):
                return fault
        return None

    def holding(self, kind: str) -> bool:
        """Must a message of ``kind`` this node holds back still wait: is a ``schema``
        fault of this node on ``kind`` active today? (A message held because a link kept
        corrupting it need not: its next sendings are new draws.)"""
        return bool(self.plan) and any(
            f.get("node") == self.node_id and f.get("message") == kind
            and self.plan.active(f) for f in self.plan.of("schema"))

    def repair_step(self, fault: Fault | str | None, what: str, claim_id: str | None,
                    code: str | None = None, detail: str = "") -> None:
        """Something this node did about a fault (resent, held, released, fallback), on the
        simulated day the run is on."""
        if self.plan:
            self.plan.record(fault or "", what, claim_id=claim_id, node=self.node_id,
                             code=code, day=self.plan.today, detail=detail)

    def log(self, what: str, claim_id: str | None, day: date | None, detail: str = "",
            code: str | None = None) -> None:
        """Something the fault report shows beside what was injected and noticed (a
        repair step: "reversed", "repaired", "resent", "held", "fallback"), by claim."""
        if self.plan:
            self.plan.record("", what, claim_id=claim_id, node=self.node_id, code=code,
                             day=day, detail=detail)

    def noticed(self, code: str, claim_id: str | None, day: date | None,
                detail: str = "") -> None:
        """This node noticed something wrong (a refusal, a recomputation that disagrees, a
        duplicate absorbed): the fault report attributes it, by claim, to what was injected
        into that claim. ``day`` None: the day the run is on."""
        if self.plan:
            self.plan.record("", "detected", claim_id=claim_id, node=self.node_id, code=code,
                             day=self.plan.today if day is None else day, detail=detail)

    def did(self, fault: Fault, what: str, claim_id: str | None, detail: str = "") -> None:
        """This node did something about ``fault`` (``resent``, ``fallback``, ...), on the
        day the run is on."""
        if self.plan:
            self.plan.record(fault, what, claim_id=claim_id, node=self.node_id,
                             day=self.plan.today, detail=detail)

    def retries(self) -> bool:
        """Does a sender here retry unanswered requests (the run declares an outage)?"""
        return bool(self.plan and self.plan.of("outage"))

    def retry_schedule(self, *path: str) -> Fault | None:
        """The outage whose retry keys (``attempts``, ``initial_ms``, ``max_ms``,
        ``jitter_ms``) and ``fallback`` a sender uses for a request travelling through the
        nodes ``path``: the first active today on one of them. None: the request is not
        retried (no such outage; a run without outages never retries)."""
        if not self.plan:
            return None
        return next((f for f in self.plan.of("outage")
                     if self.plan.active(f) and f.get("node") in path), None)


NO_FAULTS = Faults(None, "")
