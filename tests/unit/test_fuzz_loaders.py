"""Fuzzing the scenario and claims loaders (hypothesis, a bounded number of examples):
random TOML and JSON documents, and the demo's own files with one part changed, removed
or replaced. Each ends in a valid result or a ``ClearsimError`` with a code: never another
exception."""

from __future__ import annotations

import json
import math
import shutil
import tomllib
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.sim.claims import Claim, RejectedClaim, load_claims
from clearsim.sim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"
DEMO_CLAIMS = ROOT / "scenarios" / "demo-claims.json"
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values people and programs get wrong: other types, edges of ranges, odd text.
ODD = st.sampled_from([None, True, False, 0, -1, 1, 7, 2**63, -2**70, 0.5, -0.0,
                       float("nan"), float("inf"), "", " ", "x" * 5000, "0.1234567",
                       "-5.00", "1e9", "NaN", "2019-02-30", "2019-03-01", "9999-12-31",
                       "360400", "999999", "H-BJ-3", "resident", "referral", "\u0000",
                       "\ud800", "１２３", [], {}, [1, "a"], {"a": {"b": []}},
                       date(2019, 3, 1), datetime(2019, 3, 1, 8, 30)])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(max_size=40), ODD)
DOCUMENT = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=30)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with the demo's claims file beside whatever scenario a test writes."""
    directory = tmp_path_factory.mktemp("fuzz")
    shutil.copy(DEMO_CLAIMS, directory / DEMO_CLAIMS.name)
    return directory


# -- writing documents -------------------------------------------------------------------

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                               for k, v in value.items() if v is not None) + "}"
    return json.dumps(str(value))          # a basic string; TOML takes JSON's escapes


def toml_document(data) -> str:
    """``data`` as TOML (inline tables throughout); a value that is not a table becomes
    the value of a key ``value`` (TOML has no null: keys holding None are left out)."""
    if not isinstance(data, dict):
        data = {"value": data}
    return "\n".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                     for k, v in data.items() if v is not None) + "\n"


def json_document(data) -> str:
    return json.dumps(data, default=str)    # NaN and Infinity as Python writes them


# -- changing one part of a document ----------------------------------------------------

def paths(data, prefix=()):
    """Every place in a nested document: (path to it, its value)."""
    yield prefix, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from paths(value, prefix + (i,))


def changed(data, path, how: str, value):
    """A copy of ``data`` with the place at ``path`` removed, replaced or given a key."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy = dict(data)
        if not rest and how == "remove":
            copy.pop(head, None)
        else:
            copy[head] = changed(data[head], rest, how, value)
        return copy
    copy = list(data)
    if not rest and how == "remove":
        del copy[head]
    else:
        copy[head] = changed(data[head], rest, how, value)
    return copy


def mutated(data, draw):
    every = list(paths(data))
    path, place = draw(st.sampled_from(every))
    how = draw(st.sampled_from(["remove", "replace", "add"]))
    if how == "add" and isinstance(place, dict):
        return changed(data, path, "replace", {**place, draw(st.text(max_size=10)):
                                               draw(DOCUMENT)})
    return changed(data, path, "remove" if how == "remove" else "replace",
                   draw(st.one_of(ODD, DOCUMENT)))


# -- the loaders ---------------------------------------------------------------------------

def scenario_from(text: str, workdir: Path) -> None:
    path = workdir / "scenario.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(load_scenario(path), Scenario)
    except ClearsimError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.rejection.message


def claims_from(text: str, workdir: Path) -> None:
    path = workdir / "claims.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        claims = load_claims(path)
    except ClearsimError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.rejection.message
        return
    assert all(isinstance(c, (Claim, RejectedClaim)) for c in claims)


DEMO_DATA = tomllib.loads(DEMO.read_text())
DEMO_CLAIMS_DATA = json.loads(DEMO_CLAIMS.read_text())


def test_the_demo_files_load_as_written(workdir):
    scenario_from(toml_document(DEMO_DATA), workdir)
    claims_from(json_document(DEMO_CLAIMS_DATA), workdir)
    assert all(isinstance(c, Claim) for c in load_claims(DEMO_CLAIMS))


@SETTINGS
@given(DOCUMENT)
def test_a_random_toml_document_as_a_scenario(workdir, data):
    scenario_from(toml_document(data), workdir)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_as_a_scenario(workdir, data):
    path = workdir / "bytes.toml"
    path.write_bytes(data)
    try:
        load_scenario(path)
    except ClearsimError as exc:
        assert exc.code is ErrorCode.SCENARIO_INVALID


@SETTINGS
@given(st.data())
def test_the_demo_scenario_with_one_part_changed(workdir, data):
    scenario_from(toml_document(mutated(DEMO_DATA, data.draw)), workdir)


@SETTINGS
@given(DOCUMENT)
def test_a_random_json_document_as_claims(workdir, data):
    claims_from(json_document(data), workdir)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_as_claims(workdir, data):
    path = workdir / "bytes.json"
    path.write_bytes(data)
    try:
        load_claims(path)
    except ClearsimError as exc:
        assert exc.code is ErrorCode.CLAIMS_FILE_INVALID


@SETTINGS
@given(st.data())
def test_the_demo_claims_with_one_part_changed(workdir, data):
    claims_from(json_document(mutated(DEMO_CLAIMS_DATA, data.draw)), workdir)
