"""Many nodes on a few workers: a node is stepped when kicked, never by two workers at
once, not while paused, and again after a step that had more to do."""

from __future__ import annotations

import threading
import time

from testbed.scheduler import Scheduler


class Consumer:
    wake = None


class FakeNode:
    def __init__(self, name: str, work: int = 0):
        self.node_id = name
        self._consumer = Consumer()
        self.work = work              # steps that find something to do
        self.steps = 0
        self.inside = 0
        self.overlapped = False
        self.relay_due = False
        self.lock = threading.Lock()

    def step(self, timeout: float = 0) -> int:
        with self.lock:
            self.inside += 1
            self.overlapped |= self.inside > 1
        time.sleep(0.001)
        with self.lock:
            self.inside -= 1
            self.steps += 1
            if self.work:
                self.work -= 1
                return 1
            return 0


def settle(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_node_with_more_to_do_is_stepped_until_it_has_none_and_never_twice_at_once():
    busy = FakeNode("busy", work=50)
    scheduler = Scheduler([busy], workers=3).start()
    try:
        for _ in range(200):
            busy._consumer.wake.set()          # records keep arriving while it works
        assert settle(lambda: busy.work == 0)
        assert not busy.overlapped
    finally:
        scheduler.stop()


def test_an_idle_node_is_stepped_only_when_a_record_reaches_it():
    idle = FakeNode("idle")
    scheduler = Scheduler([idle], workers=2).start()
    try:
        assert settle(lambda: idle.steps == 1)     # once at start: what came before
        time.sleep(0.3)
        assert idle.steps == 1
        idle._consumer.wake.set()
        assert settle(lambda: idle.steps == 2)
    finally:
        scheduler.stop()


def test_a_paused_node_is_not_stepped_until_resumed():
    node = FakeNode("paused")
    scheduler = Scheduler([node], workers=2).start()
    [handle] = scheduler.handles
    try:
        assert settle(lambda: node.steps == 1)
        handle.pause()
        node._consumer.wake.set()
        time.sleep(0.3)
        assert node.steps == 1
        handle.resume()
        assert settle(lambda: node.steps == 2)
        assert handle.is_alive()
    finally:
        scheduler.stop()
    assert not handle.is_alive()


def test_a_failing_step_is_retried_after_a_pause_and_counted():
    class Failing(FakeNode):
        def step(self, timeout: float = 0) -> int:
            self.steps += 1
            if self.steps < 3:
                raise RuntimeError("the database is away")
            return 0
    node = Failing("failing")
    scheduler = Scheduler([node], workers=1).start()
    [handle] = scheduler.handles
    try:
        assert settle(lambda: node.steps == 3)
        assert handle.errors == 2
    finally:
        scheduler.stop()


def test_a_node_stopped_alone_is_stepped_no_more_and_the_others_go_on():
    stopped, other = FakeNode("stopped"), FakeNode("other")
    scheduler = Scheduler([stopped, other], workers=2).start()
    first, second = scheduler.handles
    try:
        assert settle(lambda: stopped.steps == 1 and other.steps == 1)
        first.stop()
        assert not first.is_alive() and second.is_alive()
        stopped._consumer.wake.set()
        other._consumer.wake.set()
        assert settle(lambda: other.steps == 2)
        time.sleep(0.2)
        assert stopped.steps == 1
    finally:
        scheduler.stop()
