"""The delivery check finds a lost message, a doubled effect, a reordered claim and a claim
left unexplained: one demo run on the in-process bus, its node databases then damaged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from clearsim.db import outbox, processed_messages
from clearsim.messages import HUB
from clearsim.sim.claims import load_claims
from clearsim.sim.scenario import load_scenario
from testbed import delivery
from testbed.runner import RunOptions, Simulation

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    scenario = load_scenario(DEMO)
    sim = Simulation(scenario, load_claims(scenario.sim.claims),
                     RunOptions(workdir=tmp_path_factory.mktemp("run"), timeout=120))
    result = sim.run()
    return sim, result


def test_a_clean_run_passes(finished):
    sim, result = finished
    assert result.delivery["ok"], result.delivery
    assert result.delivery["sent"] == result.delivery["handled"] > 300
    assert result.summary["delivery_problems"] == []


def _hub_row(sim, kind: str):
    with sim.nodes[HUB].db.engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.kind == kind)
                            .order_by(outbox.c.id)).first()


def test_it_finds_a_message_nobody_handled(finished):
    sim, result = finished
    row = _hub_row(sim, "ClaimSettled")
    receiver = sim.nodes[f"region-{row.topic.rsplit('.', 1)[-1]}"]
    with receiver.db.engine.begin() as conn:
        saved = conn.execute(select(processed_messages)
                             .where(processed_messages.c.msgid == row.msgid)).one()
        conn.execute(delete(processed_messages).where(processed_messages.c.msgid == row.msgid))
    try:
        checked = delivery.check(sim, result.claims)
        assert [m["msgid"] for m in checked.lost] == [row.msgid]
        assert "was lost" in checked.problems()[0]
    finally:
        with receiver.db.engine.begin() as conn:
            conn.execute(insert(processed_messages).values(**saved._mapping))


def test_it_finds_an_effect_counted_twice(finished):
    sim, result = finished
    row = _hub_row(sim, "ClaimSettled")
    with sim.nodes[HUB].db.engine.begin() as conn:
        copy = {k: v for k, v in row._mapping.items() if k != "id"}
        conn.execute(insert(outbox).values(**{**copy, "msgid": row.msgid + "-again",
                                              "sent_at": None}))
    try:
        checked = delivery.check(sim, result.claims)
        assert [(d["caused_by"], d["count"]) for d in checked.doubled] == [(row.caused_by, 2)]
        assert [m["msgid"] for m in checked.stuck] == [row.msgid + "-again"]
    finally:
        with sim.nodes[HUB].db.engine.begin() as conn:
            conn.execute(delete(outbox).where(outbox.c.msgid == row.msgid + "-again"))


def test_it_finds_a_claim_applied_out_of_order(finished):
    sim, result = finished
    hospitals = sim.nodes["hospitals-110000"]
    with hospitals.db.engine.connect() as conn:
        first, second = conn.execute(
            select(outbox).where(outbox.c.correlation_id == "C-001")
            .order_by(outbox.c.id)).all()[:2]
    platform = sim.nodes["region-110000"]
    with platform.db.engine.begin() as conn:
        at = conn.execute(select(processed_messages.c.received_at)
                          .where(processed_messages.c.msgid == first.msgid)).scalar_one()
        conn.execute(update(processed_messages).where(processed_messages.c.msgid == first.msgid)
                     .values(received_at=at + timedelta(days=1)))
    try:
        checked = delivery.check(sim, result.claims)
        assert [(r["correlation_id"], r["receiver"]) for r in checked.reordered] == [
            ("C-001", "region-110000")]
    finally:
        with platform.db.engine.begin() as conn:
            conn.execute(update(processed_messages)
                         .where(processed_messages.c.msgid == first.msgid)
                         .values(received_at=at))


def test_it_finds_a_claim_that_ended_nowhere(finished):
    sim, result = finished
    claims = [dict(c) for c in result.claims]
    claims[0]["status"] = "unfinished"
    checked = delivery.check(sim, claims)
    assert checked.unexplained == [{"claim_id": claims[0]["claim_id"], "status": "unfinished"}]
    sim.plan.record("pause-1", "injected", claim_id=claims[0]["claim_id"])
    assert delivery.check(sim, claims).unexplained == []
