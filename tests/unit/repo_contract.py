"""The helpers the nodes' repositories share (clearsim.db: get_row, insert_row, insert_new,
update_row, update_rows, upsert, prebuilt), one contract run on SQLite and PostgreSQL:
each statement is built once and reused, so reuse with other values and other columns
must behave like a statement built afresh."""

from __future__ import annotations

import pytest
from sqlalchemy import JSON, Column, Date, Integer, MetaData, String, Table, bindparam, select

from clearsim import db as repo
from clearsim.db import Database

metadata = MetaData()
rows = Table("repo_rows", metadata,
             Column("id", String(16), primary_key=True),
             Column("code", String(16), nullable=True, unique=True),
             Column("state", String(16), nullable=False),
             Column("count", Integer, nullable=False, default=1),
             Column("doc", JSON, nullable=True),
             Column("day", Date, nullable=True))
pairs = Table("repo_pairs", metadata,
              Column("left", String(16), primary_key=True),
              Column("right", String(16), primary_key=True),
              Column("note", String(16), nullable=True))


class RepoContract:
    """Subclasses provide ``url`` (a fixture giving an empty database's URL)."""

    @pytest.fixture
    def db(self, url):
        db = Database(url, metadata)
        db.create_all()
        yield db
        db.dispose()

    def all_rows(self, db) -> list[dict]:
        with db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(rows).order_by(rows.c.id)).mappings()]

    def test_a_row_read_by_any_column_with_json_and_dates_as_written(self, db):
        from datetime import date
        with db.engine.begin() as conn:
            repo.insert_row(conn, rows, {"id": "a", "code": "A", "state": "new",
                                         "doc": {"x": [1, "y"]}, "day": date(2019, 3, 1)})
            repo.insert_row(conn, rows, {"id": "b", "state": "old"})    # other columns
            assert repo.get_row(conn, rows, rows.c.id, "a")["doc"] == {"x": [1, "y"]}
            assert repo.get_row(conn, rows, rows.c.code, "A")["id"] == "a"
            assert repo.get_row(conn, rows, rows.c.id, "b")["count"] == 1   # the default
            assert repo.get_row(conn, rows, rows.c.id, "b")["day"] is None
            assert repo.get_row(conn, rows, rows.c.id, "zz") is None
        assert [r["day"] for r in self.all_rows(db)] == [date(2019, 3, 1), None]

    def test_insert_new_inserts_once_and_says_so(self, db):
        with db.engine.begin() as conn:
            assert repo.insert_new(conn, rows, {"id": "a", "code": "A", "state": "new"})
            assert not repo.insert_new(conn, rows, {"id": "a", "state": "other"})
            # a taken unique column counts as taken too
            assert not repo.insert_new(conn, rows, {"id": "b", "code": "A", "state": "x"})
        assert [(r["id"], r["state"]) for r in self.all_rows(db)] == [("a", "new")]

    def test_update_row_sets_only_the_columns_given(self, db):
        with db.engine.begin() as conn:
            for key in "abc":
                repo.insert_row(conn, rows, {"id": key, "state": "new", "count": 5})
            repo.update_row(conn, rows, rows.c.id, "a", {"state": "done"})
            repo.update_row(conn, rows, rows.c.id, "b", {"count": 7, "doc": {"n": 1}})
            repo.update_row(conn, rows, rows.c.id, "zz", {"state": "ghost"})
        assert [(r["id"], r["state"], r["count"], r["doc"]) for r in self.all_rows(db)] == [
            ("a", "done", 5, None), ("b", "new", 7, {"n": 1}), ("c", "new", 5, None)]

    def test_update_rows_by_a_list_of_keys_and_none(self, db):
        with db.engine.begin() as conn:
            for key in "abc":
                repo.insert_row(conn, rows, {"id": key, "state": "new"})
            repo.update_rows(conn, rows, rows.c.id, ["a", "c"], {"state": "paid"})
            repo.update_rows(conn, rows, rows.c.id, iter(["b"]), {"count": 3})
            repo.update_rows(conn, rows, rows.c.id, [], {"state": "never"})
        assert [(r["state"], r["count"]) for r in self.all_rows(db)] == [
            ("paid", 1), ("new", 3), ("paid", 1)]

    def test_upsert_inserts_then_updates_only_the_columns_given(self, db):
        with db.engine.begin() as conn:
            repo.upsert(conn, rows, {"id": "a", "state": "new", "count": 2})
            repo.upsert(conn, rows, {"id": "a", "state": "seen"})     # count stays
            repo.upsert(conn, rows, {"id": "b", "state": "new"})      # default count
            repo.upsert(conn, rows, {"id": "b", "state": "new", "count": 9})
            repo.upsert(conn, rows, {"id": "c"} | {"state": "x"}, keys=("id",))
        assert [(r["id"], r["state"], r["count"]) for r in self.all_rows(db)] == [
            ("a", "seen", 2), ("b", "new", 9), ("c", "x", 1)]

    def test_upsert_many_is_an_upsert_of_each_row(self, db):
        with db.engine.begin() as conn:
            repo.upsert(conn, rows, {"id": "a", "state": "new", "count": 4})
            repo.upsert_many(conn, rows, [{"id": "a", "state": "seen"},
                                          {"id": "b", "state": "new"}])
            repo.upsert_many(conn, rows, [])
        assert [(r["id"], r["state"], r["count"]) for r in self.all_rows(db)] == [
            ("a", "seen", 4), ("b", "new", 1)]

    def test_upsert_of_keys_alone_leaves_a_taken_row_as_it_is(self, db):
        with db.engine.begin() as conn:
            repo.upsert(conn, pairs, {"left": "x", "right": "y"})
            repo.upsert(conn, pairs, {"left": "x", "right": "y", "note": "kept"})
            repo.upsert(conn, pairs, {"left": "x", "right": "y"})
            repo.upsert(conn, pairs, {"left": "x", "right": "z"})
            found = conn.execute(select(pairs).order_by(pairs.c.right)).all()
        assert [tuple(r) for r in found] == [("x", "y", "kept"), ("x", "z", None)]

    def test_a_prebuilt_statement_runs_again_with_other_values(self, db):
        statement = repo.prebuilt(("contract", rows, "by_state"), lambda: select(
            rows.c.id).where(rows.c.state == bindparam("state")).order_by(rows.c.id))
        assert repo.prebuilt(("contract", rows, "by_state"), lambda: None) is statement
        with db.engine.begin() as conn:
            for key, state in (("a", "x"), ("b", "y"), ("c", "x")):
                repo.insert_row(conn, rows, {"id": key, "state": state})
            assert list(conn.execute(statement, {"state": "x"}).scalars()) == ["a", "c"]
            assert list(conn.execute(statement, {"state": "y"}).scalars()) == ["b"]

    def test_latest_msgid_resend_and_has_rejection(self, db):
        from clearsim.errors import ErrorCode, Rejection
        with db.unit_of_work() as uow:
            for n in (1, 2):
                uow.add_outbox(msgid=f"m{n}", kind="SettleClaim", correlation_id="C-1",
                               topic="t", key=None, value=b"v", caused_by=None)
            uow.add_rejection(Rejection(ErrorCode.INVALID_INPUT, "no"), msgid="r1",
                              kind="X", correlation_id="C-2")
            uow.commit()
        [first, second] = db.pending_outbox()
        db.mark_sent([first.msgid, second.msgid])
        with db.engine.begin() as conn:
            assert repo.latest_msgid(conn, "C-1", "SettleClaim") == "m2"
            assert repo.latest_msgid(conn, "C-1", "UploadCharges") is None
            assert repo.resend(conn, "C-1", "SettleClaim") == "m2"
            assert repo.resend(conn, "C-9", "SettleClaim") is None
            assert repo.has_rejection(conn, "C-2") and not repo.has_rejection(conn, "C-1")
        assert [row.msgid for row in db.pending_outbox()] == ["m2"]
