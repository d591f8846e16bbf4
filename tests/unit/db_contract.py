"""The unit-of-work contract every database must honour (SQLite and PostgreSQL run it),
up to the node loop's promise that a refused message leaves no write behind."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from clearsim.bus.memory import MemoryBus
from clearsim.codec import Codec
from clearsim.db import Database, outbox, processed_messages, rejections
from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.messages import HUB, Outgoing, region_node
from clearsim.node import Node, encode_outgoing
from clearsim import wire
from clearsim.testing.samples import sample_record

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True),
               Column("name", String(32), nullable=False))


class DatabaseContract:
    """Subclasses provide ``url`` (a fixture giving an empty database's URL)."""

    @pytest.fixture
    def db(self, url):
        db = Database(url, metadata)
        db.create_all()
        yield db
        db.dispose()

    def stage(self, uow, msgid: str, payload: bytes = b"p", name: str = "a") -> None:
        uow.conn.execute(insert(things).values(name=name))
        uow.add_outbox(msgid=f"out-{msgid}", kind="Answer", correlation_id="C-1",
                       topic="t", key=b"C-1", value=b"v-" + payload, caused_by=msgid)
        uow.mark_processed(msgid, "Question", payload)

    def names(self, db) -> list[str]:
        with db.engine.connect() as conn:
            return [r.name for r in conn.execute(select(things).order_by(things.c.id))]

    def test_state_outbox_and_processed_id_commit_together(self, db):
        with db.unit_of_work() as uow:
            assert uow.check_message("m1", "Question", b"p") == "new"
            self.stage(uow, "m1")
            uow.commit()
        assert self.names(db) == ["a"]
        [row] = db.pending_outbox()
        assert (row.msgid, row.caused_by, row.value) == ("out-m1", "m1", b"v-p")
        with db.unit_of_work() as uow:
            assert uow.check_message("m1", "Question", b"p") == "duplicate"

    def test_an_exception_rolls_everything_back(self, db):
        with pytest.raises(RuntimeError):
            with db.unit_of_work() as uow:
                self.stage(uow, "m2")
                raise RuntimeError("crash before commit")
        assert self.names(db) == [] and db.pending_outbox() == []
        with db.unit_of_work() as uow:
            assert uow.check_message("m2", "Question", b"p") == "new"

    def test_leaving_without_commit_rolls_back(self, db):
        with db.unit_of_work() as uow:
            self.stage(uow, "m3")
        assert self.names(db) == [] and db.pending_outbox() == []

    def test_the_same_id_with_another_payload_is_refused(self, db):
        with db.unit_of_work() as uow:
            self.stage(uow, "m4", b"first")
            uow.commit()
        with db.unit_of_work() as uow:
            with pytest.raises(ClearsimError) as err:
                uow.check_message("m4", "Question", b"second")
        assert err.value.code is ErrorCode.DUPLICATE_ID_MODIFIED
        assert err.value.rejection.field == "msgid"

    def test_outbox_relay_order_mark_sent_and_requeue(self, db):
        with db.unit_of_work() as uow:
            for i in range(3):
                self.stage(uow, f"r{i}", name=f"n{i}")
            uow.commit()
        rows = db.pending_outbox()
        assert [r.msgid for r in rows] == ["out-r0", "out-r1", "out-r2"]
        db.mark_sent([rows[0].msgid, rows[1].msgid])
        assert [r.msgid for r in db.pending_outbox()] == ["out-r2"]
        with db.unit_of_work() as uow:
            owed = uow.outbox_caused_by("r0")
        assert [r.msgid for r in owed] == ["out-r0"]
        db.requeue([r.id for r in owed])
        assert [r.msgid for r in db.pending_outbox()] == ["out-r0", "out-r2"]

    def test_a_refused_row_is_sent_again_counted_held_and_released(self, db):
        with db.unit_of_work() as uow:
            self.stage(uow, "h1")
            uow.commit()
        [row] = db.pending_outbox()
        db.mark_sent([row.msgid])
        with db.unit_of_work() as uow:
            assert uow.outbox_row("out-h1").resent == 0 and uow.outbox_row("nope") is None
            uow.resend(row.id)
            uow.commit()
        [again] = db.pending_outbox()
        assert (again.msgid, again.resent, again.held_by) == ("out-h1", 1, None)
        db.mark_sent([row.msgid])
        with db.unit_of_work() as uow:
            uow.hold(row.id, "schema-1")
            uow.commit()
        assert db.pending_outbox() == []
        [held] = db.held_outbox()
        assert (held.msgid, held.held_by) == ("out-h1", "schema-1")
        db.release([held.id])
        assert db.held_outbox() == []
        [released] = db.pending_outbox()
        assert (released.msgid, released.resent, released.held_by) == ("out-h1", 0, None)

    def test_later_messages_are_kept_aside_until_the_awaited_one(self, db):
        with db.unit_of_work() as uow:
            assert uow.awaited("hub", "C-1") is None
            uow.await_again("hub", "C-1", "m1", "a1")
            uow.await_again("hub", "C-1", "m2", "a2")     # a later refusal: m1 stays awaited
            uow.await_again("hub", "C-1", "m1", "a3")     # m1 refused again: the new answer
            for value in (b"first", b"second"):
                uow.set_aside("hub", "C-1", topic="t", key=b"C-1", value=value,
                              headers=[["msgid", value.decode()]])
            uow.set_aside("hub", "C-2", topic="t", key=b"C-2", value=b"other", headers=[])
            uow.commit()
        with db.unit_of_work() as uow:
            awaited = uow.awaited("hub", "C-1")
            assert (awaited["msgid"], awaited["answer"]) == ("m1", "a3")
            kept = uow.stop_awaiting("hub", "C-1")
            uow.commit()
        assert [(k["value"], k["headers"]) for k in kept] == [
            (b"first", [["msgid", "first"]]), (b"second", [["msgid", "second"]])]
        with db.unit_of_work() as uow:
            assert uow.awaited("hub", "C-1") is None
            assert uow.stop_awaiting("hub", "C-1") == []
            assert [k["value"] for k in uow.stop_awaiting("hub", "C-2")] == [b"other"]

    def test_rejections_are_recorded_with_code_node_and_field(self, db):
        with db.unit_of_work() as uow:
            uow.add_rejection(Rejection(ErrorCode.SCHEMA_UNKNOWN, "no such schema",
                                        "fingerprint", "hub"), msgid="x1", kind=None,
                              correlation_id="C-9")
            uow.commit()
        with db.engine.connect() as conn:
            [row] = conn.execute(select(rejections)).mappings().all()
        assert (row["code"], row["node"], row["field"], row["correlation_id"]) == \
            ("SCHEMA_UNKNOWN", "hub", "fingerprint", "C-9")

    def test_state_survives_reopening_the_database(self, db, url):
        with db.unit_of_work() as uow:
            self.stage(uow, "m5")
            uow.commit()
        again = Database(url, metadata)
        again.create_all()
        assert self.names(again) == ["a"]
        with again.unit_of_work() as uow:
            assert uow.check_message("m5", "Question", b"p") == "duplicate"
        again.dispose()

    def test_an_id_marked_in_this_transaction_is_known_before_it_is_written(self, db):
        with db.unit_of_work() as uow:
            uow.look_up(["m6", "m6", "m7"])
            assert uow.check_message("m6", "Question", b"p") == "new"
            uow.mark_processed("m6", "Question", b"p")
            assert uow.check_message("m6", "Question", b"p") == "duplicate"
            with pytest.raises(ClearsimError) as err:
                uow.check_message("m6", "Question", b"other")
            assert err.value.code is ErrorCode.DUPLICATE_ID_MODIFIED
            uow.commit()
        with db.unit_of_work() as uow:
            uow.look_up(["m6", "m7"])
            assert uow.check_message("m6", "Question", b"p") == "duplicate"
            assert uow.check_message("m7", "Question", b"p") == "new"

    def test_written_lists_the_outbox_rows_of_the_transaction_in_order(self, db):
        with db.unit_of_work() as uow:
            for i in range(3):
                self.stage(uow, f"w{i}")
            uow.commit()
        assert [r.msgid for r in uow.written] == ["out-w0", "out-w1", "out-w2"]
        assert [r.msgid for r in db.pending_outbox()] == ["out-w0", "out-w1", "out-w2"]
        assert not uow.outbox_changed

    def test_an_id_taken_by_another_transaction_fails_the_commit_as_sqlalchemy_says(self, db):
        """What a driver statement raises is SQLAlchemy's error, as from ``conn.execute``:
        the node loop tells a racing transaction or an unavailable database by it."""
        with db.unit_of_work() as uow:
            self.stage(uow, "r1")
            uow.commit()
        with db.unit_of_work() as uow:
            uow.mark_processed("r1", "Question", b"p")      # not checked first: a race
            with pytest.raises(IntegrityError):
                uow.commit()
        with db.unit_of_work() as uow:
            with pytest.raises(DBAPIError):
                uow.driver.execute("SELECT nothing FROM no_such_table")

    # -- one savepoint per message ------------------------------------------------

    def test_a_savepoint_undoes_the_rows_staged_in_it(self, db):
        """Rows staged before a savepoint and written inside it (a read of the outbox
        flushes) survive its undoing; those staged inside do not."""
        with db.unit_of_work() as uow:
            self.stage(uow, "k1", name="kept")
            with pytest.raises(ClearsimError):
                with uow.savepoint():
                    self.stage(uow, "k2", name="undone")
                    assert [r.msgid for r in uow.outbox_caused_by("k1")] == ["out-k1"]
                    raise ClearsimError(ErrorCode.INVALID_INPUT, "refused", "name")
            assert uow.check_message("k2", "Question", b"p") == "new"
            assert uow.check_message("k1", "Question", b"p") == "duplicate"
            uow.commit()
        assert self.names(db) == ["kept"]
        assert [r.msgid for r in uow.written] == ["out-k1"]
        assert [r.msgid for r in db.pending_outbox()] == ["out-k1"]
        with db.unit_of_work() as uow:
            assert uow.check_message("k1", "Question", b"p") == "duplicate"
            assert uow.check_message("k2", "Question", b"p") == "new"


    def test_a_savepoint_undoes_its_own_writes_and_keeps_the_rest(self, db):
        with db.unit_of_work() as uow:
            self.stage(uow, "s1", name="before")
            with pytest.raises(ClearsimError):
                with uow.savepoint():
                    uow.conn.execute(insert(things).values(name="refused"))
                    raise ClearsimError(ErrorCode.INVALID_INPUT, "refused", "name")
            with uow.savepoint():
                uow.conn.execute(insert(things).values(name="after"))
            uow.commit()
        assert self.names(db) == ["before", "after"]

    def test_a_released_savepoint_still_belongs_to_the_transaction(self, db):
        """The savepoint is the transaction's first statement: releasing it must not
        commit (pysqlite's own transaction handling would let it)."""
        with db.unit_of_work() as uow:
            with uow.savepoint():
                uow.conn.execute(insert(things).values(name="released"))
        assert self.names(db) == []
        with db.unit_of_work() as uow:
            with uow.savepoint():
                uow.conn.execute(insert(things).values(name="released"))
            uow.commit()
        assert self.names(db) == ["released"]

    def test_a_refused_message_leaves_no_write_behind(self, db):
        """A handler writes, then refuses: only the refusal remains, and the next message
        of the same batch is committed."""
        def handler(msg, conn):
            conn.execute(insert(things).values(name=msg.correlation_id))
            if msg.correlation_id == "C-BAD":
                raise ClearsimError(ErrorCode.CLAIM_STATE_INVALID, "refused after writing",
                                    "ipt_no")
            return []

        bus, codec, prefix = MemoryBus(default_partitions=1), Codec(), "t" + uuid.uuid4().hex[:10]
        node = Node(node_id=HUB, db=db, bus=bus, codec=codec, handlers={"SubmitClaim": handler},
                    make_context=lambda conn: conn, prefix=prefix).start()
        wire_body = {k: v for k, v in sample_record(codec, "SubmitClaim").items() if k != "header"}
        body = wire.translator(codec).inbound("SubmitClaim", wire_body)   # as a handler builds it
        producer = bus.producer()
        sent = {}
        for claim in ("C-BAD", "C-GOOD"):
            env = encode_outgoing(codec, region_node("110000"),
                                  Outgoing("SubmitClaim", HUB, claim, body), prefix)
            producer.send(env.topic, env.key, env.value, env.headers)
            sent[claim] = env.msgid
        try:
            assert node.step(timeout=0.1) == 2          # both in one batch
        finally:
            node.stop()

        assert self.names(db) == ["C-GOOD"]
        with db.engine.connect() as conn:
            refused = conn.execute(select(rejections)).mappings().all()
            outcomes = dict(conn.execute(select(processed_messages.c.msgid,
                                                processed_messages.c.outcome)).all())
            answers = conn.execute(select(outbox.c.kind, outbox.c.caused_by)).all()
        assert [(r["msgid"], r["code"], r["node"], r["field"]) for r in refused] == \
            [(sent["C-BAD"], "CLAIM_STATE_INVALID", HUB, "ipt_no")]
        assert outcomes == {sent["C-BAD"]: "rejected", sent["C-GOOD"]: "handled"}
        # the answer, and the dead letter parked in the same transaction as the refusal
        assert [tuple(a) for a in answers] == [("MessageRejected", sent["C-BAD"]),
                                               ("DeadLettered", None)]
