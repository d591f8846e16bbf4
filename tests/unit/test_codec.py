"""Avro single-object encoding, fingerprints, evolution and refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from fastavro.schema import to_parsing_canonical_form

import clearsim.codec
from clearsim.codec import Codec, single_object_fingerprint
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.testing.samples import sample_record

SCHEMAS = Path(__file__).resolve().parents[2] / "clearsim" / "schemas"
CODEC = Codec()


def spec_crc64(data: bytes) -> int:
    """CRC-64-AVRO written out from the Avro specification, bit by bit (no table)."""
    empty = 0xC15D213AA4D7A795
    fp = empty
    for byte in data:
        fp ^= byte
        for _ in range(8):
            fp = (fp >> 1) ^ (empty if fp & 1 else 0)
    return fp


def test_the_schemas_are_the_package_s_own_resources():
    """Found with importlib.resources, not beside a source checkout: an installed package
    reads the same files (tools/wheel-check.sh proves it on a wheel)."""
    assert Path(str(clearsim.codec.SCHEMAS)) == SCHEMAS
    messages = sorted(p.stem for p in SCHEMAS.glob("*.avsc") if not p.name.startswith("clearsim."))
    assert CODEC.names() == messages and "PublishPolicy" in messages
    # history/ ships too: a v1 writer is recognised by fingerprint.
    v1 = Codec(writer_overrides={"ClaimSettled": SCHEMAS / "history" / "ClaimSettled.v1.avsc"})
    data = v1.encode("ClaimSettled", sample_record(v1, "ClaimSettled"))
    assert v1.version("ClaimSettled") == 1 and CODEC.decode(data)[0] == "ClaimSettled"


@pytest.mark.parametrize("name", CODEC.names())
def test_every_message_round_trips(name):
    record = sample_record(CODEC, name)
    data = CODEC.encode(name, record)
    assert data[:2] == b"\xc3\x01"
    assert CODEC.decode(data) == (name, record)


@pytest.mark.parametrize("name", ["AdmitPatient", "ClaimSettled", "PolicyPublished"])
def test_the_fingerprint_is_crc64_avro_of_the_expanded_canonical_form(name):
    data = CODEC.encode(name, sample_record(CODEC, name))
    canonical = to_parsing_canonical_form(CODEC._writer(name).parsed)
    assert '"name":"clearsim.Header"' in canonical   # the shared header is inside
    assert single_object_fingerprint(data) == spec_crc64(canonical.encode()).to_bytes(8, "little")


def test_spec_fingerprint_of_a_primitive_matches_the_specification_example():
    # The Avro specification: the fingerprint of the empty byte string is the constant.
    assert spec_crc64(b"") == 0xC15D213AA4D7A795


def test_money_stays_decimal_with_two_places():
    record = sample_record(CODEC, "ClaimSettled")
    record["fund_pay_sumamt"] = Decimal("7950.5")
    _, back = CODEC.decode(CODEC.encode("ClaimSettled", record))
    assert back["fund_pay_sumamt"] == Decimal("7950.50")
    assert str(back["fund_pay_sumamt"]) == "7950.50"


def test_an_amount_with_three_decimals_cannot_be_written():
    record = sample_record(CODEC, "ClaimSettled")
    record["fund_pay_sumamt"] = Decimal("7950.005")
    with pytest.raises(ClearsimError) as err:
        CODEC.encode("ClaimSettled", record)
    assert err.value.code is ErrorCode.MESSAGE_MALFORMED


def test_a_record_missing_a_field_is_refused_naming_it():
    record = sample_record(CODEC, "AdmitPatient")
    del record["psn_no"]
    with pytest.raises(ClearsimError) as err:
        CODEC.encode("AdmitPatient", record)
    assert err.value.code is ErrorCode.MESSAGE_MALFORMED
    assert err.value.rejection.field == "psn_no"


def test_compatible_evolution_old_writer_new_reader_fills_the_default():
    old = Codec(writer_overrides={"SettleClaim": SCHEMAS / "history" / "SettleClaim.v1.avsc"})
    record = sample_record(old, "SettleClaim")
    assert "acct_used_flag" not in record and old.version("SettleClaim") == 1
    name, back = CODEC.decode(old.encode("SettleClaim", record))
    assert name == "SettleClaim" and back["acct_used_flag"] == "0"
    assert back["medfee_sumamt"] == record["medfee_sumamt"]


def test_compatible_evolution_new_writer_old_reader_drops_the_field(tmp_path):
    old_dir = tmp_path / "schemas"
    old_dir.mkdir()
    for path in SCHEMAS.glob("*.avsc"):
        (old_dir / path.name).write_text(path.read_text())
    (old_dir / "SettleClaim.avsc").write_text((SCHEMAS / "history" / "SettleClaim.v1.avsc")
                                              .read_text())
    old_reader = Codec(old_dir, known_writers=[SCHEMAS / "SettleClaim.avsc"])
    record = sample_record(CODEC, "SettleClaim")
    _, back = old_reader.decode(CODEC.encode("SettleClaim", record))
    assert "acct_used_flag" not in back and back["ipt_no"] == record["ipt_no"]


def test_an_unknown_fingerprint_is_schema_unknown():
    data = b"\xc3\x01" + bytes(8) + b"\x00"
    with pytest.raises(ClearsimError) as err:
        CODEC.decode(data)
    assert err.value.code is ErrorCode.SCHEMA_UNKNOWN
    assert err.value.rejection.field == "fingerprint"
    assert "0000000000000000" in err.value.rejection.message


def _changed(name: str, field: str, new_type, version: int = 7, default=None) -> dict:
    schema = json.loads((SCHEMAS / f"{name}.avsc").read_text())
    for f in schema["fields"]:
        if f["name"] == field:
            f["type"] = new_type
    schema["version"] = version
    return schema


def test_a_changed_field_type_is_schema_incompatible_naming_field_and_versions():
    broken = _changed("AdmitPatient", "psn_no", "long")
    writer = Codec(writer_overrides={"AdmitPatient": broken})
    record = sample_record(writer, "AdmitPatient")
    reader = Codec(known_writers=[broken])
    with pytest.raises(ClearsimError) as err:
        reader.decode(writer.encode("AdmitPatient", record))
    assert err.value.code is ErrorCode.SCHEMA_INCOMPATIBLE
    assert err.value.rejection.field == "psn_no"
    assert "v7" in err.value.rejection.message and "v1" in err.value.rejection.message


def test_a_new_required_field_without_default_in_the_reader_is_incompatible(tmp_path):
    newer = json.loads((SCHEMAS / "AdmitPatient.avsc").read_text())
    newer["fields"].append({"name": "dise_codg", "type": "string"})
    newer["version"] = 2
    new_dir = tmp_path / "schemas"
    new_dir.mkdir()
    for path in SCHEMAS.glob("*.avsc"):
        (new_dir / path.name).write_text(path.read_text())
    (new_dir / "AdmitPatient.avsc").write_text(json.dumps(newer))
    with pytest.raises(ClearsimError) as err:
        Codec(new_dir, known_writers=[SCHEMAS / "AdmitPatient.avsc"]).decode(CODEC.encode("AdmitPatient", sample_record(CODEC, "AdmitPatient")))
    assert err.value.code is ErrorCode.SCHEMA_INCOMPATIBLE
    assert err.value.rejection.field == "dise_codg"


@pytest.mark.parametrize("garbage", [b"", b"{}", b"\xc3\x01" + b"\x00" * 3])
def test_garbage_is_malformed(garbage):
    with pytest.raises(ClearsimError) as err:
        CODEC.decode(garbage)
    assert err.value.code is ErrorCode.MESSAGE_MALFORMED


def test_a_truncated_body_is_malformed():
    data = CODEC.encode("AdmitPatient", sample_record(CODEC, "AdmitPatient"))
    with pytest.raises(ClearsimError) as err:
        CODEC.decode(data[:20])
    assert err.value.code is ErrorCode.MESSAGE_MALFORMED
