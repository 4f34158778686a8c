"""One benchmark process: set up one instrumentation, then make W warm-up and N measured calls.

Run by ``benchmarks/bench_peers.py`` with the Python of routerscope's venv or of a
peer's venv under ``.bench-venvs/`` (so it imports nothing from this checkout)::

    python child.py MODE PATH URL WARMUP N1 N2 [LEVER]

MODE is ``bare``, ``routerscope``, ``otel`` (run under ``opentelemetry-instrument``,
pinned to plain OpenTelemetry), ``logfire`` or ``openlit``. PATH is ``requests``
(a plain ``requests`` chat-completion POST), ``requests8k`` (the same with an 8 KB
prompt), ``openai`` (``openai.OpenAI(...)
.chat.completions.create``) or ``nonllm`` (a plain GET to a path that is not an
LLM API). After WARMUP calls it makes N1 calls, then N2 - N1 more, calling
``os.getloadavg()`` (libc ``getloadavg``, which nothing else here calls) before
each block and at the end, each time after flushing what the calls left queued:
under ``valgrind --tool=callgrind --dump-before=getloadavg --separate-threads=yes``
each block's instructions land in a dump of their own, per thread (the calling
thread is thread 1; the flushing is done by a thread of its own), so the per-call
slope between N1 and N2 calls excludes start-up, warm-up and exit. It prints one
JSON line: the caller-thread wall time of each call after warm-up (median,
microseconds) and what was set up.

Guards, each ending the process with a message and exit status 97/98 so the
benchmark fails loudly instead of measuring something else:

* an audit hook aborts on any name lookup or connection to a non-loopback
  address (OpenLIT fetches its pricing file from the internet unless given one);
* under ``opentelemetry-instrument`` routerscope must not have been activated
  (it registers a distro and configurator of its own; the benchmark pins
  ``OTEL_PYTHON_DISTRO=distro`` and ``OTEL_PYTHON_CONFIGURATOR=configurator``)
  and the OpenTelemetry SDK must be the active tracer provider.

LEVER (``routerscope`` only) is an experiment, switched here and nowhere else,
never a result row; each undoes one of the savings to measure it:
``sdk-histograms`` (histogram records through the SDK instead of routerscope's
pre-aggregation), ``no-histograms`` (records dropped), ``spans-end-now`` (LLM call
spans end on the caller's thread), ``sdk-encoder`` (spans encoded by the SDK's OTLP
encoder), ``no-redact`` (no URL redaction, no scan of each ended span for secrets),
``no-pool-count`` (urllib3 pools' connection and request counting unpatched).
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
import time
from typing import Any

LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})


def _abort(code: int, msg: str) -> None:
    os.write(2, f"bench child: {msg}\n".encode())
    os._exit(code)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        addr = args[1] if len(args) > 1 else None
        if isinstance(addr, tuple) and addr and addr[0] not in LOOPBACK_NAMES:
            _abort(97, f"{event} to non-loopback {addr!r}")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and host not in LOOPBACK_NAMES:
            _abort(97, f"name lookup of non-loopback host {host!r}")


sys.addaudithook(_audit)


def _lever(name: str) -> None:
    """Experiments on routerscope's hot path (measured, never shipped)."""
    from routerscope.core import otel

    ours = [m for m in list(sys.modules.values())
            if getattr(m, "__name__", "").startswith("routerscope")]
    if name == "sdk-histograms":  # every histogram record through the SDK, as before issue 15
        otel.set_record_sink(None)
    elif name == "no-histograms":  # every histogram record taken and dropped
        otel.set_record_sink(lambda *a: True)
    elif name == "spans-end-now":  # LLM call spans end on the caller's thread
        otel.set_spans_end_later(False)
    elif name == "sdk-encoder":  # spans encoded by the SDK's OTLP encoder
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        import routerscope.telemetry._otlp_span_exporter as fast_export

        fast_export.encode_spans_bytes = (  # type: ignore[attr-defined]
            lambda spans: encode_spans(spans).SerializePartialToString())
    elif name == "no-redact":  # no URL redaction and no span scan when nothing matches
        import routerscope.telemetry._redact as redaction

        redaction._span_has_secret = lambda span: False  # type: ignore[attr-defined]
        for mod in ours:
            if mod.__name__.startswith("routerscope.instrumentation") and hasattr(mod, "_redact"):
                mod._redact = str
    elif name == "no-pool-count":  # urllib3 pools' connection/request counting taken off
        for mod in ours:
            unpatch = getattr(mod, "unpatch_urllib3_pools", None)
            if unpatch is not None:
                unpatch()
    elif name:
        _abort(98, f"unknown lever {name!r}")


def _setup(mode: str, path: str, lever: str) -> str:
    """Install ``mode``'s instrumentation; returns a one-line description."""
    if mode == "bare":
        return "no instrumentation"
    if mode == "routerscope":
        import routerscope.auto  # noqa: F401 - the import is the set-up
        import routerscope.instrumentation as inst

        wait = getattr(inst, "wait_instrumented", None)  # background patching, where there is any
        if wait is not None:
            wait()
        _lever(lever)
        return "import routerscope.auto" + (f" [experiment: {lever}]" if lever else "")
    if mode == "otel":
        from opentelemetry import trace

        if "routerscope" in sys.modules or any(m.startswith("routerscope.") for m in sys.modules):
            _abort(98, "routerscope was activated under opentelemetry-instrument: the baseline "
                       "is not plain OpenTelemetry (pin OTEL_PYTHON_DISTRO/CONFIGURATOR)")
        provider = type(trace.get_tracer_provider())
        if not provider.__module__.startswith("opentelemetry.sdk"):
            _abort(98, f"opentelemetry-instrument left no SDK tracer provider ({provider})")
        return "opentelemetry-instrument (distro=distro, configurator=configurator)"
    if mode == "logfire":
        logfire: Any = importlib.import_module("logfire")
        logfire.configure(send_to_logfire=False, console=False)
        if path == "openai":
            logfire.instrument_openai()
        else:
            logfire.instrument_requests()
        return "logfire.configure + instrument_" + ("openai" if path == "openai" else "requests")
    if mode == "openlit":
        openlit: Any = importlib.import_module("openlit")
        openlit.init(otlp_endpoint=os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"],
                     pricing_json=os.environ["BENCH_OPENLIT_PRICING"])
        return "openlit.init (local pricing_json)"
    _abort(98, f"unknown mode {mode!r}")
    return ""


def _caller(path: str, url: str) -> Any:
    if path == "openai":
        openai: Any = importlib.import_module("openai")
        client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
        messages = [{"role": "user", "content": "hi"}]

        def chat() -> Any:
            return client.chat.completions.create(model="demo/small", messages=messages,
                                                  max_tokens=4)
        return chat
    import requests

    session = requests.Session()
    if path == "nonllm":
        def get() -> Any:
            return session.get(url + "/health").content
        return get
    # a router's prompts are often kilobytes, not "hi": requests8k sends 8 KB (BENCH_PROMPT_BYTES
    # sets another size on either requests path)
    size = int(os.environ.get("BENCH_PROMPT_BYTES", "8192" if path == "requests8k" else "0"))
    prompt = "hi " * (size // 3) or "hi"
    body = {"model": "demo/small", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 4}

    def post() -> Any:
        return session.post(url + "/chat/completions", json=body).json()
    return post


class _Settler:
    """A thread that lives through every block and does :func:`_settle_now` when asked.

    The calling thread only waits for it, so callgrind's count of the calling
    thread (``--separate-threads=yes``: thread 1) holds the calls alone, and the
    settling (a drain, a batch export) is counted in the block, on a thread that
    is still alive at the dump mark (callgrind dumps live threads only).
    """

    def __init__(self, mode: str) -> None:
        import threading

        self.mode = mode
        self.ask, self.done = threading.Event(), threading.Event()
        threading.Thread(target=self._run, name="bench-settle", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.ask.wait()
            self.ask.clear()
            _settle_now(self.mode)
            self.done.set()

    def __call__(self) -> None:
        self.done.clear()
        self.ask.set()
        self.done.wait()


def _settle_now(mode: str) -> None:
    """Finish the work the calls so far left behind (deferred records, queued spans).

    Called before every dump mark, so each block holds the whole cost of its own
    calls, not a time-driven share of the batch exports of earlier ones.
    """
    if mode == "bare":
        return
    ours = sys.modules.get("routerscope.core.otel")
    if ours is not None:
        ours.drain()
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()


def _instrumentation_on() -> None:
    """Start callgrind's counting now (it runs with ``--instr-atstart=no``).

    Start-up and warm-up then run at valgrind's uninstrumented speed; what runs
    between this switch and the first dump mark is counted in a dump of its own.
    """
    import subprocess

    ctl = subprocess.Popen(["callgrind_control", "-i", "on", str(os.getpid())],
                           stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while ctl.poll() is None:  # callgrind answers between guest instructions: poll, never block
        if time.monotonic() > deadline:
            _abort(98, "callgrind_control -i on got no answer in 120 s")
        time.sleep(0.01)
    if ctl.returncode != 0:
        _abort(98, f"callgrind_control -i on exited {ctl.returncode}")


def main() -> None:
    mode, path, url, warm, n1, n2 = sys.argv[1:7]
    lever = sys.argv[7] if len(sys.argv) > 7 else ""
    what = _setup(mode, path, lever)
    call = _caller(path, url)
    for _ in range(int(warm)):
        call()
    if os.environ.get("BENCH_CALLGRIND"):
        _instrumentation_on()
    settle = _Settler(mode)
    clock = time.perf_counter_ns
    samples = []
    prof_out = os.environ.get("BENCH_CPROFILE")  # profile the second block with cProfile
    prof: Any = None
    for block in (int(n1), int(n2) - int(n1)):
        settle()
        os.getloadavg()  # a callgrind dump mark
        if prof_out and block != int(n1):
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        for _ in range(block):
            t0 = clock()
            call()
            samples.append(clock() - t0)
    settle()
    if prof is not None:
        prof.disable()
        prof.dump_stats(prof_out)
    os.getloadavg()
    median = statistics.median(samples) / 1000 if samples else 0.0
    print(json.dumps({"median_us": median, "setup": what}))


if __name__ == "__main__":
    main()
