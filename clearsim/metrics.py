"""Metrics: observer hooks on the node loop (faust's sensors), and what Prometheus scrapes.

Handlers never touch metrics. The node loop calls its sensor's hooks; ``NullSensor`` is the
default, ``CountingSensor`` keeps plain counts for reports, ``PrometheusSensor`` counts into
an injected ``CollectorRegistry`` (each run, node process or test owns its own). What a node
has recorded in its own database (latencies, cases, receivables, clearing) is read at scrape
time by a ``NodeCollector``, one per node package (``<package>.metrics.collector(node)``),
from the pieces here. ``serve_metrics`` serves a registry over HTTP.

Names follow Prometheus' conventions: the ``clearsim_`` prefix, base units, ``_total``
counters, histograms in seconds (``_simulated_seconds`` where the time is the simulation's
calendar: a business latency); money in yuan, computed from integer fen at the last step.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, Float, Integer, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from clearsim.db import outbox

log = logging.getLogger(__name__)


class Sensor:
    """Every hook a no-op: a sensor overrides those it cares about."""

    def on_node_start(self, node: str) -> None:
        """The node has joined its bus."""

    def on_fetched(self, node: str, count: int) -> None:
        """A poll brought ``count`` records (a batch now in hand)."""

    def on_batch_end(self, node: str, count: int, committed: bool) -> None:
        """The batch in hand is handled and its offsets committed (``committed``), or it
        failed and goes back to the bus to be taken again."""

    def on_message_in(self, node: str, kind: str) -> None: ...
    def on_message_out(self, node: str, kind: str) -> None: ...
    def on_handled(self, node: str, kind: str, seconds: float) -> None: ...
    def on_duplicate(self, node: str, kind: str) -> None: ...
    def on_rejected(self, node: str, code: str) -> None: ...

    def on_dead_lettered(self, node: str, code: str) -> None:
        """A refused message, refused with ``code``, was parked on the dead-letter topic."""

    def on_retry(self, node: str, reason: str, count: int = 1) -> None:
        """``count`` outbox rows are to be sent again, for ``reason`` (``RETRY_REASONS``)."""


# Why the relay sends an outbox row again.
RETRY_REASONS = (
    "refused",          # the receiver refused its bytes or interface: the same row again
    "redelivered",      # the message that caused it came again: its answers go again
    "released",         # held while a fault lasted, released
    "unacknowledged",   # the bus did not acknowledge it
)


class NullSensor(Sensor):
    pass


class CountingSensor(Sensor):
    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def on_message_in(self, node, kind):
        self.counts["messages_in"] += 1

    def on_message_out(self, node, kind):
        self.counts["messages_out"] += 1

    def on_duplicate(self, node, kind):
        self.counts["duplicates"] += 1

    def on_rejected(self, node, code):
        self.counts["rejected"] += 1
        self.counts[f"rejected.{code}"] += 1

    def on_dead_lettered(self, node, code):
        self.counts["dead_lettered"] += 1


# Wall seconds: handling one message takes well under a millisecond to a few seconds.
HANDLING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusSensor(Sensor):
    """The message-level families, counted as the node loop sees them. ``node``: count only
    that node's events (None: every node's, told apart by the ``node`` label)."""

    def __init__(self, registry, node: str | None = None) -> None:
        from prometheus_client import Counter as PCounter
        from prometheus_client import Gauge, Histogram

        self.node = node
        self.messages_in = PCounter(
            "clearsim_messages_received_total",
            "Messages received and decoded, by kind (policy table records included)",
            ["node", "kind"], registry=registry)
        self.messages_out = PCounter(
            "clearsim_messages_sent_total",
            "Messages the relay sent to the bus, by kind (a row sent again counts again)",
            ["node", "kind"], registry=registry)
        self.rejected = PCounter(
            "clearsim_messages_rejected_total", "Messages refused, by error code",
            ["node", "code"], registry=registry)
        self.dead_lettered = PCounter(
            "clearsim_dead_lettered_total",
            "Refused messages parked on the dead-letter topic, by error code",
            ["node", "code"], registry=registry)
        self.duplicates = PCounter(
            "clearsim_duplicates_absorbed_total",
            "Messages delivered again and recognised by their id: no second effect",
            ["node", "kind"], registry=registry)
        self.retries = PCounter(
            "clearsim_retries_total",
            "Outbox rows put back to be sent again, by reason: refused (the receiver "
            "refused its bytes), redelivered (its cause came again), released (held "
            "while a fault lasted), unacknowledged (by the bus)",
            ["node", "reason"], registry=registry)
        self.fetched = PCounter(
            "clearsim_records_fetched_total", "Records polled from the bus",
            ["node"], registry=registry)
        self.lag = Gauge(
            "clearsim_consumer_lag_records",
            "Records fetched from the bus whose batch is not yet handled and committed",
            ["node"], registry=registry)
        self.handle_seconds = Histogram(
            "clearsim_message_handling_seconds",
            "Wall seconds from decoding a message to the end of its handler, by kind",
            ["node", "kind"], buckets=HANDLING_BUCKETS, registry=registry)

    def _mine(self, node: str) -> bool:
        return self.node is None or node == self.node

    def on_node_start(self, node):
        if self._mine(node):      # families a dashboard looks for, at zero
            for reason in RETRY_REASONS:
                self.retries.labels(node, reason)
            self.fetched.labels(node)
            self.lag.labels(node).set(0)

    def on_fetched(self, node, count):
        if self._mine(node):
            self.fetched.labels(node).inc(count)
            self.lag.labels(node).set(count)

    def on_batch_end(self, node, count, committed):
        if self._mine(node):
            self.lag.labels(node).set(0)

    def on_message_in(self, node, kind):
        if self._mine(node):
            self.messages_in.labels(node, kind).inc()

    def on_message_out(self, node, kind):
        if self._mine(node):
            self.messages_out.labels(node, kind).inc()

    def on_handled(self, node, kind, seconds):
        if self._mine(node):
            self.handle_seconds.labels(node, kind).observe(seconds)

    def on_duplicate(self, node, kind):
        if self._mine(node):
            self.duplicates.labels(node, kind).inc()

    def on_rejected(self, node, code):
        if self._mine(node):
            self.rejected.labels(node, code).inc()

    def on_dead_lettered(self, node, code):
        if self._mine(node):
            self.dead_lettered.labels(node, code).inc()

    def on_retry(self, node, reason, count=1):
        if self._mine(node) and count:
            self.retries.labels(node, reason).inc(count)


class FanOutSensor(Sensor):
    """Several sensors at once (counts for the report, Prometheus for dashboards)."""

    def __init__(self, *sensors: Sensor) -> None:
        self.sensors = sensors

    def on_node_start(self, node):
        for s in self.sensors:
            s.on_node_start(node)

    def on_fetched(self, node, count):
        for s in self.sensors:
            s.on_fetched(node, count)

    def on_batch_end(self, node, count, committed):
        for s in self.sensors:
            s.on_batch_end(node, count, committed)

    def on_message_in(self, node, kind):
        for s in self.sensors:
            s.on_message_in(node, kind)

    def on_message_out(self, node, kind):
        for s in self.sensors:
            s.on_message_out(node, kind)

    def on_handled(self, node, kind, seconds):
        for s in self.sensors:
            s.on_handled(node, kind, seconds)

    def on_duplicate(self, node, kind):
        for s in self.sensors:
            s.on_duplicate(node, kind)

    def on_rejected(self, node, code):
        for s in self.sensors:
            s.on_rejected(node, code)

    def on_dead_lettered(self, node, code):
        for s in self.sensors:
            s.on_dead_lettered(node, code)

    def on_retry(self, node, reason, count=1):
        for s in self.sensors:
            s.on_retry(node, reason, count)


# -- serving ----------------------------------------------------------------------------

class MetricsServer:
    """prometheus-client's HTTP server in its daemon thread; ``port`` is the bound one."""

    def __init__(self, server, thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(port: int, registry, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve ``registry`` on ``addr:port`` (0: a free port, then ``server.port``)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)


# -- read at scrape time from a node's own database ---------------------------------------

# A business latency, in seconds of simulated time, bucketed by whole simulated days.
DAY = 86400
DAY_BUCKETS = tuple(days * DAY for days in (0, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 75,
                                            90, 120, 180, 365))
# Wall seconds from a claim's submission to its answer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)


def yuan(fen: int) -> float:
    """Money as the exposition carries it: yuan, from exact integer fen, at the last step."""
    return int(fen) / 100


class days_between(FunctionElement):
    """Whole days from the date ``start`` to the date ``end``: ``days_between(start, end)``."""
    type = Integer()
    name = "days_between"
    inherit_cache = True


@compiles(days_between)
def _days_between(element, compiler, **kw):       # PostgreSQL: date - date is whole days
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({end} - {start})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(julianday({end}) - julianday({start}) AS INTEGER)"


class seconds_between(FunctionElement):
    """Seconds from the timestamp ``start`` to the timestamp ``end`` (SQLite keeps them to
    the millisecond)."""
    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between(element, compiler, **kw):
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element, compiler, **kw):
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


class utc_day(FunctionElement):
    """The UTC calendar day of a timestamp (times are kept in UTC)."""
    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day(element, compiler, **kw):
    [moment] = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(timezone('UTC', {moment}) AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw):     # stored as the UTC wall time, a string
    [moment] = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"date({moment})"


def histogram_select(value, buckets: Sequence[float], *where, by: Sequence = ()):
    """One row per group of ``by``: the group's values, how many ``value``s there are, their
    sum, and how many are at most each bucket's bound (cumulative, as Prometheus counts).
    NULL values are left out."""
    return (select(*by, func.count(value), func.coalesce(func.sum(value), 0),
                   *(func.coalesce(func.sum(case((value <= bound, 1), else_=0)), 0)
                     for bound in buckets))
            .where(value.is_not(None), *where).group_by(*by))


@dataclass(frozen=True)
class Family:
    """A metric family read from a node's database at scrape time. ``read(conn)`` gives
    rows: for a gauge, the values of ``labels`` then the value; for a histogram, those of
    ``labels``, the count, the sum, then the cumulative count of each of ``buckets``
    (``histogram_select``). Every sample also carries the ``node`` label."""
    name: str
    doc: str
    type: str                     # "gauge" | "histogram"
    labels: tuple[str, ...]
    read: Callable[[Any], Iterable[Sequence]]
    buckets: tuple[float, ...] = ()

    def empty(self):
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        labels = ["node", *self.labels]
        if self.type == "histogram":
            return HistogramMetricFamily(self.name, self.doc, labels=labels)
        return GaugeMetricFamily(self.name, self.doc, labels=labels)

    def metric(self, node: str, rows: Iterable[Sequence]):
        from prometheus_client.utils import floatToGoString

        family = self.empty()
        width = len(self.labels)
        for row in rows:
            labels = [node, *(str(v) for v in row[:width])]
            if self.type == "histogram":
                count, total, *cumulative = row[width:]
                family.add_metric(labels, buckets=[
                    *((floatToGoString(bound), int(n))
                      for bound, n in zip(self.buckets, cumulative)),
                    ("+Inf", int(count))], sum_value=float(total))
            else:
                family.add_metric(labels, float(row[width]))
        return family


def gauge(name: str, doc: str, labels: tuple[str, ...], read) -> Family:
    return Family(name, doc, "gauge", labels, read)


def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...],
              read) -> Family:
    return Family(name, doc, "histogram", labels, read, tuple(buckets))


def _outbox_depth(conn) -> list[tuple[str, int]]:
    def count(where) -> int:
        return conn.execute(select(func.count()).select_from(outbox).where(where)).scalar()
    return [("unsent", count(outbox.c.sent_at.is_(None))),
            ("held", count(outbox.c.held_by.is_not(None)))]


# The families of every node: its outbox.
NODE_FAMILIES = (
    gauge("clearsim_outbox_messages",
          "Outbox rows waiting: unsent (committed, the relay sends them next) or held "
          "(kept back while a fault lasts)", ("state",), _outbox_depth),
)


class NodeCollector:
    """A prometheus-client collector of a node's families, read from its own database when
    scraped. A read that fails (the database away, a table not there yet) is logged and its
    family left out of that scrape: a scrape never breaks the node, nor the other
    families."""

    def __init__(self, node, families: Sequence[Family]) -> None:
        self.node = node
        self.families = (*NODE_FAMILIES, *families)

    def describe(self):
        """The families without reading anything (a registry checks names with it)."""
        return [family.empty() for family in self.families]

    def collect(self):
        for family in self.families:
            try:
                with self.node.db.engine.connect() as conn:
                    rows = list(family.read(conn))
            except Exception as exc:
                log.warning("%s: metric %s not read: %s: %s", self.node.node_id,
                            family.name, type(exc).__name__, exc)
                continue
            yield family.metric(self.node.node_id, rows)


class MergedCollector:
    """Several nodes' collectors as one (a single-process run serves every node on one
    port): families of one name are joined, their samples told apart by the ``node``
    label, since a registry takes each family name from one collector only."""

    def __init__(self, collectors: Iterable) -> None:
        self.collectors = list(collectors)

    def describe(self):
        return _merge(c.describe() for c in self.collectors)

    def collect(self):
        return _merge(c.collect() for c in self.collectors)


def _merge(groups: Iterable[Iterable]) -> list:
    merged: dict[str, Any] = {}
    for group in groups:
        for family in group:
            if family.name in merged:
                merged[family.name].samples.extend(family.samples)
            else:
                merged[family.name] = family
    return list(merged.values())
