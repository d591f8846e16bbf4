"""Messages as the nodes see them, and where each one goes.

A handler receives a ``Message`` (decoded, header split from body) and returns ``Outgoing``
values: which kind, to which node, about which claim. The node loop turns those into Avro
bytes with a full header (``clearsim.node``). Node ids name the topic they read:

- ``hub``                → ``{prefix}.hub``
- ``region-<admdvs>``    → ``{prefix}.region.<admdvs>``
- ``hospitals-<admdvs>`` → ``{prefix}.hospitals.<admdvs>`` (all hospitals of one region)
- ``policies``           → ``{prefix}.policies``: not a node but the national policy
  table every region node reads (the hub writes each region's policy there once)
- ``sim``                → reads nothing: the simulated outside world (patients, runner)
- ``dlq``                → ``{prefix}.dlq``: not a node but where every node parks what it
  refused (``clearsim dlq`` reads it)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from clearsim.bus.topics import (dlq_topic, hospitals_topic, hub_topic, policies_topic,
                                 region_topic)

HUB = "hub"
SIM = "sim"
POLICIES = "policies"      # the policy table: written by the hub, read by every region
DEAD_LETTERS = "dlq"       # the dead-letter topic: written by every node, read by people

def region_node(admdvs: str) -> str:
    return f"region-{admdvs}"


def hospitals_node(admdvs: str) -> str:
    return f"hospitals-{admdvs}"


def topic_for(node_id: str, prefix: str) -> str:
    """The topic a node reads: the only routing rule in the project."""
    if node_id == HUB:
        return hub_topic(prefix)
    if node_id == POLICIES:
        return policies_topic(prefix)
    if node_id == DEAD_LETTERS:
        return dlq_topic(prefix)
    kind, _, admdvs = node_id.partition("-")
    if kind == "region" and admdvs:
        return region_topic(prefix, admdvs)
    if kind == "hospitals" and admdvs:
        return hospitals_topic(prefix, admdvs)
    raise ValueError(f"no topic for node id {node_id!r}")


def admdvs_of(node_id: str) -> str | None:
    """The region code in a region or hospitals node id ("region-360400" -> "360400")."""
    kind, _, admdvs = node_id.partition("-")
    return admdvs if kind in ("region", "hospitals") and admdvs else None


@dataclass(frozen=True)
class Message:
    kind: str
    header: dict
    body: dict

    @property
    def msgid(self) -> str:
        return self.header["msgid"]

    @property
    def sender(self) -> str:
        return self.header["sender"]

    @property
    def correlation_id(self) -> str:
        return self.header["correlation_id"]

    @property
    def sim_time(self) -> datetime:
        return self.header["sim_time"]


@dataclass(frozen=True)
class Outgoing:
    kind: str
    to: str
    correlation_id: str
    body: dict = field(default_factory=dict)
    sim_time: datetime | None = None  # defaults to the sim time of the message handled
    key: str | None = None            # the bus record's key; defaults to the correlation id
