"""Everyday mistakes, made as a new user makes them, each through the command itself: every
one ends in one line naming its error code, with the documented exit status (2 for a
mistake in what was given, 3 for a server that cannot be reached), never a traceback, and
nothing the run did not write is deleted or overwritten. `clearsim settle` and `clearsim
run` accept exactly the same claims. Person ids appear in nothing a run prints or writes
for people."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
DEMO_CLAIMS = ROOT / "scenarios" / "demo-claims.json"
IDENTITY = ROOT / "scenarios" / "faults" / "identity.toml"
PEOPLE = sorted({c["person"]["id"] for c in json.loads(DEMO_CLAIMS.read_text())})


def clearsim(*args: str, env: dict | None = None, timeout: float = 120,
             stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CLEARSIM_")
                   or k == "CLEARSIM_CACHE"}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=environment,
                          stdin=stdin)


def one_line(done: subprocess.CompletedProcess, code: str, status: int = 2) -> str:
    """The command failed with ``status`` and said so in one line carrying ``code``."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == status, done.stderr
    assert len(lines) == 1, done.stderr
    assert code in lines[0], lines[0]
    return lines[0]


def snapshot(root: Path) -> dict:
    """Every file under ``root``, with its bytes: what must come through untouched."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# -- where a run writes -----------------------------------------------------------------

def test_a_db_folder_the_run_did_not_create_is_left_alone(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "keep.txt").write_text("a database of mine")
    before = snapshot(tmp_path)
    line = one_line(clearsim("run", str(DEMO), "--out", str(tmp_path)), "OUTPUT_NOT_OURS")
    assert str(tmp_path / "db") in line
    assert snapshot(tmp_path) == before


def test_a_claims_file_inside_out_is_not_overwritten(tmp_path):
    claims = tmp_path / "claims.json"
    claims.write_bytes(DEMO_CLAIMS.read_bytes())
    before = snapshot(tmp_path)
    line = one_line(clearsim("run", str(DEMO), "--claims", str(claims), "--out",
                             str(tmp_path)), "OUTPUT_NOT_OURS")
    assert "is read by this run" in line
    assert snapshot(tmp_path) == before


def test_a_scenario_kept_with_its_claims_in_out_is_not_overwritten(tmp_path):
    """The scenario's own [sim] claims = "claims.json" beside it, and --out the same
    folder: the run would write its claims.json over the input."""
    (tmp_path / "scenario.toml").write_text(
        DEMO.read_text().replace('claims = "demo-claims.json"', 'claims = "claims.json"'))
    (tmp_path / "claims.json").write_bytes(DEMO_CLAIMS.read_bytes())
    before = snapshot(tmp_path)
    one_line(clearsim("run", str(tmp_path / "scenario.toml"), "--out", str(tmp_path)),
             "OUTPUT_NOT_OURS")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["file", "below a file", "empty", "unwritable"])
def test_an_out_that_cannot_be_a_directory_is_refused(tmp_path, where):
    a_file = tmp_path / "results"
    a_file.write_text("not a directory")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    given = {"file": str(a_file), "below a file": str(a_file / "run"), "empty": "",
             # root writes anywhere a mode allows: /proc/self takes no new file from anyone
             "unwritable": str(readonly) if os.geteuid() != 0 else "/proc/self"}[where]
    try:
        done = clearsim("run", str(DEMO), "--out", given)
    finally:
        readonly.chmod(0o700)
    one_line(done, "INVALID_INPUT" if where == "empty" else "OUTPUT_DIR_INVALID")
    assert a_file.read_text() == "not a directory"
    assert list(readonly.iterdir()) == []


def test_a_rerun_into_its_own_out_starts_clean_and_leaves_the_rest(tmp_path):
    first = clearsim("run", str(IDENTITY), "--out", str(tmp_path), "--quiet")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "faults.json").exists()
    (tmp_path / "notes.txt").write_text("my notes on the first run")
    second = clearsim("run", str(DEMO), "--out", str(tmp_path), "--quiet")
    assert second.returncode == 0, second.stderr
    assert not (tmp_path / "faults.json").exists()      # the first run's, removed
    assert (tmp_path / "notes.txt").read_text() == "my notes on the first run"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["scenario"] == str(DEMO) and summary["claims"] == 12
    marker = json.loads((tmp_path / ".clearsim-run").read_text())
    assert "notes.txt" not in marker["files"] and "faults.json" not in marker["files"]


def test_after_ctrl_c_a_rerun_into_the_same_out_starts_clean(tmp_path):
    """The interrupted run says where its partial databases are; the next run into the same
    directory removes them and runs from empty databases."""
    import time
    process = subprocess.Popen([sys.executable, "-m", "testbed.cli", "run", str(DEMO),
                                "--workload", "--days", "400", "--out", str(tmp_path)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "db").glob("hospitals-*.db")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    done = subprocess.CompletedProcess(process.args, process.returncode, "", err)
    assert str(tmp_path / "db") in one_line(done, "INTERRUPTED", status=130)
    (tmp_path / "db" / "hub.db-stale").write_text("left by the interrupted run")
    again = clearsim("run", str(DEMO), "--out", str(tmp_path), "--quiet")
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "db" / "hub.db-stale").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["claims"] == 12


# -- flags and the environment ----------------------------------------------------------

@pytest.mark.parametrize("flags", [
    ["--partitions", "0"], ["--partitions", "100000"], ["--partitions", "three"],
    ["--workload", "--days", "0"], ["--workload", "--days", "-3"],
    ["--days", "5"],                      # days of a workload, but the claims file is replayed
    ["--claims", str(DEMO_CLAIMS), "--workload"],
    ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "-1"], ["--timeout", "0"],
    ["--answer-timeout", "nan"], ["--rate", "0"], ["--rate", "-5"], ["--in-flight", "0"],
    ["--speedup", "-1"], ["--speedup", "nan"],
    ["--metrics-port", "99999"], ["--metrics-port", "-1"], ["--metrics-port", "http"],
    ["--topic-prefix", "my run"], ["--topic-prefix", "x" * 41],
    ["--kafka", "nonsense"], ["--kafka", "host:99999"],
    ["--postgres", "nonsense"], ["--postgres", "mysql://db/x"], ["--postgres", "postgresql://"],
    ["--processes"], ["--report"], ["--fault", "drop:rate=2"], ["--frobnicate"],
])
def test_a_nonsense_flag_value_is_one_line_and_status_2(tmp_path, flags):
    done = clearsim("run", str(DEMO), *flags)
    one_line(done, "INVALID_INPUT" if not flags[0] == "--fault" else "SCENARIO_INVALID")


@pytest.mark.parametrize("command, variable, value", [
    ("run", "CLEARSIM_KAFKA", "nonsense"),
    ("run", "CLEARSIM_POSTGRES_URL", "localhost"),
    ("node", "CLEARSIM_PARTITIONS", "abc"),
    ("node", "CLEARSIM_METRICS_PORT", "x"),
    ("node", "CLEARSIM_PREFIX", "my prefix"),
    ("node", "CLEARSIM_DB", str(DEMO)),
    ("node", "CLEARSIM_KAFKA", "broker"),
    ("drive", "CLEARSIM_PARTITIONS", "0"),
])
def test_an_environment_variable_with_a_bad_value_is_named(command, variable, value):
    args = {"run": ["run", str(DEMO)], "node": ["node", "hub", str(DEMO)],
            "drive": ["drive", str(DEMO)]}[command]
    env = {variable: value}
    if command != "run" and variable != "CLEARSIM_KAFKA":
        env["CLEARSIM_KAFKA"] = "127.0.0.1:1"
    line = one_line(clearsim(*args, env=env), "INVALID_INPUT")
    assert variable in line
    assert "secret" not in line


def test_a_node_database_directory_that_cannot_be_made_is_refused(tmp_path):
    a_file = tmp_path / "nodes"
    a_file.write_text("not a directory")
    one_line(clearsim("node", "hub", str(DEMO), "--kafka", "127.0.0.1:1", "--db",
                      str(a_file / "sub")), "OUTPUT_DIR_INVALID")
    assert a_file.read_text() == "not a directory"


def test_a_failure_of_clearsim_itself_is_one_line_and_status_4(monkeypatch, capsys):
    from testbed import cli, faults_cli

    def broken(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(faults_cli, "main", broken)
    monkeypatch.delenv("CLEARSIM_TRACEBACK", raising=False)
    assert cli.main(["faults"]) == 4
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "INTERNAL_ERROR" in lines[0] and "ZeroDivisionError: a bug" \
        in lines[0] and "Traceback" not in err


def test_a_database_url_s_password_is_not_printed():
    line = one_line(clearsim("run", str(DEMO), env={
        "CLEARSIM_POSTGRES_URL": "postgresql://me:secret@"}), "INVALID_INPUT")
    assert "secret" not in line


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_broker_is_status_3_within_seconds():
    """The run waits a bounded time (inputs.BROKER_WAIT, 5 s) for the broker to accept a
    connection; the Kafka client alone would try for half a minute."""
    from testbed.inputs import BROKER_WAIT
    import time
    started = time.monotonic()
    line = one_line(clearsim("run", str(DEMO), "--kafka", f"127.0.0.1:{closed_port()}"),
                    "BROKER_UNAVAILABLE", status=3)
    assert time.monotonic() - started < BROKER_WAIT + 20
    assert "within 5 s" in line


def test_an_unreachable_database_is_status_3():
    line = one_line(clearsim("run", str(DEMO), "--postgres",
                             f"postgresql+psycopg://me:secret@127.0.0.1:{closed_port()}/x"),
                    "DATABASE_UNAVAILABLE", status=3)
    assert "secret" not in line


def test_a_run_whose_own_faults_leave_no_way_through_says_so_in_one_line():
    one_line(clearsim("run", str(DEMO), "--fault", "drop"), "BROKER_UNAVAILABLE", status=1)


# -- output into a pipe, and Ctrl-C -----------------------------------------------------

@pytest.mark.parametrize("args", [
    ["run", str(DEMO)], ["run", str(DEMO), "--json"],
    ["settle", "--scenario", str(DEMO), "--claims", str(DEMO_CLAIMS)],
    ["settle", "--scenario", str(DEMO), "--claims", str(DEMO_CLAIMS), "--json"],
    ["faults"], ["--help"],
])
def test_output_into_a_reader_that_is_gone_ends_quietly(args):
    """`clearsim run ... | head -1`, with the reader gone before anything is written."""
    process = subprocess.Popen([sys.executable, "-m", "testbed.cli", *args], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    assert err == ""


def test_a_command_started_with_standard_output_closed_ends_quietly():
    """`clearsim settle ... >&-`."""
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "settle", "--scenario",
                           str(DEMO), "--claims", str(DEMO_CLAIMS)], cwd=ROOT,
                          stderr=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(1))
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_ctrl_c_during_settle_is_one_line_and_status_130(tmp_path):
    """Settle reads its claims from a named pipe (`--claims <(...)`) whose writer is
    still writing when Ctrl-C comes."""
    pipe = tmp_path / "claims.json"
    os.mkfifo(pipe)
    process = subprocess.Popen([sys.executable, "-m", "testbed.cli", "settle", "--scenario",
                                str(DEMO), "--claims", str(pipe)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(pipe, "w") as writer:       # opens once settle has opened it to read
        writer.write("[")
        writer.flush()
        process.send_signal(signal.SIGINT)
    # The writer is done: were Ctrl-C to come just as settle began a read of the pipe,
    # the read ends now and Python raises KeyboardInterrupt as it returns.
    out, err = process.communicate(timeout=60)
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    one_line(done, "INTERRUPTED", status=130)
    assert out == ""


# -- settle and run accept the same claims ---------------------------------------------

def wire_limit_claims() -> list[dict]:
    base = json.loads(DEMO_CLAIMS.read_text())[0]

    def claim(claim_id: str, **changes) -> dict:
        out = json.loads(json.dumps(base))
        out["claim_id"] = claim_id
        out["person"]["id"] = f"P-{claim_id}"
        for key, value in changes.items():
            if key == "person_id":
                out["person"]["id"] = value
            else:
                out[key] = value
        return out
    big = [{"code": "D100", "amount": "60000000000.00"}]
    return [
        claim("C-OK"),
        claim("C-PAST", items=[{"code": "D100", "amount": "100000000000.01"}]),
        claim("C-TOTAL", items=[{"code": "D100", "amount": "100000000000.00"},
                                {"code": "D200", "amount": "0.01"}]),
        claim("C-BIG", items=big),
        claim("C-BIG2", items=big),                   # the two together pass the limit
        claim("C-FAR", date="9999-12-30"),
        claim("C-OLD", date="0001-03-02"),
        claim("C" * 31),
        claim("C-LONGPERSON", person_id="P" * 31),
        claim("C-SPACE", person_id="P 1"),
    ]


def test_settle_and_run_accept_exactly_the_same_claims(tmp_path):
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(wire_limit_claims()))
    settled = clearsim("settle", "--scenario", str(DEMO), "--claims", str(claims), "--json")
    assert settled.returncode == 0, settled.stderr
    ran = clearsim("run", str(DEMO), "--claims", str(claims), "--out", str(tmp_path / "out"),
                   "--quiet")
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    offline = [(a["claim_id"], a["status"], (a["error"] or {}).get("code"))
               for a in json.loads(settled.stdout)]
    networked = [(c["claim_id"], c["status"], (c["error"] or {}).get("code"))
                 for c in json.loads((tmp_path / "out" / "claims.json").read_text())]
    assert networked == offline
    assert [status for _, status, _ in offline] == ["direct", "rejected", "rejected", "direct",
                                                    "rejected", "rejected", "rejected",
                                                    "rejected", "rejected", "rejected"]


# -- odd files ----------------------------------------------------------------------------

ODD_FILES = {
    "empty": b"",
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
    "deeply nested": b"[" * 100_000,
    "a huge number": b"[1" + b"0" * 5000 + b"]",
    "duplicate keys": b'[{"claim_id": "A", "claim_id": "B"}]',
    "NaN": b'[{"amount": NaN}]',
    "an object": b'{"claims": []}',
}


@pytest.mark.parametrize("command", ["settle", "run"])
@pytest.mark.parametrize("kind", [*ODD_FILES, "a directory", "missing"])
def test_an_odd_claims_file_is_one_line_and_status_2(tmp_path, command, kind):
    path = tmp_path / "claims.json"
    if kind == "a directory":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes(ODD_FILES[kind])
    args = (["settle", "--scenario", str(DEMO), "--claims", str(path)] if command == "settle"
            else ["run", str(DEMO), "--claims", str(path)])
    one_line(clearsim(*args), "CLAIMS_FILE_INVALID")


@pytest.mark.parametrize("kind", [*ODD_FILES, "a directory", "far future", "a year of days",
                                  "amount past decimal(18,2)"])
def test_an_odd_scenario_file_is_one_line_and_status_2(tmp_path, kind):
    path = tmp_path / "scenario.toml"
    text = DEMO.read_text().replace('claims = "demo-claims.json"',
                                    f'claims = "{DEMO_CLAIMS}"')
    if kind == "a directory":
        path.mkdir()
    elif kind == "far future":
        path.write_text(text.replace('start = "2019-03-01"', 'start = "9999-12-01"'))
    elif kind == "a year of days":
        path.write_text(text.replace("days = 31", "days = 1000000000"))
    elif kind == "amount past decimal(18,2)":
        path.write_text(text.replace('"150000.00"', '"99999999999999999999.00"'))
    else:
        path.write_bytes(ODD_FILES[kind].replace(b"[", b"a = [", 1) if kind.startswith("deep")
                         else ODD_FILES[kind])
    one_line(clearsim("run", str(path)), "SCENARIO_INVALID")


# -- personal data ------------------------------------------------------------------------

def test_no_person_id_appears_in_what_a_run_prints_logs_or_writes_for_people(tmp_path):
    """The identity scenario refuses a card with a person id read wrongly (PERSON_UNKNOWN);
    with -v every node's activity is logged. Only the node databases keep person ids."""
    done = clearsim("run", str(IDENTITY), "--out", str(tmp_path), "-v")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PERSON_UNKNOWN" in done.stdout
    texts = {"stdout": done.stdout, "stderr": done.stderr}
    texts.update({p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()})
    for person in PEOPLE:
        for name, text in texts.items():
            assert person not in text, (person, name)


# -- a topic prefix used before, on real servers ------------------------------------------

def test_a_topic_prefix_an_earlier_run_left_behind_is_refused(tmp_path, kafka_bootstrap,
                                                               postgres_server):
    """Its topics on the cluster, or its node databases on the server, would be read as
    the new run's own."""
    import uuid
    prefix = "t" + uuid.uuid4().hex[:10]
    server = postgres_server.url
    first = clearsim("run", str(DEMO), "--kafka", kafka_bootstrap, "--postgres", server,
                     "--topic-prefix", prefix, "--quiet", timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    for servers in (["--kafka", kafka_bootstrap], ["--postgres", server]):
        line = one_line(clearsim("run", str(DEMO), *servers, "--topic-prefix", prefix),
                        "INVALID_INPUT")
        assert prefix in line and "earlier run" in line
