"""Helpers that the tests, the benchmarks and the demo share: real servers on 127.0.0.1.

* :class:`FakeProvider` — an OpenAI-compatible provider with realistic latency
  and scripted faults (:class:`Fault`); the demo's provider too.
* :class:`OTLPReceiver` — an OTLP/HTTP receiver that decodes what it gets
  (:class:`Answer` scripts its replies; :func:`attrs_of` flattens attributes).
* :class:`LoopbackServer` — the base of both: a server on a daemon thread.
"""

from __future__ import annotations

from routerscope.testing._loopback import LoopbackServer
from routerscope.testing._otlp_receiver import Answer, OTLPReceiver, attrs_of, read_trace_request
from routerscope.testing._provider import FakeProvider, Fault, SeenRequest

__all__ = ["Answer", "FakeProvider", "Fault", "LoopbackServer", "OTLPReceiver", "SeenRequest", "attrs_of",
           "read_trace_request"]
