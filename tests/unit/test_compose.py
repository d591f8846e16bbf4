"""compose/ is for machines with a Docker engine; here it is checked as YAML and wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_compose_file_wires_kafka_postgres_and_the_demo():
    spec = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    services = spec["services"]
    assert set(services) == {"kafka", "postgres", "demo"}
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    demo = services["demo"]
    assert (ROOT / "compose" / demo["build"]["dockerfile"].split("/")[-1]).exists()
    command = demo["command"]
    assert command[:3] == ["clearsim", "run", "scenarios/demo.toml"]
    assert (ROOT / command[2]).exists()
    assert command[command.index("--kafka") + 1] == "kafka:9092"
    assert set(demo["depends_on"]) == {"kafka", "postgres"}


def test_the_image_copies_every_package_the_project_installs():
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    for part in ("clearsim", "hub", "region_node", "hospital_node", "testbed", "scenarios"):
        assert f"COPY {part} {part}" in dockerfile
    assert "COPY schemas" not in dockerfile      # the schemas ship inside clearsim/
