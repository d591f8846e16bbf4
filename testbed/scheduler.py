"""Many nodes on a few threads, for a run on the in-process bus.

A thread per node is what a node process has, and what a run on Kafka keeps (each consumer
polls its broker). In one process with hundreds of nodes (a national run has 781), threads
that each wait on their own topic cost more than the work: they contend for the bus and for
the interpreter. Here a node is stepped only when a record reaches its topic, or when its
last step left more to do, by whichever of a few workers is free; an idle node costs
nothing. A node is never stepped by two workers at once.

Each node gets a handle with a node thread's manners (``name``, ``pause``, ``resume``,
``is_alive``, ``stop``, ``errors``), so the runner drives either the same way.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque

from clearsim.bus.base import BusError
from clearsim.node import Node

log = logging.getLogger(__name__)

WORKERS = 3


class Ready:
    """Stands in for a consumer's wake-up event: a record reaching the topic queues the
    node instead of waking a thread."""

    def __init__(self, scheduler: "Scheduler", handle: "Handle"):
        self.scheduler, self.handle = scheduler, handle

    def set(self) -> None:
        self.scheduler.kick(self.handle)

    def clear(self) -> None:
        return None

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return False       # a scheduled node polls with no wait


class Handle:
    def __init__(self, scheduler: "Scheduler", node: Node):
        self.scheduler = scheduler
        self.node = node
        self.name = node.node_id
        self.running = threading.Event()
        self.running.set()
        self.stopping = threading.Event()
        self.errors = 0
        self.busy = False          # a worker is stepping it
        self.again = False         # kicked while busy: step it again after
        self.queued = False
        self.backoff = 0.05

    def pause(self) -> None:
        """Stepped no more; the step in hand (which waits for nothing) ends first."""
        self.running.clear()
        deadline = time.monotonic() + 30
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.005)

    def resume(self) -> None:
        if not self.stopping.is_set():
            self.running.set()
            self.scheduler.kick(self)

    def is_alive(self) -> bool:
        return self.scheduler.alive() and not self.stopping.is_set()

    def stop(self) -> None:
        """This node is stepped no more (its step in hand ends first); the others go on."""
        self.stopping.set()
        self.running.clear()
        deadline = time.monotonic() + 30
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.005)


class Scheduler:
    def __init__(self, nodes: list[Node], workers: int = WORKERS):
        self._cv = threading.Condition()
        self._ready: deque[Handle] = deque()
        self._later: list[tuple[float, int, Handle]] = []      # (due, order, handle)
        self._order = itertools.count()
        self._stopping = threading.Event()
        self.handles = [Handle(self, node) for node in nodes]
        self._workers = [threading.Thread(target=self._work, name=f"nodes-{i}", daemon=True)
                         for i in range(workers)]

    def start(self) -> "Scheduler":
        for handle in self.handles:
            handle.node._consumer.wake = Ready(self, handle)
            self.kick(handle)        # what reached its topic before it was scheduled
        for worker in self._workers:
            worker.start()
        return self

    def alive(self) -> bool:
        return not self._stopping.is_set() and all(w.is_alive() for w in self._workers)

    def kick(self, handle: Handle) -> None:
        with self._cv:
            if handle.busy:
                handle.again = True
            elif not handle.queued:
                handle.queued = True
                self._ready.append(handle)
                self._cv.notify()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._cv:
            self._cv.notify_all()
        for worker in self._workers:
            worker.join(timeout=30)

    def _next(self) -> Handle | None:
        with self._cv:
            while not self._stopping.is_set():
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    _, _, handle = heapq.heappop(self._later)
                    if not handle.queued and not handle.busy:
                        handle.queued = True
                        self._ready.append(handle)
                if self._ready:
                    handle = self._ready.popleft()
                    handle.queued = False
                    handle.busy = True
                    return handle
                wait = self._later[0][0] - now if self._later else 0.5
                self._cv.wait(min(max(wait, 0.001), 0.5))
        return None

    def _work(self) -> None:
        while (handle := self._next()) is not None:
            more = False
            retry = None
            if handle.running.is_set():
                try:
                    more = handle.node.step(timeout=0) > 0 or handle.node.relay_due
                    handle.backoff = 0.05
                except BusError as exc:
                    handle.errors += 1
                    log.warning("%s: %s; retrying in %.2fs", handle.name, exc, handle.backoff)
                    retry = handle.backoff
                except Exception:
                    handle.errors += 1
                    log.exception("%s: step failed; retrying in %.2fs", handle.name,
                                  handle.backoff)
                    retry = handle.backoff
                if retry is not None:
                    handle.backoff = min(handle.backoff * 2, 2.0)
            with self._cv:
                handle.busy = False
                if retry is not None:
                    heapq.heappush(self._later,
                                   (time.monotonic() + retry, next(self._order), handle))
                    self._cv.notify()
                elif (more or handle.again) and handle.running.is_set():
                    handle.queued = True
                    self._ready.append(handle)
                    self._cv.notify()
                handle.again = False
