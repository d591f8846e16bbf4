"""The interface in clearsim/schemas/: national names, exact money, one header, documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clearsim.codec import Codec

SCHEMAS = Path(__file__).resolve().parents[2] / "clearsim" / "schemas"
MESSAGES = sorted(p for p in SCHEMAS.glob("*.avsc") if not p.name.startswith("clearsim."))
ALL = sorted(SCHEMAS.rglob("*.avsc"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_no_floating_point_anywhere(path):
    text = path.read_text()
    assert '"float"' not in text and '"double"' not in text


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.stem)
def test_every_message_starts_with_the_header_and_states_version_and_infno(path):
    schema = json.loads(path.read_text())
    assert schema["fields"][0] == {"name": "header", "type": "clearsim.Header"}
    assert isinstance(schema["version"], int) and schema["version"] >= 1
    assert schema["infno"].isdigit() and len(schema["infno"]) == 4


def fields(name: str) -> list[str]:
    return [f["name"] for f in json.loads((SCHEMAS / f"{name}.avsc").read_text())["fields"]]


def test_national_field_names_at_the_boundary():
    assert fields("AdmitPatient")[1:] == ["ipt_no", "mdtrt_id", "psn_no", "insutype",
                                          "insuplc_admdvs", "mdtrtarea_admvs",
                                          "fixmedins_code", "med_type", "begntime"]
    assert {"setl_id", "medfee_sumamt", "fund_pay_sumamt", "psn_cash_pay", "inscp_scp_amt",
            "act_pay_dedc", "fulamt_ownpay_amt", "preselfpay_amt"} <= set(fields("ClaimSettled"))
    assert {"stmt_begndate", "stmt_enddate", "fixmedins_setl_cnt"} <= set(fields("ReconcileTotals"))


def test_national_transaction_numbers():
    codec = Codec()
    assert {n: codec.infno(n) for n in ("AdmitPatient", "UploadCharges", "SettleClaim",
                                        "RegisterFiling", "ReconcileTotals",
                                        "ReconcileDetails")} == {
        "AdmitPatient": "2401", "UploadCharges": "2301", "SettleClaim": "2304",
        "RegisterFiling": "2501", "ReconcileTotals": "3201", "ReconcileDetails": "3202"}


def test_every_message_is_in_the_catalogue():
    readme = (SCHEMAS / "README.md").read_text()
    missing = [p.stem for p in MESSAGES if f"`{p.stem}`" not in readme]
    assert not missing
