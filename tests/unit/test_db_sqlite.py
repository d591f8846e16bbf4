"""The unit-of-work contract on SQLite (the embedded default)."""

import pytest

from tests.unit.db_contract import DatabaseContract


class TestSQLite(DatabaseContract):
    @pytest.fixture
    def url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'node.db'}"
