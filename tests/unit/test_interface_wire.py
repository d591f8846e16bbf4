"""Interface mismatches and corrupted bytes, below the nodes: the codec's changed schemas,
the receiver's interface check, the wire rewrite and the byte damage of a run's plan."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest
from fastavro.schema import to_parsing_canonical_form

from clearsim.codec import Codec
from clearsim.errors import INTERFACE_CODES, ClearsimError, ErrorCode, interface_refusal
from clearsim.faults import FaultPlan, parse_fault, parse_fault_arg
from clearsim.messages import Outgoing
from clearsim.node import encode_outgoing
from clearsim.testing.samples import sample_record
from testbed import interface_faults

SCHEMAS = Path(__file__).resolve().parents[2] / "clearsim" / "schemas"
NODES = ("hub", "region-110000", "region-360400", "hospitals-110000")

# The version of ClaimSettled this codec reads; a changed schema is the next one.
NOW = Codec().version("ClaimSettled")


def refused(codec: Codec, data: bytes) -> ClearsimError:
    """How a receiver refuses ``data``: decoding, then the interface check."""
    with pytest.raises(ClearsimError) as err:
        name, record = codec.decode(data)
        codec.check(name, record)
    return err.value


def claim_settled(codec: Codec) -> dict:
    record = sample_record(codec, "ClaimSettled")
    record["header"].update(infno="9304", infver=3, sender="region-110000")
    return record


# -- required fields: marked outside the canonical form ---------------------------------

@pytest.mark.parametrize("path", sorted(p for p in SCHEMAS.glob("*.avsc")
                                        if not p.name.startswith("clearsim.")),
                         ids=lambda p: p.stem)
def test_marking_a_field_required_changes_no_fingerprint(path):
    codec = Codec()
    raw = json.loads(path.read_text())
    unmarked = copy.deepcopy(raw)
    for field in unmarked["fields"]:
        field.pop("required", None)
    schema = codec._parse(unmarked)
    assert schema.fingerprint == codec.fingerprint(raw["name"])
    assert "required" not in to_parsing_canonical_form(codec.parsed_reader(raw["name"]))


def test_the_identifiers_are_required_and_the_first_is_the_default_field():
    codec = Codec()
    assert codec.required("ClaimSettled")[:4] == ("setl_id", "mdtrt_id", "ipt_no", "psn_no")
    assert codec.first_required("ClaimSettled") == "setl_id"
    assert "psn_no" in codec.required("AdmitPatient")
    assert codec.required("MessageRejected") == ()          # a refusal may not know them
    assert codec.first_required("StartReconciliation") == "stmt_date"   # none marked


# -- the receiver's interface check ----------------------------------------------------

def test_a_header_with_another_transaction_s_infno_is_infno_mismatch():
    codec = Codec()
    record = claim_settled(codec)
    record["header"].update(infno="2401", infver=NOW + 1)
    err = refused(codec, codec.encode("ClaimSettled", record))
    assert err.code is ErrorCode.INFNO_MISMATCH and err.rejection.field == "infno"
    message = err.rejection.message
    assert "2401" in message and "9304" in message and "AdmitPatient" in message
    assert f"v{NOW + 1}" in message and f"v{NOW}" in message and "region-110000" in message


def test_a_required_identifier_sent_empty_is_field_required():
    codec = Codec()
    record = claim_settled(codec)
    record["psn_no"] = ""
    err = refused(codec, codec.encode("ClaimSettled", record))
    assert err.code is ErrorCode.FIELD_REQUIRED and err.rejection.field == "psn_no"
    assert "psn_no" in err.rejection.message and f"v{NOW}" in err.rejection.message


def test_an_empty_field_that_is_not_required_passes():
    codec = Codec()
    record = claim_settled(codec)
    record["tier"] = ""
    name, back = codec.decode(codec.encode("ClaimSettled", record))
    codec.check(name, back)


def test_a_sound_message_passes_the_check():
    codec = Codec()
    env = encode_outgoing(codec, "sim", Outgoing("OpenClearing", "hub", "CLR201903",
                                                 {"month": "201903"}), "t")
    codec.check(*codec.decode(env.value))


# -- changed schemas --------------------------------------------------------------------

CHANGES = [
    # change, registered, code, field named
    ("rename", True, ErrorCode.SCHEMA_INCOMPATIBLE, "psn_no"),
    ("remove", True, ErrorCode.SCHEMA_INCOMPATIBLE, "psn_no"),
    ("retype", True, ErrorCode.SCHEMA_INCOMPATIBLE, "psn_no"),
    ("rename", False, ErrorCode.SCHEMA_UNKNOWN, "fingerprint"),
    ("infno", True, ErrorCode.INFNO_MISMATCH, "infno"),
    ("empty", True, ErrorCode.FIELD_REQUIRED, "psn_no"),
]


@pytest.mark.parametrize("change,registered,code,field", CHANGES,
                         ids=[f"{c[0]}-{'registered' if c[1] else 'unregistered'}"
                              for c in CHANGES])
def test_a_changed_schema_is_refused_with_its_code_naming_field_and_versions(
        change, registered, code, field):
    codec = Codec()
    schema = codec.changed_schema("ClaimSettled", change, "psn_no")
    assert schema["version"] == NOW + 1 and codec.version("ClaimSettled") == NOW
    if registered:
        assert codec.learn(schema) == NOW + 1
    record = interface_faults.changed_record(claim_settled(codec), schema, change, "psn_no")
    err = refused(codec, codec.encode_with(schema, record))
    assert err.code is code and err.rejection.field == field
    if code is not ErrorCode.SCHEMA_UNKNOWN:
        assert f"v{NOW + 1}" in err.rejection.message and f"v{NOW}" in err.rejection.message


def test_a_compatible_change_still_flows():
    codec = Codec()
    schema = codec.changed_schema("ClaimSettled", "compatible")
    assert schema["fields"][-1]["name"] == "memo" and "default" in schema["fields"][-1]
    codec.learn(schema)
    original = claim_settled(codec)
    record = interface_faults.changed_record(original, schema, "compatible", "setl_id")
    name, back = codec.decode(codec.encode_with(schema, record))
    codec.check(name, back)
    assert "memo" not in back and back["psn_no"] == original["psn_no"]


def test_retype_picks_a_type_no_reader_promotes():
    codec = Codec()
    money = codec.changed_schema("ClaimSettled", "retype", "fund_pay_sumamt")
    [field] = [f for f in money["fields"] if f["name"] == "fund_pay_sumamt"]
    assert field["type"] == "long"                 # bytes -> string would be promoted
    number = codec.changed_schema("ClaimSettled", "retype", "policy_version")
    [field] = [f for f in number["fields"] if f["name"] == "policy_version"]
    assert field["type"] == "string"


def test_the_infno_change_names_another_interface_and_keeps_the_fingerprint():
    codec = Codec()
    schema = codec.changed_schema("ClaimSettled", "infno")
    assert schema["infno"] != "9304" and schema["infno"] in {
        codec.infno(n) for n in codec.names()}
    assert codec._of(schema).fingerprint == codec.fingerprint("ClaimSettled")


@pytest.mark.parametrize("change,field", [("rename", "no_such_field"), ("remove", "header"),
                                          ("empty", "policy_version"), ("swap", None)])
def test_a_change_that_cannot_be_made_is_refused(change, field):
    with pytest.raises(ClearsimError) as err:
        Codec().changed_schema("ClaimSettled", change, field)
    assert err.value.code is ErrorCode.INVALID_INPUT


def test_read_gives_the_record_as_written():
    codec = Codec()
    record = claim_settled(codec)
    assert codec.read(codec.encode("ClaimSettled", record)) == ("ClaimSettled", record)


def test_interface_codes():
    assert {c.value for c in INTERFACE_CODES} == {
        "MESSAGE_MALFORMED", "SCHEMA_UNKNOWN", "SCHEMA_INCOMPATIBLE", "INFNO_MISMATCH",
        "FIELD_REQUIRED"}
    assert interface_refusal({"code": "SCHEMA_INCOMPATIBLE", "message": "x"})
    assert not interface_refusal({"code": "CLAIM_STATE_INVALID"})
    assert not interface_refusal(None)


# -- the wire: rewrite and damage -------------------------------------------------------

def plan_of(*texts: str, today: date = date(2019, 3, 2)) -> FaultPlan:
    plan = FaultPlan([parse_fault(parse_fault_arg(t), "--fault", index=i, seed=7, nodes=NODES)
                      for i, t in enumerate(texts)])
    plan.today = today
    return plan


def settled_bytes(codec: Codec, claim: str = "C-1") -> bytes:
    record = claim_settled(codec)
    record["header"]["correlation_id"] = claim
    return codec.encode("ClaimSettled", record)


def test_rewrite_writes_the_sender_s_message_with_the_changed_schema_and_logs_it():
    codec = Codec()
    plan = plan_of("schema:node=region-110000,message=ClaimSettled,change=remove,"
                   "field=psn_no,until=2019-03-10")
    value = settled_bytes(codec)
    out = interface_faults.rewrite(plan, codec, "region-110000", "hub", "ClaimSettled",
                                   "C-1", value)
    err = refused(codec, out)
    assert err.code is ErrorCode.SCHEMA_INCOMPATIBLE and err.rejection.field == "psn_no"
    [event] = plan.events()
    assert (event.what, event.claim_id, event.node, event.day) == (
        "injected", "C-1", "region-110000", date(2019, 3, 2))
    assert f"v{NOW + 1}" in event.detail and "psn_no" in event.detail


@pytest.mark.parametrize("sender,kind,today", [
    ("region-360400", "ClaimSettled", date(2019, 3, 2)),    # another node
    ("region-110000", "AdmitPatient", date(2019, 3, 2)),    # another message
    ("region-110000", "ClaimSettled", date(2019, 3, 10)),   # the window is over
])
def test_rewrite_leaves_what_the_fault_does_not_strike(sender, kind, today):
    codec = Codec()
    plan = plan_of("schema:node=region-110000,message=ClaimSettled,change=rename,"
                   "until=2019-03-10", today=today)
    value = settled_bytes(codec)
    assert interface_faults.rewrite(plan, codec, sender, "hub", kind, "C-1", value) == value
    assert plan.events() == []


def test_rewrite_at_a_rate_strikes_the_same_claims_every_run():
    codec = Codec()

    def struck() -> set[str]:
        plan = plan_of("schema:node=region-110000,message=ClaimSettled,change=rename,"
                       "rate=0.5")
        return {claim for claim in (f"C-{i}" for i in range(40))
                if interface_faults.rewrite(plan, codec, "region-110000", "hub",
                                            "ClaimSettled", claim, settled_bytes(codec, claim))
                != settled_bytes(codec, claim)}
    first = struck()
    assert first == struck() and 5 < len(first) < 35


def test_an_unregistered_schema_is_not_learned():
    codec = Codec()
    plan = plan_of("schema:node=region-110000,message=ClaimSettled,change=rename,"
                   "registered=false")
    out = interface_faults.rewrite(plan, codec, "region-110000", "hub", "ClaimSettled",
                                   "C-1", settled_bytes(codec))
    assert refused(codec, out).code is ErrorCode.SCHEMA_UNKNOWN


def test_damaged_bytes_are_always_refused_and_a_resend_is_a_new_draw():
    codec = Codec()
    plan = plan_of("corrupt:link=region-110000->hub,rate=0.5,bytes=3")
    outcomes = []
    for claim in (f"C-{i}" for i in range(30)):
        value = settled_bytes(codec, claim)
        sendings = [interface_faults.damage(plan, "region-110000", "hub", "ClaimSettled",
                                            claim, f"m-{claim}", value) for _ in range(6)]
        for sent in sendings:
            if sent != value:
                assert len(sent) == len(value)
                assert sum(a != b for a, b in zip(sent, value)) == 3
                assert refused(codec, sent).code in (ErrorCode.MESSAGE_MALFORMED,
                                                     ErrorCode.SCHEMA_UNKNOWN)
        outcomes.append([sent == value for sent in sendings])
    assert any(not all(o) and any(o) for o in outcomes)     # damaged, then passed
    injected = [e for e in plan.events() if e.what == "injected"]
    assert len(injected) == sum(not ok for o in outcomes for ok in o)


def test_damage_keeps_to_its_link_and_window():
    codec = Codec()
    plan = plan_of("corrupt:link=region-110000->hub,until=2019-03-05")
    value = settled_bytes(codec)
    assert interface_faults.damage(plan, "region-360400", "hub", "ClaimSettled", "C-1", "m1",
                                   value) == value
    assert interface_faults.damage(plan, "region-110000", "hub", "ClaimSettled", "C-1", "m2",
                                   value) != value
    plan.today = date(2019, 3, 5)
    assert interface_faults.damage(plan, "region-110000", "hub", "ClaimSettled", "C-1", "m3",
                                   value) == value


# -- a fault that could never be injected, or never fall back --------------------------

@pytest.mark.parametrize("text,field", [
    ("schema:node=hub,message=NoSuchMessage", "message"),
    ("schema:node=hub,message=ClaimSettled,field=no_such", "field"),
    ("schema:node=region-360400,message=SettlementConfirmed,change=rename", "fallback"),
])
def test_validate_refuses_a_schema_fault_that_cannot_work(text, field):
    with pytest.raises(ClearsimError) as err:
        interface_faults.validate(plan_of(text), Codec())
    assert err.value.code is ErrorCode.SCENARIO_INVALID
    assert err.value.rejection.field.endswith(field)


def test_validate_accepts_hold_after_settlement_and_manual_before():
    interface_faults.validate(plan_of(
        "schema:node=region-360400,message=SettlementConfirmed,change=rename,fallback=hold",
        "schema:node=region-110000,message=ClaimSettled,change=empty,field=psn_no"), Codec())



# -- what a sender's node loop asks of the plan ----------------------------------------

def test_a_sender_learns_which_fault_explains_a_refusal_and_whether_to_keep_holding():
    plan = plan_of("schema:node=region-110000,message=ClaimSettled,fallback=hold,"
                   "from=2019-03-02,until=2019-03-05",
                   "schema:node=region-110000,message=AdmitPatient,from=2019-03-20",
                   "corrupt:link=region-110000->hub")
    points = FaultPlan.points(plan, "region-110000")
    [held, later, corrupt] = plan.faults
    assert points.explain("ClaimSettled", "hub", "C-1") is held
    assert points.explain("AdmitPatient", "hub", "C-1") is corrupt     # not begun yet
    assert points.explain("ClaimSettled", "region-360400", "C-1") is held
    assert points.holding("ClaimSettled") and not points.holding("AdmitPatient")
    plan.today = date(2019, 3, 5)
    assert not points.holding("ClaimSettled")
    assert points.explain("ClaimSettled", "hub", "C-1") is held        # its window just ended
    assert FaultPlan.points(plan, "hub").explain("ClaimSettled", "region-110000", "C") is None
    points.repair_step(held, "resent", "C-1", "SCHEMA_INCOMPATIBLE", "again")
    [event] = plan.events()
    assert (event.fault, event.what, event.node, event.day, event.code) == (
        held.id, "resent", "region-110000", date(2019, 3, 5), "SCHEMA_INCOMPATIBLE")
