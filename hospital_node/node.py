"""Wiring for a hospital node (all hospitals of one region): database, topic, handlers."""

from __future__ import annotations

from clearsim.db import Database
from clearsim.messages import hospitals_node
from clearsim.node import Node
from hospital_node import tables
from hospital_node.handlers import HANDLERS, HospitalsConfig, HospitalsContext


def build(config: HospitalsConfig, *, db_url: str, bus, codec, prefix: str,
          sensor=None) -> Node:
    return Node(node_id=hospitals_node(config.region), db=Database(db_url, tables.metadata),
                bus=bus, codec=codec, handlers=HANDLERS,
                make_context=lambda conn: HospitalsContext.of(conn, config), prefix=prefix,
                sensor=sensor)
