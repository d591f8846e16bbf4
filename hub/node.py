"""Wiring for the national hub: its database, its topic, its handlers."""

from __future__ import annotations

from clearsim.db import Database
from clearsim.messages import HUB
from clearsim.node import Node
from hub import tables
from hub.handlers import HANDLERS, HubConfig, HubContext


def build(config: HubConfig, *, db_url: str, bus, codec, prefix: str, sensor=None) -> Node:
    return Node(node_id=HUB, db=Database(db_url, tables.metadata), bus=bus, codec=codec,
                handlers=HANDLERS, make_context=lambda conn: HubContext.of(conn, config),
                prefix=prefix, sensor=sensor)
