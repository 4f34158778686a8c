"""A ThreadingHTTPServer on 127.0.0.1, served from a daemon thread, as a context manager."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """Base of the loopback servers (the demo provider, the test OTLP receiver).

    Subclasses set ``self._server`` before :meth:`start`; ``self._halt`` is set on
    :meth:`stop`, so handlers that hold a request open can wait on it.
    """

    _server: ThreadingHTTPServer
    scheme = "http"
    thread_name = "loopback-server"

    def __init__(self) -> None:
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Any:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=self.thread_name)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
