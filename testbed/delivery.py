"""The delivery check every run ends with, in the spirit of Jepsen's Kafka checker.

From what each node recorded (its outbox, the ids it handled, the refusals it wrote) and
what the runner itself sent, after the run has gone quiet:

- **lost**: a message sent to a node of the run that the node neither handled nor refused
  with a code (a record of the policy table is not a message to one node: every region
  applies it, and the run waits until every region holds every policy);
- **stuck**: a message a node never managed to send (still unsent in its outbox; a dead
  letter too);
- **doubled**: one message that had its effect twice (two outgoing messages of the same
  kind, to the same node, about the same claim, caused by the same message);
- **reordered**: two messages of one claim from one sender to one receiver, applied in
  the other order than they were sent;
- **unexplained**: a claim that ended in no terminal state and no fault explains.

A run with any of these fails (``clearsim run`` exits 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clearsim.db import handled_messages as _handled
from clearsim.db import refused_msgids as _refused
from clearsim.db import sent_messages as _outbox
from clearsim.messages import DEAD_LETTERS, POLICIES
from testbed.chaos import node_of_topic

TERMINAL = ("direct", "manual", "rejected")


@dataclass(frozen=True, slots=True)
class Sent:
    sender: str
    receiver: str
    msgid: str
    kind: str
    correlation_id: str
    order: int                 # the sender's own order of sending
    sent: bool = True
    caused_by: str | None = None


@dataclass
class Delivery:
    sent: int = 0
    handled: int = 0
    refused: int = 0
    lost: list[dict] = field(default_factory=list)
    stuck: list[dict] = field(default_factory=list)
    doubled: list[dict] = field(default_factory=list)
    reordered: list[dict] = field(default_factory=list)
    unexplained: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stuck or self.doubled or self.reordered
                    or self.unexplained)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "sent": self.sent, "handled": self.handled,
                "refused": self.refused, "lost": self.lost, "stuck": self.stuck,
                "doubled": self.doubled, "reordered": self.reordered,
                "unexplained": self.unexplained}

    def problems(self) -> list[str]:
        out = [f"message {m['msgid']} ({m['kind']} {m['sender']} -> {m['receiver']}, "
               f"{m['correlation_id']}) was lost: never handled nor refused"
               for m in self.lost]
        out += [f"message {m['msgid']} ({m['kind']} from {m['sender']}) was never sent"
                for m in self.stuck]
        out += [f"{m['count']} x {m['kind']} to {m['receiver']} for {m['correlation_id']} "
                f"caused by one message {m['caused_by']}: an effect counted twice"
                for m in self.doubled]
        out += [f"{m['receiver']} applied {m['later']} before {m['earlier']} of "
                f"{m['correlation_id']} from {m['sender']}" for m in self.reordered]
        out += [f"claim {c['claim_id']} ended {c['status']} and no fault explains it"
                for c in self.unexplained]
        return out


def messages_sent(sim) -> list[Sent]:
    """Every message of the run: each node's outbox, and what the runner sent."""
    out = []
    for node_id in sim.nodes:
        for r in sim.query(node_id, _outbox):
            out.append(Sent(node_id, node_of_topic(r.topic, sim.prefix), r.msgid, r.kind,
                            r.correlation_id, r.id, r.sent_at is not None, r.caused_by))
    out += sim.sent
    return out


def lost(sim, sent: list[Sent] | None = None) -> list[Sent]:
    """Messages sent to a node of the run that it has neither handled nor refused."""
    sent = messages_sent(sim) if sent is None else sent
    seen = {node_id: set(sim.query(node_id, _handled)) | sim.query(node_id, _refused)
            for node_id in sim.nodes}
    return [m for m in sent if m.sent and m.receiver in seen
            and m.msgid not in seen[m.receiver]]


def check(sim, results: list[dict]) -> Delivery:
    sent = messages_sent(sim)
    handled = {node_id: sim.query(node_id, _handled) for node_id in sim.nodes}
    refused = {node_id: sim.query(node_id, _refused) for node_id in sim.nodes}
    # Messages to nodes: a record of the policy table is applied by every region, not
    # handled by one, and is only checked for having been sent (stuck).
    d = Delivery(sent=sum(m.sent for m in sent if m.receiver in sim.nodes))
    d.handled = sum(1 for m in sent if m.msgid in handled.get(m.receiver, {}))
    d.refused = sum(1 for m in sent if m.msgid not in handled.get(m.receiver, {})
                    and m.msgid in refused.get(m.receiver, set()))

    def row(m: Sent) -> dict:
        return {"msgid": m.msgid, "kind": m.kind, "sender": m.sender,
                "receiver": m.receiver, "correlation_id": m.correlation_id}
    for m in sent:
        if m.receiver not in sim.nodes and m.receiver not in (POLICIES, DEAD_LETTERS):
            continue
        if not m.sent:
            d.stuck.append(row(m))
        elif m.receiver in (POLICIES, DEAD_LETTERS):
            continue    # a table's record is applied by every region, a dead letter read
                        # by people: neither is handled once by a node
        elif (m.msgid not in handled[m.receiver]
              and m.msgid not in refused[m.receiver]):
            d.lost.append(row(m))
    effects: dict[tuple, int] = {}
    for m in sent:
        if m.caused_by is not None:
            key = (m.caused_by, m.kind, m.receiver, m.correlation_id)
            effects[key] = effects.get(key, 0) + 1
    d.doubled = [{"caused_by": k[0], "kind": k[1], "receiver": k[2], "correlation_id": k[3],
                  "count": n} for k, n in effects.items() if n > 1]
    d.reordered = _reordered(sent, handled)
    explained = {e.claim_id for e in sim.plan.events() if e.claim_id}
    d.unexplained = [{"claim_id": r["claim_id"], "status": r["status"]} for r in results
                     if r["status"] not in TERMINAL and r["claim_id"] not in explained]
    return d


def _reordered(sent: list[Sent], handled: dict[str, dict]) -> list[dict]:
    """Per (sender, receiver, claim): the receiver's order of handling against the
    sender's order of sending."""
    streams: dict[tuple, list[Sent]] = {}
    for m in sent:
        if m.sent and m.msgid in handled.get(m.receiver, {}):
            streams.setdefault((m.sender, m.receiver, m.correlation_id), []).append(m)
    out = []
    for (sender, receiver, correlation), stream in streams.items():
        stream.sort(key=lambda m: m.order)
        applied = [handled[receiver][m.msgid][1] for m in stream]
        for earlier, later, a, b in zip(stream, stream[1:], applied, applied[1:]):
            if a is not None and b is not None and b < a:
                out.append({"sender": sender, "receiver": receiver,
                            "correlation_id": correlation,
                            "earlier": f"{earlier.kind} {earlier.msgid}",
                            "later": f"{later.kind} {later.msgid}"})
    return out
