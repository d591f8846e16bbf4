"""Wiring for a region node: its database, its topic, its handlers."""

from __future__ import annotations

from clearsim.db import Database
from clearsim.messages import region_node
from clearsim.node import Node
from region_node import tables
from region_node.handlers import HANDLERS, RegionConfig, RegionContext, on_start


def build(config: RegionConfig, *, db_url: str, bus, codec, prefix: str,
          sensor=None) -> Node:
    return Node(node_id=region_node(config.region), db=Database(db_url, tables.metadata),
                bus=bus, codec=codec, handlers=HANDLERS,
                make_context=lambda conn: RegionContext.of(conn, config), prefix=prefix,
                on_start=on_start, sensor=sensor)
