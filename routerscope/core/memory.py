"""Memory monitoring: background sampling, a robust trend, leak and limit alerts.

:class:`MemoryMonitor` samples process RSS and VMS, system memory use and —
when the application has imported torch and CUDA is available — CUDA memory
allocated/reserved per device, every ``interval`` seconds on a daemon thread.
torch is never imported by the monitor: a process that uses CUDA has already
imported it.

Trend
    The Theil-Sen estimator (median of pairwise slopes) over the last
    ``window`` seconds, in bytes per minute. One allocation spike moves a
    least-squares slope a lot and the median hardly at all, and memory series
    are full of spikes (a batch, a GC cycle), so we pay O(n²) on at most
    :data:`MAX_TREND_POINTS` points instead.
Leak
    "leak suspected" when RSS has grown steadily over the last ``L`` seconds:
    the Theil-Sen slope over those ``L`` seconds is above
    ``leak_threshold_mb_per_min``; each half of them grew at over half the
    threshold and by at least a quarter of ``leak_min_growth_mb`` (so one
    allocation followed by a plateau, a step, is not a leak: one half is flat);
    and the growth over them (slope * ``L``) is at least ``leak_min_growth_mb``.
    ``L = max(leak_min_span, leak_min_growth_mb / recent slope)``, capped at
    ``window``, where the recent slope is the one over the last ``leak_min_span``
    seconds. A leak of ``r`` MB/min (``r`` above the threshold) is therefore
    flagged about ``max(leak_min_span, 60 * leak_min_growth_mb / r)`` seconds
    after it starts: with the defaults (10 MB/min, 10 s, 16 MB) 10 s at 96 MB/min
    or more, 48 s at 20 MB/min, about 90 s just above 10 MB/min. Growth that
    lasts less than about half of ``leak_min_span`` is a step; a longer burst of
    growth (a model loading for many seconds) is flagged while it lasts. The flag
    clears when the slope over the last ``leak_min_span`` seconds falls to half
    the threshold or below (growth stopped).
Alerts
    ``rss_warning`` when RSS passes ``warn_fraction`` of ``rss_limit_mb``, ``rss``
    when it passes the limit, and ``system_percent`` when system memory passes
    ``percent_limit`` (the kinds, in ``routerscope.memory.alerts{kind}`` and the
    log: ``rss_warning``, ``rss``, ``system_percent``); with hysteresis: one alert
    when a value crosses its limit, re-armed only after it falls below
    ``limit * (1 - hysteresis)``. Each alert carries an estimate of the minutes
    left at the current trend: until the RSS limit for a warning, until physical
    RAM is exhausted for the others.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from routerscope.core import otel, signals
from routerscope.core._log import get_logger

__all__ = [
    "MemoryAlert",
    "MemoryMonitor",
    "MemorySample",
    "Threshold",
    "Trend",
    "get_monitor",
    "theil_sen_slope",
]

_log = get_logger("routerscope.memory")
_MB: Final = 1024 * 1024
MAX_TREND_POINTS: Final = 120
DEFAULT_INTERVAL: Final = 1.0
DEFAULT_WINDOW: Final = 300.0
DEFAULT_LEAK_MB_PER_MIN: Final = 10.0
DEFAULT_LEAK_MIN_SPAN: Final = 10.0  # seconds of growth before a leak can be suspected
DEFAULT_LEAK_MIN_GROWTH_MB: Final = 16.0  # MB of steady growth before a leak is suspected
LEAK_CHECK_POINTS: Final = 40  # points per Theil-Sen estimate in the leak check
DEFAULT_PERCENT_LIMIT: Final = 90.0
DEFAULT_HYSTERESIS: Final = 0.05
DEFAULT_WARN_FRACTION: Final = 0.8
DEFAULT_LOG_MAX_BYTES: Final = 5 * _MB
DEFAULT_LOG_BACKUPS: Final = 3


@dataclass(frozen=True, slots=True)
class MemorySample:
    t: float  # time.time()
    rss: int
    vms: int
    system_percent: float
    cuda: dict[int, tuple[int, int]] = field(default_factory=dict)  # device -> (alloc, reserved)


@dataclass(frozen=True, slots=True)
class MemoryAlert:
    kind: str  # "rss_warning", "rss" or "system_percent"
    value: float
    limit: float
    slope_bytes_per_min: float
    minutes_to_limit: float | None
    t: float


def theil_sen_slope(points: list[tuple[float, float]],
                    max_points: int = MAX_TREND_POINTS) -> float:
    """Median of pairwise slopes of (x, y) points; 0.0 with fewer than two x values."""
    n = len(points)
    if n > max_points:  # evenly thin the series; keeps the estimator's robustness
        step = n / max_points
        points = [points[int(i * step)] for i in range(max_points)]
        n = len(points)
    slopes = []
    for i in range(n):
        xi, yi = points[i]
        for j in range(i + 1, n):
            xj, yj = points[j]
            if xj != xi:
                slopes.append((yj - yi) / (xj - xi))
    if not slopes:
        return 0.0
    slopes.sort()
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2


class Trend:
    """A sliding window of (t, value) and its Theil-Sen slope per minute."""

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError("window must be > 0 seconds")
        self.window = window
        self._points: deque[tuple[float, float]] = deque()

    def add(self, t: float, value: float) -> None:
        self._points.append((t, value))
        while self._points and t - self._points[0][0] > self.window:
            self._points.popleft()

    def slope_per_min(self) -> float:
        return theil_sen_slope(list(self._points)) * 60.0

    def span(self) -> float:
        return self._points[-1][0] - self._points[0][0] if len(self._points) > 1 else 0.0

    def last(self, seconds: float) -> list[tuple[float, float]]:
        """The points of the last ``seconds`` (up to the newest one)."""
        if not self._points:
            return []
        since = self._points[-1][0] - seconds
        out = []
        for p in reversed(self._points):
            if p[0] < since:
                break
            out.append(p)
        out.reverse()
        return out


class Threshold:
    """One limit with hysteresis: :meth:`check` is True once per upward crossing."""

    def __init__(self, limit: float, hysteresis: float = DEFAULT_HYSTERESIS) -> None:
        if limit <= 0 or not 0 <= hysteresis < 1:
            raise ValueError("limit must be > 0 and hysteresis in [0, 1)")
        self.limit = limit
        self.rearm_below = limit * (1 - hysteresis)
        self.active = False

    def check(self, value: float) -> bool:
        if not self.active and value >= self.limit:
            self.active = True
            return True
        if self.active and value < self.rearm_below:
            self.active = False
        return False


class _JsonLinesLog(logging.handlers.RotatingFileHandler):
    """JSON lines rotated by size (path, path.1 ... path.N): the standard library's handler."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8",
                         delay=True)
        self._warned = False

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        self.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
        self.acquire()
        try:  # one open file per write, none held between writes
            if self.stream is not None:
                self.stream.close()
                self.stream = None  # FileHandler reopens on None
        finally:
            self.release()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self._warned:  # once: a full or read-only disk fails every write
            self._warned = True
            _log.warning("memory log not writable", path=self.baseFilename)


Sampler = Callable[[], MemorySample]


def _cuda_reading() -> dict[int, tuple[int, int]]:
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return {}
        return {i: (int(torch.cuda.memory_allocated(i)), int(torch.cuda.memory_reserved(i)))
                for i in range(torch.cuda.device_count())}
    except Exception:  # noqa: BLE001
        otel.swallowed("memory.cuda")
        return {}


def _process_sampler() -> Sampler:
    import psutil

    proc = psutil.Process()

    def sample() -> MemorySample:
        mi = proc.memory_info()
        return MemorySample(time.time(), mi.rss, mi.vms, psutil.virtual_memory().percent,
                            _cuda_reading())

    return sample


class MemoryMonitor:
    """Samples memory on a daemon thread; trend, leak state, alerts and a JSON-lines log."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        window: float = DEFAULT_WINDOW,
        leak_threshold_mb_per_min: float = DEFAULT_LEAK_MB_PER_MIN,
        leak_min_span: float = DEFAULT_LEAK_MIN_SPAN,
        leak_min_growth_mb: float = DEFAULT_LEAK_MIN_GROWTH_MB,
        rss_limit_mb: float | None = None,
        warn_fraction: float = DEFAULT_WARN_FRACTION,
        percent_limit: float | None = DEFAULT_PERCENT_LIMIT,
        hysteresis: float = DEFAULT_HYSTERESIS,
        log_path: str | os.PathLike[str] | None = None,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        log_backups: int = DEFAULT_LOG_BACKUPS,
        on_alert: Callable[[MemoryAlert], None] | None = None,
        sampler: Sampler | None = None,
        history: int = 3600,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.interval = interval
        self.trend = Trend(window)
        if leak_min_span <= 0 or leak_min_growth_mb < 0 or log_backups < 1:
            raise ValueError("leak_min_span must be > 0, leak_min_growth_mb >= 0 "
                             "and log_backups >= 1")
        self.leak_threshold = leak_threshold_mb_per_min * _MB
        self.leak_min_span = min(leak_min_span, window)
        self.leak_min_growth = leak_min_growth_mb * _MB
        self._rss_limit = Threshold(rss_limit_mb * _MB, hysteresis) if rss_limit_mb else None
        self._rss_warn = (Threshold(rss_limit_mb * _MB * warn_fraction, hysteresis)
                          if rss_limit_mb and 0 < warn_fraction < 1 else None)
        self._pct_limit = Threshold(percent_limit, hysteresis) if percent_limit else None
        self._log = (_JsonLinesLog(Path(log_path), log_max_bytes, log_backups)
                     if log_path else None)
        self.on_alert = on_alert
        self._sampler = sampler
        self.samples: deque[MemorySample] = deque(maxlen=history)
        self.alerts: list[MemoryAlert] = []
        self.slope = 0.0
        self.leak_suspected = False
        _zero_alert_counters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self._cpu_time = 0.0
        _register(self)

    def set_rss_limit(self, rss_limit_mb: float | None, *,
                      warn_fraction: float = DEFAULT_WARN_FRACTION,
                      hysteresis: float = DEFAULT_HYSTERESIS) -> None:
        """Change the RSS limit (and its warning) while running; None removes it."""
        if rss_limit_mb is None:
            self._rss_limit = self._rss_warn = None
            return
        self._rss_limit = Threshold(rss_limit_mb * _MB, hysteresis)
        self._rss_warn = (Threshold(rss_limit_mb * _MB * warn_fraction, hysteresis)
                          if 0 < warn_fraction < 1 else None)

    # -- life cycle ----------------------------------------------------------------------

    def start(self, *, delay_first: bool = False) -> MemoryMonitor:
        """Start sampling (idempotent); with ``delay_first`` the first sample waits an interval."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop.clear()
            self._started_at = time.time()
            self._thread = threading.Thread(target=self._run, args=(delay_first,),
                                            name="routerscope-memory", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (idempotent); returns within one interval."""
        with self._lock:
            thread = self._thread
            self._thread = None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 1.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, delay_first: bool = False) -> None:
        if delay_first and self._stop.wait(self.interval):
            return
        while True:
            t0 = time.thread_time()
            try:
                self.sample_once()
            except Exception:  # noqa: BLE001 - the monitor never dies of one bad sample
                _log.exception("memory sample failed")
            self._cpu_time += time.thread_time() - t0
            if self._stop.wait(self.interval):
                return

    # -- one step ------------------------------------------------------------------------

    def sample_once(self) -> MemorySample:
        """Take one sample now and update trend, leak state, alerts and the log."""
        if self._sampler is None:
            self._sampler = _process_sampler()
        s = self._sampler()
        self.ingest(s)
        return s

    def ingest(self, s: MemorySample) -> None:
        """Feed one sample (from the sampler, or a synthetic series in tests)."""
        self.samples.append(s)
        self.trend.add(s.t, float(s.rss))
        slope = self.trend.slope_per_min()
        self.slope = slope
        self._update_leak(s.t, slope)
        alerts = []
        if self._rss_warn is not None and self._rss_warn.check(s.rss):
            assert self._rss_limit is not None
            alerts.append(self._alert("rss_warning", s.rss, self._rss_limit.limit, slope, s))
        if self._rss_limit is not None and self._rss_limit.check(s.rss):
            alerts.append(self._alert("rss", s.rss, self._rss_limit.limit, slope, s))
        if self._pct_limit is not None and self._pct_limit.check(s.system_percent):
            alerts.append(self._alert("system_percent", s.system_percent,
                                      self._pct_limit.limit, slope, s))
        if self._log is not None:
            rec: dict[str, Any] = {"type": "sample", "t": s.t, "rss": s.rss, "vms": s.vms,
                                   "system_percent": s.system_percent,
                                   "slope_bytes_per_min": round(slope, 1),
                                   "leak_suspected": self.leak_suspected}
            if s.cuda:
                rec["cuda"] = {str(k): {"allocated": a, "reserved": r}
                               for k, (a, r) in s.cuda.items()}
            self._log.write(rec)
            for a in alerts:
                self._log.write({"type": "alert", **asdict(a)})

    def _update_leak(self, t: float, slope: float) -> None:
        if self.leak_suspected:
            if self._recent_slope() <= self.leak_threshold / 2:  # growth stopped
                self.leak_suspected = False
            return
        if self._growing():
            self.leak_suspected = True
            _log.warning(signals.EVENT_LEAK_SUSPECTED,
                         slope_mb_per_min=round(slope / _MB, 3),
                         window_s=self.trend.window)

    def _recent_slope(self) -> float:
        """Theil-Sen slope over the last ``leak_min_span`` seconds, bytes per minute."""
        return theil_sen_slope(self.trend.last(self.leak_min_span), LEAK_CHECK_POINTS) * 60

    def _growing(self) -> bool:
        """Steady growth over the last L seconds (see the module docstring)."""
        if self.trend.span() < self.leak_min_span * 0.999:
            return False
        recent = self._recent_slope()
        if recent <= self.leak_threshold:
            return False
        needed = max(self.leak_min_span, 60 * self.leak_min_growth / recent)
        if needed > self.trend.window or self.trend.span() < needed * 0.999:
            return False  # not enough history yet for this rate
        pts = self.trend.last(needed)
        per_min = theil_sen_slope(pts, LEAK_CHECK_POINTS) * 60
        if per_min <= self.leak_threshold or per_min * needed / 60 < self.leak_min_growth:
            return False
        mid = pts[-1][0] - needed / 2
        for half in ([p for p in pts if p[0] <= mid], [p for p in pts if p[0] >= mid]):
            half_per_min = theil_sen_slope(half, LEAK_CHECK_POINTS) * 60
            if (half_per_min <= self.leak_threshold / 2
                    or half_per_min * needed / 120 < self.leak_min_growth / 4):
                return False  # this half did not grow: a step, not a leak
        return True

    def _alert(self, kind: str, value: float, limit: float, slope: float,
               s: MemorySample) -> MemoryAlert:
        import psutil

        vm = psutil.virtual_memory()
        if kind == "rss_warning":  # time until the RSS limit
            remaining = limit - value
        else:  # time until physical RAM is exhausted
            remaining = vm.available
        minutes = remaining / slope if slope > 0 and remaining > 0 else None
        alert = MemoryAlert(kind, value, limit, slope, minutes, s.t)
        self.alerts.append(alert)
        try:
            otel.instrument(signals.MEMORY_ALERTS).add(1, {signals.ATTR_MEMORY_ALERT_KIND: kind})
            _log.warning(
                signals.EVENT_MEMORY_ALERT, kind=kind,
                value_mb=round(value / _MB, 1) if kind != "system_percent" else None,
                percent=value if kind == "system_percent" else None,
                limit=limit if kind == "system_percent" else round(limit / _MB, 1),
                rss_mb=round(s.rss / _MB, 1),
                slope_mb_per_min=round(slope / _MB, 3),
                minutes_to_limit=None if minutes is None else round(minutes, 1),
            )
        except Exception:  # noqa: BLE001 - telemetry never breaks the monitor
            otel.swallowed("memory.alert")
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception:  # noqa: BLE001
                _log.exception("on_alert hook failed")
        return alert

    # -- the seed's API ------------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        last = self.samples[-1] if self.samples else None
        rss = [x.rss for x in self.samples]
        elapsed = (time.time() - self._started_at) if self._started_at else 0.0
        return {
            "samples": len(self.samples),
            "rss_mb": last.rss / _MB if last else None,
            "vms_mb": last.vms / _MB if last else None,
            "peak_rss_mb": max(rss) / _MB if rss else None,
            "system_percent": last.system_percent if last else None,
            "slope_mb_per_min": self.slope / _MB,
            "leak_suspected": self.leak_suspected,
            "alerts": len(self.alerts),
            "monitor_cpu_percent": 100.0 * self._cpu_time / elapsed if elapsed > 0 else 0.0,
        }

    def print_stats(self) -> None:
        st = self.get_stats()
        if not st["samples"]:
            print("Memory monitor: no samples yet")
            return
        print(f"Memory: RSS {st['rss_mb']:.1f} MB (peak {st['peak_rss_mb']:.1f}), "
              f"VMS {st['vms_mb']:.1f} MB, system {st['system_percent']:.1f}%, "
              f"trend {st['slope_mb_per_min']:+.2f} MB/min"
              f"{' LEAK SUSPECTED' if st['leak_suspected'] else ''}, "
              f"alerts {st['alerts']}, monitor CPU {st['monitor_cpu_percent']:.3f}%")


# --- signals ---------------------------------------------------------------------------

_monitors: list[MemoryMonitor] = []
_ALERT_KINDS = ("rss_warning", "rss", "system_percent")


def _zero_alert_counters() -> None:
    """Start each alert series at 0, so the first alert is an increase, not a new series."""
    try:
        counter = otel.instrument(signals.MEMORY_ALERTS)
        for kind in _ALERT_KINDS:
            counter.add(0, {signals.ATTR_MEMORY_ALERT_KIND: kind})
    except Exception:  # noqa: BLE001 - telemetry never breaks the monitor
        otel.swallowed("memory.zero_alerts")


def _latest() -> MemorySample | None:
    for m in reversed(_monitors):
        if m.samples:
            return m.samples[-1]
    return None


def _active() -> MemoryMonitor | None:
    for m in reversed(_monitors):
        if m.samples:
            return m
    return None


def _register(monitor: MemoryMonitor) -> None:
    """Keep ``monitor`` among the reporting ones; the observers are registered once (``otel.observe``)."""
    _monitors.append(monitor)
    del _monitors[:-4]  # the newest few monitors; the newest with samples reports

    def one(fn: Callable[[MemorySample], float]) -> Callable[[], list[tuple[float, dict[str, Any]]]]:
        def read() -> list[tuple[float, dict[str, Any]]]:
            s = _latest()
            return [] if s is None else [(fn(s), {})]
        return read

    def cuda(idx: int) -> Callable[[], list[tuple[float, dict[str, Any]]]]:
        def read() -> list[tuple[float, dict[str, Any]]]:
            s = _latest()
            return [] if s is None else [(v[idx], {signals.ATTR_DEVICE: f"cuda:{d}"})
                                         for d, v in s.cuda.items()]
        return read

    def monitor_value(fn: Callable[[MemoryMonitor], float]) -> Any:
        def read() -> list[tuple[float, dict[str, Any]]]:
            m = _active()
            return [] if m is None else [(fn(m), {})]
        return read

    otel.observe(signals.PROCESS_MEMORY_USAGE, one(lambda s: s.rss))
    otel.observe(signals.PROCESS_MEMORY_VIRTUAL, one(lambda s: s.vms))
    otel.observe(signals.SYSTEM_MEMORY_UTILIZATION, one(lambda s: s.system_percent / 100.0))
    otel.observe(signals.MEMORY_CUDA_ALLOCATED, cuda(0))
    otel.observe(signals.MEMORY_CUDA_RESERVED, cuda(1))
    # the gauge is per second: "By/s" translates the same in Prometheus and VictoriaMetrics
    otel.observe(signals.MEMORY_TREND, monitor_value(lambda m: m.slope / 60.0))
    otel.observe(signals.MEMORY_LEAK_SUSPECTED,
                  monitor_value(lambda m: 1.0 if m.leak_suspected else 0.0))

    def limit() -> list[tuple[float, dict[str, Any]]]:
        m = _active()
        return [] if m is None or m._rss_limit is None else [(m._rss_limit.limit, {})]

    otel.observe(signals.MEMORY_RSS_LIMIT, limit)


_global: MemoryMonitor | None = None
_global_lock = threading.Lock()


def get_monitor(**kwargs: Any) -> MemoryMonitor:
    """The process-wide monitor (created on first call with ``kwargs``)."""
    global _global
    with _global_lock:
        if _global is None:
            _global = MemoryMonitor(**kwargs)
        return _global
