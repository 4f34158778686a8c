"""The memory monitor: trend, leak state, alerts, log, life cycle."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from routerscope.core import signals
from routerscope.core.memory import (
    MemoryAlert,
    MemoryMonitor,
    MemorySample,
    Threshold,
    Trend,
    get_monitor,
    theil_sen_slope,
)
from tests._wait import wait_until

MB = 1024 * 1024


def _series(monitor: MemoryMonitor, values: list[float], *, step: float = 1.0,
            pct: float = 10.0) -> None:
    start = monitor.samples[-1].t + step if monitor.samples else 1000.0
    for i, v in enumerate(values):
        monitor.ingest(MemorySample(start + i * step, int(v), int(v) * 2, pct))


def test_trend_positive_on_growing_series() -> None:
    """A steady 1 MB/s growth with noise gives a slope near 60 MB/min."""
    rng = random.Random(1)
    trend = Trend(window=120)
    for i in range(120):
        trend.add(i, 500 * MB + i * MB + rng.uniform(-2, 2) * MB)
    assert trend.slope_per_min() == pytest.approx(60 * MB, rel=0.1)


def test_trend_flat_noisy_is_near_zero() -> None:
    """A flat series with noise and spikes has a slope near zero."""
    rng = random.Random(2)
    trend = Trend(window=300)
    for i in range(300):
        spike = 200 * MB if i % 37 == 0 else 0
        trend.add(i, 500 * MB + rng.uniform(-5, 5) * MB + spike)
    assert abs(trend.slope_per_min()) < 2 * MB


def test_theil_sen_ignores_a_spike_least_squares_does_not() -> None:
    """One huge spike barely moves the Theil-Sen slope."""
    pts = [(float(i), 100.0) for i in range(50)]
    pts[49] = (49.0, 10_000.0)
    assert theil_sen_slope(pts) == 0.0


def test_one_alert_per_crossing() -> None:
    """Crossing a limit alerts once; it re-arms only after falling below the hysteresis band."""
    th = Threshold(100, hysteresis=0.1)
    fired = [th.check(v) for v in (50, 101, 120, 99, 105, 89, 101)]
    assert fired == [False, True, False, False, False, False, True]


def test_monitor_rss_alerts_with_time_to_limit(otel, logs) -> None:  # type: ignore[no-untyped-def]
    """Growing RSS gives one warning (with minutes to the limit) and one alert at the limit."""
    alerts: list[MemoryAlert] = []
    m = MemoryMonitor(interval=1, window=60, rss_limit_mb=200, percent_limit=None,
                      on_alert=alerts.append)
    _series(m, [100 * MB + i * MB for i in range(50)])  # below 80 % of 200 MB
    assert alerts == []
    _series(m, [150 * MB + i * MB for i in range(60)])  # 60 MB/min through 160 and 200 MB
    assert [a.kind for a in alerts] == ["rss_warning", "rss"]
    warn = alerts[0]
    assert warn.slope_bytes_per_min == pytest.approx(60 * MB, rel=0.05)
    # at 160 MB, 40 MB short of the limit at 60 MB/min: about 40 s
    assert warn.minutes_to_limit == pytest.approx(40 / 60, rel=0.1)
    assert signals.EVENT_MEMORY_ALERT in logs.events()
    rec = [r for r in logs.records if r.getMessage() == signals.EVENT_MEMORY_ALERT][-1]
    assert rec.__dict__["kind"] == "rss" and rec.__dict__["rss_mb"] >= 200
    assert any(p.value >= 1 for attrs, p in otel.points(signals.MEMORY_ALERTS.name)
               if attrs.get(signals.ATTR_MEMORY_ALERT_KIND) == "rss")


def test_minutes_to_limit_estimate() -> None:
    """A system-percent alert on a growing process estimates minutes until RAM runs out."""
    alerts: list[MemoryAlert] = []
    m = MemoryMonitor(window=60, percent_limit=50, rss_limit_mb=None, on_alert=alerts.append)
    _series(m, [100 * MB + i * MB for i in range(10)], pct=40)
    _series(m, [110 * MB + i * MB for i in range(10)], pct=60)
    assert len(alerts) == 1 and alerts[0].minutes_to_limit is not None
    assert alerts[0].minutes_to_limit > 0


def _first_flag(m: MemoryMonitor, values: list[float], step: float = 1.0) -> float | None:
    """Seconds from the first fed sample to the first one with leak_suspected, or None."""
    for i, v in enumerate(values):
        _series(m, [v], step=step)
        if m.leak_suspected:
            return i * step
    return None


@pytest.mark.parametrize(("mb_per_min", "expected_s"), [(120.0, 10.0), (30.0, 32.0)])
def test_leak_flagged_after_max_of_min_span_and_min_growth(mb_per_min: float,
                                                            expected_s: float) -> None:
    """A steady leak of r MB/min is flagged max(10 s, 16 MB / r) after it starts, noise or not."""
    rng = random.Random(3)
    m = MemoryMonitor(percent_limit=None)  # defaults: 10 MB/min, 10 s, 16 MB, 300 s window
    per_s = mb_per_min * MB / 60
    flagged = _first_flag(m, [300 * MB + i * per_s + rng.uniform(-0.2, 0.2) * MB
                              for i in range(120)])
    assert flagged is not None
    assert expected_s <= flagged <= expected_s * 1.25 + 2


def test_leak_after_a_long_plateau_is_flagged_without_waiting_a_window() -> None:
    """A leak that starts after minutes of flat memory is flagged on its own evidence."""
    m = MemoryMonitor(percent_limit=None)
    _series(m, [300 * MB] * 200)
    flagged = _first_flag(m, [300 * MB + i * 2 * MB for i in range(60)])  # 120 MB/min
    assert flagged is not None and flagged <= 13


def test_step_then_plateau_is_not_a_leak() -> None:
    """One big allocation followed by a plateau (noisy) is never flagged, at any sample."""
    rng = random.Random(4)
    m = MemoryMonitor(percent_limit=None)
    values = [200 * MB + rng.uniform(-0.5, 0.5) * MB for _ in range(20)]
    values += [210 * MB, 220 * MB]  # +20 MB within 2 s, then flat
    values += [220 * MB + rng.uniform(-0.5, 0.5) * MB for _ in range(200)]
    assert _first_flag(m, values) is None
    assert m.slope < m.leak_threshold


def test_leak_clears_within_min_span_once_growth_stops() -> None:
    """Flagged while it grows; cleared within leak_min_span (10 s) of a flat line."""
    m = MemoryMonitor(percent_limit=None)
    _series(m, [100 * MB + i * MB for i in range(40)])
    assert m.leak_suspected
    _series(m, [140 * MB] * 10)
    assert not m.leak_suspected


class _ClockedProcessSampler:
    """Real RSS readings of this process, stamped by a clock the test advances (1 s a call)."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.t = 1000.0

    def __call__(self) -> MemorySample:
        self.t += 1.0
        return MemorySample(self.t, self.proc.memory_info().rss, 0, 10.0)


def test_real_allocations_leak_is_flagged_and_steady_is_not() -> None:
    """Real memory: 3 MB more every sample is a leak; 64 MB once, then nothing, is not."""
    held: list[bytearray] = []
    steady = MemoryMonitor(percent_limit=None, sampler=_ClockedProcessSampler())
    for i in range(40):
        if i == 5:
            held.append(bytearray(b"x") * (64 * MB))  # written, so resident
        steady.sample_once()
        assert not steady.leak_suspected, f"steady run flagged at sample {i}"
    leaky = MemoryMonitor(percent_limit=None, sampler=_ClockedProcessSampler())
    samples = 0
    while samples < 30 and not leaky.leak_suspected:
        held.append(bytearray(b"x") * (3 * MB))  # 180 MB/min
        leaky.sample_once()
        samples += 1
    assert leaky.leak_suspected and samples <= 15
    held.clear()


def test_jsonl_log_is_bounded_and_rotated(tmp_path: Path) -> None:
    """The samples log rotates at its size limit and keeps the configured backups."""
    log = tmp_path / "mem.jsonl"
    m = MemoryMonitor(log_path=log, log_max_bytes=2000, log_backups=2, percent_limit=None)
    _series(m, [100 * MB] * 100)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["mem.jsonl", "mem.jsonl.1", "mem.jsonl.2"]
    assert all((tmp_path / f).stat().st_size <= 2000 for f in files)
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["type"] == "sample" and last["rss"] == 100 * MB


def test_start_stop_idempotent_and_prompt() -> None:
    """start() twice runs one thread; stop() twice is fine and returns within an interval."""
    m = MemoryMonitor(interval=0.5, percent_limit=None)
    m.start()
    m.start()
    assert wait_until(lambda: bool(m.samples), 5)
    assert m.samples and m.samples[-1].rss > 0
    t0 = time.monotonic()
    m.stop()
    m.stop()
    assert time.monotonic() - t0 < 0.5 + 0.5
    assert not m.running


def test_process_gauges_report_latest_sample(otel) -> None:  # type: ignore[no-untyped-def]
    """process.memory.usage/virtual report the newest sample as observable gauges."""
    m = MemoryMonitor(percent_limit=None)
    s = m.sample_once()
    usage = [p.value for _, p in otel.points(signals.PROCESS_MEMORY_USAGE.name)]
    virt = [p.value for _, p in otel.points(signals.PROCESS_MEMORY_VIRTUAL.name)]
    assert usage and abs(usage[0] - s.rss) < 64 * MB
    assert virt and virt[0] >= usage[0]
    assert otel.units()[signals.PROCESS_MEMORY_USAGE.name] == "By"


def test_seed_api(capsys: pytest.CaptureFixture[str]) -> None:
    """get_monitor(), start(), print_stats(), stop() work as in the seed."""
    mon = get_monitor(interval=0.2, percent_limit=None)
    assert get_monitor() is mon
    mon.start()
    assert wait_until(lambda: bool(mon.samples), 5)
    mon.print_stats()
    mon.stop()
    assert "Memory: RSS" in capsys.readouterr().out


def test_bad_arguments() -> None:
    """A zero interval or a nonsense threshold fails at construction."""
    with pytest.raises(ValueError):
        MemoryMonitor(interval=0)
    with pytest.raises(ValueError):
        Threshold(0)
