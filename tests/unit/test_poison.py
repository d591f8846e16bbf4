"""Poison and hostile input on the in-process bus, against the demo's real hub.

Each hostile input is refused with its code (recorded in the hub's rejections), parked on
the dead-letter topic with the reason and the original bytes and headers, counted in
``clearsim_dead_lettered_total{code}``, and the hub goes on: a good message sent after it,
in the same batch, is handled.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from clearsim.bus.topics import hub_topic
from clearsim.codec import MAX_MESSAGE_BYTES
from clearsim.messages import HUB, SIM, region_node
from clearsim.node import PARKED_BYTES, REPLAY_AFTER
from tests.unit.poison_bed import WHEN, Bed, demo_topology, filing, settled

JIUJIANG, BEIJING = region_node("360400"), region_node("110000")


@pytest.fixture(scope="module")
def topology():
    return demo_topology()


@pytest.fixture
def bed(tmp_path, topology):
    bed = Bed(tmp_path, topology)
    bed.node(HUB)
    yield bed
    bed.stop()


def refused_and_parked(bed: Bed, code: str, field: str | None, value: bytes | None,
                       good) -> None:
    """The hub refused one message with ``code`` on ``field``, parked it (its bytes were
    ``value``), counted it, and handled ``good``, sent after it."""
    assert bed.refused(HUB) == [(code, field)]
    [letter] = bed.parked()
    assert (letter.node, letter.code, letter.field) == (HUB, code, field)
    assert letter.topic == hub_topic(bed.prefix) and letter.message
    if value is not None:
        assert letter.value == value[:PARKED_BYTES] and letter.length == len(value)
    assert bed.count("clearsim_dead_lettered_total", node=HUB, code=code) == 1
    assert bed.count("clearsim_messages_rejected_total", node=HUB, code=code) == 1
    assert bed.outcome(HUB, good.msgid) == "handled"


def good(bed: Bed):
    return bed.send(JIUJIANG, "RegisterFiling", HUB, "F-GOOD", filing("F-GOOD"))


def test_random_bytes_are_refused_parked_and_counted(bed):
    junk = os.urandom(300).replace(b"\xc3\x01", b"\x00\x00")
    bed.raw(HUB, junk, key=b"C-1", headers=(("msgid", b"evil-1"), ("kind", b"AdmitPatient")))
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "MESSAGE_MALFORMED", "marker", junk, after)
    [letter] = bed.parked()
    assert letter.msgid == "evil-1" and letter.headers[0] == ("msgid", b"evil-1")
    assert letter.key == b"C-1" and not letter.consumed


def test_truncated_avro_is_refused(bed):
    whole = bed.envelope(JIUJIANG, "RegisterFiling", HUB, "F-1", filing()).value
    cut = whole[:len(whole) // 2]
    bed.raw(HUB, cut)
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "MESSAGE_MALFORMED", "body", cut, after)


def test_a_record_with_no_value_is_refused(bed):
    bed.raw(HUB, None, headers=(("msgid", None), ("sender", b"region-360400")))
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "MESSAGE_MALFORMED", "marker", b"", after)


def test_a_valid_message_of_a_kind_the_node_does_not_take(bed):
    wrong = bed.send(SIM, "SubmitClaim", HUB, "C-1", {
        "admission_no": "C-1", "person_id": "P-JJ-001", "insurance_code": "390",
        "insuring_region": "360400", "hospital": "H-BJ-3", "admitted_at": WHEN,
        "items": []})
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "MESSAGE_TYPE_UNEXPECTED", "kind", wrong.value, after)


def test_an_oversized_field_is_refused_naming_it(bed):
    big = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(person="P" * 10_000))
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "FIELD_TOO_LARGE", "psn_no", big.value, after)
    assert bed.parked()[0].consumed


def test_an_oversized_header_field_is_refused_and_named_by_the_record(bed):
    env = bed.envelope(JIUJIANG, "RegisterFiling", HUB, "C" * 500, filing())
    bed.put(env)
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "FIELD_TOO_LARGE", "correlation_id", env.value, after)


def test_an_oversized_message_is_refused_before_it_is_read_and_parked_in_part(bed):
    huge = b"\xc3\x01" + os.urandom(MAX_MESSAGE_BYTES)
    bed.raw(HUB, huge, headers=(("msgid", b"m" * 5000),) * 200)
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "MESSAGE_TOO_LARGE", "message", huge, after)
    [letter] = bed.parked()
    assert not letter.whole and len(letter.value) == PARKED_BYTES
    assert letter.msgid.startswith(hub_topic(bed.prefix))   # the header's did not fit
    assert len(letter.headers) == 64 and len(letter.headers[0][1]) == 1024


def test_unreadable_bytes_do_not_consume_the_id_their_headers_claim(bed):
    later = bed.envelope(JIUJIANG, "RegisterFiling", HUB, "F-1", filing())
    bed.raw(HUB, b"\xc3\x01" + bytes(MAX_MESSAGE_BYTES), headers=(
        ("msgid", later.msgid.encode()),))
    bed.put(later)
    bed.step(HUB)
    assert bed.refused(HUB) == [("MESSAGE_TOO_LARGE", "message")]
    assert bed.outcome(HUB, later.msgid) == "handled"


@pytest.mark.parametrize("field,changes", [
    ("medfee_sumamt", {"total": 10**15 * 100}),               # a thousand trillion yuan
    ("medfee_sumamt", {"total": -1}),                          # a charge below zero
])
def test_an_absurd_amount_is_refused(bed, field, changes):
    absurd = bed.send(BEIJING, "ClaimSettled", HUB, "C-1", settled(**changes))
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "INVALID_AMOUNT", field, absurd.value, after)


def test_a_sender_of_an_unknown_region_is_refused_and_not_answered(bed):
    bed.arrived("region-999999")
    stranger = bed.send("region-999999", "RegisterFiling", HUB, "F-1",
                        filing(insuring="999999"))
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "REGION_UNKNOWN", "sender", stranger.value, after)
    assert bed.arrived("region-999999") == []


def test_an_unknown_region_in_the_body_is_refused(bed):
    unknown = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(treating="999999"))
    after = good(bed)
    bed.step(HUB)
    refused_and_parked(bed, "REGION_UNKNOWN", "mdtrtarea_admdvs", unknown.value, after)


def test_the_same_refused_message_again_is_absorbed_not_parked_twice(bed):
    big = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(person="P" * 100))
    bed.step(HUB)
    bed.put(big)
    bed.step(HUB)
    assert len(bed.refused(HUB)) == 1 and len(bed.parked()) == 1
    assert bed.count("clearsim_duplicates_absorbed_total", node=HUB,
                     kind="RegisterFiling") == 1


def test_a_message_replayed_long_after_is_refused_and_its_answers_not_sent_again(bed):
    first = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing("F-1"))
    bed.send(JIUJIANG, "RegisterFiling", HUB, "F-2", filing("F-2"),
             sim_time=WHEN + REPLAY_AFTER + timedelta(days=10))
    bed.step(HUB)
    assert bed.arrived(JIUJIANG) == [("FilingRegistered", "F-1"),
                                     ("FilingRegistered", "F-2")]
    bed.put(first)                          # forty simulated days later, the same bytes
    bed.step(HUB)
    assert bed.refused(HUB) == [("MESSAGE_REPLAYED", "msgid")]
    [letter] = bed.parked()
    assert letter.msgid == first.msgid and letter.value == first.value
    assert "40 simulated days" in letter.message
    assert bed.arrived(JIUJIANG) == []      # no answer, no answer sent again
    assert bed.count("clearsim_dead_lettered_total", node=HUB, code="MESSAGE_REPLAYED") == 1
    assert bed.outcome(HUB, first.msgid) == "handled"      # it had its effect once


def test_a_message_delivered_again_soon_after_is_a_redelivery(bed):
    first = bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing("F-1"))
    bed.send(JIUJIANG, "RegisterFiling", HUB, "F-2", filing("F-2"),
             sim_time=WHEN + timedelta(days=3))
    bed.step(HUB)
    bed.arrived(JIUJIANG)
    bed.put(first)
    bed.step(HUB)
    assert bed.refused(HUB) == [] and bed.parked() == []
    assert bed.arrived(JIUJIANG) == [("FilingRegistered", "F-1")]   # its answer again


def test_hostile_messages_in_one_batch_each_refused_and_the_rest_handled(bed):
    bed.raw(HUB, b"\x00garbage")
    bed.send(JIUJIANG, "RegisterFiling", HUB, "F-1", filing(person="P" * 100))
    bed.send("hospitals-360400", "RegisterFiling", HUB, "F-2", filing("F-2"))
    bed.send(BEIJING, "ClaimSettled", HUB, "C-1", settled(total=-5))
    after = good(bed)
    assert bed.step(HUB) == 5
    assert [code for code, _ in bed.refused(HUB)] == [
        "MESSAGE_MALFORMED", "FIELD_TOO_LARGE", "SENDER_NOT_AUTHORIZED", "INVALID_AMOUNT"]
    assert [p.code for p in bed.parked()] == [code for code, _ in bed.refused(HUB)]
    assert bed.outcome(HUB, after.msgid) == "handled"
    assert bed.node(HUB).db.pending_outbox() == []        # the dead letters went out too
