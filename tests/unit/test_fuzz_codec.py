"""Fuzzing what a node reads (hypothesis, a bounded number of examples): random bytes,
truncations and bit flips of every valid message, and random bodies behind a known
fingerprint, taken the way the node loop takes them (decode, the interface checks, the
translation to clearsim's words). Each ends in a value or a ``ClearsimError`` with a code:
never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clearsim import wire
from clearsim.codec import MARKER, Codec
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import Outgoing
from clearsim.node import encode_outgoing
from clearsim.testing.samples import sample_record

CODEC = Codec()
KINDS = CODEC.names()
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def valid(kind: str) -> bytes:
    """A valid message of ``kind``, as a node writes it."""
    national = {k: v for k, v in sample_record(CODEC, kind).items() if k != "header"}
    body = wire.translator(CODEC).inbound(kind, national)
    return encode_outgoing(CODEC, "region-110000", Outgoing(kind, "hub", "C-1", body),
                           "fuzz").value


VALID = {kind: valid(kind) for kind in KINDS}


def take(data: bytes) -> None:
    """What the node loop does with a record's bytes before any handler: a ClearsimError
    with a code, or a message in clearsim's words."""
    try:
        kind, record = CODEC.decode(data)
        CODEC.check(kind, record)
        body = {k: v for k, v in record.items() if k != "header"}
        wire.translator(CODEC).inbound(kind, body)
    except ClearsimError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.rejection.message
        assert len(exc.rejection.message) < 10_000


@SETTINGS
@given(st.binary(max_size=4096))
@example(b"")
@example(MARKER)
@example(MARKER + b"\x00" * 8)
def test_random_bytes(data):
    take(data)


@SETTINGS
@given(st.sampled_from(KINDS), st.binary(max_size=2048))
def test_a_known_fingerprint_then_random_bytes(kind, body):
    take(VALID[kind][:10] + body)


@SETTINGS
@given(st.sampled_from(KINDS), st.data())
def test_every_truncation_of_a_valid_message(kind, data):
    whole = VALID[kind]
    cut = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
    take(whole[:cut])


@SETTINGS
@given(st.sampled_from(KINDS), st.data())
def test_bit_flips_in_a_valid_message(kind, data):
    damaged = bytearray(VALID[kind])
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        bit = data.draw(st.integers(min_value=0, max_value=len(damaged) * 8 - 1))
        damaged[bit // 8] ^= 1 << (bit % 8)
    take(bytes(damaged))


@SETTINGS
@given(st.sampled_from(KINDS), st.data())
def test_bytes_inserted_into_a_valid_message(kind, data):
    whole = VALID[kind]
    at = data.draw(st.integers(min_value=10, max_value=len(whole)))
    take(whole[:at] + data.draw(st.binary(min_size=1, max_size=64)) + whole[at:])


def test_every_valid_message_is_still_read():
    for kind, data in VALID.items():
        assert CODEC.decode(data)[0] == kind
        take(data)
