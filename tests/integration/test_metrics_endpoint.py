"""Each kind of node's metrics endpoint, scraped over HTTP after a demo run, on SQLite and on
a real PostgreSQL server: the exposition parses with prometheus-client's parser, carries
every family of the node's kind with the values the node recorded, and passes
``promtool check metrics`` (Debian's prometheus package; required under CI=true)."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clearsim.messages import HUB
from clearsim.metrics import serve_metrics
from conftest import program
from tests.unit.test_metrics_collectors import (HOSPITALS, REGION, DemoRun, check_hospitals,
                                                check_hub, check_messages, check_region,
                                                collector_of, demo_run, samples)

EVERY_NODE = {
    "clearsim_messages_received": "counter", "clearsim_messages_sent": "counter",
    "clearsim_messages_rejected": "counter", "clearsim_duplicates_absorbed": "counter",
    "clearsim_retries": "counter", "clearsim_records_fetched": "counter",
    "clearsim_consumer_lag_records": "gauge", "clearsim_message_handling_seconds": "histogram",
    "clearsim_outbox_messages": "gauge", "clearsim_claims": "gauge",
}
BY_KIND = {
    HUB: {"clearsim_reconciliation_latency_simulated_seconds": "histogram",
          "clearsim_reconciliations": "gauge", "clearsim_reconciliation_cases_open": "gauge",
          "clearsim_clearing_yuan": "gauge"},
    REGION: {"clearsim_clearing_yuan": "gauge"},
    HOSPITALS: {"clearsim_settlement_latency_seconds": "histogram",
                "clearsim_payback_latency_simulated_seconds": "histogram",
                "clearsim_receivables_yuan": "gauge"},
}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
def run(request, tmp_path_factory):
    postgres = None
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres_server").url
    run = demo_run(tmp_path_factory.mktemp(f"demo-{request.param}"), postgres=postgres)
    yield run
    run.close()


def scrape(run: DemoRun, node_id: str) -> str:
    """Serve the node's registry (its sensor's families and its collector) on a free port,
    as a node process does, and read it over HTTP."""
    registry = run.registries[node_id]
    collector = collector_of(node_id)(run.sim.nodes[node_id])
    registry.register(collector)
    server = serve_metrics(0, registry, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            return response.read().decode()
    finally:
        server.close()
        registry.unregister(collector)


def promtool_check(text: str) -> None:
    promtool = program("promtool", package="prometheus")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("node_id", [HUB, REGION, HOSPITALS])
def test_a_scraped_node_serves_every_family_of_its_kind(run, node_id):
    text = scrape(run, node_id)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    wanted = {**EVERY_NODE, **BY_KIND[node_id]}
    assert {name: families[name].type for name in wanted if name in families} == wanted
    for family in families.values():
        assert all(s.labels.get("node") == node_id for s in family.samples), family.name
    found = samples(families.values())
    check_messages(run, node_id, found)
    {HUB: lambda: check_hub(run, found),
     REGION: lambda: check_region(run, node_id, found),
     HOSPITALS: lambda: check_hospitals(run, node_id, found)}[node_id]()
    promtool_check(text)
