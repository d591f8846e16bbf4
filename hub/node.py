"""Wiring for the national hub: its database, its topic, its handlers."""

from __future__ import annotations

from clearsim.db import Database
from clearsim.faults import FaultPlan
from clearsim.handling import wall_clock
from clearsim.messages import HUB
from clearsim.node import Node
from clearsim.senders import Senders
from hub import tables
from hub.handlers import HANDLERS, HubConfig, HubContext


def build(config: HubConfig, *, db_url: str, bus, codec, prefix: str, sensor=None,
          faults: FaultPlan | None = None, clock=wall_clock) -> Node:
    points = FaultPlan.points(faults, HUB)
    return Node(node_id=HUB, db=Database(db_url, tables.metadata), bus=bus, codec=codec,
                handlers=HANDLERS,
                make_context=lambda conn: HubContext.of(conn, config, clock, points),
                prefix=prefix, sensor=sensor, faults=points, clock=clock,
                senders=Senders(HUB, config.regions))
