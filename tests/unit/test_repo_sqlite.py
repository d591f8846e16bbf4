"""The repositories' shared helpers on SQLite (the embedded default)."""

import pytest

from tests.unit.repo_contract import RepoContract


class TestSQLite(RepoContract):
    @pytest.fixture
    def url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'node.db'}"
