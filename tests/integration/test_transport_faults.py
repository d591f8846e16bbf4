"""Transport faults and unavailability end to end: each fault is injected and, where it
can be, noticed with its code; every claim ends; the money is what ``clearsim settle``
says; the run's invariants hold.

Every kind on the in-process bus; on a real Kafka broker, duplicates and reorders in one
run, and the broker stopped and started again mid-run.
"""

from __future__ import annotations

from pathlib import Path

from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed.run_cli import extra_faults
from testbed.runner import RunOptions, Simulation
from tests.e2e.test_run_cli import COMPARED, assert_same_as_offline, offline_answers

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
# A short retry schedule: 80, 160, 200 ms (+ up to 20 ms each), then the fallback.
QUICK = "attempts=3,initial_ms=80,max_ms=200,jitter_ms=20"


def run_demo(tmp_path, *faults: str, kafka: str | None = None, prefix: str | None = None,
             broker=None):
    scenario = load_scenario(DEMO)
    sim = Simulation(scenario, load_claims(scenario.sim.claims), RunOptions(
        workdir=tmp_path, kafka=kafka, prefix=prefix, timeout=120, broker=broker,
        faults=extra_faults(scenario, list(faults))))
    return sim.run(), sim


def events(sim, fault: str | None = None, what: str | None = None,
           code: str | None = None) -> list:
    return [e for e in sim.plan.events(fault) if (what is None or e.what == what)
            and (code is None or e.code == code)]


def claims_of(evts) -> set[str]:
    return {e.claim_id for e in evts if e.claim_id}


def assert_sound(result) -> None:
    """Every claim at its end, every party agreeing, the invariants holding, and each
    claim settled as the offline calculator settles it."""
    assert result.summary["unfinished"] == 0
    assert result.ok, result.summary["invariant_violations"]
    assert_same_as_offline(result.claims)


def test_duplicates_reorders_delays_and_drops_change_no_money(tmp_path):
    result, sim = run_demo(tmp_path, "duplicate:link=*->hub,rate=0.5", "reorder:link=hub->*",
                           "delay:link=region-110000->hub,ms=30,jitter_ms=20",
                           "drop:link=hub->region-360400,rate=0.3")
    assert_sound(result)
    for fault in ("duplicate-1", "reorder-2", "delay-3", "drop-4"):
        assert events(sim, fault, "injected"), fault
    # Every duplicate was absorbed by its receiver's msgid check ...
    duplicated = claims_of(events(sim, "duplicate-1", "injected"))
    assert duplicated <= claims_of(events(sim, code="DUPLICATE"))
    # ... every drop noticed by its sender as not acknowledged, and resent.
    dropped = claims_of(events(sim, "drop-4", "injected"))
    assert dropped and dropped <= claims_of(events(sim, code="BROKER_UNAVAILABLE"))
    assert result.summary["rejections_by_code"] == {}


def test_a_partition_between_a_region_and_the_hub_holds_claims_and_loses_none(tmp_path):
    result, sim = run_demo(tmp_path, "partition:node=region-360400,from=2019-03-04,"
                                     "until=2019-03-06")
    assert_sound(result)
    cut = claims_of(events(sim, "partition-1", "injected"))
    # C-002 (treated in Shanghai, insured in Jiujiang) and C-003 (treated in Jiujiang).
    assert cut == {"C-002", "C-003"}
    assert cut <= claims_of(events(sim, code="BROKER_UNAVAILABLE"))


def test_a_paused_hub_resumes_and_skewed_clocks_are_noticed(tmp_path):
    result, sim = run_demo(tmp_path, "pause:node=hub,from=2019-03-04,until=2019-03-06",
                           "skew:node=hospitals-110000,seconds=-300",
                           "skew:node=region-360400,seconds=600")
    assert_sound(result)
    paused = events(sim, "pause-1")
    assert [e.what for e in paused if e.what != "injected"] == ["down", "up"]
    # The claims of the days the hub was down waited for it: C-002 and C-003.
    assert claims_of([e for e in paused if e.what == "injected"]) == {"C-002", "C-003"}
    skewed = events(sim, code="CLOCK_SKEW")
    # A clock behind notices the others' messages; a clock ahead is noticed by the others.
    assert {e.node for e in skewed} >= {"hospitals-110000", "hub"}
    assert any("from region-360400" in e.detail for e in skewed)
    # Latencies are measured on one clock: a skewed hospital's are not negative.
    assert all(c["latency_ms"] >= 0 for c in result.claims if c["latency_ms"] is not None)


def test_an_outage_is_retried_and_then_waited_out(tmp_path):
    result, sim = run_demo(tmp_path, "outage:node=region-360400,reason=year_end,"
                                     f"from=2019-03-04,until=2019-03-06,{QUICK}")
    assert_sound(result)
    timed_out = claims_of(events(sim, code="ANSWER_TIMEOUT"))
    assert timed_out == {"C-002", "C-003"}
    resent = events(sim, "outage-1", "resent")
    assert {e.claim_id for e in resent} == timed_out and len(resent) == 2 * len(timed_out)
    fallbacks = events(sim, "outage-1", "fallback")
    assert {e.claim_id for e in fallbacks} == timed_out
    assert all(e.detail.startswith("wait") for e in fallbacks)
    assert [e.what for e in events(sim, "outage-1") if e.what in ("down", "up")] == [
        "down", "up"]


def test_an_outage_sends_patients_home_and_a_late_answer_counts_nothing(tmp_path):
    """Jiujiang is down twice: C-002 (insured there) and C-003 (treated there, its platform
    down) on 4-5 March, C-011 (both) on 25 March. Their hospitals give up, reverse the
    admission and send the patients to manual reimbursement at home; when Jiujiang returns
    it answers C-011's admission, and that late answer changes nothing."""
    result, sim = run_demo(
        tmp_path,
        f"outage:node=region-360400,from=2019-03-04,until=2019-03-06,fallback=manual,{QUICK}",
        f"outage:node=region-360400,from=2019-03-25,until=2019-03-26,fallback=manual,{QUICK}")
    assert result.summary["unfinished"] == 0
    assert result.ok, result.summary["invariant_violations"]
    home = {"C-002", "C-003", "C-011"}
    assert claims_of(events(sim, code="ANSWER_TIMEOUT")) == home
    assert claims_of(events(sim, what="fallback")) == home
    by_id = {c["claim_id"]: c for c in result.claims}
    for claim_id in home:
        claim = by_id[claim_id]
        assert claim["status"] == "manual", claim
        assert set(claim["parties"].values()) <= {"manual", "refused"}, claim
        assert claim["reconciled_on"] is None and claim["paid_on"] is None
    offline = offline_answers()
    for claim_id, claim in by_id.items():
        if claim_id not in home:
            for key in COMPARED:
                if offline[claim_id]["status"] != "rejected" or key == "status":
                    assert claim[key] == offline[claim_id][key], (claim_id, key)
    assert result.summary["rejections_by_code"] == {}


def test_a_broker_down_mid_run_on_the_in_process_bus_loses_nothing(tmp_path):
    result, sim = run_demo(tmp_path, "broker_restart:from=2019-03-05,down_seconds=1.5")
    assert_sound(result)
    down = [e for e in events(sim, "broker_restart-1") if e.claim_id is None]
    assert [e.what for e in down] == ["injected", "restarted"]
    assert events(sim, code="BROKER_UNAVAILABLE")


# -- on a real Kafka broker ------------------------------------------------------------------

def test_duplicates_and_reorders_on_kafka(tmp_path, kafka_bootstrap, topic_prefix):
    result, sim = run_demo(tmp_path, "duplicate:link=*->*,rate=0.3", "reorder:link=*->*",
                           kafka=kafka_bootstrap, prefix=topic_prefix)
    assert_sound(result)
    assert events(sim, "reorder-2", "injected")
    duplicated = claims_of(events(sim, "duplicate-1", "injected"))
    assert duplicated and duplicated <= claims_of(events(sim, code="DUPLICATE"))


def test_a_broker_restart_mid_run_on_kafka(tmp_path, kafka_broker, kafka_bootstrap,
                                           topic_prefix):
    result, sim = run_demo(tmp_path, "broker_restart:from=2019-03-05,down_seconds=2",
                           kafka=kafka_bootstrap, prefix=topic_prefix, broker=kafka_broker)
    assert_sound(result)
    down = [e for e in events(sim, "broker_restart-1") if e.claim_id is None]
    assert [e.what for e in down] == ["injected", "restarted"]
