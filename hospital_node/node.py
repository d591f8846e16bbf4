"""Wiring for a hospital node (all hospitals of one region): database, topic, handlers."""

from __future__ import annotations

from clearsim.db import Database
from clearsim.faults import FaultPlan
from clearsim.handling import wall_clock
from clearsim.messages import hospitals_node
from clearsim.node import Node
from clearsim.senders import Senders
from hospital_node import tables
from hospital_node.handlers import (HANDLERS, HospitalsConfig, HospitalsContext,
                                    retry_unanswered)


def build(config: HospitalsConfig, *, db_url: str, bus, codec, prefix: str, sensor=None,
          faults: FaultPlan | None = None, clock=wall_clock) -> Node:
    node_id = hospitals_node(config.region)
    points = FaultPlan.points(faults, node_id)
    return Node(node_id=node_id, db=Database(db_url, tables.metadata), bus=bus, codec=codec,
                handlers=HANDLERS,
                make_context=lambda conn: HospitalsContext.of(conn, config, clock, points),
                prefix=prefix, sensor=sensor, faults=points, clock=clock,
                on_idle=retry_unanswered if points.retries() else None,
                senders=Senders(node_id))
