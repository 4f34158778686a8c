"""The ``openai`` and ``anthropic`` SDKs: their retried attempts are one LLM call.

Both SDKs retry inside ``SyncAPIClient.request`` / ``AsyncAPIClient.request``
(429, 5xx, connection errors; ``max_retries``, 2 by default). The HTTP layer sees
each attempt; wrapped in :func:`._genai_http.sdk_call`, the attempts share one
GenAI span and one ``gen_ai.client.operation.duration`` record, and the last
attempt decides the outcome. LiteLLM's OpenAI-compatible providers go through
the ``openai`` SDK and get the same.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from routerscope.instrumentation._genai_http import sdk_call

__all__ = ["patch"]


def patch(mod: ModuleType) -> None:
    """Wrap ``<sdk>._base_client``'s sync and async ``request`` (idempotent)."""
    base = importlib.import_module(f"{mod.__name__}._base_client")
    sync_request = base.SyncAPIClient.request
    if getattr(sync_request, "__routerscope__", False):
        return
    async_request = base.AsyncAPIClient.request

    @functools.wraps(sync_request)
    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        with sdk_call():
            return sync_request(self, *args, **kwargs)

    @functools.wraps(async_request)
    async def request_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        with sdk_call():
            return await async_request(self, *args, **kwargs)

    request.__routerscope__ = True  # type: ignore[attr-defined]
    request_async.__routerscope__ = True  # type: ignore[attr-defined]
    base.SyncAPIClient.request = request
    base.AsyncAPIClient.request = request_async
