"""`clearsim run --metrics-port`: while a single-process run lasts, every node's families
are served on one port, each sample labelled with its node."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_serves_every_nodes_metrics_while_it_lasts(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "testbed.cli", "run", str(DEMO),
                                "--workload", "--days", "300", "--quiet", "--metrics-port",
                                str(port), "--out", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nodes: set[str] = set()
        received = 0.0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except (URLError, ConnectionError):
                time.sleep(0.3)
                continue
            families = {f.name: f for f in text_string_to_metric_families(text)}
            samples = families["clearsim_messages_received"].samples
            nodes = {s.labels["node"] for s in samples}
            received = sum(s.value for s in samples if s.name.endswith("_total"))
            if len(nodes) == 9 and "clearsim_receivables_yuan" in families:
                break
            time.sleep(0.3)
        assert len(nodes) == 9, nodes       # the hub, 4 regions, 4 hospital nodes
        assert received > 0
    finally:
        process.terminate()
        process.communicate(timeout=60)
