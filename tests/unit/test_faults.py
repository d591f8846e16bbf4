"""Declaring faults: the catalogue, [[fault]] tables, --fault arguments, reproducible draws."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from clearsim.errors import ClearsimError
from clearsim.faults import KINDS, FaultPlan, parse_fault, parse_fault_arg
from clearsim.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
NODES = ["hub", "region-110000", "region-360400", "hospitals-110000"]


def fault(text: str, **kw):
    return parse_fault(parse_fault_arg(text), "--fault", index=0, seed=7, nodes=NODES, **kw)


def test_every_kind_parses_from_its_own_example():
    nodes = load_scenario(DEMO).node_ids()
    for kind in KINDS.values():
        parsed = parse_fault(parse_fault_arg(kind.example), kind.name, index=0, seed=1,
                             nodes=nodes)
        assert parsed.kind == kind.name and parsed.family == kind.family


def test_defaults_window_and_rate():
    f = fault("delay:link=region-110000->hub,from=2019-03-04,until=2019-03-06,rate=0.25")
    assert (f.get("ms"), f.get("jitter_ms"), f.rate) == (200, 100, Decimal("0.25"))
    assert [f.active_on(date(2019, 3, d)) for d in (3, 4, 5, 6)] == [False, True, True, False]
    assert f.id == "delay-1" and f.seed == 7
    assert f.on_link("region-110000", "hub") and not f.on_link("hub", "region-110000")


@pytest.mark.parametrize("text, where, what", [
    ("nosuch:node=hub", "--fault.kind", "not a fault kind"),
    ("pause:node=region-999999", "--fault.node", "no node 'region-999999'"),
    ("pause", "--fault.node", "is required"),
    ("pause:node=hub,colour=red", "--fault.colour", "unknown key"),
    ("drop:link=hub", "--fault.link", "is not FROM->TO"),
    ("drop:link=hub->nowhere", "--fault.link", "no node 'nowhere'"),
    ("drop:rate=1.5", "--fault.rate", "between 0 and 1"),
    ("drop:from=2019-03-05,until=2019-03-05", "--fault.until", "is not after"),
    ("delay:ms=soon", "--fault.ms", "must be an integer"),
    ("schema:node=hub,message=X,change=shuffle", "--fault.change", "is not one of"),
    ("policy:node=hub", "--fault.node", "region-CODE node"),
])
def test_a_bad_fault_is_refused_with_its_key_and_a_reason(text, where, what):
    with pytest.raises(ClearsimError) as refused:
        fault(text)
    assert refused.value.rejection.field == where
    assert what in refused.value.rejection.message


def test_a_pair_without_equals_sign_is_refused():
    with pytest.raises(ClearsimError, match="is not key=value"):
        parse_fault_arg("drop:rate")


def test_draws_are_reproducible_and_near_the_rate():
    f = fault("drop:rate=0.3")
    draws = [f.draws("C-%04d" % i, "AdmitPatient") for i in range(2000)]
    assert draws == [f.draws("C-%04d" % i, "AdmitPatient") for i in range(2000)]
    assert 500 < sum(draws) < 700
    other_seed = parse_fault(parse_fault_arg("drop:rate=0.3"), "x", index=0, seed=8)
    assert draws != [other_seed.draws("C-%04d" % i, "AdmitPatient") for i in range(2000)]


def test_fail_points_fire_only_at_their_node_in_their_window_and_log_it():
    f = fault("identity:node=hospitals-110000,from=2019-03-04,until=2019-03-06")
    plan = FaultPlan([f])
    here, elsewhere = plan.points(plan, "hospitals-110000"), plan.points(plan, "hub")
    assert here.fire("identity", date(2019, 3, 4), "C-1") is f
    assert here.fire("identity", date(2019, 3, 6), "C-2") is None
    assert elsewhere.fire("identity", date(2019, 3, 4), "C-3") is None
    assert [(e.what, e.claim_id, e.node) for e in plan.events()] == [
        ("injected", "C-1", "hospitals-110000")]
    plan.close()
    assert here.fire("identity", date(2019, 3, 4), "C-4") is None
    assert not FaultPlan.points(None, "hub").fire("identity", None, "C-5")


def test_scenario_faults_and_the_repair_switch(tmp_path):
    text = DEMO.read_text().replace('claims = "demo-claims.json"',
                                    f'claims = "{ROOT / "scenarios" / "demo-claims.json"}"')
    path = tmp_path / "s.toml"
    path.write_text(text + '\n[faults]\nrepair = false\n\n[[fault]]\nkind = "pause"\n'
                           'node = "hub"\nfrom = 2019-03-04\nuntil = 2019-03-05\n'
                           'id = "hub-upgrade"\n')
    scenario = load_scenario(path)
    assert scenario.repair is False
    assert [(f.id, f.kind, f.start) for f in scenario.faults] == [
        ("hub-upgrade", "pause", date(2019, 3, 4))]
    path.write_text(text + '\n[[fault]]\nkind = "pause"\nnode = "region-000000"\n')
    with pytest.raises(ClearsimError) as refused:
        load_scenario(path)
    assert refused.value.rejection.field == "fault[0].node"
    assert "no node 'region-000000'" in str(refused.value)
