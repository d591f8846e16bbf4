"""Wiring for a region node: its database, its topic, its handlers."""

from __future__ import annotations

from clearsim.db import Database
from clearsim.faults import FaultPlan
from clearsim.handling import wall_clock
from clearsim.messages import region_node
from clearsim.node import Node
from clearsim.senders import Senders
from region_node import tables
from region_node.handlers import HANDLERS, TABLES, RegionConfig, RegionContext, on_start


def build(config: RegionConfig, *, db_url: str, bus, codec, prefix: str, sensor=None,
          faults: FaultPlan | None = None, clock=wall_clock) -> Node:
    node_id = region_node(config.region)
    points = FaultPlan.points(faults, node_id)
    return Node(node_id=node_id, db=Database(db_url, tables.metadata), bus=bus, codec=codec,
                handlers=HANDLERS,
                make_context=lambda conn: RegionContext.of(conn, config, clock, points),
                prefix=prefix, on_start=on_start, sensor=sensor, faults=points, clock=clock,
                tables=TABLES, senders=Senders(node_id, config.regions))
