"""The dead-letter topic and ``clearsim dlq``: parked messages listed and shown with no
person id in full, and replayed to their topics once fixed, deduplicated like any delivery.

The round trip runs on the in-process bus and on a real Kafka broker (one suite); a real
broker's test also drives the command itself, and another shows hostile records on a real
topic refused, parked and counted while the node goes on.
"""

from __future__ import annotations

import json
import os

import pytest

from clearsim.bus import connect
from clearsim.bus.topics import hub_topic
from clearsim.codec import Codec
from clearsim.db import sent_messages
from clearsim.messages import HUB, region_node
from testbed import cli, dlq_cli
from tests.unit.poison_bed import Bed, demo_topology, filing

JIUJIANG, BEIJING = region_node("360400"), region_node("110000")
PERSON = "P-JJ-001"


@pytest.fixture(scope="module")
def topology():
    return demo_topology()


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request):
    url = None if request.param == "memory" else request.getfixturevalue("kafka_bootstrap")
    bus = connect(url, default_partitions=1)
    bus.real = url is not None
    yield bus
    bus.close()


@pytest.fixture
def bed(tmp_path, topology, bus, topic_prefix):
    bed = Bed(tmp_path, topology, bus=bus, prefix=topic_prefix)
    yield bed
    bed.stop()


def newer_writer():
    """A region on a newer interface: RegisterFiling v2 (a field added), unknown to the
    hub until it is given the schema."""
    schema = Codec().changed_schema("RegisterFiling", "compatible")
    return schema, Codec(writer_overrides={"RegisterFiling": schema})


def read_back(bed: Bed) -> list:
    parked, unreadable = dlq_cli.parse(Codec(), dlq_cli.from_bus(
        bed.bus, bed.prefix, idle=2.0 if getattr(bed.bus, "real", False) else 0.05))
    assert unreadable == 0
    return parked


def test_a_parked_message_is_replayed_once_fixed_and_handled_once(bed, capsys):
    schema, writer = newer_writer()
    env = bed.envelope(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(), codec=writer)
    bed.put(env)
    bed.until(HUB, lambda: bed.refused(HUB))
    assert bed.refused(HUB) == [("SCHEMA_UNKNOWN", "fingerprint")]
    [letter] = read_back(bed)
    assert (letter.msgid, letter.value, letter.consumed) == (env.msgid, env.value, False)
    assert dict(letter.headers)["msgid"] == env.msgid.encode()

    # Listed and shown: the reason, the record, and no person id in full.
    dlq_cli.print_list(Codec(), [letter], "the test's topic", 0, as_json=False)
    dlq_cli.print_one(Codec(), letter, as_json=False)
    shown = capsys.readouterr().out
    assert "SCHEMA_UNKNOWN" in shown and letter.id in shown and PERSON not in shown

    # Replayed before the fix: refused again, nothing handled.
    assert dlq_cli.replay(bed.bus, [letter], bed.prefix) == ([letter], [])
    bed.until(HUB, lambda: len(bed.refused(HUB)) == 2)
    assert bed.outcome(HUB, env.msgid) is None

    # The hub is given the newer schema; the replay is handled, once.
    bed.restart(HUB, codec=Codec(known_writers=[schema]))
    dlq_cli.replay(bed.bus, [letter], bed.prefix)
    bed.until(HUB, lambda: bed.outcome(HUB, env.msgid) == "handled")
    assert caused(bed) == [("FilingRegistered", "110000"), ("FilingRegistered", "360400")]

    # Replayed again: a message that was handled changes nothing.
    dlq_cli.replay(bed.bus, [letter], bed.prefix)
    bed.until(HUB, lambda: bed.count("clearsim_duplicates_absorbed_total", node=HUB,
                                     kind="RegisterFiling") == 1)
    assert len(bed.refused(HUB)) == 2 and len(read_back(bed)) == 2
    assert bed.outcome(HUB, env.msgid) == "handled"
    assert caused(bed) == [("FilingRegistered", "110000"), ("FilingRegistered", "360400")]


def caused(bed: Bed) -> list[tuple[str, str]]:
    """(kind, region) of every message the hub wrote other than refusals and dead
    letters."""
    with bed.node(HUB).db.engine.connect() as conn:
        rows = sent_messages(conn)
    return sorted((r.kind, r.topic.rsplit(".", 1)[-1]) for r in rows
                  if r.kind not in ("MessageRejected", "DeadLettered"))


def test_replaying_a_refusal_that_consumed_its_id_changes_nothing(bed):
    big = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(person="P" * 5000))
    bed.until(HUB, lambda: bed.refused(HUB))
    [letter] = read_back(bed)
    assert (letter.code, letter.consumed, letter.value) == ("FIELD_TOO_LARGE", True,
                                                            big.value)
    dlq_cli.replay(bed.bus, [letter], bed.prefix)
    bed.until(HUB, lambda: bed.count("clearsim_duplicates_absorbed_total", node=HUB,
                                     kind="RegisterFiling") == 1)
    assert bed.refused(HUB) == [("FIELD_TOO_LARGE", "psn_no")]
    assert len(read_back(bed)) == 1


def test_a_dead_letter_cut_to_its_first_bytes_is_not_replayed(tmp_path, topology):
    bed = Bed(tmp_path, topology)          # a broker takes no record this large
    try:
        bed.raw(HUB, b"\xc3\x01" + os.urandom(300 * 1024))
        bed.step(HUB)
        [letter] = read_back(bed)
        assert not letter.whole
        assert dlq_cli.replay(bed.bus, [letter], bed.prefix) == ([], [(
            letter, f"only its first 262144 of {300 * 1024 + 2} bytes were parked")])
    finally:
        bed.stop()


# -- the command -----------------------------------------------------------------------------

def run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["dlq", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_reads_an_in_process_run_from_its_databases(tmp_path, topology, capsys):
    bed = Bed(tmp_path, topology)
    try:
        bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(person="P" * 100))
        bed.send(JIUJIANG, "RegisterFiling", HUB, "F-2", filing("F-2", treating="999999"))
        bed.send("evil", "RegisterFiling", HUB, "F-3", filing("F-3"))
        bed.step(HUB)
    finally:
        bed.stop()
    code, out, _ = run(capsys, "list", "--db", str(tmp_path), "--json")
    assert code == 0
    listed = json.loads(out)
    assert [(d["code"], d["field"], d["claim"]) for d in listed["dead_letters"]] == [
        ("FIELD_TOO_LARGE", "psn_no", "F-1"), ("REGION_UNKNOWN", "mdtrtarea_admdvs", "F-2"),
        ("SENDER_NOT_AUTHORIZED", "sender", "F-3")]
    assert PERSON not in out and "P" * 100 not in out
    code, out, _ = run(capsys, "list", "--db", str(tmp_path), "--code", "REGION_UNKNOWN")
    assert code == 0 and "1 dead letters" in out and "REGION_UNKNOWN" in out
    first = listed["dead_letters"][1]["id"]
    code, out, _ = run(capsys, "show", first[:12], "--db", str(tmp_path))
    assert code == 0 and "a RegisterFiling message" in out and "P-****01" in out
    assert PERSON not in out
    code, out, _ = run(capsys, "show", first, "--db", str(tmp_path), "--json")
    assert json.loads(out)["decoded"]["record"]["psn_no"] == "P-****01"


@pytest.mark.parametrize("args,word", [
    (["list"], "--db"),
    (["replay", "--all", "--db", "x"], "--kafka"),
    (["replay", "--kafka", "localhost:1"], "--all"),
    (["list", "--db", "/no/such/directory"], "no such directory"),
    (["list", "--kafka", "local"], "--db OUT/db"),
])
def test_the_command_says_what_is_missing_in_one_line(capsys, monkeypatch, args, word):
    monkeypatch.delenv("CLEARSIM_KAFKA", raising=False)
    code, out, err = run(capsys, *args)
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1


def test_an_unknown_id_is_refused(tmp_path, capsys):
    code, _, err = run(capsys, "show", "nope", "--db", str(tmp_path))
    assert code == 2 and "no dead letter has the id 'nope'" in err


def test_an_unreachable_broker_is_one_line(capsys):
    code, _, err = run(capsys, "list", "--kafka", "127.0.0.1:1", "--prefix", "x")
    assert code == 3 and "BROKER_UNAVAILABLE" in err and len(err.strip().splitlines()) == 1


# -- on a real broker ------------------------------------------------------------------------

@pytest.mark.kafka
def test_the_dlq_round_trip_through_the_command_on_a_real_broker(
        tmp_path, topology, kafka_bootstrap, topic_prefix, capsys):
    bus = connect(kafka_bootstrap, default_partitions=1)
    bed = Bed(tmp_path, topology, bus=bus, prefix=topic_prefix)
    kafka = ["--kafka", kafka_bootstrap, "--prefix", topic_prefix]
    try:
        schema, writer = newer_writer()
        env = bed.envelope(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(), codec=writer)
        bed.put(env)
        bed.until(HUB, lambda: bed.refused(HUB))
        code, out, _ = run(capsys, "list", *kafka, "--json")
        [listed] = json.loads(out)["dead_letters"]
        assert code == 0 and listed["code"] == "SCHEMA_UNKNOWN" and listed["msgid"] == env.msgid
        code, out, _ = run(capsys, "show", listed["id"], *kafka)
        assert code == 0 and PERSON not in out and hub_topic(topic_prefix) in out
        bed.restart(HUB, codec=Codec(known_writers=[schema]))
        code, out, _ = run(capsys, "replay", listed["id"], *kafka)
        assert code == 0 and "1 replayed" in out
        bed.until(HUB, lambda: bed.outcome(HUB, env.msgid) == "handled")
        code, out, _ = run(capsys, "replay", "--all", *kafka)
        assert code == 0 and "1 replayed" in out
        bed.until(HUB, lambda: bed.count("clearsim_duplicates_absorbed_total", node=HUB,
                                         kind="RegisterFiling") == 1)
        assert bed.refused(HUB) == [("SCHEMA_UNKNOWN", "fingerprint")]
    finally:
        bed.stop()
        bus.close()


@pytest.mark.kafka
def test_hostile_records_on_a_real_topic_are_refused_parked_and_counted(
        tmp_path, topology, kafka_bootstrap, topic_prefix):
    bus = connect(kafka_bootstrap, default_partitions=3)
    bed = Bed(tmp_path, topology, bus=bus, prefix=topic_prefix)
    try:
        bed.node(HUB)
        bed.raw(HUB, os.urandom(200), key=b"C-1", headers=(("msgid", b"junk"),))
        bed.raw(HUB, None, key=b"C-2")                                  # a tombstone
        bed.send(BEIJING, "RegisterFiling", HUB, "F-1", filing())       # not its insured
        bed.send("hospitals-110000", "OpenClearing", HUB, "CLR201903", {"month": "201903"})
        good = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-2", filing("F-2"))
        bed.until(HUB, lambda: bed.outcome(HUB, good.msgid) == "handled"
                  and len(bed.refused(HUB)) == 4)
        assert sorted(code for code, _ in bed.refused(HUB)) == [
            "MESSAGE_MALFORMED", "MESSAGE_MALFORMED", "SENDER_NOT_AUTHORIZED",
            "SENDER_NOT_AUTHORIZED"]
        letters = bed.parked_at_least(4)
        assert sorted(p.code for p in letters) == sorted(c for c, _ in bed.refused(HUB))
        assert {p.node for p in letters} == {HUB}
        assert bed.count("clearsim_dead_lettered_total", node=HUB,
                         code="SENDER_NOT_AUTHORIZED") == 2
        assert bed.count("clearsim_dead_lettered_total", node=HUB,
                         code="MESSAGE_MALFORMED") == 2
    finally:
        bed.stop()
        bus.close()
