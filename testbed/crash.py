"""The crash harness: while a test bed of node processes runs, kill nodes where they stand
(SIGKILL) at random moments and start them again, and crash the Kafka broker and the
PostgreSQL server once each; the run must end as a fault-free run of the same seed ends.

Nothing here is told to the nodes: a killed node loses what it had not committed, and
finds again what it had (its database, its group's committed offsets, its outbox rows not
yet sent). The run's own checks judge the result: every claim finished and agreed, every
invariant, the delivery check (nothing lost, nothing doubled).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("clearsim.crash")


@dataclass(frozen=True)
class CrashPlan:
    kills: int = 20                               # node processes killed, in all
    seed: int = 0
    every: tuple[float, float] = (0.5, 2.0)       # wall seconds between two crashes
    down: tuple[float, float] = (0.0, 1.0)        # wall seconds a killed node stays down
    broker_restarts: int = 1                      # the broker crashed and started again
    database_restarts: int = 1                    # the PostgreSQL server, likewise
    server_down: float = 2.0                      # wall seconds a server stays down


@dataclass
class Crash:
    at: float            # wall seconds since the harness started
    what: str            # kill | broker | database
    target: str          # the node, or the server
    seconds: float       # how long it was down (for a server: to answer again)


@dataclass
class CrashLog:
    crashes: list[Crash] = field(default_factory=list)

    def count(self, what: str) -> int:
        return sum(1 for c in self.crashes if c.what == what)

    def kinds_killed(self) -> set[str]:
        return {c.target.split("-")[0] for c in self.crashes if c.what == "kill"}

    def as_dict(self) -> dict:
        return {"kills": self.count("kill"), "broker_restarts": self.count("broker"),
                "database_restarts": self.count("database"),
                "node_kinds_killed": sorted(self.kinds_killed()),
                "crashes": [c.__dict__ for c in self.crashes]}


class Crasher(threading.Thread):
    """Carries out a ``CrashPlan`` on running node processes (``testbed.processes``) and
    the servers they use (objects with ``restart(down_seconds)``: the project's own
    ``KafkaBroker`` and ``PostgresServer``). Every kind of node is killed before any kind
    twice; the rest are drawn at random. ``stop`` ends the plan where it is."""

    def __init__(self, plan: CrashPlan, nodes: list, broker=None, database=None):
        super().__init__(name="crasher", daemon=True)
        self.plan = plan
        self.nodes = nodes
        self.broker = broker
        self.database = database
        self.log = CrashLog()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._rng = random.Random(plan.seed)

    def schedule(self) -> list[str]:
        """What strikes, in order: kills and server restarts, the servers somewhere in the
        middle third of the plan."""
        events = ["kill"] * self.plan.kills
        for what, count, server in (("broker", self.plan.broker_restarts, self.broker),
                                    ("database", self.plan.database_restarts, self.database)):
            if server is None:
                continue
            for _ in range(count):
                third = len(events) // 3
                events.insert(self._rng.randint(third, max(third, 2 * third)), what)
        return events

    def victims(self) -> list:
        """The nodes to kill, in order: one of each kind first, then at random."""
        by_kind: dict[str, list] = {}
        for node in self.nodes:
            by_kind.setdefault(node.spec.kind, []).append(node)
        first = [self._rng.choice(nodes) for _, nodes in sorted(by_kind.items())]
        rest = [self._rng.choice(self.nodes) for _ in range(max(0, self.plan.kills - len(first)))]
        return (first + rest)[:self.plan.kills]

    def run(self) -> None:
        started = time.monotonic()
        victims = iter(self.victims())
        try:
            for what in self.schedule():
                if self._halt.wait(self._rng.uniform(*self.plan.every)):
                    return
                at = time.monotonic() - started
                if what == "kill":
                    node = next(victims)
                    down = self._rng.uniform(*self.plan.down)
                    log.info("crash: killing %s (down %.2f s)", node.name, down)
                    node.crash(down)
                    self.log.crashes.append(Crash(at, "kill", node.name, down))
                else:
                    server = self.broker if what == "broker" else self.database
                    log.info("crash: restarting the %s", what)
                    t = time.monotonic()
                    server.restart(self.plan.server_down)
                    self.log.crashes.append(Crash(at, what, what, time.monotonic() - t))
        except BaseException as exc:     # the run reports it: a harness that broke is a failure
            log.exception("crash harness failed")
            self.error = exc

    def stop(self) -> CrashLog:
        self._halt.set()
        self.join()
        return self.log
