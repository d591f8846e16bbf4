"""Run a scenario's claims through a hub, its regions and their hospitals, end to end.

Every node runs in its own thread with its own database and its own consumer group, on the
in-process bus or on a real Kafka broker; or, on a Kafka cluster, as its own ``clearsim
node`` process (``RunOptions.processes``: started by the run; ``RunOptions.drive_only``:
started by someone else), whose database the runner reads. The runner plays the outside world (``sim``):
persons file before they travel, patients arrive at hospitals. It asks each node's read model
(its ``queries`` module) only to know when to go on and, at the end, to report what each
party recorded.

Phases: (1) policies are published and distributed by the hub; (2) filings are registered
nationally; (3) claims arrive day by day on the simulated clock, one claim per person at a
time so each person's annual cap is used in claim order exactly as ``clearsim settle`` uses
it; (4) audits and appeals are decided; (5) every settlement day is reconciled, hospitals
with their platforms and then the three parties; (6) every month is cleared and the
hospitals paid back; (7) each party's record of each claim is collected, compared and
checked against the invariants.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError

from clearsim import bodies
from clearsim.bus import connect
from clearsim.bus.base import BusError
from clearsim.bus.topics import all_topics
from clearsim.codec import Codec
from clearsim.domain.calendar import SimClock, month_end, month_of, start_of
from clearsim.db import has_rejection
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.faults import FaultPlan, retry_budget_ms
from clearsim.handling import wall_clock
from clearsim.messages import HUB, SIM, Outgoing, hospitals_node, region_node
from clearsim.metrics import CountingSensor, FanOutSensor
from clearsim.node import Node, encode_outgoing
from clearsim.sim.claims import Claim
from hospital_node import node as hospital_wiring
from hospital_node import queries as hospital_queries
from hub import node as hub_wiring
from hub import queries as hub_queries
from region_node import node as region_wiring
from region_node import queries as region_queries
from testbed import interface_faults
from testbed.chaos import BrokerOutage, FaultyBus
from testbed.delivery import Sent, lost
from testbed.report import RunResult, collect
from testbed.scheduler import Scheduler
from testbed.topology import Topology, build_topology

log = logging.getLogger(__name__)


def retry_budget(fault) -> float:
    """Wall seconds a hospital spends retrying before its fallback, at most (an outage's
    tenacity schedule, ``clearsim.faults.retry_waits_ms``: a wait for an answer after each
    of the ``attempts`` requests, exponential from initial_ms, capped at max_ms, plus
    jitter)."""
    return retry_budget_ms(fault) / 1000


class Poll:
    """How often the runner asks the nodes' read models how far they are: every 10 ms, or
    less often when asking is costly (a national run has hundreds of nodes to ask), so
    that asking never takes more than about a fifth of the time."""

    def __init__(self, least: float = 0.01, most: float = 0.5):
        self.least, self.most = least, most
        self.cost = 0.0
        self.next = 0.0

    def wait(self) -> float:
        return max(self.least, min(self.most, self.next - time.monotonic()))

    def due(self) -> bool:
        return time.monotonic() >= self.next

    def timed(self, ask):
        started = time.monotonic()
        try:
            return ask()
        finally:
            self.cost = time.monotonic() - started
            self.next = time.monotonic() + min(self.most, max(self.least, 4 * self.cost))


class Pace:
    """Claims offered at ``rate`` per wall second, evenly, open loop: a claim is due at its
    own time whatever happened to the ones before it (a runner that fell behind catches
    up, rather than hiding the delay); None: as fast as they can go."""

    def __init__(self, rate: float | None, clock=time.monotonic):
        self.rate = rate
        self.clock = clock
        self.started: float | None = None
        self.count = 0

    def take(self) -> bool:
        """Whether the next claim is due now (and count it)."""
        if self.rate is None:
            return True
        now = self.clock()
        if self.started is None:
            self.started = now
        if now < self.started + self.count / self.rate:
            return False
        self.count += 1
        return True

    def wait(self) -> float:
        if self.rate is None or self.started is None:
            return 0.0
        return max(0.0, self.started + self.count / self.rate - self.clock())


@dataclass
class Progress:
    """Where a run is, for a progress display: read from another thread, written only by
    the runner (plain attributes; a reader may see one field a step ahead of another)."""
    phase: str = "starting nodes"
    claims: int = 0                     # claims of the run
    finished: int = 0                   # claims every party is done with
    day: date | None = None             # the simulated day
    started: float = field(default_factory=time.monotonic)


def serve_node_metrics(registry, nodes: dict, port: int):
    """Every node's families in one registry, served on ``port``: the sensor's counters
    carry a ``node`` label, and each node's collector reads its own database."""
    from clearsim.metrics import MergedCollector, serve_metrics
    from hospital_node import metrics as hospital_metrics
    from hub import metrics as hub_metrics
    from region_node import metrics as region_metrics

    def collector(node_id: str, node):
        kind = (hub_metrics if node_id == HUB else
                region_metrics if node_id.startswith("region-") else hospital_metrics)
        return kind.collector(node)
    registry.register(MergedCollector(collector(n, node) for n, node in nodes.items()))
    try:
        return serve_metrics(port, registry)
    except (OSError, OverflowError) as exc:
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"cannot serve metrics on port {port}: {exc}", "--metrics-port")


class RunTimeout(Exception):
    """The run did not reach the state it waited for (in time, or at all)."""


@dataclass
class RunOptions:
    workdir: Path
    kafka: str | None = None            # host:port[,host:port]; None = in-process bus
    postgres: str | None = None         # server URL; one database per node is created
    prefix: str | None = None           # topic prefix; unique per run by default
    partitions: int = 3
    timeout: float = 120.0
    answer_timeout: float = 30.0        # wall seconds before a silent region is asked again
    speedup: float | None = None        # simulated seconds per wall second; None = flat out
    rate: float | None = None           # claims offered per wall second; None = flat out
    in_flight: int = 2000               # claims in flight at most
    sensor: object | None = None        # an extra Sensor (e.g. Prometheus)
    faults: tuple = ()                  # Faults beyond the scenario's (``--fault``)
    repair: bool | None = None          # None: as the scenario says ([faults] repair)
    broker: object | None = None        # the KafkaBroker a broker_restart fault restarts
    processes: bool = False             # every node its own process, started by the run
    drive_only: bool = False            # the nodes are processes started by someone else
    node_args: tuple = ()               # scenario and claim options of a node process
    nodes_db: str | None = None         # where node processes keep their databases
    startup_timeout: float = 120.0      # wall seconds for node processes to be up
    metrics_port: int | None = None     # serve Prometheus metrics (node processes: port + i)
    crash: object | None = None         # a testbed.crash.CrashPlan for node processes
    database_server: object | None = None   # the PostgresServer a crash plan restarts
    run_id: str = field(default_factory=lambda: datetime.now(timezone.utc)
                        .strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6])


IDLE_POLL = 0.25      # wall seconds a node with nothing to do waits on its topic


class NodeThread(threading.Thread):
    """Drives one node's loop until stopped; a failing step is logged and retried. A paused
    thread (a ``pause`` or ``outage`` fault) takes nothing from the bus until resumed."""

    def __init__(self, node: Node):
        super().__init__(name=node.node_id, daemon=True)
        self.node = node
        self.stopping = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.errors = 0
        self._stepping = threading.Lock()    # held for the length of a step

    def pause(self) -> None:
        """Take nothing more from the bus: the step in hand ends at once (its wait for
        records is cut short) and whatever reaches the topic from now on waits."""
        self.running.clear()
        wake = getattr(self.node._consumer, "wake", None)
        if wake is not None:
            wake.set()
        with self._stepping:
            pass

    def resume(self) -> None:
        self.running.set()

    def run(self) -> None:
        backoff = 0.05
        while not self.stopping.is_set():
            try:
                with self._stepping:
                    if not self.running.is_set():
                        paused = True
                    else:
                        paused = False
                        # The bus wakes the node when a record arrives; the node's own
                        # timers (retries, held messages) cut the wait short when due.
                        self.node.step(timeout=IDLE_POLL)
                if paused:
                    self.stopping.wait(0.02)
                    continue
                backoff = 0.05
            except BusError as exc:   # the broker or a link is down: the outbox waits
                self.errors += 1
                log.warning("%s: %s; retrying in %.2fs", self.node.node_id, exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                self.errors += 1
                log.exception("%s: step failed; retrying in %.2fs", self.node.node_id, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


class Simulation:
    def __init__(self, scenario, claims: list, options: RunOptions):
        self.scenario = scenario
        self.options = options
        self.valid: list[Claim] = [c for c in claims if isinstance(c, Claim)
                                   and c.hospital in scenario.hospitals]
        self.claims = claims
        self.topology: Topology = build_topology(scenario, self.valid)
        self.prefix = options.prefix or f"clearsim.{options.run_id}"
        self.counts = CountingSensor()
        self.nodes: dict[str, Node] = {}
        self.threads: list[NodeThread] = []
        self.bus = None
        self.codec = Codec()
        self._producer = None
        extra = tuple(options.faults)
        self.plan = FaultPlan(scenario.faults + extra,
                              repair=scenario.repair if options.repair is None
                              else options.repair)
        self.carried: dict[str, Claim] = {}     # claims a fault stalled, carried over days
        self.sent: list[Sent] = []              # what the runner itself sent, in order
        self.submitted: dict[str, float] = {}   # claim id -> when it was submitted (wall)
        self.outage: BrokerOutage | None = None   # an in-process broker that can go down
        self.restarts: list[threading.Thread] = []
        self.scheduler: Scheduler | None = None
        self.metrics = None                      # the run's metrics server, if it serves one
        self.crasher = None                      # testbed.crash.Crasher, with a crash plan
        self._unflushed: list = []               # the runner's sends not yet acknowledged
        self._resend = False
        self._pace = Pace(options.rate)
        self.first_submitted: float | None = None   # monotonic: the first claim submitted
        self.claims_done: float | None = None       # monotonic: the last claim finished
        self.progress = Progress(claims=len(self.valid))
        interface_faults.validate(self.plan, self.codec)

    # -- lifecycle ----------------------------------------------------------------

    def run(self) -> RunResult:
        started = time.perf_counter()
        self.start()
        try:
            self.await_policies()
            self.register_filings()
            self.submit_claims()
            self.await_audits()
            self.reconcile_days()
            self.clear_months()
            self.crashes_over()
            self.quiesce()
        finally:
            if sys.exc_info()[0] is None:    # an interrupted run keeps the phase it was in
                self.progress.phase = "stopping nodes"
            self.stop()
        self.progress.phase = "collecting results"
        if self.remote:
            self.count_remote()
        result = collect(self, wall_seconds=time.perf_counter() - started)
        if self.crasher is not None:
            result.summary["crashes"] = self.crasher.log.as_dict()
        return result

    def count_remote(self) -> None:
        """Node processes count for themselves (their metrics); the run's report counts
        what their databases hold: messages handled or refused, and messages written to
        be sent."""
        from clearsim.db import handled_messages, sent_messages
        for node_id in self.nodes:
            self.counts.counts["messages_in"] += len(self.query(node_id, handled_messages))
            self.counts.counts["messages_out"] += sum(
                1 for row in self.query(node_id, sent_messages) if row.sent_at is not None)

    @property
    def remote(self) -> bool:
        """The nodes are processes of their own (``processes`` or ``drive_only``)."""
        return self.options.processes or self.options.drive_only

    def start(self) -> None:
        opts = self.options
        opts.workdir.mkdir(parents=True, exist_ok=True)
        if self.remote:
            return self.start_remote()
        self.bus = connect(opts.kafka, default_partitions=opts.partitions)
        if self.plan.of("broker_restart") and not self.real_broker():
            self.bus = self.outage = BrokerOutage(self.bus)
        self.bus.ensure_topics(all_topics(self.prefix, self.topology.regions.keys()),
                               opts.partitions)
        registry = None
        extra = [opts.sensor] if opts.sensor else []
        if opts.metrics_port is not None:
            from prometheus_client import CollectorRegistry

            from clearsim.metrics import PrometheusSensor
            registry = CollectorRegistry()
            extra.append(PrometheusSensor(registry))
        sensor = FanOutSensor(self.counts, *extra) if extra else self.counts

        def common(node_id: str) -> dict:
            return {"bus": self.bus_for(node_id), "codec": self.codec, "prefix": self.prefix,
                    "sensor": sensor, "faults": self.plan, "clock": self.clock_for(node_id)}
        self.nodes[hub_wiring.HUB] = hub_wiring.build(
            self.topology.hub, db_url=self.db_url("hub"), **common(HUB))
        for code, config in self.topology.regions.items():
            node_id = region_node(code)
            self.nodes[node_id] = region_wiring.build(config, db_url=self.db_url(node_id),
                                                      **common(node_id))
        for code, config in self.topology.hospitals.items():
            node_id = hospitals_node(code)
            self.nodes[node_id] = hospital_wiring.build(config, db_url=self.db_url(node_id),
                                                        **common(node_id))
        for node in self.nodes.values():
            node.start()
        if registry is not None:
            self.metrics = serve_node_metrics(registry, self.nodes, opts.metrics_port)
        if self.scheduled():
            self.scheduler = Scheduler(list(self.nodes.values())).start()
            self.threads = self.scheduler.handles
        else:
            self.threads = [NodeThread(node) for node in self.nodes.values()]
            for thread in self.threads:
                thread.start()
        self._producer = self.bus.producer()

    def start_remote(self) -> None:
        """Node processes: started here (``processes``) or already running
        (``drive_only``); the runner opens each node's database to read it, and the bus
        to send what the outside world sends."""
        from testbed import processes
        opts = self.options
        if not opts.kafka:
            raise ClearsimError(ErrorCode.INVALID_INPUT, "node processes need a Kafka "
                                "cluster: --kafka HOST:PORT (or local)", "--kafka")
        if self.plan:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                "faults are injected in single-process runs only; a run of "
                                "node processes takes none yet", "faults")
        self.bus = connect(opts.kafka, default_partitions=opts.partitions)
        self.bus.ensure_topics(all_topics(self.prefix, self.topology.regions.keys()),
                               opts.partitions)
        db = self.nodes_db()
        for spec in processes.specs(self.topology):
            self.nodes[spec.node_id] = processes.RemoteNode(spec.node_id,
                                                            self.db_url(spec.node_id))
        if opts.processes:
            for spec in processes.specs(self.topology):
                port = opts.metrics_port
                self.threads.append(processes.NodeProcess(
                    spec, list(opts.node_args), kafka=opts.kafka, db=db, prefix=self.prefix,
                    partitions=opts.partitions, logdir=opts.workdir.parent / "logs",
                    metrics_port=None if port is None else port and port + len(self.threads)))
        processes.wait_ready(self.nodes, self.threads, opts.startup_timeout)
        self._producer = self.bus.producer()
        if opts.crash is not None:
            if not opts.processes:
                raise ClearsimError(ErrorCode.INVALID_INPUT, "a crash plan kills node "
                                    "processes the run started itself (--processes)", "crash")
            from testbed.crash import Crasher
            self.crasher = Crasher(opts.crash, self.threads, broker=self.real_broker(),
                                   database=opts.database_server)
            self.crasher.start()

    def crashes_over(self) -> None:
        """The crash plan has been carried out to its end (the run waits for it: what a
        crash breaks is judged once nothing is crashing any more)."""
        if self.crasher is None:
            return
        self.crasher.join()
        if self.crasher.error is not None:
            raise RuntimeError(f"the crash harness failed: {self.crasher.error}")

    def nodes_db(self) -> str:
        """Where the nodes keep their databases: the PostgreSQL server, or the directory
        of their SQLite files."""
        return (self.options.nodes_db or self.options.postgres
                or str(self.options.workdir.resolve()))

    def stop(self) -> None:
        """Stop everything the run started, each part even when another fails to stop
        (a node process is never left behind); the first failure is raised at the end."""
        failures: list[BaseException] = []

        def attempt(action, *args) -> None:
            try:
                action(*args)
            except Exception as exc:   # noqa: BLE001 - collected, raised after the rest
                log.exception("stopping the run: %s failed", getattr(action, "__qualname__",
                                                                    action))
                failures.append(exc)
        if self.crasher is not None:
            attempt(self.crasher.stop)
        for restart in self.restarts:
            attempt(restart.join)
        for thread in self.threads:     # all told first: each ends its wait on its own
            thread.stopping.set()
            if hasattr(thread, "process"):
                attempt(thread.process.terminate)
        for thread in self.threads:
            attempt(thread.stop)
        if self.scheduler is not None:
            attempt(self.scheduler.stop)
        for node in self.nodes.values():
            attempt(node.stop)
        for part in (self._producer, self.bus, self.metrics):
            if part is not None:
                attempt(part.close)
        if failures:
            raise failures[0]

    def scheduled(self) -> bool:
        """Whether the nodes share a few threads (testbed.scheduler): on the in-process bus
        with no faults. A run on Kafka keeps a thread per node (each consumer polls its
        broker), and so does a run with faults (a paused node is a paused thread)."""
        return self.options.kafka is None and not self.plan

    def bus_for(self, node_id: str):
        """The run's bus, seen through the faults of what ``node_id`` sends."""
        if not self.plan:
            return self.bus
        return FaultyBus(self.bus, self.plan, node_id, self.codec, self.prefix)

    def clock_for(self, node_id: str):
        """The node's wall clock, skewed by a ``skew`` fault on it."""
        skews = [f for f in self.plan.of("skew") if f.get("node") == node_id]
        if not skews:
            return wall_clock
        offset = timedelta(seconds=sum(int(f.get("seconds")) for f in skews))
        for fault in skews:
            self.plan.record(fault, "injected", node=node_id,
                             detail=f"clock {fault.get('seconds')} s off")
        return lambda: wall_clock() + offset

    def db_url(self, node_id: str) -> str:
        from testbed.processes import node_db_url
        return node_db_url(self.nodes_db(), self.prefix, node_id,
                           self.sqlite_cache_kib(node_id))

    CACHE_BUDGET_KIB = 256 * 1024     # the page caches of all nodes but the hub, together

    def sqlite_cache_kib(self, node_id: str) -> int | None:
        """The page cache of a node's SQLite connection: SQLite's default (about 2 MiB) while
        the nodes fit the budget, less each when they do not (781 nodes of a national run
        would otherwise hold up to 1.5 GiB of cached pages); the hub, which sees every
        claim, keeps the default."""
        others = len(self.topology.regions) + len(self.topology.hospitals)
        if node_id == HUB or others * 2000 <= self.CACHE_BUDGET_KIB:
            return None
        return max(256, self.CACHE_BUDGET_KIB // others)

    # -- the outside world --------------------------------------------------------

    def send(self, kind: str, to: str, correlation_id: str, body: dict, sim_time) -> None:
        """Send one message of the outside world; ``flush_with_retry`` makes sure it
        arrives (a send the broker refuses is sent again there)."""
        env = encode_outgoing(self.codec, SIM, Outgoing(kind, to, correlation_id, body),
                              self.prefix, sim_time=sim_time)
        self._unflushed.append(env)
        try:
            self._producer.send(env.topic, env.key, env.value, env.headers)
        except BusError:
            self._resend = True     # the broker is away: the flush sends it again
        self.sent.append(Sent(SIM, to, env.msgid, kind, correlation_id, len(self.sent)))

    def quiesce(self, timeout: float = 15.0) -> None:
        """Wait until every message sent has been handled or refused by its node (the
        delivery check then judges what is left), as Jepsen's checkers wait for a final
        read before judging."""
        deadline = time.monotonic() + timeout
        poll = Poll(least=0.05)
        while time.monotonic() < deadline:
            if poll.timed(self.quiet):
                return
            time.sleep(poll.wait())

    def quiet(self) -> bool:
        """Nothing left to deliver: no node has an unsent outbox row and every record on
        the bus has been taken and committed by the group that reads it (an in-process bus
        without faults says so at once); otherwise, every message sent has been handled or
        refused (a message a node keeps aside, awaiting an earlier one, is not)."""
        if any(node.db.pending_outbox(1) for node in self.nodes.values()):
            return False
        lag = getattr(self.bus, "lag", None)
        if lag is not None and not self.plan:
            return lag() == 0
        return not lost(self)

    DATABASE_PATIENCE = 60.0    # wall seconds a node process's database may be away

    def query(self, node_id: str, query, *args):
        """Ask a node's read model: ``query(conn, *args)`` on that node's database. The
        database of a node process may be away for a while (its server restarting): the
        question is asked again until it answers."""
        deadline = time.monotonic() + self.DATABASE_PATIENCE
        while True:
            try:
                with self.nodes[node_id].db.engine.connect() as conn:
                    return query(conn, *args)
            except DBAPIError as exc:
                away = exc.connection_invalidated or isinstance(exc, OperationalError)
                if not (self.remote and away) or time.monotonic() > deadline:
                    raise
                log.warning("%s: database away (%s); asking again", node_id, exc.orig)
                time.sleep(0.5)

    def wait_until(self, what: str, done, timeout: float | None = None) -> None:
        timeout = self.options.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        poll = Poll()
        while not poll.timed(done):
            if time.monotonic() > deadline:
                raise RunTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
            for thread in self.threads:
                if not thread.is_alive():
                    last = getattr(thread, "last_lines", lambda: "")()
                    raise RuntimeError(f"node {thread.name} stopped"
                                       + (f":\n{last}" if last else ""))
            time.sleep(poll.wait())

    def await_policies(self) -> None:
        self.progress.phase = "distributing policies"
        publishing = sum(1 for r in self.scenario.regions.values() if r.policy is not None)

        def distributed() -> bool:
            return all(self.query(region_node(code), region_queries.policies_held)
                       >= publishing for code in self.topology.regions)
        self.wait_until("policies to reach every region", distributed)

    def filings(self) -> list[tuple[str, Claim]]:
        """One filing per cross-region claim that declares one, valid on its date."""
        out = []
        for claim in self.valid:
            treating = self.scenario.hospitals[claim.hospital].region
            insuring = claim.person.insuring_region
            if (claim.person.filing is not None and insuring != treating
                    and insuring in self.topology.regions):
                out.append((f"F-{claim.claim_id}", claim))
        return out

    def register_filings(self) -> None:
        self.progress.phase = "registering filings"
        filings = self.filings()
        for filing_id, claim in filings:
            person = claim.person
            self.send("RegisterFiling", region_node(person.insuring_region), filing_id, {
                "filing_id": filing_id, "person_id": person.id,
                "insurance_code": person.insurance.insutype,
                "insuring_region": person.insuring_region,
                "treating_region": self.scenario.hospitals[claim.hospital].region,
                "filing_type": person.filing.value, "valid_from": claim.date,
                "valid_until": claim.date}, start_of(claim.date))
        self.flush_with_retry()
        wanted: dict[str, set[str]] = {}
        for filing_id, claim in filings:
            for region in (claim.person.insuring_region,
                           self.scenario.hospitals[claim.hospital].region):
                wanted.setdefault(region, set()).add(filing_id)

        def registered() -> bool:
            return all(ids <= self.query(region_node(region), region_queries.registered_filing_ids)
                       for region, ids in wanted.items())
        self.wait_until("filings to be registered nationally", registered)

    def submit_claims(self) -> None:
        """Day by day on the simulated clock (paced when a speed-up is set): each day's
        patients arrive; a person's claims go one at a time (the annual cap is a ledger),
        everyone else's go at once, up to ``in_flight`` claims in flight, at ``rate`` claims
        per wall second when one is set. Without faults a day's claims need not finish
        before the next day's arrive. A claim a fault stalls (a node down, a link cut, a
        message held) is carried over to the next days, its person's later claims queued
        behind it; once the claim days are over every fault window ends and the carried
        claims finish."""
        by_day: dict = {}
        for claim in self.valid:
            by_day.setdefault(claim.date, []).append(claim)
        if not by_day:
            return
        first, last = min(by_day), max(by_day)
        clock = SimClock(first, (last - first).days + 1, speedup=self.options.speedup,
                         sleep=time.sleep, monotonic=time.monotonic)
        queues: dict[str, deque] = {}
        inflight: dict[str, Claim] = {}
        self._pace = Pace(self.options.rate)
        self.progress.phase = "settling claims"
        for day in clock.run():
            self.progress.day = day
            self.advance(day)
            for claim in by_day.get(day, []):
                queues.setdefault(claim.person.id, deque()).append(claim)
            self.drain(queues, inflight, wait=bool(self.plan))
        self.advance(None)
        self.drain(queues, inflight)
        self.claims_done = time.monotonic()
        self.carried.clear()

    def drain(self, queues: dict[str, deque], inflight: dict[str, Claim],
              wait: bool = True) -> None:
        """Submit what may go (the person has no claim in flight, there is room, the rate
        allows) and, with ``wait``, go on until every queued claim has finished, or, while
        a fault that can stall claims is active, until nothing has moved for a while (what
        is left is carried over). ``--timeout`` is the longest the run waits without any
        claim finishing."""
        patience = self.patience()
        moved = time.monotonic()
        poll = Poll()
        while queues or inflight:
            if self.feed(queues, inflight):
                moved = time.monotonic()
            if not wait:
                return
            if poll.due():
                done = poll.timed(lambda: self.finished(inflight))
                self.progress.finished += len(done)
                for claim_id in done:
                    del inflight[claim_id]
                    self.carried.pop(claim_id, None)
                if done:
                    moved = time.monotonic()
                    continue
            if not inflight and not queues:
                break
            now = time.monotonic()
            if patience is not None and inflight and now - moved > patience:
                for claim_id in sorted(set(inflight) - set(self.carried)):
                    for fault in self.stalling_faults():
                        self.plan.record(fault, "injected", claim_id=claim_id,
                                         day=self.plan.today,
                                         wall=self.submitted.get(claim_id, time.time()),
                                         detail="held up while the fault lasted")
                self.carried.update(inflight)
                return
            if now - moved > self.options.timeout:
                raise RunTimeout(f"no claim finished for {self.options.timeout:.0f}s with "
                                 f"{len(inflight)} claims in flight: "
                                 f"{', '.join(sorted(inflight)[:10])}")
            pause = poll.wait()
            if queues and self.options.rate:
                pause = min(pause, max(self._pace.wait(), 0.001))
            time.sleep(pause)

    def feed(self, queues: dict[str, deque], inflight: dict[str, Claim]) -> int:
        """Submit the next claim of every person with none in flight, while there is room
        and the rate allows; how many were submitted."""
        busy = {c.person.id for c in inflight.values()}
        room = self.options.in_flight - len(inflight)
        sent = 0
        for person in [p for p in queues if p not in busy]:
            if sent >= room or not self._pace.take():
                break
            claim = queues[person].popleft()
            if not queues[person]:
                del queues[person]
            self.send_with_retry(lambda c=claim: self.submit(c))
            self.submitted[claim.claim_id] = time.time()
            self.first_submitted = self.first_submitted or time.monotonic()
            inflight[claim.claim_id] = claim
            sent += 1
        if sent:
            self.flush_with_retry()
        return sent

    # -- faults the runner drives ---------------------------------------------------

    STALLING = ("outage", "pause", "partition", "drop", "broker_restart", "schema")

    def stalling_faults(self) -> list:
        return [f for f in self.plan.of(*self.STALLING) if self.plan.active(f)
                and (f.kind != "schema" or f.get("fallback") == "hold")]

    def patience(self) -> float | None:
        """Wall seconds without progress after which stalled claims are carried over,
        while a fault that can stall them is active (None: wait for every claim)."""
        active = self.stalling_faults()
        if not active:
            return None
        budget = max((retry_budget(f) for f in active if f.kind == "outage"), default=0.0)
        return 1.0 + budget

    def advance(self, day) -> None:
        """The simulated clock moves to ``day`` (None: the claim days are over and every
        fault window ends): pause or resume nodes, release what was held."""
        if day is None:
            self.plan.close()
        else:
            self.plan.today = day
        for fault in self.plan.of("pause", "outage"):
            thread = next((t for t in self.threads if t.name == fault.get("node")), None)
            if thread is None:
                continue
            down = self.plan.active(fault)
            if down and thread.running.is_set():
                thread.pause()
                self.plan.record(fault, "down", node=thread.name, day=day)
            elif not down and not thread.running.is_set() and not any(
                    self.plan.active(f) for f in self.plan.of("pause", "outage")
                    if f.get("node") == thread.name):
                thread.resume()
                self.plan.record(fault, "up", node=thread.name, day=day)
        if not self.plan:
            return
        for node in self.nodes.values():
            node.release_held()
        if day is not None:
            self.restart_broker(day)

    def real_broker(self):
        """The Kafka broker this run can stop and start (``RunOptions.broker``), or None."""
        return self.options.broker if self.options.kafka else None

    def restart_broker(self, day) -> None:
        """A ``broker_restart`` fault strikes once, on the first day from its ``from``: the
        broker goes down for ``down_seconds`` (wall) and comes back, in the background
        while the run goes on. A real broker is stopped and started again on the same data
        and port; a bus the run cannot restart is made unavailable for as long."""
        for fault in self.plan.of("broker_restart"):
            if any(e.what == "injected" for e in self.plan.events(fault.id)):
                continue
            if fault.start is not None and day < fault.start:
                continue
            seconds = float(fault.get("down_seconds"))
            broker = self.real_broker()
            how = "stopped" if broker is not None else "unavailable (emulated)"
            self.plan.record(fault, "injected", node="broker", day=day,
                             detail=f"broker {how} for {seconds:g} s")

            def down_and_up(fault=fault, seconds=seconds, broker=broker) -> None:
                try:
                    if broker is not None:
                        broker.restart(seconds)
                    else:
                        self.outage.down_for(seconds)
                    self.plan.record(fault, "restarted", node="broker", day=self.plan.today,
                                     detail="the broker answers again")
                except Exception as exc:   # the run's waits will time out and say so
                    log.exception("restarting the broker failed")
                    self.plan.record(fault, "failed", node="broker", day=self.plan.today,
                                     detail=f"the broker did not come back: {exc}")
            thread = threading.Thread(target=down_and_up, name="broker-restart", daemon=True)
            self.restarts.append(thread)
            thread.start()

    def send_with_retry(self, send) -> None:
        """The runner's own sends, retried while the broker is away (broker_restart)."""
        self._retry(send)

    def flush_with_retry(self) -> None:
        """Flush the runner's sends; while the broker does not acknowledge them, send
        every unacknowledged one again, as it was (same msgid: a node that had it absorbs
        it), until it does."""
        def flush() -> None:
            if self._resend:
                for env in self._unflushed:
                    self._producer.send(env.topic, env.key, env.value, env.headers)
            try:
                self._producer.flush()
            except BusError:
                self._resend = True
                raise
            self._unflushed.clear()
            self._resend = False
        self._retry(flush)

    def _retry(self, action) -> None:
        deadline = time.monotonic() + self.options.timeout
        wait = 0.05
        noticed: set[str] = set()
        while True:
            try:
                return action()
            except BusError as exc:
                self._resend = True
                if time.monotonic() > deadline:
                    raise
                for claim in sorted({e.key.decode() for e in self._unflushed} - noticed):
                    self.plan.record("", "detected", claim_id=claim, node=SIM,
                                     code="BROKER_UNAVAILABLE", day=self.plan.today,
                                     detail=f"not acknowledged by the bus: {exc}")
                    noticed.add(claim)
                time.sleep(wait)
                wait = min(wait * 2, 1.0)

    def submit(self, claim: Claim) -> None:
        hospital = self.scenario.hospitals[claim.hospital]
        person = claim.person
        when = start_of(claim.date)
        self.send("SubmitClaim", hospitals_node(hospital.region), claim.claim_id, {
            "admission_no": claim.claim_id, "person_id": person.id,
            "insurance_code": person.insurance.insutype,
            "insuring_region": person.insuring_region, "hospital": claim.hospital,
            "admitted_at": when, "items": bodies.charge_lines(claim.items)}, when)

    def finished(self, inflight: dict[str, Claim]) -> list[str]:
        """Claims every party is done with: the hospital has its answer and, for a manual
        claim, the insuring region has paid or refused the reimbursement."""
        by_region: dict[str, list[str]] = {}
        for claim in inflight.values():
            by_region.setdefault(self.scenario.hospitals[claim.hospital].region, []).append(
                claim.claim_id)
        done = []
        for region, ids in by_region.items():
            states = self.query(hospitals_node(region), hospital_queries.claim_states, ids)
            for claim_id, state in states.items():
                if state in ("settled", "rejected", "failed"):
                    done.append(claim_id)
                elif state == "manual" and self.manual_closed(inflight[claim_id]):
                    done.append(claim_id)
        return done

    def await_audits(self) -> None:
        self.progress.phase = "audits and appeals"
        """Every refusal an insuring region decided has reached its hospital, and the
        hospital's appeal against it has been decided."""
        def decided() -> bool:
            refused = sum(self.query(region_node(code), region_queries.refusals_made)
                          for code in self.topology.regions)
            seen = [self.query(hospitals_node(code), hospital_queries.refusals_received)
                    for code in self.topology.hospitals]
            return (sum(s["refused"] for s in seen) == refused
                    and not any(s["appeals_pending"] for s in seen))
        self.wait_until("audit refusals and appeals to be decided", decided)

    def settled_days(self) -> list:
        return sorted(set().union(*(self.query(hospitals_node(code), hospital_queries.settled_days)
                                    for code in self.topology.hospitals)))

    def reconcile_days(self) -> None:
        """Each day's settlements are reconciled by the three parties, the configured
        number of working days after the day, in day order."""
        terms = self.scenario.reconciliation
        calendar = self.scenario.sim.calendar
        self.progress.phase = "reconciliation"
        for day in self.settled_days():
            self.progress.day = day
            when = calendar.add_working_days(day, terms.after_working_days)
            jitter = random.Random(f"{self.scenario.sim.seed}:{day}")
            self.reconcile_hospitals(day, start_of(day))

            def settled() -> bool:
                states = self.query(HUB, hub_queries.reconciliation_states, day)
                return len(states) == len(self.topology.regions) and all(
                    s in ("balanced", "repaired", "escalated") for s in states.values())
            # A region that has not answered within answer_timeout wall seconds is asked
            # again, later in simulated time, until the hub turns its silence into a case.
            for attempt in range(1, terms.max_attempts + 2):
                self.send("StartReconciliation", HUB, f"RC{day:%Y%m%d}",
                          {"statement_date": day, "attempt": attempt}, start_of(when))
                self.flush_with_retry()
                try:
                    self.wait_until(f"the reconciliation of {day}", settled,
                                    timeout=self.options.answer_timeout)
                    break
                except RunTimeout:
                    if attempt > terms.max_attempts:
                        raise
                    when = calendar.add_working_days(when, terms.retry_delay(attempt, jitter))

    def reconcile_hospitals(self, day, when) -> None:
        """At the end of the day, each hospital reconciles its settlements with its
        platform; where they differ, the platform's record is sent to it again."""
        for code in self.topology.hospitals:
            self.send("StartReconciliation", hospitals_node(code), f"HRC{day:%Y%m%d}",
                      {"statement_date": day, "attempt": 1}, when)
        self.flush_with_retry()

        def done() -> bool:
            for code in self.topology.hospitals:
                node = hospitals_node(code)
                busy = self.query(node, hospital_queries.hospitals_settled_on, day)
                final = self.query(node, hospital_queries.hospitals_reconciled, day)
                if not busy <= final:
                    return False
            return True
        self.wait_until(f"the hospitals' reconciliation of {day}", done)

    def clear_months(self) -> None:
        """Open the clearing window of every month with a settlement, in order, and wait
        until the hospitals have been paid back for it."""
        settled = [{**row, "node": hospitals_node(code)} for code in self.topology.hospitals
                   for row in self.query(hospitals_node(code), hospital_queries.settled_claims)]
        months = {month_of(row["admitted_at"].date()) for row in settled}
        months |= {month_of(row["refused_on"]) for row in settled if row["refused_on"]}
        months |= {month_of(row["appeal_decided_on"]) for row in settled
                   if row["appeal_upheld"]}
        self.progress.phase = "clearing"
        for month in sorted(months):
            self.send("OpenClearing", HUB, f"CLR{month}", {"month": month},
                      start_of(month_end(date(int(month[:4]), int(month[4:]), 1))))
            self.flush_with_retry()
            due: dict[str, set[str]] = {}      # hospitals node -> claims to be paid back
            for row in settled:
                if month_of(row["admitted_at"].date()) == month:
                    due.setdefault(row["node"], set()).add(row["claim_id"])
            waiting = set(self.topology.regions)

            def paid_back() -> bool:
                """Every region has passed its disbursement on, every hospital is paid
                (a node or region found done is not asked again)."""
                if self.query(HUB, hub_queries.clearing_state, month) == "failed":
                    raise RunTimeout(f"the clearing of {month} failed: a region's figures "
                                     "differ from the hub's (see the regions' clearings)")
                for code in sorted(waiting):
                    if self.query(region_node(code), region_queries.passed_on, month):
                        waiting.discard(code)
                for node_id in sorted(due):
                    due[node_id] -= self.query(node_id, hospital_queries.paid_claim_ids)
                    if not due[node_id]:
                        del due[node_id]
                return not waiting and not due
            self.wait_until(f"the clearing of {month} to pay the hospitals back", paid_back)

    def manual_closed(self, claim: Claim) -> bool:
        insuring = claim.person.insuring_region
        if insuring not in self.topology.regions:
            return True
        node_id = region_node(insuring)
        if self.query(node_id, region_queries.insured_claim_state, claim.claim_id) == "manual":
            return True
        return self.query(node_id, has_rejection, claim.claim_id)
