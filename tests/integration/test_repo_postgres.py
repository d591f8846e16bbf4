"""The repositories' shared helpers on a real PostgreSQL server (its own upsert dialect)."""

import pytest

from tests.unit.repo_contract import RepoContract


class TestPostgreSQL(RepoContract):
    @pytest.fixture
    def url(self, postgres_url):
        return postgres_url
