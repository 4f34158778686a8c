"""The lazy descriptor and start-up measurement."""

from __future__ import annotations

import threading
import time

import pytest

from routerscope.core import signals
from routerscope.core.lazy import is_initialized, lazy, mark_ready, reset
from tests.conftest import Records, Telemetry, span_attrs


class Router:
    def __init__(self) -> None:
        self.builds = 0
        self.fail_next = False

    @lazy
    def manager(self) -> dict[str, int]:
        """A heavy manager."""
        self.builds += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        time.sleep(0.01)  # widen the race window
        return {"n": self.builds}


def test_builds_once_under_a_race() -> None:
    """Eight threads racing on first access build the value once and all get it."""
    r = Router()
    barrier = threading.Barrier(8)
    got: list[object] = []

    def worker() -> None:
        barrier.wait()
        got.append(r.manager)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.builds == 1
    assert len(got) == 8 and all(g is got[0] for g in got)


def test_exception_is_not_cached() -> None:
    """A failed build raises, and the next access tries again."""
    r = Router()
    r.fail_next = True
    with pytest.raises(RuntimeError):
        _ = r.manager
    assert not is_initialized(r, "manager")
    assert r.manager == {"n": 2}


def test_reset_rebuilds() -> None:
    """reset() forgets the value; the next access builds a new one."""
    r = Router()
    first = r.manager
    reset(r, "manager")
    assert r.manager is not first and r.builds == 2


def test_after_first_access_it_is_a_plain_attribute() -> None:
    """Once built, the value lives in the instance dict, so the descriptor is bypassed."""
    r = Router()
    _ = r.manager
    assert r.__dict__["manager"] is r.manager
    assert Router.__dict__["manager"].__get__ is not None
    assert Router.manager.__doc__ == "A heavy manager."


def test_instances_are_independent() -> None:
    """Each instance builds its own value."""
    a, b = Router(), Router()
    assert a.manager is not b.manager


def test_slots_without_dict_is_a_clear_error() -> None:
    """A class with __slots__ and no __dict__ gets a TypeError saying how to fix it."""

    class Slotted:
        __slots__ = ()

        @lazy
        def x(self) -> int:
            return 1

    with pytest.raises(TypeError, match="__dict__"):
        _ = Slotted().x


def test_lazy_init_is_instrumented(otel: Telemetry, logs: Records) -> None:
    """A build emits a span, the duration histogram with owner/attribute, and the event."""
    r = Router()
    _ = r.manager
    spans = [s for s in otel.spans() if s.name.startswith(signals.SPAN_LAZY_INIT)]
    assert spans and span_attrs(spans[-1])[signals.ATTR_LAZY_ATTRIBUTE] == "manager"
    points = [
        p
        for a, p in otel.points(signals.LAZY_INIT_DURATION.name)
        if a.get(signals.ATTR_LAZY_OWNER) == "Router" and a.get(signals.ATTR_LAZY_ATTRIBUTE) == "manager"
    ]
    assert points and points[0].count >= 1 and points[0].sum >= 0.01
    assert "Initializing manager (lazy load)" in logs.events()


def test_mark_ready_measures_from_process_start(otel: Telemetry, logs: Records) -> None:
    """mark_ready() returns seconds since the process started and records them."""
    import psutil

    expected = time.time() - psutil.Process().create_time()
    elapsed = mark_ready()
    assert elapsed == pytest.approx(expected, abs=1.0)
    pts = [
        p
        for a, p in otel.points(signals.STARTUP_DURATION.name)
        if a.get(signals.ATTR_STARTUP_PHASE) == signals.PHASE_READY
    ]
    assert pts and pts[0].sum == pytest.approx(elapsed, abs=0.5)
