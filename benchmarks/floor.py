"""The machine's floor: what the codec, the database, the broker and its Python client can do
here, measured in the same run as clearsim's own figures, so each of those is read beside it.

    .venv/bin/python benchmarks/floor.py [--quick] [--kafka local|HOST:PORT]
                                         [--postgres local|URL] [--json PATH]

1. The codec on a claim's messages as the nodes write them (one cross-region claim's path,
   admission to settlement, built from the demo scenario's workload), beside raw fastavro
   (``schemaless_writer`` / ``schemaless_reader`` with the parsed schema) on the same records.
2. A node's minimal transaction per message on the core tables (the msgid check, one outbox
   row, one processed row, a commit per batch of 200): row at a time through ``UnitOfWork``
   as the node does it today, one executemany per batch, and the raw DBAPI; SQLite (a file
   in the work directory) and PostgreSQL when the run has a server.
3. Apache Kafka's own ``ProducerPerformance`` / ``ConsumerPerformance`` (the tools
   ``tools/kafka/assemble.sh --tools`` fetches) with records of the codec's mean size.
4. Raw kafka-python on the same broker: produce as ``KafkaBus`` configures its producer and
   tuned for throughput, and a consumer reading the records back.
5. "per-message floor": encode + decode + the batched transaction, combined per message.

``measure(env)`` returns the figures (section "floor"); run alone, the module prints them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from datetime import datetime, time as clock_time, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):          # run as a script: this checkout's packages first
    sys.path.insert(0, str(ROOT))

from fastavro import schemaless_reader, schemaless_writer  # noqa: E402
from sqlalchemy import MetaData, bindparam, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.figures import Env, Figure, dump, show  # noqa: E402
from clearsim import bodies, wire  # noqa: E402
from clearsim.codec import MARKER, Codec  # noqa: E402
from clearsim.db import Database, outbox, processed_messages  # noqa: E402
from clearsim.domain.policy import FilingType, InsuranceType  # noqa: E402
from clearsim.domain.settlement import ChargeItem, choose_tier, settle  # noqa: E402
from clearsim.messages import HUB, SIM, Outgoing, hospitals_node, region_node  # noqa: E402
from clearsim.money import parse_fen  # noqa: E402
from clearsim.node import encode_outgoing  # noqa: E402
from clearsim.sim.scenario import load_scenario  # noqa: E402
from clearsim.sim.workload import generate  # noqa: E402

SECTION = "floor"
BATCH = 200                 # a node's max_batch: records polled and committed together
TOOLS_CLASSES = "org.apache.kafka.tools"


@dataclass(frozen=True)
class Sizes:
    claims: int             # claims whose messages make the codec's sample
    codec_messages: int     # messages per timed round of the codec
    rounds: int             # timed rounds (the best is kept: the machine is shared)
    db_messages: int        # messages per transaction variant, at most
    db_seconds: float       # seconds per transaction variant, at most
    java_records: int       # ProducerPerformance at full speed
    java_paced_seconds: float   # ProducerPerformance at half that speed, for its latency
                                # (0: not run)
    python_records: int     # kafka-python produce / consume, at most
    python_seconds: float   # seconds per kafka-python producer, at most


FULL = Sizes(claims=40, codec_messages=4_000, rounds=3, db_messages=10_000, db_seconds=3,
             java_records=60_000, java_paced_seconds=2, python_records=20_000,
             python_seconds=4)
QUICK = Sizes(claims=8, codec_messages=1_200, rounds=3, db_messages=1_000, db_seconds=1,
              java_records=10_000, java_paced_seconds=0, python_records=3_000,
              python_seconds=1)


# -- a claim's messages, as the nodes write them ---------------------------------------------

@dataclass(frozen=True)
class Sample:
    out: Outgoing
    sender: str
    value: bytes            # the bytes a node puts on the bus
    kind: str
    record: dict            # the same message as the codec reads it back (national names)


def claim_path(claim: dict, scenario) -> list[tuple[str, Outgoing]]:
    """The messages of one cross-region claim settled directly, admission to settlement, as
    (sender, message): the bodies the handlers build (hospital_node/handlers.py,
    region_node/treating.py and insuring.py, hub/handlers.py), with a settlement from the
    engine. The day's reconciliation and the month's clearing are not per claim: left out."""
    claim_id = claim["claim_id"]
    hospital = scenario.hospitals[claim["hospital"]]
    treating, person = hospital.region, claim["person"]
    insuring = person["insuring_region"]
    insurance = InsuranceType(person["insurance"])
    filing = FilingType(person["filing"])
    policy = scenario.regions[insuring].policy
    catalog = scenario.regions[treating].catalog
    day = datetime.fromisoformat(claim["date"]).date()
    admitted_at = datetime.combine(day, clock_time(9, 30), timezone.utc)
    discharged_at = admitted_at + timedelta(days=len(claim["items"]) // 2 + 1, hours=2)
    items = [ChargeItem(item["code"], parse_fen(item["amount"])) for item in claim["items"]]
    lines = bodies.charge_lines(items)
    visit_id = f"M{treating}-{claim_id}"
    settlement_id = f"S{treating}-{claim_id}"
    choice = choose_tier(insuring_region=insuring, treating_region=treating,
                         hospital_level=hospital.level, filing=filing)
    cap_used = 123_456
    s = settle(items=items, catalog=catalog, policy=policy, insurance=insurance,
               choice=choice, cap_used=cap_used)

    def classed(n: int, item: ChargeItem) -> dict:
        entry = catalog.get(item.code)
        share = entry.b_selfpay_share
        return {"line_no": f"{n:04d}", "catalog_code": item.code,
                "item_class": entry.item_class.value, "amount": item.amount,
                "b_selfpay_share": None if share is None else wire.ratio_out(share)}

    results = [classed(n, item) for n, item in enumerate(items, start=1)]
    admission = {"admission_no": claim_id, "visit_id": None, "person_id": person["id"],
                 "insurance_code": insurance.insutype, "insuring_region": insuring,
                 "treating_region": treating, "hospital": hospital.id, "care_type": "21",
                 "admitted_at": admitted_at}
    verdict = {"admission_no": claim_id, "visit_id": visit_id, "person_id": person["id"],
               "accepted": True, "insurance_code": insurance.insutype,
               "filing_type": filing.value, "filing_id": f"F-{claim_id}",
               "policy_version": policy.version, "cap_used": cap_used, "error": None}
    settled = {
        "settlement_id": settlement_id, "visit_id": visit_id, "admission_no": claim_id,
        "person_id": person["id"], "insurance_code": insurance.insutype,
        "insuring_region": insuring, "treating_region": treating, "hospital": hospital.id,
        "settled_at": discharged_at, "total": s.total, "class_a": s.class_a,
        "class_b": s.class_b, "class_c": s.class_c, "b_selfpay": s.b_selfpay,
        "in_scope": s.in_scope, "deductible": s.deductible, "ratio": wire.ratio_out(s.ratio),
        "pooled_fund_pay": s.fund_pay, "fund_pay": s.fund_pay, "account_pay": 0,
        "personal_pay": s.personal_pay, "tier": s.tier, "policy_version": s.policy_version,
        "filing_type": filing.value, "item_counts": dict(Counter(i.code for i in items)),
        "items": results}
    confirmed = {"settlement_id": settlement_id, "visit_id": visit_id, "admission_no": claim_id,
                 "agreed": True, "fund_pay": s.fund_pay, "policy_version": policy.version,
                 "cause": None}
    hospitals, treating_node = hospitals_node(treating), region_node(treating)
    insuring_node = region_node(insuring)

    def message(kind: str, to: str, body: dict) -> Outgoing:
        return Outgoing(kind, to, claim_id, body, sim_time=admitted_at)

    return [
        (SIM, message("SubmitClaim", hospitals, {
            "admission_no": claim_id, "person_id": person["id"],
            "insurance_code": insurance.insutype, "insuring_region": insuring,
            "hospital": hospital.id, "admitted_at": admitted_at, "items": lines})),
        (hospitals, message("AdmitPatient", treating_node, admission)),
        (treating_node, message("AdmitPatient", HUB, {**admission, "visit_id": visit_id})),
        (HUB, message("AdmitPatient", insuring_node, {**admission, "visit_id": visit_id})),
        (insuring_node, message("AdmissionVerified", HUB, verdict)),
        (HUB, message("AdmissionVerified", treating_node, verdict)),
        (treating_node, message("AdmissionAnswered", hospitals, {
            "admission_no": claim_id, "visit_id": visit_id, "result_code": 0, "direct": True,
            "filing_type": filing.value, "error": None})),
        (hospitals, message("UploadCharges", treating_node, {
            "admission_no": claim_id, "visit_id": visit_id, "items": lines})),
        (treating_node, message("ChargesAnswered", hospitals, {
            "admission_no": claim_id, "visit_id": visit_id, "result_code": 0,
            "items": results, "error": None})),
        (hospitals, message("SettleClaim", treating_node, {
            "admission_no": claim_id, "visit_id": visit_id,
            "insurance_code": insurance.insutype, "total": s.total,
            "discharged_at": discharged_at})),
        (treating_node, message("ClaimSettled", HUB, settled)),
        (HUB, message("ClaimSettled", insuring_node, settled)),
        (insuring_node, message("SettlementConfirmed", HUB, confirmed)),
        (HUB, message("SettlementConfirmed", treating_node, confirmed)),
        (treating_node, message("SettlementAnswered", hospitals, {
            "settlement_id": settlement_id, "visit_id": visit_id, "admission_no": claim_id,
            "result_code": 0, "total": s.total, "fund_pay": s.fund_pay,
            "personal_pay": s.personal_pay, "account_pay": 0, "error": None})),
    ]


def sample_messages(codec: Codec, claims: int, prefix: str = "floor") -> list[Sample]:
    """The messages of ``claims`` cross-region claims of the demo scenario's workload (fixed
    seed), encoded as a node encodes them (``encode_outgoing``)."""
    scenario = load_scenario(ROOT / "scenarios" / "demo.toml")
    chosen: list[dict] = []
    days = 0
    while len(chosen) < claims:
        batch = generate(scenario.workload, scenario, scenario.sim.start + timedelta(days=days),
                         30, default_seed=scenario.sim.seed + days)
        chosen += [c for c in batch if c["person"]["filing"] is not None
                   and c["person"]["insuring_region"] != scenario.hospitals[c["hospital"]].region]
        days += 30
    samples = []
    now = datetime(2019, 3, 2, 8, 0, tzinfo=timezone.utc)
    for claim in chosen[:claims]:
        cause = None
        for sender, out in claim_path(claim, scenario):
            env = encode_outgoing(codec, sender, out, prefix, causation_id=cause, now=now)
            kind, record = codec.read(env.value)
            samples.append(Sample(out, sender, env.value, kind, record))
            cause = env.msgid
    return samples


# -- timing --------------------------------------------------------------------------------

def best_rates(runs: dict[str, tuple[Callable[[list], int], list]], warm: int,
               rounds: int) -> dict[str, tuple[float, dict]]:
    """Items per second of each ``run`` over its items: the best of ``rounds`` (the machine
    may be shared: the best round is the one least disturbed; the runs take turns, so each
    sees the same disturbances), after an untimed warm-up on the first ``warm`` items. With
    each round's rate, and the best rate per second of this process's own CPU time (what one
    core does when it has the core to itself)."""
    for run, items in runs.values():
        run(items[:warm])
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (run, items) in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            count = run(items)
            walls[name].append(count / (time.perf_counter() - wall))
            cpus[name].append(count / max(time.process_time() - cpu, 1e-9))
    return {name: (max(walls[name]), {"rounds": [round(r, 1) for r in walls[name]],
                                      "per_cpu_second": round(max(cpus[name]), 1)})
            for name in runs}


def race(runs: dict[str, tuple[Callable[[list], int], list]], chunk: int,
         seconds: float) -> dict[str, tuple[float, dict]]:
    """Messages per second of each ``run`` over its batches, the runs taking ``chunk``
    batches in turn (each sees the same disturbances of a shared machine) after an untimed
    warm-up batch each, until every run is out of batches or ``seconds`` have passed. With
    how many messages each took, its rate per second of this process's CPU time (a database
    server's own work is not in it) and the machine's load."""
    for run, batches in runs.values():
        run(batches[:1])
    done = {name: 0 for name in runs}
    wall = {name: 0.0 for name in runs}
    cpu = {name: 0.0 for name in runs}
    position = {name: 1 for name in runs}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        moved = False
        for name, (run, batches) in runs.items():
            part = batches[position[name]:position[name] + chunk]
            if not part:
                continue
            position[name] += len(part)
            started, cpu_started = time.perf_counter(), time.process_time()
            done[name] += run(part)
            wall[name] += time.perf_counter() - started
            cpu[name] += time.process_time() - cpu_started
            moved = True
        if not moved:
            break
    return {name: (done[name] / wall[name],
                   {"messages": done[name], "load_1min": load(),
                    "per_cpu_second": round(done[name] / max(cpu[name], 1e-9), 1)})
            for name in runs}


def load() -> float:
    """The machine's load average over the last minute, beside each figure: on a shared
    machine it says how much the figures were disturbed."""
    return round(os.getloadavg()[0], 2)


def _cycle(items: list, count: int) -> list:
    return list(itertools.islice(itertools.cycle(items), count))


# -- 1. the codec --------------------------------------------------------------------------

def measure_codec(codec: Codec, samples: list[Sample], sizes: Sizes) -> list[Figure]:
    work = _cycle(samples, sizes.codec_messages)
    pairs = [(s.kind, s.record) for s in work]
    values = [s.value for s in work]
    writers = {s.kind: (MARKER + codec.fingerprint(s.kind), codec.parsed_writer(s.kind))
               for s in samples}
    raw_pairs = [(writers[kind][0], writers[kind][1], record) for kind, record in pairs]
    raw_reads = [(writers[s.kind][1], s.value) for s in work]
    for s in samples:           # the same records and the same bytes, or it is no floor
        prefix, parsed = writers[s.kind]
        buffer = io.BytesIO()
        buffer.write(prefix)
        schemaless_writer(buffer, parsed, s.record)
        if not buffer.getvalue() == codec.encode(s.kind, s.record) == s.value:
            raise AssertionError(f"{s.kind}: raw fastavro and the codec write other bytes")

    def encode(items: list) -> int:
        for kind, record in items:
            codec.encode(kind, record)
        return len(items)

    def raw_encode(items: list) -> int:
        for prefix, parsed, record in items:
            buffer = io.BytesIO()
            buffer.write(prefix)
            schemaless_writer(buffer, parsed, record)
            buffer.getvalue()
        return len(items)

    def decode(items: list) -> int:
        for value in items:
            codec.decode(value)
        return len(items)

    def raw_decode(items: list) -> int:
        for parsed, value in items:
            schemaless_reader(io.BytesIO(value[10:]), parsed)
        return len(items)

    translator = wire.translator(codec)
    outgoing = [(s.sender, s.out) for s in work]
    now = datetime(2019, 3, 2, 8, 0, tzinfo=timezone.utc)

    def outbound(items: list) -> int:
        for sender, out in items:
            encode_outgoing(codec, sender, out, "floor", causation_id="cause", now=now)
        return len(items)

    def inbound(items: list) -> int:
        for value in items:
            kind, data = codec.decode(value)
            codec.check(kind, data)
            data.pop("header")
            translator.inbound(kind, data)
        return len(items)

    per_kind = kind_costs(codec, samples)
    rates = best_rates({
        "encode": (encode, pairs), "raw encode": (raw_encode, raw_pairs),
        "decode": (decode, values), "raw decode": (raw_decode, raw_reads),
        "outbound": (outbound, outgoing), "inbound": (inbound, values)},
        len(samples), sizes.rounds)
    sizes_bytes = [len(s.value) for s in samples]
    mean = sum(sizes_bytes) / len(sizes_bytes)
    kinds = Counter(s.kind for s in samples)
    claims = kinds["SubmitClaim"]
    common = {"messages": len(samples), "claims": claims,
              "kinds": dict(sorted(kinds.items())),
              "mean_bytes": round(mean, 1), "min_bytes": min(sizes_bytes),
              "max_bytes": max(sizes_bytes),
              "mean_items_per_claim": round(sum(len(s.record["items"]) for s in samples
                                                if s.kind == "SubmitClaim") / claims, 1),
              "load_1min": load()}

    def figure(name: str, key: str, floor_key: str | None, note: str) -> Figure:
        rate, timing = rates[key]
        extra = {"per_kind": per_kind} if key in ("encode", "decode") else {}
        return Figure(SECTION, name, rate, "msgs/s",
                      floor=rates[floor_key][0] if floor_key else None, note=note,
                      detail={**common, **timing, **extra})

    return [
        figure("codec encode", "encode", "raw encode",
               f"Codec.encode; a claim's {len(samples) // claims} messages, admission to "
               f"settlement (mean {mean:.0f} bytes)"),
        figure("codec decode", "decode", "raw decode",
               "Codec.decode (writer looked up by fingerprint, resolved to the reader)"),
        figure("raw fastavro encode", "raw encode", None,
               "schemaless_writer with the parsed schema, same records and bytes"),
        figure("raw fastavro decode", "raw decode", None,
               "schemaless_reader with the writer's parsed schema"),
        figure("outbound message (header, wire names, encode)", "outbound", "raw encode",
               "encode_outgoing: what a node does per message it sends"),
        figure("inbound message (decode, check, wire names)", "inbound", "raw decode",
               "decode + check + English names: what a node does per message it takes"),
    ]


def kind_costs(codec: Codec, samples: list[Sample]) -> dict:
    """Per kind: mean bytes, and Codec encode / decode per second of CPU time. The kinds
    that carry charge lines (decimals on every line) are where the codec's time goes."""
    costs = {}
    for kind in sorted({s.kind for s in samples}):
        mine = [s for s in samples if s.kind == kind]
        reps = max(1, 60 // len(mine))
        started = time.process_time()
        for _ in range(reps):
            for s in mine:
                codec.encode(kind, s.record)
        encode = reps * len(mine) / max(time.process_time() - started, 1e-9)
        started = time.process_time()
        for _ in range(reps):
            for s in mine:
                codec.decode(s.value)
        decode = reps * len(mine) / max(time.process_time() - started, 1e-9)
        costs[kind] = {"bytes": round(sum(len(s.value) for s in mine) / len(mine)),
                       "encode_per_cpu_second": round(encode),
                       "decode_per_cpu_second": round(decode)}
    return costs


# -- 2. a node's minimal transaction per message ----------------------------------------------

@dataclass(frozen=True)
class Handled:
    """One message taken (its msgid, kind, bytes) and the one message it causes."""
    msgid: str
    kind: str
    payload: bytes
    out_msgid: str
    out_kind: str
    correlation_id: str
    topic: str
    key: bytes
    value: bytes


def handled_messages(samples: list[Sample], count: int, run: str) -> list[list[Handled]]:
    """``count`` messages in batches of ``BATCH``, each causing the next one of its claim."""
    work = _cycle(samples, count + 1)
    messages = [Handled(f"{run}-in-{i:07d}", a.kind, a.value, f"{run}-out-{i:07d}", b.kind,
                        b.out.correlation_id, f"floor.{b.out.to}", b.out.correlation_id.encode(),
                        b.value)
                for i, (a, b) in enumerate(zip(work, work[1:]))]
    return [messages[i:i + BATCH] for i in range(0, len(messages), BATCH)]


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def tx_row_at_a_time(db: Database, batches: list[list[Handled]]) -> int:
    """As the node does today: check_message, add_outbox, mark_processed, one commit."""
    for batch in batches:
        with db.unit_of_work() as uow:
            for m in batch:
                if uow.check_message(m.msgid, m.kind, m.payload) != "new":
                    raise AssertionError(f"{m.msgid} seen twice")
                uow.add_outbox(msgid=m.out_msgid, kind=m.out_kind,
                               correlation_id=m.correlation_id, topic=m.topic, key=m.key,
                               value=m.value, caused_by=m.msgid)
                uow.mark_processed(m.msgid, m.kind, m.payload)
            uow.commit()
    return sum(map(len, batches))


_SEEN = (select(processed_messages.c.msgid, processed_messages.c.payload_sha256)
         .where(processed_messages.c.msgid.in_(bindparam("ids", expanding=True))))
_ADD_OUTBOX = insert(outbox)
_ADD_PROCESSED = insert(processed_messages)


def tx_batched(db: Database, batches: list[list[Handled]]) -> int:
    """The same work, per batch: one SELECT ... IN for the msgids, one executemany for the
    outbox rows and one for the processed rows (statements built once), one commit."""
    for batch in batches:
        with db.unit_of_work() as uow:
            if uow.conn.execute(_SEEN, {"ids": [m.msgid for m in batch]}).first():
                raise AssertionError("a msgid seen twice")
            now = _now()
            uow.conn.execute(_ADD_OUTBOX, [
                {"msgid": m.out_msgid, "kind": m.out_kind, "correlation_id": m.correlation_id,
                 "topic": m.topic, "key": m.key, "value": m.value, "caused_by": m.msgid,
                 "created_at": now} for m in batch])
            uow.conn.execute(_ADD_PROCESSED, [
                {"msgid": m.msgid, "kind": m.kind, "payload_sha256": _sha(m.payload),
                 "outcome": "handled", "received_at": now} for m in batch])
            uow.commit()
    return sum(map(len, batches))


_OUTBOX_COLUMNS = "msgid, kind, correlation_id, topic, key, value, caused_by, created_at, resent"
_PROCESSED_COLUMNS = "msgid, kind, payload_sha256, outcome, received_at"


def _outbox_rows(batch: list[Handled], now) -> list[tuple]:
    return [(m.out_msgid, m.out_kind, m.correlation_id, m.topic, m.key, m.value, m.msgid, now, 0)
            for m in batch]


def _processed_rows(batch: list[Handled], now) -> list[tuple]:
    return [(m.msgid, m.kind, _sha(m.payload), "handled", now) for m in batch]


def raw_sqlite(path: Path) -> sqlite3.Connection:
    """A connection of the sqlite3 module itself, with the pragmas clearsim sets."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def tx_raw_sqlite(conn: sqlite3.Connection, batches: list[list[Handled]]) -> int:
    """The same work on the sqlite3 module: executemany runs one prepared statement over
    the rows, in C."""
    add_outbox = f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES ({', '.join('?' * 9)})"
    add_processed = (f"INSERT INTO processed_messages ({_PROCESSED_COLUMNS}) "
                     f"VALUES ({', '.join('?' * 5)})")
    for batch in batches:
        cur = conn.cursor()
        cur.execute("BEGIN")
        ids = [m.msgid for m in batch]
        if cur.execute("SELECT msgid, payload_sha256 FROM processed_messages WHERE msgid "
                       f"IN ({', '.join('?' * len(ids))})", ids).fetchone():
            raise AssertionError("a msgid seen twice")
        now = _now().isoformat(" ")
        cur.executemany(add_outbox, _outbox_rows(batch, now))
        cur.executemany(add_processed, _processed_rows(batch, now))
        cur.execute("COMMIT")
    return sum(map(len, batches))


def tx_raw_postgres(conn, batches: list[list[Handled]]) -> int:
    """The same work on a psycopg connection, the rows written with COPY (PostgreSQL's
    fastest way in; constraints are checked all the same)."""
    for batch in batches:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT msgid, payload_sha256 FROM processed_messages "
                        "WHERE msgid = ANY(%s)", ([m.msgid for m in batch],))
            if cur.fetchone():
                raise AssertionError("a msgid seen twice")
            now = _now()
            for table, columns, rows in (
                    ("outbox", _OUTBOX_COLUMNS, _outbox_rows(batch, now)),
                    ("processed_messages", _PROCESSED_COLUMNS, _processed_rows(batch, now))):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    return sum(map(len, batches))


TX_NAMES = {"row": "row at a time (UnitOfWork, today)",
            "batched": "one executemany per batch",
            "raw": "raw DBAPI"}


def _tx_figures(database: str, rates: dict[str, tuple[float, dict]] | None, note: str,
                detail: dict) -> list[Figure]:
    figures = []
    for key, label in TX_NAMES.items():
        value = None if rates is None else rates[key][0]
        floor = None if rates is None or key == "raw" else rates["raw"][0]
        figures.append(Figure(
            SECTION, f"transaction per message, {database}, {label}", value, "msgs/s",
            floor=floor, note=note if rates is None or key == "row" else "",
            detail={} if rates is None else {**detail, **rates[key][1]}))
    return figures


CHUNK = 5                   # batches a transaction variant takes at its turn


def _transactions(urls: dict[str, str], samples: list[Sample], sizes: Sizes,
                  raw_connect: Callable[[str], object], raw: Callable[..., int]) -> dict:
    """The three variants, each on its own empty database (``urls``), taking turns."""
    dbs = {key: Database(url, MetaData()) for key, url in urls.items()}
    raw_conn = None
    try:
        for db in dbs.values():
            db.create_all()
        raw_conn = raw_connect(urls["raw"])
        runs = {"row": partial(tx_row_at_a_time, dbs["row"]),
                "batched": partial(tx_batched, dbs["batched"]),
                "raw": partial(raw, raw_conn)}
        return race({key: (run, handled_messages(samples, sizes.db_messages + BATCH, key))
                     for key, run in runs.items()}, CHUNK, sizes.db_seconds * len(runs))
    finally:
        if raw_conn is not None:
            raw_conn.close()
        for db in dbs.values():
            db.dispose()


def measure_sqlite(samples: list[Sample], sizes: Sizes, workdir: Path) -> list[Figure]:
    folder = workdir / "floor-sqlite"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        rates = _transactions({key: f"sqlite:///{folder / key}.db" for key in TX_NAMES},
                              samples, sizes, lambda url: raw_sqlite(folder / "raw.db"),
                              tx_raw_sqlite)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    detail = {"batch": BATCH, "sqlite": sqlite3.sqlite_version,
              "journal": "WAL, synchronous=NORMAL"}
    return _tx_figures("SQLite", rates, f"per message: msgid check, 1 outbox row, 1 processed "
                       f"row; a commit per {BATCH} (a file, WAL)", detail)


def measure_postgres(samples: list[Sample], sizes: Sizes, url: str | None) -> list[Figure]:
    if not url:
        return _tx_figures("PostgreSQL", None, "no PostgreSQL server in this run", {})
    import psycopg

    def dbapi(url: str) -> str:
        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    server = make_url(url)
    run = uuid.uuid4().hex[:8]
    names = {key: f"clearsim_floor_{run}_{key}" for key in TX_NAMES}
    made = []
    try:
        with psycopg.connect(dbapi(url), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            for name in names.values():
                conn.execute(f'CREATE DATABASE "{name}"')
                made.append(name)
        urls = {key: server.set(database=name).render_as_string(hide_password=False)
                for key, name in names.items()}
        rates = _transactions(urls, samples, sizes, lambda u: psycopg.connect(dbapi(u)),
                              tx_raw_postgres)
    except psycopg.Error as exc:
        return _tx_figures("PostgreSQL", None, f"PostgreSQL refused: {exc}", {})
    finally:
        if made:
            try:     # scratch databases: dropping them is best effort, never the figure
                with psycopg.connect(dbapi(url), autocommit=True) as conn:
                    for name in made:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"floor: could not drop the scratch databases {made}: {exc}",
                      file=sys.stderr)
    detail = {"batch": BATCH, "postgres": version}
    return _tx_figures("PostgreSQL", rates, "the same transactions on the run's PostgreSQL "
                       "server (127.0.0.1)", detail)


# -- 3. Kafka's own tools -------------------------------------------------------------------

KAFKA_FIGURES = (
    ("Kafka ProducerPerformance", "records/s", True),
    ("Kafka ProducerPerformance MiB/s", "MiB/s", True),
    ("Kafka ProducerPerformance latency avg (full speed)", "ms", False),
    ("Kafka ProducerPerformance latency p99 (full speed)", "ms", False),
    ("Kafka ProducerPerformance latency avg (half speed)", "ms", False),
    ("Kafka ProducerPerformance latency p99 (half speed)", "ms", False),
    ("Kafka ConsumerPerformance", "records/s", True),
    ("Kafka ConsumerPerformance MiB/s", "MiB/s", True),
)
PYTHON_FIGURES = (
    ("kafka-python produce (KafkaBus settings)", "records/s"),
    ("kafka-python produce (linger_ms, batch_size tuned)", "records/s"),
    ("kafka-python consume", "records/s"),
)
_PRODUCED = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def assemble_tools() -> Path:
    """The directory of Kafka's tool jars (``tools/kafka/assemble.sh --tools``)."""
    from clearsim.testing.kafka import assemble

    return assemble(tools=True)


def _java(tools: Path, main: str, *args: str, timeout: float) -> str:
    from clearsim.testing.kafka import TOOLS

    done = subprocess.run(
        ["java", "-Xmx256m", "-XX:+UseSerialGC",
         f"-Dlog4j.configuration=file:{TOOLS / 'tools-log4j.properties'}",
         "-cp", f"{tools}/*", f"{TOOLS_CLASSES}.{main}", *args],
        capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{main} exited with {done.returncode}: {done.stderr[-1500:]}")
    return done.stdout


def parse_producer(out: str, throughput: int = -1) -> dict:
    """ProducerPerformance's summary, its last line ("N records sent, R records/sec (M MB/sec),
    A ms avg latency, ..., P ms 99th, ...")."""
    found = _PRODUCED.findall(out)
    if not found:
        raise RuntimeError(f"ProducerPerformance printed no summary: {out[-1000:]}")
    sent, rate, mb, avg, peak, p50, p95, p99, p999 = found[-1]
    return {"records": int(sent), "records_s": float(rate), "mib_s": float(mb),
            "latency_avg_ms": float(avg), "latency_max_ms": float(peak),
            "latency_p50_ms": int(p50), "latency_p95_ms": int(p95),
            "latency_p99_ms": int(p99), "latency_p999_ms": int(p999),
            "throughput_asked": throughput}


def parse_consumer(out: str) -> dict:
    """ConsumerPerformance's CSV (a header line, then one line of figures). Its MB are
    2^20 bytes; ``fetch.*`` leave the group's join out."""
    lines = [line for line in out.splitlines() if line.strip()]
    try:
        header = next(i for i, line in enumerate(lines) if line.startswith("start.time"))
        row = dict(zip((k.strip() for k in lines[header].split(",")),
                       (v.strip() for v in lines[header + 1].split(","))))
        return {"records": int(row["data.consumed.in.nMsg"]),
                "records_s": float(row["fetch.nMsg.sec"]), "mib_s": float(row["fetch.MB.sec"]),
                "records_s_with_join": float(row["nMsg.sec"]),
                "rebalance_ms": int(row["rebalance.time.ms"]),
                "fetch_ms": int(row["fetch.time.ms"]),
                "warning": "; ".join(line.strip() for line in lines if "WARNING" in line)}
    except (StopIteration, IndexError, KeyError, ValueError):
        raise RuntimeError(f"ConsumerPerformance printed no figures: {out[-1000:]}") from None


def producer_performance(tools: Path, bootstrap: str, topic: str, records: int, size: int,
                         throughput: int = -1) -> dict:
    return parse_producer(_java(
        tools, "ProducerPerformance", "--topic", topic, "--num-records", str(records),
        "--record-size", str(size), "--throughput", str(throughput),
        "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", timeout=300),
        throughput)


def consumer_performance(tools: Path, bootstrap: str, topic: str, records: int) -> dict:
    return parse_consumer(_java(
        tools, "ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
        "--messages", str(records), "--timeout", "60000", timeout=300))


def _create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    from clearsim.bus.kafka import KafkaBus

    bus = KafkaBus(bootstrap, client_id="clearsim-floor", default_partitions=partitions)
    try:
        bus.ensure_topics(topics, partitions)
    finally:
        bus.close()


def measure_kafka_tools(env: Env, sizes: Sizes, record_size: int) -> list[Figure]:
    def none(note: str) -> list[Figure]:
        return [Figure(SECTION, name, None, unit, higher_is_better=higher, note=note)
                for name, unit, higher in KAFKA_FIGURES]

    if not env.kafka:
        return none("no Kafka broker in this run")
    try:
        tools = assemble_tools()
    except Exception as exc:    # no Java, no Maven or no registry: say so, measure the rest
        return none(f"Kafka's tools could not be assembled: {exc}")
    topic = f"floor-java-{uuid.uuid4().hex[:8]}"
    try:
        _create_topics(env.kafka, [topic])
        full = producer_performance(tools, env.kafka, topic, sizes.java_records, record_size)
        half = max(1, int(full["records_s"] / 2))
        paced = None if not sizes.java_paced_seconds else producer_performance(
            tools, env.kafka, topic, max(1000, int(half * sizes.java_paced_seconds)),
            record_size, throughput=half)
        consumed = consumer_performance(tools, env.kafka, topic, sizes.java_records)
    except Exception as exc:
        return none(f"Kafka's tools failed: {exc}")
    setup = {"record_bytes": record_size, "partitions": 3, "acks": "all",
             "records": "a value of random bytes, no key, no headers (clearsim's records "
                        "also carry a key and four headers)",
             "producer": "the tool's defaults otherwise",
             "tools": sorted(p.stem for p in tools.glob("kafka-tools-*.jar")),
             "load_1min": load()}
    note_full = (f"{full['records']:,} records of {record_size} bytes (the codec's mean), "
                 "acks=all, as fast as it goes")
    note_half = (f"paced at {half:,} records/s (half the full speed)" if paced
                 else "not measured in a quick run")
    paced = paced or {"latency_avg_ms": None, "latency_p99_ms": None}
    values = [
        (full["records_s"], note_full, full),
        (full["mib_s"], "", full),
        (full["latency_avg_ms"], "queueing included: the producer is saturated", full),
        (full["latency_p99_ms"], "", full),
        (paced["latency_avg_ms"], note_half, paced),
        (paced["latency_p99_ms"], note_half, paced),
        (consumed["records_s"], "fetch time only (the group's join excluded)"
         + (f"; {consumed['warning']}" if consumed["warning"] else ""), consumed),
        (consumed["mib_s"], "", consumed),
    ]
    return [Figure(SECTION, name, value, unit, higher_is_better=higher, note=note,
                   detail={**setup, **detail})
            for (name, unit, higher), (value, note, detail) in zip(KAFKA_FIGURES, values)]


# -- 4. raw kafka-python ----------------------------------------------------------------------

TUNED = {"linger_ms": 10, "batch_size": 256 * 1024}


def _bus_producer(bootstrap: str):
    """A KafkaProducer configured exactly as ``KafkaBus`` configures its own (the bus's
    wrapper is set aside: this is kafka-python itself)."""
    from clearsim.bus.kafka import KafkaBus

    bus = KafkaBus(bootstrap, client_id="clearsim-floor")
    try:
        return bus.producer()._producer
    finally:
        bus.close()


def _tuned_producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, client_id="clearsim-floor-tuned",
                         acks="all", enable_idempotence=True, retries=5, **TUNED)


def produce(producer, topic: str, records: list[tuple[bytes, bytes, list]],
            seconds: float) -> tuple[int, float, float]:
    """Records sent in blocks of a thousand, each block flushed (every send acknowledged),
    until the records or ``seconds`` run out: how many, per second, and per second of this
    process's CPU time (the client's sender thread included)."""
    started, cpu = time.perf_counter(), time.process_time()
    sent = 0
    while sent < len(records) and time.perf_counter() - started < seconds:
        block = records[sent:sent + 1000]
        futures = [producer.send(topic, value=value, key=key, headers=headers)
                   for key, value, headers in block]
        producer.flush()
        failed = [f for f in futures if not (f.is_done and f.succeeded())]
        if failed:
            raise RuntimeError(f"{len(failed)} records not acknowledged: "
                               f"{failed[0].exception}")
        sent += len(block)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return sent, sent / wall, sent / max(cpu, 1e-9)


def consume(bootstrap: str, topic: str, expect: int,
            timeout: float = 60) -> tuple[float, float]:
    """Records per second read back from the start of ``topic`` (partitions assigned, no
    group: nothing to join); and per second of this process's CPU time."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="clearsim-floor-consumer",
                             group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        got = 0
        started, cpu = time.perf_counter(), time.process_time()
        deadline = started + timeout
        while got < expect:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"read {got} of {expect} records in {timeout:.0f} s")
            got += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        return (got / (time.perf_counter() - started),
                got / max(time.process_time() - cpu, 1e-9))
    finally:
        consumer.close(autocommit=False)


def measure_kafka_python(env: Env, sizes: Sizes, samples: list[Sample],
                         java: dict[str, float | None]) -> list[Figure]:
    if not env.kafka:
        return [Figure(SECTION, name, None, unit, note="no Kafka broker in this run")
                for name, unit in PYTHON_FIGURES]
    import kafka

    records = [(s.out.correlation_id.encode(), s.value,
                [("msgid", s.record["header"]["msgid"].encode()), ("kind", s.kind.encode()),
                 ("sender", s.sender.encode()),
                 ("correlation_id", s.out.correlation_id.encode())])
               for s in _cycle(samples, sizes.python_records)]
    run = uuid.uuid4().hex[:8]
    topics = [f"floor-python-bus-{run}", f"floor-python-tuned-{run}"]
    rates: dict[str, list[float]] = {}
    sent: dict[str, int] = {}
    configs = {}
    try:
        _create_topics(env.kafka, topics)
        for key, topic, make in (("bus", topics[0], _bus_producer),
                                 ("tuned", topics[1], _tuned_producer)):
            producer = make(env.kafka)
            try:
                configs[key] = {k: producer.config[k] for k in (
                    "acks", "enable_idempotence", "linger_ms", "batch_size", "retries",
                    "max_in_flight_requests_per_connection", "compression_type")}
                producer.send(topic, value=b"warm-up").get(timeout=30)
                sent[key], *rates[key] = produce(producer, topic, records, sizes.python_seconds)
            finally:
                producer.close(timeout=5)
        rates["consume"] = consume(env.kafka, topics[1], sent["tuned"] + 1)
    except Exception as exc:
        return [Figure(SECTION, name, None, unit, note=f"kafka-python failed: {exc}")
                for name, unit in PYTHON_FIGURES]
    mean = sum(len(v) for _, v, _ in records) / len(records)
    detail = {"records": sent, "mean_value_bytes": round(mean, 1),
              "flush": "once per 1,000 records",
              "headers": "msgid, kind, sender, correlation_id (as clearsim sends them)",
              "partitions": 3, "kafka_python": kafka.__version__, "load_1min": load()}

    def cpu(key: str) -> dict:
        return {"per_cpu_second": round(rates[key][1], 1)}

    return [
        Figure(SECTION, PYTHON_FIGURES[0][0], rates["bus"][0], "records/s",
               floor=java.get("produce"), note="acks=all, idempotent, KafkaBus's settings",
               detail={**detail, **cpu("bus"), "producer": configs["bus"]}),
        Figure(SECTION, PYTHON_FIGURES[1][0], rates["tuned"][0], "records/s",
               floor=java.get("produce"),
               note=", ".join(f"{k}={v}" for k, v in TUNED.items()),
               detail={**detail, **cpu("tuned"), "producer": configs["tuned"]}),
        Figure(SECTION, PYTHON_FIGURES[2][0], rates["consume"][0], "records/s",
               floor=java.get("consume"), note="a KafkaConsumer reading them back",
               detail={**detail, **cpu("consume")}),
    ]


# -- 5. the per-message floor ---------------------------------------------------------------

def per_message(figures: list[Figure]) -> Figure:
    """1 / (1/encode + 1/decode + 1/transaction): one core doing all three for a message."""
    by = {f.name: f for f in figures}
    tx = "transaction per message, SQLite, "
    parts = ["codec encode", "codec decode", tx + TX_NAMES["batched"]]
    strict = ["raw fastavro encode", "raw fastavro decode", tx + TX_NAMES["raw"]]

    def combine(rates: list[float | None]) -> float | None:
        if any(not r for r in rates):
            return None
        return 1 / sum(1 / r for r in rates)

    def rounded(rate: float | None) -> float | None:
        return None if rate is None else round(rate, 1)

    return Figure(SECTION, "per-message floor", combine([by[n].value for n in parts]), "msgs/s",
                  note="1/(1/codec encode + 1/codec decode + 1/SQLite one-executemany "
                       "transaction): one core encoding, decoding and committing a message",
                  detail={"combined": parts,
                          "per_cpu_second": rounded(combine(
                              [by[n].detail.get("per_cpu_second") for n in parts])),
                          "with raw fastavro and the raw DBAPI": rounded(combine(
                              [by[n].value for n in strict]))})


# -- the section ----------------------------------------------------------------------------

SECONDS: dict[str, float] = {}
"""How long each part of the last ``measure`` took (``main`` prints it)."""


def measure(env: Env) -> list[Figure]:
    sizes = QUICK if env.quick else FULL
    workdir = Path(env.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    SECONDS.clear()
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        SECONDS[part] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    codec = Codec()
    samples = sample_messages(codec, sizes.claims)
    lap("messages")
    figures = measure_codec(codec, samples, sizes)
    lap("codec")
    figures += measure_sqlite(samples, sizes, workdir)
    lap("sqlite")
    figures += measure_postgres(samples, sizes, env.postgres)
    lap("postgres")
    record_size = round(figures[0].detail["mean_bytes"])
    java = measure_kafka_tools(env, sizes, record_size)
    figures += java
    lap("kafka tools")
    by = {f.name: f.value for f in java}
    figures += measure_kafka_python(env, sizes, samples, {
        "produce": by["Kafka ProducerPerformance"],
        "consume": by["Kafka ConsumerPerformance"]})
    lap("kafka-python")
    figures.append(per_message(figures))
    return figures


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--kafka", help="'local' (start a broker) or HOST:PORT")
    parser.add_argument("--postgres", help="'local' (start a server) or a SQLAlchemy URL")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the SQLite files and local servers live (a temporary "
                             "directory by default)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="clearsim-floor-"))
    env = Env(quick=args.quick, workdir=workdir)
    started = []
    try:
        if args.kafka == "local":
            from clearsim.testing.kafka import KafkaBroker

            broker = KafkaBroker(workdir=workdir / "kafka")
            started.append(broker)
            broker.start()
            env.kafka, env.broker = broker.bootstrap, broker
        elif args.kafka:
            env.kafka = args.kafka
        if args.postgres == "local":
            from clearsim.testing.postgres import PostgresServer

            server = PostgresServer(workdir=workdir / "postgres")
            started.append(server)
            server.start()
            env.postgres = server.url
        elif args.postgres:
            env.postgres = args.postgres
        begun = time.perf_counter()
        figures = measure(env)
        seconds = time.perf_counter() - begun
    finally:
        for server in reversed(started):
            server.stop()
    show(figures)
    print(f"floor measured in {seconds:.1f} s ("
          + ", ".join(f"{part} {took} s" for part, took in SECONDS.items()) + ")")
    if args.json:
        dump(figures, args.json)


if __name__ == "__main__":
    main()
