"""Shared fixtures: a real Kafka broker and a real PostgreSQL server, started once per run.

On a laptop without Java or PostgreSQL the tests that need them are skipped; under
``CI=true`` a missing broker or server fails the run instead (a skipped Kafka or
PostgreSQL test in CI is a failure). ``CLEARSIM_KAFKA`` / ``CLEARSIM_POSTGRES_URL`` point
the tests at servers that are already running.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """Skip on a laptop; fail under CI=true."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)   # a laptop only: under CI=true the line above fails instead


def program(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH; skipped on a laptop without it, a
    failure under CI=true (tools/setup-system.sh installs ``package``)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    unavailable(f"{names[0]} is not installed (tools/setup-system.sh installs Debian's "
                f"{package} package)")


@contextmanager
def running(server, failure: type[Exception], reason: str):
    """Start a server the tests own, skip (or fail under CI) if it cannot start, stop it
    afterwards."""
    try:
        server.start()
    except failure as exc:
        server.stop()
        unavailable(f"{reason}: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """The real Apache Kafka broker (KRaft) the tests own, or None when ``CLEARSIM_KAFKA``
    points at one already running (which the tests cannot stop and start)."""
    if os.environ.get("CLEARSIM_KAFKA"):
        yield None
        return
    from clearsim.testing.kafka import BrokerUnavailable, KafkaBroker

    broker = KafkaBroker(workdir=tmp_path_factory.mktemp("kafka"))
    with running(broker, BrokerUnavailable, "no Kafka broker could be started"):
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker):
    """host:port of a real Apache Kafka broker (KRaft)."""
    return os.environ.get("CLEARSIM_KAFKA") or kafka_broker.bootstrap


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A running PostgreSQL server (Debian's package) owned by this test run."""
    from clearsim.testing.postgres import PostgresServer, PostgresUnavailable

    server = PostgresServer(workdir=tmp_path_factory.mktemp("pg"))
    with running(server, PostgresUnavailable, "no PostgreSQL server could be started"):
        yield server


@pytest.fixture
def postgres_url(request):
    """A SQLAlchemy URL of a fresh, empty PostgreSQL database for one test."""
    given = os.environ.get("CLEARSIM_POSTGRES_URL")
    if given:
        return given
    server = request.getfixturevalue("postgres_server")
    return server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus_url(request):
    """Each test that takes it runs twice: on the in-process bus and on a real broker."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("kafka_bootstrap")


@pytest.fixture
def topic_prefix():
    """A unique topic prefix per test, so tests never see each other's messages."""
    return "t" + uuid.uuid4().hex[:10]


# -- evidence that the real-server tests ran -----------------------------------------

_SERVER_FIXTURES = {"kafka": {"kafka_bootstrap", "kafka_broker"},
                    "postgres": {"postgres_server", "postgres_url"}}
_outcomes: dict[str, dict[str, int]] = {m: {"passed": 0, "failed": 0, "skipped": 0}
                                        for m in _SERVER_FIXTURES}


def pytest_collection_modifyitems(config, items):
    """A test that uses a real-server fixture carries that server's marker."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _SERVER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(getattr(pytest.mark, marker))


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and not report.passed):
        for marker in _SERVER_FIXTURES:
            if marker in report.keywords:
                _outcomes[marker][report.outcome] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for marker, seen in _outcomes.items():
        terminalreporter.write_line(
            f"{marker} tests on a real server: {seen['passed']} passed, "
            f"{seen['failed']} failed, {seen['skipped']} skipped")


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and any(seen["skipped"] for seen in _outcomes.values()):
        session.exitstatus = 1
