"""Person ids in what people read: masked to their last four characters, in text, in the
run's report files and in log lines."""

from __future__ import annotations

import io
import json
import logging

from clearsim.privacy import Masker, MaskingFilter, mask
from testbed.report import RunResult, render, write


def test_a_person_id_keeps_only_its_last_four_characters():
    assert mask("P360400-000123") == "**********0123"
    assert mask("P-JJ-001") == "****-001"
    assert mask("P-1") == "***"


def test_known_ids_are_masked_wherever_they_stand_and_others_after_the_word_person():
    masker = Masker(["P-JJ-001", "P360400-000123"])
    assert masker.text("P-JJ-001 paid, and so did P360400-000123.") == \
        "****-001 paid, and so did **********0123."
    # A card read wrongly gives an id no claim has: the words around it say whose it is.
    assert masker.text("person 'P-JJ-001X' is not insured in region 360400") == \
        "person '*****001X' is not insured in region 360400"
    assert masker.text("psn_no=P-9, psn_name: 王小明") == "psn_no=***, psn_name: ***"
    # What only names the field, and claim ids, stay.
    assert masker.text("jiujiang-card-person-id (field=person_id) C-001") == \
        "jiujiang-card-person-id (field=person_id) C-001"


def test_values_are_masked_through_and_through():
    masker = Masker(["P-JJ-001"])
    assert masker.value({"a": ["P-JJ-001", 3, None], "P-JJ-001": {"b": "x P-JJ-001"}}) == \
        {"a": ["****-001", 3, None], "****-001": {"b": "x ****-001"}}


def test_log_lines_are_masked_with_their_arguments_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter(Masker(["P-JJ-001"])))
    log = logging.getLogger("test-privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("hub refused %s: %s", "m1", "person P-JJ-001 is unknown")
        try:
            raise ValueError("P-JJ-001 twice")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "P-JJ-001" not in text
    assert "hub refused m1: person ****-001 is unknown" in text
    assert "ValueError: ****-001 twice" in text


def result(message: str) -> RunResult:
    claim = {"claim_id": "C-1", "status": "rejected", "total": "1.00", "in_scope": None,
             "deductible": None, "fund_pay": None, "personal_pay": None, "ratio": None,
             "tier": None, "error": {"code": "PERSON_UNKNOWN", "node": "region-360400",
                                     "field": "psn_no", "message": message},
             "parties": {"hospital": "rejected"}, "agreed": True, "latency_ms": None,
             "reconciled_on": None, "reconciliation_latency_days": None,
             "reconciliation_latency_ms": None, "paid_on": None, "payback_days": None,
             "payback_ms": None}
    summary = {"invariant_violations": [f"claim C-1: {message}"], "delivery_problems": []}
    return RunResult([claim], summary, persons=frozenset({"P-JJ-001"}))


def test_the_report_files_and_the_printed_report_mask_person_ids(tmp_path):
    run = result("person 'P-JJ-001' is not insured in region 360400")
    write(run, tmp_path)
    for path in tmp_path.iterdir():
        assert "P-JJ-001" not in path.read_text(), path.name
    [claim] = json.loads((tmp_path / "claims.json").read_text())
    assert claim["error"]["message"] == "person '****-001' is not insured in region 360400"
    assert run.claims[0]["error"]["message"].count("P-JJ-001") == 1   # the run's own record
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["invariant_violations"] == [
        "claim C-1: person '****-001' is not insured in region 360400"]


def test_the_printed_report_masks_what_it_quotes(monkeypatch):
    from testbed import report
    monkeypatch.setattr(report, "_render",
                        lambda run: "  INVARIANT VIOLATED: person P-JJ-001 counted twice")
    assert render(result("x")) == "  INVARIANT VIOLATED: person ****-001 counted twice"
