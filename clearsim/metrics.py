"""Observer hooks on the node loop (faust's sensors): handlers never touch metrics.

``PrometheusSensor`` takes an injected ``CollectorRegistry`` so each run or test owns its
own; ``NullSensor`` is the default. ``CountingSensor`` keeps plain counts for reports.
"""

from __future__ import annotations

from collections import Counter


class Sensor:
    def on_message_in(self, node: str, kind: str) -> None: ...
    def on_message_out(self, node: str, kind: str) -> None: ...
    def on_handled(self, node: str, kind: str, seconds: float) -> None: ...
    def on_duplicate(self, node: str, kind: str) -> None: ...
    def on_rejected(self, node: str, code: str) -> None: ...


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


class PrometheusSensor(Sensor):
    def __init__(self, registry) -> None:
        from prometheus_client import Counter as PCounter
        from prometheus_client import Histogram

        self.messages_in = PCounter("clearsim_messages_in", "Messages received",
                                    ["node", "kind"], registry=registry)
        self.messages_out = PCounter("clearsim_messages_out", "Messages sent",
                                     ["node", "kind"], registry=registry)
        self.duplicates = PCounter("clearsim_duplicates", "Redelivered messages absorbed",
                                   ["node", "kind"], registry=registry)
        self.rejected = PCounter("clearsim_rejected", "Messages refused, by error code",
                                 ["node", "code"], registry=registry)
        self.handle_seconds = Histogram("clearsim_handle_seconds",
                                        "Time to handle one message", ["node", "kind"],
                                        registry=registry)

    def on_message_in(self, node, kind):
        self.messages_in.labels(node, kind).inc()

    def on_message_out(self, node, kind):
        self.messages_out.labels(node, kind).inc()

    def on_handled(self, node, kind, seconds):
        self.handle_seconds.labels(node, kind).observe(seconds)

    def on_duplicate(self, node, kind):
        self.duplicates.labels(node, kind).inc()

    def on_rejected(self, node, code):
        self.rejected.labels(node, code).inc()


class FanOutSensor(Sensor):
    """Several sensors at once (counts for the report, Prometheus for dashboards)."""

    def __init__(self, *sensors: Sensor) -> None:
        self.sensors = sensors

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
