"""Each node package's collector, on the nodes of a demo run built in-process: what it reads
from the node's own database at scrape time agrees with the node's read model and with the
run's report (latencies, receivables, clearing), money to the fen."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import delete, func, select

from clearsim.db import processed_messages, rejections, sent_messages
from clearsim.messages import HUB, hospitals_node, region_node
from clearsim.metrics import DAY, FanOutSensor, PrometheusSensor
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from hospital_node import metrics as hospital_metrics
from hospital_node import queries as hospital_queries
from hub import metrics as hub_metrics
from hub import queries as hub_queries
from hub.tables import CaseState, cases
from region_node import metrics as region_metrics
from region_node import queries as region_queries
from testbed.report import AGEING, horizon
from testbed.runner import RunOptions, Simulation

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"

REGION = region_node("360400")
HOSPITALS = hospitals_node("110000")     # Beijing's hospitals: still owed money on 31 March
NODES = (HUB, REGION, HOSPITALS)


def collector_of(node_id: str):
    if node_id == HUB:
        return hub_metrics.collector
    if node_id.startswith(region_node("")):
        return region_metrics.collector
    return hospital_metrics.collector


@dataclass
class DemoRun:
    sim: Simulation
    result: object
    registries: dict[str, CollectorRegistry]   # per node of NODES: its sensor's families

    def query(self, node_id: str, query, *args):
        return self.sim.query(node_id, query, *args)

    def close(self) -> None:
        for node in self.sim.nodes.values():
            node.db.dispose()


def demo_run(workdir: Path, postgres: str | None = None) -> DemoRun:
    """The demo, with a Prometheus sensor of its own for each node of ``NODES``."""
    scenario = load_scenario(DEMO)
    registries = {node_id: CollectorRegistry() for node_id in NODES}
    sensor = FanOutSensor(*(PrometheusSensor(registry, node=node_id)
                            for node_id, registry in registries.items()))
    sim = Simulation(scenario, load_claims(scenario.sim.claims), RunOptions(
        workdir=workdir, postgres=postgres, sensor=sensor, timeout=120))
    result = sim.run()
    assert result.ok, result.summary["invariant_violations"]
    return DemoRun(sim, result, registries)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = demo_run(tmp_path_factory.mktemp("demo"))
    yield run
    run.close()


def samples(families) -> dict[tuple[str, frozenset], float]:
    """Every sample, by its name and labels (``node`` left out)."""
    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if k != "node")): s.value
            for family in families for s in family.samples}


def of(found: dict, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def by_label(found: dict, name: str, label: str) -> dict[str, float]:
    return {dict(key)[label]: value for (n, key), value in found.items() if n == name}


def check_histogram(found: dict, name: str, values: list[float], slack: float = 0.0,
                    **labels) -> None:
    """The histogram ``name`` holds exactly ``values`` (each known to within ``slack``)."""
    assert of(found, f"{name}_count", **labels) == len(values)
    assert of(found, f"{name}_sum", **labels) == pytest.approx(sum(values),
                                                                abs=slack * len(values) + 1e-9)
    buckets = {key: value for key, value in found.items() if key[0] == f"{name}_bucket"}
    assert buckets
    for (_, key), count in buckets.items():
        bound = float(dict(key)["le"])
        assert sum(v <= bound - slack for v in values) <= count <= sum(
            v <= bound + slack for v in values), (name, bound)


# -- checks shared with the test that scrapes a served node (tests/integration) ------------

def check_messages(run: DemoRun, node_id: str, found: dict) -> None:
    """What the sensor counted is what the node's database recorded it handled and sent."""
    node = run.sim.nodes[node_id]
    with node.db.engine.connect() as conn:
        processed = Counter(conn.execute(select(processed_messages.c.kind)).scalars())
        handled = Counter(conn.execute(select(processed_messages.c.kind).where(
            processed_messages.c.outcome == "handled")).scalars())
        sent = Counter(row.kind for row in sent_messages(conn))
        refused = dict(conn.execute(select(rejections.c.code, func.count())
                                    .group_by(rejections.c.code)).all())
    received = by_label(found, "clearsim_messages_received_total", "kind")
    duplicates = by_label(found, "clearsim_duplicates_absorbed_total", "kind")
    assert processed
    assert {kind: n for kind, n in received.items() if kind not in node.tables} == {
        kind: n + duplicates.get(kind, 0) for kind, n in processed.items()}
    assert by_label(found, "clearsim_message_handling_seconds_count", "kind") == handled
    assert by_label(found, "clearsim_messages_sent_total", "kind") == sent   # each sent once
    assert by_label(found, "clearsim_messages_rejected_total", "code") == refused
    assert set(by_label(found, "clearsim_retries_total", "reason").values()) == {0}
    assert of(found, "clearsim_records_fetched_total") >= sum(received.values())
    assert of(found, "clearsim_consumer_lag_records") == 0
    assert of(found, "clearsim_outbox_messages", state="unsent") == 0
    assert of(found, "clearsim_outbox_messages", state="held") == 0


def check_hub(run: DemoRun, found: dict) -> None:
    records = run.query(HUB, hub_queries.claim_records)
    assert by_label(found, "clearsim_claims", "state") == Counter(r["state"] for r in records)
    days = [r["reconciliation_latency_days"] for r in run.result.claims
            if r["reconciliation_latency_days"] is not None]
    assert days
    check_histogram(found, "clearsim_reconciliation_latency_simulated_seconds",
                    [d * DAY for d in days])
    states = Counter()
    for day in run.sim.settled_days():
        states.update(run.query(HUB, hub_queries.reconciliation_states, day).values())
    assert by_label(found, "clearsim_reconciliations", "state") == states
    open_cases = Counter(c["region"] for c in run.query(HUB, hub_queries.reconciliation_cases)
                         if c["state"] == CaseState.OPEN)
    assert by_label(found, "clearsim_reconciliation_cases_open", "region") == {
        code: open_cases.get(code, 0) for code in run.sim.topology.regions}
    expected = {(row["region"], row["setlym"], flow): row[flow] / 100
                for row in run.result.statements
                for flow in ("payable", "receivable", "paid", "disbursed")
                if row[flow] is not None}
    assert expected
    assert {(dict(key)["region"], dict(key)["month"], dict(key)["flow"]): value
            for (name, key), value in found.items()
            if name == "clearsim_clearing_yuan"} == expected


def check_region(run: DemoRun, node_id: str, found: dict) -> None:
    code = node_id.removeprefix(region_node(""))
    claims = Counter(("treating", r["state"]) for r in run.query(
        node_id, region_queries.treated_records))
    claims.update(("insuring", r["state"]) for r in run.query(
        node_id, region_queries.insured_records))
    assert {(dict(key)["role"], dict(key)["state"]): value for (name, key), value
            in found.items() if name == "clearsim_claims"} == claims
    flows = ("payable", "receivable", "disbursed", "paid_to_hospitals")
    expected = {(row["setlym"], flow): row[flow] / 100 for row in run.result.statements
                if row["region"] == code for flow in flows if row[flow] is not None}
    assert expected
    assert {(dict(key)["month"], dict(key)["flow"]): value for (name, key), value
            in found.items() if name == "clearsim_clearing_yuan"
            and dict(key)["region"] == code} == expected


def check_hospitals(run: DemoRun, node_id: str, found: dict) -> None:
    records = run.query(node_id, hospital_queries.claim_records)
    assert by_label(found, "clearsim_claims", "state") == Counter(r["state"] for r in records)
    ours = {r["claim_id"] for r in records}
    results = [r for r in run.result.claims if r["claim_id"] in ours]
    latencies = [r["latency_ms"] / 1000 for r in results if r["latency_ms"] is not None]
    assert latencies
    check_histogram(found, "clearsim_settlement_latency_seconds", latencies, slack=0.002)
    paybacks = [r["payback_days"] * DAY for r in results if r["payback_days"] is not None]
    assert paybacks
    check_histogram(found, "clearsim_payback_latency_simulated_seconds", paybacks)


def receivables_on(records: list[dict], day) -> dict[tuple[str, str], int]:
    """What the fund owes each hospital on ``day``, by age (fen), worked out from the
    hospitals' own read model: every hospital and age, zero included."""
    owed = {(r["hospital"], name): 0 for r in records for name, _ in AGEING}
    for r in records:
        admitted = r["admitted_at"].date()
        if r["state"] != "settled" or admitted > day or (r["paid_on"] and r["paid_on"] <= day):
            continue
        age = (day - admitted).days
        owed[(r["hospital"], next(name for name, most in AGEING
                                  if most is None or age <= most))] += r["fund_pay"]
    return owed


def receivables(found: dict) -> dict[tuple[str, str], float]:
    return {(dict(key)["hospital"], dict(key)["age"]): value for (name, key), value
            in found.items() if name == "clearsim_receivables_yuan"}


# -- the collectors on the demo's nodes --------------------------------------------------

def collect(run: DemoRun, node_id: str, **options) -> dict:
    return samples(collector_of(node_id)(run.sim.nodes[node_id], **options).collect())


def test_the_sensor_counted_what_each_node_recorded(run):
    for node_id in NODES:
        check_messages(run, node_id, {**samples(run.registries[node_id].collect()),
                                      **collect(run, node_id)})


def test_the_hub_reports_its_claims_reconciliation_and_clearing(run):
    check_hub(run, collect(run, HUB))


def test_an_open_case_is_counted_for_its_region_until_it_is_closed(run):
    node = run.sim.nodes[HUB]
    day = min(run.sim.settled_days())
    with node.db.engine.begin() as conn:
        conn.execute(cases.insert().values(
            case_id="T-CASE-1", statement_date=day, region="310000", settlement_id="S-T",
            claim_id=None, cause="missing", owner="hub", repair="resend",
            state=CaseState.OPEN))
    try:
        found = collect(run, HUB)
        assert of(found, "clearsim_reconciliation_cases_open", region="310000") == 1
        assert of(found, "clearsim_reconciliation_cases_open", region="110000") == 0
    finally:
        with node.db.engine.begin() as conn:
            conn.execute(delete(cases).where(cases.c.case_id == "T-CASE-1"))
    assert of(collect(run, HUB), "clearsim_reconciliation_cases_open", region="310000") == 0


def test_a_region_reports_its_claims_in_both_roles_and_its_clearing(run):
    for code in run.sim.topology.regions:
        node_id = region_node(code)
        check_region(run, node_id, collect(run, node_id))


def test_the_hospitals_report_their_claims_and_the_latencies_of_the_report(run):
    for code in run.sim.topology.hospitals:
        node_id = hospitals_node(code)
        if run.query(node_id, hospital_queries.claim_records):
            check_hospitals(run, node_id, collect(run, node_id))


def test_receivables_on_the_report_day_are_the_reports(run):
    on = horizon(run.sim)
    by_hospital, by_age = Counter(), Counter()
    for code in run.sim.topology.hospitals:
        node_id = hospitals_node(code)
        found = receivables(collect(run, node_id, as_of=lambda: on))
        expected = receivables_on(run.query(node_id, hospital_queries.claim_records), on)
        assert found == {key: fen / 100 for key, fen in expected.items()}
        for (hospital, age), value in found.items():
            by_hospital[hospital] += value
            by_age[age] += value
    summary = run.result.summary
    assert {h: f"{v:.2f}" for h, v in by_hospital.items() if v} == \
        summary["receivables_by_hospital"]
    assert {age: f"{v:.2f}" for age, v in by_age.items()} == \
        summary["receivables_ageing_days"]
    assert sum(by_age.values()) > 0


def test_receivables_are_aged_on_the_latest_day_in_the_hospitals_records(run):
    records = run.query(HOSPITALS, hospital_queries.claim_records)
    appeals = [r["appeal_decided_on"] for r in run.query(HOSPITALS,
                                                         hospital_queries.settled_claims)]
    latest = max(day for day in [*appeals, *(d for r in records for d in (
        r["admitted_at"].date(), r["settled_on"], r["paid_on"], r["refused_on"]))]
        if day is not None)
    found = receivables(collect(run, HOSPITALS))
    assert found == {key: fen / 100 for key, fen in receivables_on(records, latest).items()}
    # A day earlier than any payback: everything settled by then is still owed.
    early = receivables(collect(run, HOSPITALS, as_of=lambda: latest - timedelta(days=40)))
    assert early == {key: fen / 100 for key, fen in
                     receivables_on(records, latest - timedelta(days=40)).items()}
