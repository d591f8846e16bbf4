"""The floor benchmark runs, and says what it could not measure (no timing asserted here:
speed figures live in benchmarks/)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from benchmarks import floor
from benchmarks.figures import Env
from clearsim.codec import Codec

ROOT = Path(__file__).resolve().parents[2]
ASSEMBLE = ROOT / "tools" / "kafka" / "assemble.sh"

MEASURED = [
    "codec encode", "codec decode", "raw fastavro encode", "raw fastavro decode",
    "outbound message (header, wire names, encode)",
    "inbound message (decode, check, wire names)",
    "transaction per message, SQLite, row at a time (UnitOfWork, today)",
    "transaction per message, SQLite, one executemany per batch",
    "transaction per message, SQLite, raw DBAPI",
    "per-message floor",
]


def test_without_a_broker_or_a_server_the_floor_measures_the_codec_and_sqlite(tmp_path):
    figures = floor.measure(Env(quick=True, workdir=tmp_path))
    by = {f.name: f for f in figures}
    assert len(by) == len(figures) and {f.section for f in figures} == {"floor"}
    for name in MEASURED:
        assert by[name].value > 0, name
    for name in (set(by) - set(MEASURED)):       # PostgreSQL and Kafka: none in this run
        assert by[name].value is None and by[name].note, name
    encode = by["codec encode"]
    assert encode.floor == by["raw fastavro encode"].value
    assert encode.detail["mean_bytes"] > 0 and "ClaimSettled" in encode.detail["per_kind"]
    # Three costs added per message: the whole is cheaper than none of its parts.
    parts = [by[name].value for name in by["per-message floor"].detail["combined"]]
    assert by["per-message floor"].value < min(parts)
    assert not list(tmp_path.glob("floor-sqlite/*"))     # its databases are cleaned away


def test_the_sample_is_a_claims_messages_as_a_node_receives_them():
    codec = Codec()
    samples = floor.sample_messages(codec, 2)
    assert len(samples) == 2 * 15
    assert [s.kind for s in samples[:15]] == [
        "SubmitClaim", "AdmitPatient", "AdmitPatient", "AdmitPatient", "AdmissionVerified",
        "AdmissionVerified", "AdmissionAnswered", "UploadCharges", "ChargesAnswered",
        "SettleClaim", "ClaimSettled", "ClaimSettled", "SettlementConfirmed",
        "SettlementConfirmed", "SettlementAnswered"]
    for sample in samples:
        kind, record = codec.decode(sample.value)
        codec.check(kind, record)                # the interface's own checks pass
        assert kind == sample.kind and record["header"]["recipient"] == sample.out.to
    settled = next(s for s in samples if s.kind == "ClaimSettled")
    assert settled.record["fund_pay_sumamt"] + settled.record["psn_cash_pay"] == \
        settled.record["medfee_sumamt"]


PRODUCED = """\
100001 records sent, 20000.2 records/sec (6.20 MB/sec), 5.3 ms avg latency, 210.0 ms max latency.
200000 records sent, 53390.282968 records/sec (11.20 MB/sec), 784.72 ms avg latency, \
1035.00 ms max latency, 882 ms 50th, 982 ms 95th, 1012 ms 99th, 1033 ms 99.9th.
"""
CONSUMED = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-23 13:46:27:881, 2026-11-23 13:46:30:002, 41.9617, 19.7839, 200000, 94295.1438, \
797, 1324, 31.6931, 151057.4018
"""


def test_kafka_s_tools_are_read_from_what_they_print():
    produced = floor.parse_producer(PRODUCED)
    assert (produced["records"], produced["records_s"], produced["mib_s"]) == \
        (200000, 53390.282968, 11.20)
    assert (produced["latency_avg_ms"], produced["latency_p99_ms"]) == (784.72, 1012)
    consumed = floor.parse_consumer(CONSUMED)
    assert (consumed["records"], consumed["records_s"], consumed["rebalance_ms"]) == \
        (200000, 151057.4018, 797)
    with pytest.raises(RuntimeError, match="no summary"):
        floor.parse_producer("Exception in thread main")
    with pytest.raises(RuntimeError, match="no figures"):
        floor.parse_consumer("WARNING: Exiting before consuming the expected number")


FAKE_MVN = """#!/usr/bin/env bash
# Stands in for Maven: notes its call and copies one jar, named after the pom's artifact.
echo "$*" >>"$MVN_CALLS"
for arg in "$@"; do
  case $arg in -DoutputDirectory=*) out=${arg#*=} ;; -Dkafka.version=*) version=${arg#*=} ;; esac
done
case "$*" in
  *tools-pom.xml*) touch "$out/kafka-tools-$version.jar" ;;
  *) touch "$out/kafka_2.13-$version.jar" ;;
esac
"""


def _assemble(tmp_path: Path, *args: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("mvn", FAKE_MVN), ("java", "#!/bin/sh\nexit 0\n")):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "CLEARSIM_CACHE": str(tmp_path / "cache"), "MVN_CALLS": str(tmp_path / "calls")}
    done = subprocess.run(["bash", str(ASSEMBLE), *args], capture_output=True, text=True,
                          env=env, check=True)
    return done.stdout.strip()


def _calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_a_cache_assembled_before_the_tools_gets_them_and_keeps_its_broker(tmp_path):
    version = re.search(r"<kafka.version>(.*)</kafka.version>",
                              (ROOT / "tools" / "kafka" / "pom.xml").read_text()).group(1)
    libs = tmp_path / "cache" / f"kafka-{version}" / "libs"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{version}.jar").touch()
    (libs / ".complete").touch()                 # as the broker's cache has always been stamped

    assert _assemble(tmp_path) == str(libs) and _calls(tmp_path) == []
    tools = Path(_assemble(tmp_path, "--tools"))
    assert tools == libs.parent / "tools" and (tools / f"kafka-tools-{version}.jar").exists()
    assert len(_calls(tmp_path)) == 1 and "tools-pom.xml" in _calls(tmp_path)[0]
    assert _assemble(tmp_path, "--tools") == str(tools) and len(_calls(tmp_path)) == 1

    (tools / ".complete").write_text("a tools-pom.xml of before")   # the pom changed since
    assert _assemble(tmp_path, "--tools") == str(tools) and len(_calls(tmp_path)) == 2
    assert sorted(p.name for p in libs.iterdir()) == [".complete", f"kafka_2.13-{version}.jar"]


# -- on real servers (marked kafka / postgres by their fixtures: make test runs them) --------

def test_on_a_real_broker_kafka_s_tools_and_kafka_python_measure(kafka_bootstrap, tmp_path):
    env = Env(quick=True, workdir=tmp_path, kafka=kafka_bootstrap)
    samples = floor.sample_messages(Codec(), 2)
    java = {f.name: f for f in floor.measure_kafka_tools(env, floor.QUICK, 300)}
    for name in ("Kafka ProducerPerformance", "Kafka ProducerPerformance latency p99 (full speed)",
                 "Kafka ConsumerPerformance"):
        assert java[name].value > 0, java[name].note
    assert java["Kafka ProducerPerformance latency p99 (half speed)"].value is None  # quick
    python = floor.measure_kafka_python(env, floor.QUICK, samples, {"produce": 1, "consume": 1})
    for figure in python:
        assert figure.value > 0, figure.note
    assert python[0].detail["producer"]["acks"] == -1                  # all, as KafkaBus asks


def test_on_a_real_postgresql_server_the_three_transactions_measure(postgres_server):
    figures = floor.measure_postgres(floor.sample_messages(Codec(), 2), floor.QUICK,
                                     postgres_server.url)
    assert [f.name for f in figures] == [f"transaction per message, PostgreSQL, {label}"
                                         for label in floor.TX_NAMES.values()]
    for figure in figures:
        assert figure.value > 0 and figure.detail["messages"] > 0, figure.note
