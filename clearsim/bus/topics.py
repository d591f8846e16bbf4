"""Topic naming: topics and consumer groups grow with regions, never with hospitals.

With a prefix (default ``clearsim``, unique per run in tests and runs):

- ``{prefix}.hub``                 — everything addressed to the national hub
- ``{prefix}.region.{admdvs}``     — everything addressed to one region node
- ``{prefix}.hospitals.{admdvs}``  — everything addressed to the hospitals of one region
  (one hospital node hosts them all and dispatches by ``fixmedins_code``)
- ``{prefix}.policies``            — the national policy table: each region's current
  policy, keyed by region code, log-compacted on Kafka (only the latest record of a key
  need be kept) and read by every region node, as a table is read from a changelog. One
  record per policy version, however many regions read it: distributing policies costs
  the hub as many messages as there are regions, not their square.
- ``{prefix}.dlq``                 — the dead letters of the run: every message a node
  refused, with the reason, its original bytes and headers, keyed by the node that
  refused it; read by no node, only by ``clearsim dlq``.

One consumer group per node, named like its topic. Records are keyed by claim id, so a
claim's messages stay ordered within one partition and claims spread over partitions.
Nationally (about 390 regions, 27,608 hospitals) that is 783 topics and 781 groups.
"""

from __future__ import annotations

from collections.abc import Iterable


def hub_topic(prefix: str) -> str:
    return f"{prefix}.hub"


def region_topic(prefix: str, admdvs: str) -> str:
    return f"{prefix}.region.{admdvs}"


def hospitals_topic(prefix: str, admdvs: str) -> str:
    return f"{prefix}.hospitals.{admdvs}"


def policies_topic(prefix: str) -> str:
    return f"{prefix}.policies"


def dlq_topic(prefix: str) -> str:
    return f"{prefix}.dlq"


def is_table(topic: str) -> bool:
    """Whether ``topic`` is read as a table (latest record per key): compacted on Kafka."""
    return topic.endswith(".policies")


def all_topics(prefix: str, regions: Iterable[str]) -> list[str]:
    regions = sorted(regions)
    return ([hub_topic(prefix), policies_topic(prefix), dlq_topic(prefix)]
            + [region_topic(prefix, r) for r in regions]
            + [hospitals_topic(prefix, r) for r in regions])
