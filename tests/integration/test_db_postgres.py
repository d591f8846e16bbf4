"""The unit-of-work contract on a real PostgreSQL server, plus a race on one message id."""

from __future__ import annotations

import threading

import pytest

from clearsim.db import Database
from sqlalchemy.exc import IntegrityError

from clearsim.errors import ClearsimError
from tests.unit.db_contract import DatabaseContract, metadata


class TestPostgreSQL(DatabaseContract):
    @pytest.fixture
    def url(self, postgres_url):
        return postgres_url


def test_two_transactions_racing_on_one_message_id_cannot_both_win(postgres_url):
    """The node loop turns the loser's failure into a retry that finds a duplicate."""
    db = Database(postgres_url, metadata)
    db.create_all()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def handle() -> None:
        with db.unit_of_work() as uow:
            assert uow.check_message("race-1", "Question", b"p") == "new"
            barrier.wait()
            try:
                # PostgreSQL makes the loser wait on the winner's row lock, then refuses it.
                uow.mark_processed("race-1", "Question", b"p")
                uow.commit()
                outcomes.append("committed")
            except (ClearsimError, IntegrityError):
                outcomes.append("refused")

    threads = [threading.Thread(target=handle) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    db.dispose()
    assert sorted(outcomes) == ["committed", "refused"]
