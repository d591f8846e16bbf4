"""A test bed of processes: every node a `clearsim node` process on the real broker, driven
by `clearsim run --processes` or by `clearsim drive`, gives the per-claim results of the
single-process run of the same scenario."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
# What each party decided about each claim; latencies and wall times differ run to run.
COMPARED = ("claim_id", "status", "total", "in_scope", "deductible", "fund_pay",
            "personal_pay", "class_c", "ratio", "tier", "policy_version", "parties", "agreed",
            "reconciled_on", "reconciliation_latency_days", "paid_on", "payback_days")


def clearsim(*args: str, timeout: float = 300, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def decisions(out: Path) -> list[dict]:
    claims = json.loads((out / "claims.json").read_text())
    return [{k: c.get(k) for k in COMPARED} for c in claims]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("single")
    done = clearsim("run", str(DEMO), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return decisions(out)


@pytest.mark.kafka
@pytest.mark.postgres
def test_run_with_every_node_a_process_on_kafka_and_postgres(
        tmp_path, kafka_bootstrap, postgres_server, single_process):
    server = postgres_server.create_database("p_" + uuid.uuid4().hex[:10])
    done = clearsim("run", str(DEMO), "--processes", "--kafka", kafka_bootstrap,
                    "--postgres", server, "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "9 nodes" in done.stdout
    assert decisions(tmp_path / "out") == single_process
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["delivery"]["ok"] and not summary["invariant_violations"]
    assert summary["messages_in"] == summary["delivery"]["handled"] > 0
    logs = sorted(p.name for p in (tmp_path / "out" / "logs").glob("*.log"))
    assert logs == sorted(["hub.log"] + [f"{kind}-{code}.log" for kind in ("region", "hospitals")
                                          for code in ("110000", "310000", "360400", "440100")])
    for log in (tmp_path / "out" / "logs").glob("*.log"):  # each stopped cleanly on SIGTERM
        text = log.read_text()
        assert "SIGTERM received" in text and "stopped after" in text, (log.name, text[-800:])


def start_node(kind: str, code: str | None, env: dict, log: Path) -> subprocess.Popen:
    args = [kind] + ([] if code is None else
                     ["--code" if kind == "region" else "--region", code])
    return subprocess.Popen([sys.executable, "-m", "testbed.cli", "node", *args, str(DEMO)],
                            cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


COMMON = {"clearsim_messages_received", "clearsim_messages_sent", "clearsim_outbox_messages",
          "clearsim_consumer_lag_records", "clearsim_message_handling_seconds",
          "clearsim_duplicates_absorbed", "clearsim_messages_rejected", "clearsim_retries"}
FAMILIES = {"hub": COMMON | {"clearsim_reconciliation_cases_open", "clearsim_clearing_yuan",
                             "clearsim_reconciliation_latency_simulated_seconds"},
            "region": COMMON | {"clearsim_clearing_yuan"},
            "hospitals": COMMON | {"clearsim_settlement_latency_seconds",
                                   "clearsim_receivables_yuan",
                                   "clearsim_payback_latency_simulated_seconds"}}


def metrics_port(log: Path) -> int:
    text = log.read_text()
    assert "metrics on port " in text, text[-800:]
    return int(text.split("metrics on port ", 1)[1].split()[0])


def scrape(port: int) -> dict:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def held_partitions(log: Path, topic_suffix: str) -> set[int]:
    """The partitions of the topic a node process said last that it held."""
    lines = [line for line in log.read_text().splitlines() if "partitions held:" in line]
    if not lines:
        return set()
    held = lines[-1].split("partitions held:", 1)[1].split(",")
    return {int(p.split("[")[1].rstrip("]")) for p in (h.strip() for h in held)
            if p.split("[")[0].endswith(topic_suffix)}


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def wait_for(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{path.name} never said {text!r}: {path.read_text()[-1500:]}")


@pytest.mark.kafka
def test_drive_nodes_started_apart_two_instances_of_a_region_and_a_restart(
        tmp_path, kafka_bootstrap, single_process):
    """Nodes configured by environment only, one region twice in its consumer group, the
    driver alone; then the hub restarted on its database and offsets takes nothing again."""
    nodes_db = tmp_path / "nodes"
    env = {"CLEARSIM_KAFKA": kafka_bootstrap, "CLEARSIM_DB": str(nodes_db),
           "CLEARSIM_PREFIX": "t" + uuid.uuid4().hex[:10], "CLEARSIM_METRICS_PORT": "0"}
    wanted = [("hub", None)] + [(kind, code) for kind in ("region", "hospitals")
                                 for code in ("110000", "310000", "360400", "440100")]
    wanted.append(("region", "110000"))         # a second instance: the group shares it
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = []
    try:
        for i, (kind, code) in enumerate(wanted):
            processes.append(start_node(kind, code, env, logs / f"{i}-{kind}-{code}.log"))
        done = clearsim("drive", str(DEMO), "--out", str(tmp_path / "out"), env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert decisions(tmp_path / "out") == single_process
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["delivery"]["ok"] and not summary["invariant_violations"]
        # The two instances of region 110000 share its topic's partitions (as they
        # said last, while both run).
        shares = [held_partitions(log, ".region.110000")
                  for log in sorted(logs.glob("*-region-110000.log"))]
        assert len(shares) == 2 and all(shares), shares
        assert not shares[0] & shares[1] and shares[0] | shares[1] == {0, 1, 2}, shares
        # Each kind of node serves its metrics; what it counted is what it recorded.
        for kind, code in wanted[:1] + wanted[4:6]:
            log = logs / f"{wanted.index((kind, code))}-{kind}-{code}.log"
            families = scrape(metrics_port(log))
            assert FAMILIES[kind] <= set(families), (kind, FAMILIES[kind] - set(families))
            node_id = "hub" if kind == "hub" else f"{kind}-{code}"
            received, again = (sum(s.value for s in families[name].samples
                                   if s.name.endswith("_total"))
                               for name in ("clearsim_messages_received",
                                            "clearsim_duplicates_absorbed"))
            with sqlite3.connect(nodes_db / f"{node_id}.db") as conn:
                handled = conn.execute("SELECT count(*) FROM processed_messages").fetchone()[0]
                policies = conn.execute("SELECT count(*) FROM region_policy_cache").fetchone(
                    )[0] if kind == "region" else 0
            # A region also takes the policy table's records, one per region; a record of
            # the table may come twice (delivered at least once: noticed and absorbed, but
            # not counted as a redelivered message), so a region may count one or two more.
            extra = received - again - handled
            assert handled > 0 and policies <= extra <= policies + 2, (
                node_id, received, again, handled, policies)
    finally:
        codes = [stop(p) for p in processes]
    assert codes == [0] * len(processes)

    hub_db = nodes_db / "hub.db"

    def counts() -> tuple[int, int]:
        with sqlite3.connect(hub_db) as conn:
            return (conn.execute("SELECT count(*) FROM processed_messages").fetchone()[0],
                    conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    before = counts()
    again = start_node("hub", None, env, logs / "hub-again.log")
    try:
        wait_for(logs / "hub-again.log", "hub: started")
        time.sleep(3)      # a hub that re-read its topic would handle and write by now
    finally:
        assert stop(again) == 0
    assert counts() == before


def test_a_node_without_a_cluster_is_refused_with_a_code(tmp_path):
    done = clearsim("node", "hub", str(DEMO), env={"CLEARSIM_KAFKA": ""})
    assert done.returncode == 2
    assert "INVALID_INPUT" in done.stderr and "--kafka" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_region_the_scenario_lacks_is_refused_with_a_code(tmp_path):
    done = clearsim("node", "region", str(DEMO), "--code", "999999", "--kafka", "127.0.0.1:1",
                    "--db", str(tmp_path))
    assert done.returncode == 2
    assert "REGION_UNKNOWN" in done.stderr and "999999" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_processes_needs_a_cluster():
    done = clearsim("run", str(DEMO), "--processes", env={"CLEARSIM_KAFKA": ""})
    assert done.returncode == 2 and "--processes" in done.stderr
