"""``clearsim dlq list|show|replay``: the messages the nodes refused, as they were parked.

Every refusal a node records is parked on the run's dead-letter topic ``{prefix}.dlq``
(keyed by the node that refused it) with the reason and the original record; the same
dead letter stays in that node's outbox. So the parked messages of a run are read from
the topic on its cluster (``--kafka``, ``--prefix``), or, when the cluster is gone (an
in-process run: its bus ended with it) or was never there, from the nodes' databases
(``--db``: a run's ``OUT/db`` directory, a node process's ``--db`` directory or
PostgreSQL server). ``--db`` wins when both are given: the databases hold every dead
letter even when a node never managed to relay one.

``replay`` writes a parked message back to its original topic on ``--kafka``, bytes and
headers as they came: its node takes it like any delivery, deduplicated by its message
id. A message refused for its bytes or interface did not consume its id, so once the
cause is fixed (the node knows the schema, the link is sound) the replay is handled, once;
a message that was handled, or refused and answered (its id consumed), is absorbed as a
duplicate and changes nothing.

No person id is ever printed in full: in the reasons, the decoded messages and the bytes.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from clearsim import deadletters
from clearsim.bus.topics import dlq_topic
from clearsim.codec import Codec
from clearsim.deadletters import Parked
from clearsim.errors import ClearsimError, ErrorCode

READ_IDLE = 1.5          # wall seconds without a record before the topic is read to its end
READ_TIMEOUT = 60.0      # the longest a read of the topic takes


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dlq", help="list, show and replay the messages the nodes refused",
        description="The dead-letter topic of a run: every message a node refused, with the "
                    "reason and the original bytes and headers. Read from the run's Kafka "
                    "cluster (--kafka, --prefix) or its nodes' databases (--db); replay "
                    "writes back to the cluster.")
    actions = p.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the parked messages, one a line")
    show = actions.add_parser("show", help="one parked message: reason, headers, bytes")
    show.add_argument("id", help="its dead-letter id (or the start of it), as list prints")
    replay = actions.add_parser("replay", help="write parked messages back to their topics")
    replay.add_argument("ids", nargs="*", metavar="id", help="dead-letter ids (or starts)")
    replay.add_argument("--all", action="store_true",
                        help="every parked message the filters select")
    for a in (listing, show, replay):
        _source_options(a)
    for a in (listing, replay):
        a.add_argument("--code", help="only those refused with this error code")
        a.add_argument("--node", help="only those this node refused (hub, region-CODE, ...)")
    p.set_defaults(handler=main)


def _source_options(p) -> None:
    env = os.environ.get
    p.add_argument("--kafka", metavar="HOST:PORT[,...]", default=env("CLEARSIM_KAFKA"),
                   help="bootstrap servers of the run's cluster (env CLEARSIM_KAFKA)")
    p.add_argument("--prefix", default=env("CLEARSIM_PREFIX", "clearsim"),
                   help="the run's topic prefix (env CLEARSIM_PREFIX; default clearsim)")
    p.add_argument("--db", metavar="DIR_OR_URL",
                   help="read the nodes' databases instead of the topic: a directory of "
                        "SQLite files (a run's OUT/db) or a PostgreSQL server URL")
    p.add_argument("--json", action="store_true", help="print JSON")


def main(args) -> int:
    try:
        if args.kafka in ("local", "memory"):
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"--kafka {args.kafka}: the dead letters of a run that had "
                                "its own broker or bus are in its nodes' databases: --db "
                                "OUT/db", "--kafka")
        if args.action == "replay" and not args.kafka:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                "replay writes to the run's topics: give its cluster, --kafka "
                                "HOST:PORT (an in-process run's bus ended with the run)",
                                "--kafka")
        if args.action == "replay" and not (args.ids or args.all):
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                "name the dead letters to replay, or --all", "id")
        if not (args.db or args.kafka):
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                "where are the dead letters? --kafka HOST:PORT (the run's "
                                "cluster) or --db DIR (an in-process run's OUT/db)", "--db")
    except ClearsimError as exc:
        print(f"clearsim: {exc}", file=sys.stderr)
        return 2
    try:
        return _act(args)
    except BrokenPipeError:                 # the reader went away (| head): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _act(args) -> int:
    codec, bus = Codec(), None
    try:
        if args.kafka:
            from clearsim.bus.kafka import KafkaBus
            reachable(args.kafka)
            bus = KafkaBus(args.kafka, client_id="clearsim-dlq")
        where, parked, unreadable = load(codec, args, bus)
        if args.action == "list":
            return print_list(codec, select(parked, args), where, unreadable, args.json)
        if args.action == "show":
            return print_one(codec, find(parked, [args.id])[0], args.json)
        chosen = select(parked, args) if args.all else find(select(parked, args), args.ids)
        return replay_and_tell(bus, chosen, args.prefix, args.json)
    except ClearsimError as exc:
        print(f"clearsim: {exc}", file=sys.stderr)
        return 3 if exc.code in (ErrorCode.BROKER_UNAVAILABLE,
                                 ErrorCode.DATABASE_UNAVAILABLE) else 2
    finally:
        if bus is not None:
            bus.close()


# -- reading -------------------------------------------------------------------------------

def reachable(bootstrap: str, timeout: float = 3.0) -> None:
    """Refuse at once a cluster none of whose bootstrap servers takes a connection (the
    Kafka client would try for many seconds)."""
    servers = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"--kafka {bootstrap}: not HOST:PORT[,HOST:PORT...]",
                                "--kafka")
        servers.append((host.strip("[]"), int(port)))
    for host, port in servers:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
    raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE,
                        f"no Kafka broker at {bootstrap}: {why}", "--kafka")


def load(codec: Codec, args, bus) -> tuple[str, list[Parked], int]:
    """(where they were read, the dead letters, how many could not be read)."""
    if args.db:
        letters = from_databases(args.db, args.prefix)
        where = f"the nodes' databases in {_shown_db(args.db)}"
    else:
        letters = from_bus(bus, args.prefix)
        where = f"{dlq_topic(args.prefix)} on {args.kafka}"
    parked, unreadable = parse(codec, letters)
    if args.db:                             # the nodes' letters interleaved, as they came
        parked.sort(key=lambda p: p.parked_at)
    return where, parked, unreadable


def parse(codec: Codec, letters: list[tuple[str, bytes]]) -> tuple[list[Parked], int]:
    """The dead letters, each once (a relay may have sent one twice), and how many could
    not be read."""
    seen, parked, unreadable = set(), [], 0
    for _, data in letters:
        try:
            one = deadletters.read(codec, data)
        except ClearsimError:
            unreadable += 1
            continue
        if one.id not in seen:
            seen.add(one.id)
            parked.append(one)
    return parked, unreadable


def from_bus(bus, prefix: str, idle: float = READ_IDLE,
             timeout: float = READ_TIMEOUT) -> list[tuple[str, bytes]]:
    """Every record of the dead-letter topic, read from its start by a consumer group of
    its own (nothing committed), until nothing more comes for ``idle`` seconds."""
    from clearsim.bus.base import BusError, Consumer
    topic = dlq_topic(prefix)
    try:
        if hasattr(bus, "admin") and topic not in set(bus.admin().list_topics()):
            return []
        consumer = bus.consumer(f"{topic}.reader-{uuid.uuid4().hex[:8]}", [topic])
    except BusError as exc:
        raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE, str(exc), "--kafka") from None
    out: list[tuple[str, bytes]] = []
    # A consumer that does not say which partitions it holds holds them all at once.
    says = type(consumer).assignment is not Consumer.assignment
    try:
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            records = consumer.poll(timeout=min(idle, 0.5), max_records=500)
            now = time.monotonic()
            if records:
                out += [(f"{r.topic}:{r.partition}:{r.offset}", r.value) for r in records]
                last = now
            elif now - last >= idle and (consumer.assignment() or not says):
                break
    except BusError as exc:
        raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE, str(exc), "--kafka") from None
    finally:
        consumer.close()
    return out


def from_databases(db: str, prefix: str) -> list[tuple[str, bytes]]:
    """The dead letters every node database holds (a directory of SQLite files, or the
    databases ``PREFIX_NODE`` of a PostgreSQL server)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, OperationalError

    from testbed.processes import is_server_url
    urls = _server_databases(db, prefix) if is_server_url(db) else _sqlite_files(db)
    out: list[tuple[str, bytes]] = []
    for url in urls:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                out += deadletters.parked_in(conn)
        except OperationalError as exc:
            if "no such table" in str(exc.orig) or "does not exist" in str(exc.orig):
                continue        # a database that is no node's
            raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                                f"cannot read {_shown_db(url)}: {exc.orig}", "--db") from None
        except DBAPIError as exc:
            if "does not exist" in str(exc.orig):
                continue
            raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                                f"cannot read {_shown_db(url)}: {exc.orig}", "--db") from None
        finally:
            engine.dispose()
    return out


def _sqlite_files(db: str) -> list[str]:
    directory = Path(db.removeprefix("sqlite:///"))
    if not directory.is_dir():
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"--db {db}: no such directory (a run's node databases are in "
                            "OUT/db)", "--db")
    return [f"sqlite:///{path}" for path in sorted(directory.glob("*.db")) if path.is_file()]


def _server_databases(server: str, prefix: str) -> list[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    start = f"{prefix}_".replace(".", "_").replace("-", "_").lower()
    engine = create_engine(server)
    try:
        with engine.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database ORDER BY datname")
                                 ).scalars().all()
    except DBAPIError as exc:
        raise ClearsimError(ErrorCode.DATABASE_UNAVAILABLE,
                            f"cannot reach {_shown_db(server)}: {exc.orig}", "--db") from None
    finally:
        engine.dispose()
    url = make_url(server)
    return [url.set(database=name).render_as_string(hide_password=False)
            for name in names if name.startswith(start)]


def _shown_db(db: str) -> str:
    if "://" in db and "@" in db:
        from clearsim.db import safe_url
        return safe_url(db)
    return db


# -- choosing ------------------------------------------------------------------------------

def select(parked: list[Parked], args) -> list[Parked]:
    code, node = getattr(args, "code", None), getattr(args, "node", None)
    return [p for p in parked if (not code or p.code == code) and (not node or p.node == node)]


def find(parked: list[Parked], ids: list[str]) -> list[Parked]:
    """The dead letters named by ``ids`` (each its id or an unambiguous start of it)."""
    out = []
    for wanted in ids:
        hits = [p for p in parked if p.id == wanted] or \
            [p for p in parked if p.id.startswith(wanted)]
        if len(hits) != 1:
            why = "no dead letter has" if not hits else f"{len(hits)} dead letters have"
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"{why} the id {wanted!r} (clearsim dlq list shows them)",
                                "id")
        out.append(hits[0])
    return out


# -- showing -------------------------------------------------------------------------------

def _header(parked: Parked, name: str) -> str:
    for key, value in parked.headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return ""


def summary(codec: Codec, parked: Parked) -> dict:
    """One dead letter as ``list`` shows it, every person id masked."""
    decoded = deadletters.original(codec, parked)
    personal = deadletters.personal_values(decoded[1]) if decoded else set()
    return {
        "id": parked.id, "node": parked.node, "parked_at": parked.parked_at.isoformat(),
        "code": parked.code, "field": parked.field,
        "message": deadletters.masked(parked.message, personal),
        "msgid": parked.msgid, "kind": parked.kind, "infno": parked.infno,
        "sender": parked.sender,
        "claim": deadletters.masked(_header(parked, "correlation_id"), personal),
        "consumed": parked.consumed, "topic": parked.topic, "partition": parked.partition,
        "offset": parked.offset, "bytes": parked.length, "replayable": parked.whole,
    }


def print_list(codec: Codec, parked: list[Parked], where: str, unreadable: int,
               as_json: bool) -> int:
    rows = [summary(codec, p) for p in parked]
    if as_json:
        print(json.dumps({"source": where, "dead_letters": rows, "unreadable": unreadable},
                         indent=2))
        return 0
    print(f"{len(rows)} dead letters in {where}"
          + (f" ({unreadable} more could not be read)" if unreadable else ""))
    if rows:
        columns = ("id", "node", "code", "field", "kind", "claim", "sender", "consumed")
        table = [[_cell(r[c]) for c in columns] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(columns)]
        print("  " + "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
        for row in table:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


def print_one(codec: Codec, parked: Parked, as_json: bool) -> int:
    decoded = deadletters.original(codec, parked)
    personal = deadletters.personal_values(decoded[1]) if decoded else set()
    headers = [(name, deadletters.masked(value.decode("utf-8", "replace"), personal))
               for name, value in parked.headers]
    if as_json:
        print(json.dumps({
            **summary(codec, parked),
            "headers": dict(headers), "key": deadletters.masked(
                (parked.key or b"").decode("utf-8", "replace"), personal),
            "sha256": parked.sha256,
            "decoded": None if decoded is None else {
                "kind": decoded[0], "record": deadletters.plain(decoded[1], personal)},
            "hex": None if decoded is not None else deadletters.hex_dump(parked.value),
        }, indent=2))
        return 0
    s = summary(codec, parked)
    sim = f" (simulated {parked.sim_time:%Y-%m-%d})" if decoded and parked.sim_time else ""
    print(f"dead letter {parked.id}, parked by {parked.node} at "
          f"{parked.parked_at:%Y-%m-%d %H:%M:%S}{sim}")
    print(f"  refused:  {s['code']}" + (f" ({s['field']})" if s["field"] else "")
          + f": {s['message']}")
    print(f"  message:  {parked.kind or 'unknown kind'}"
          + (f" {parked.infno}" if parked.infno else "")
          + f", id {parked.msgid or 'none'}, from {parked.sender or 'an unnamed sender'}")
    print("  its id:   " + ("consumed: the same message replayed is absorbed as a duplicate"
                            if parked.consumed else
                            "not consumed: replayed, it is taken again (and handled, once, "
                            "when its cause is fixed)"))
    print(f"  record:   {parked.topic}[{parked.partition}]@{parked.offset}, "
          f"{parked.length} bytes, sha256 {parked.sha256[:16]}..."
          + ("" if parked.whole else f" (parked: the first {len(parked.value)})"))
    print("  headers:  " + (", ".join(f"{n}={_cell(v)}" for n, v in headers) or "none"))
    if decoded is not None:
        kind, record = decoded
        print(f"  bytes:    a {kind} message, as its writer wrote it:")
        for line in json.dumps(deadletters.plain(record, personal), indent=2).splitlines():
            print(f"    {line}")
    else:
        print("  bytes:    not a message this codec reads; as hex:")
        for line in deadletters.hex_dump(parked.value):
            print(f"    {line}")
    return 0


# -- replaying -----------------------------------------------------------------------------

def replay(bus, parked: list[Parked], prefix: str) -> tuple[list[Parked], list[tuple]]:
    """Write each of ``parked`` back to its original topic, as it came; (replayed, [(one,
    why it was not)])."""
    from clearsim.bus.base import BusError
    done, skipped = [], []
    producer = bus.producer()
    try:
        for one in parked:
            if not one.whole:
                skipped.append((one, f"only its first {len(one.value)} of {one.length} bytes "
                                     "were parked"))
            elif not one.topic.startswith(prefix + ".") or one.topic == dlq_topic(prefix):
                skipped.append((one, f"{one.topic} is not a node topic of prefix {prefix}"))
            else:
                producer.send(one.topic, one.key, one.value, one.headers)
                done.append(one)
        producer.flush()
    except BusError as exc:
        raise ClearsimError(ErrorCode.BROKER_UNAVAILABLE, str(exc), "--kafka") from None
    finally:
        producer.close()
    return done, skipped


def replay_and_tell(bus, parked: list[Parked], prefix: str, as_json: bool) -> int:
    done, skipped = replay(bus, parked, prefix)
    if as_json:
        print(json.dumps({"replayed": [p.id for p in done],
                          "not_replayed": [{"id": p.id, "why": why} for p, why in skipped]},
                         indent=2))
    else:
        for one in done:
            print(f"replayed {one.id}: {one.kind or 'message'} {one.msgid or ''} to "
                  f"{one.topic}")
        for one, why in skipped:
            print(f"not replayed {one.id}: {why}")
        print(f"{len(done)} replayed, {len(skipped)} not. Each is taken by its node like any "
              "delivery: handled once if its id was never consumed, else absorbed.")
    return 1 if skipped else 0
