"""The boundary: national names on the wire, English inside, money as fen inside."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from clearsim import wire
from clearsim.codec import Codec
from clearsim.testing.samples import sample_record

CODEC = Codec()


@pytest.mark.parametrize("kind", CODEC.names())
def test_every_message_round_trips_through_its_english_form(kind):
    record = sample_record(CODEC, kind)
    header = record.pop("header")
    inside = wire.translator(CODEC).inbound(kind, record)
    for name in inside:
        assert name not in wire.ENGLISH, f"{kind}: national name {name!r} reached the inside"
    back = wire.translator(CODEC).outbound(kind, inside)
    assert back == record
    CODEC.encode(kind, {"header": header, **back})   # and it is still a valid message


def test_money_is_fen_inside_and_decimal_on_the_wire():
    t = wire.translator(CODEC)
    body = {"setl_id": "S1", "mdtrt_id": "M1", "ipt_no": "C-1", "infcode": 0,
            "medfee_sumamt": Decimal("17000.00"), "fund_pay_sumamt": Decimal("7950.00"),
            "psn_cash_pay": Decimal("9050.00"), "acct_pay": Decimal("0.00"), "error": None}
    inside = t.inbound("SettlementAnswered", body)
    assert inside == {"settlement_id": "S1", "visit_id": "M1", "admission_no": "C-1",
                      "result_code": 0, "total": 1_700_000, "fund_pay": 795_000,
                      "personal_pay": 905_000, "account_pay": 0, "error": None}
    assert t.outbound("SettlementAnswered", inside) == body


def test_the_2401_spelling_slip_stays_at_the_edge():
    t = wire.translator(CODEC)
    admit = sample_record(CODEC, "AdmitPatient")
    admit.pop("header")
    filing = sample_record(CODEC, "RegisterFiling")
    filing.pop("header")
    assert "mdtrtarea_admvs" in admit and "mdtrtarea_admdvs" in filing
    assert "treating_region" in t.inbound("AdmitPatient", admit)
    assert "treating_region" in t.inbound("RegisterFiling", filing)
    assert t.outbound("AdmitPatient", t.inbound("AdmitPatient", admit)) == admit


def test_names_that_would_collide_inside_are_refused():
    schema = {"type": "record", "name": "X", "fields": [
        {"name": "mdtrtarea_admvs", "type": "string"},
        {"name": "mdtrtarea_admdvs", "type": "string"}]}
    with pytest.raises(ValueError, match="treating_region"):
        wire._compile(schema, {}, True, "X")


def test_the_interface_readme_prints_the_table_of_names():
    readme = (Path(wire.__file__).parent / "schemas" / "README.md").read_text()
    printed = dict(re.findall(r"^\| `(\w+)` \| `(\w+)` \|$", readme, re.M))
    assert printed == wire.ENGLISH


def test_an_error_names_the_field_as_the_kind_spells_it_on_the_wire():
    assert wire.national("treating_region", "AdmitPatient") == "mdtrtarea_admvs"
    assert wire.national("treating_region", "RegisterFiling") == "mdtrtarea_admdvs"
    assert wire.national("person_id", "ClaimSettled") == "psn_no"
    assert wire.national("catalog_code") == "med_list_codg"      # a nested field, any kind
