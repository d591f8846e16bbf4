"""Hostile input against a hub on a real PostgreSQL server, whose columns have lengths
SQLite does not enforce: oversized ids and fields are refused before they reach a column,
every refusal is recorded and parked, and ``clearsim dlq`` reads the dead letters from the
server's node databases."""

from __future__ import annotations

import json

from clearsim.messages import HUB, region_node
from testbed import cli
from testbed.processes import node_db_url
from tests.unit.poison_bed import Bed, demo_topology, filing

JIUJIANG = region_node("360400")


def test_oversized_input_on_postgresql_is_refused_parked_and_listed(
        tmp_path, postgres_server, topic_prefix, capsys):
    server = postgres_server.url
    bed = Bed(tmp_path, demo_topology(), prefix=topic_prefix,
              db_url=lambda node_id: node_db_url(server, topic_prefix, node_id))
    try:
        bed.put(bed.envelope(JIUJIANG, "RegisterFiling", HUB, "C" * 300, filing()))
        bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing("F" * 70))
        bed.raw(HUB, b"\x00" * 64, key=b"K" * 5000,
                headers=(("msgid", b"m" * 300), ("correlation_id", b"c" * 300),
                         ("sender", b"s" * 300), ("kind", b"k" * 300)))
        good = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-2", filing("F-2"))
        bed.step(HUB)
        assert bed.refused(HUB) == [("FIELD_TOO_LARGE", "correlation_id"),
                                    ("FIELD_TOO_LARGE", "filing_id"),
                                    ("MESSAGE_MALFORMED", "marker")]
        assert bed.outcome(HUB, good.msgid) == "handled"
        assert [p.code for p in bed.parked()] == [c for c, _ in bed.refused(HUB)]
    finally:
        bed.stop()
    code = cli.main(["dlq", "list", "--db", server, "--prefix", topic_prefix, "--json"])
    listed = json.loads(capsys.readouterr().out)["dead_letters"]
    assert code == 0
    assert [d["code"] for d in listed] == ["FIELD_TOO_LARGE", "FIELD_TOO_LARGE",
                                           "MESSAGE_MALFORMED"]
