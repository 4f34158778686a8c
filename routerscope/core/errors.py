"""The exceptions routerscope raises, as one small tree.

::

    RouterscopeError
    ├── ProviderError                 an LLM provider answered with an error
    │   ├── BadRequestError           400, 422: the request itself is wrong
    │   ├── AuthenticationError       401, 403: key missing, wrong or not allowed
    │   ├── InsufficientCreditsError  402: the account is out of credits
    │   ├── RateLimitError            429: slow down (``retry_after`` seconds)
    │   ├── ProviderUnavailableError  500, 502, 503: the upstream model is down
    │   └── ProviderTimeoutError      408, 504, or no answer within the timeout
    ├── ProviderConnectionError       the provider could not be reached at all
    └── ModelTooLargeError            a model is bigger than a cache's whole budget

Every message says what to do next. None of them ever contains an API key.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "InsufficientCreditsError",
    "ModelTooLargeError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RouterscopeError",
    "error_for_status",
]


class RouterscopeError(Exception):
    """Base class of every routerscope exception."""


class ProviderError(RouterscopeError):
    """An LLM provider answered with an error.

    ``status_code`` is the HTTP status (or the ``code`` of an error carried in a
    200 body), ``provider`` the host it came from, ``model`` the model asked for,
    and ``body`` the provider's own error message.
    """

    hint = "Check the provider's status page and the request."

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        body: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.provider = provider
        self.model = model
        self.body = body
        parts = [message]
        if body:
            parts.append(f"provider said: {body[:500]}")
        parts.append(self.hint)
        super().__init__(" — ".join(parts))


class BadRequestError(ProviderError):
    hint = "Fix the request: check the model id, the message format and the parameters."


class AuthenticationError(ProviderError):
    hint = "Set a valid key: pass api_key=... or export OPENROUTER_API_KEY."


class InsufficientCreditsError(ProviderError):
    hint = "Add credits to the account, or choose a cheaper or free model."


class RateLimitError(ProviderError):
    hint = "Slow down: wait retry_after seconds, lower concurrency, or use another model."

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ProviderUnavailableError(ProviderError):
    hint = "The upstream model is down or overloaded: retry later or route to another model."


class ProviderTimeoutError(ProviderError):
    hint = "No answer in time: raise the timeout, shorten the prompt, or stream the response."


class ProviderConnectionError(RouterscopeError):
    """The provider could not be reached (DNS, refused connection, TLS)."""


class ModelTooLargeError(RouterscopeError, ValueError):
    """A model is larger than a cache's whole byte budget, so it is never cached."""


_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    422: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    402: InsufficientCreditsError,
    429: RateLimitError,
    500: ProviderUnavailableError,
    502: ProviderUnavailableError,
    503: ProviderUnavailableError,
    408: ProviderTimeoutError,
    504: ProviderTimeoutError,
}


def error_for_status(
    status: int,
    *,
    provider: str | None,
    model: str | None,
    body: str | None,
    retry_after: float | None = None,
) -> ProviderError:
    """The exception for an HTTP status (or an error ``code`` in a 200 body)."""
    cls = _BY_STATUS.get(status, ProviderError)
    message = f"{provider or 'provider'} returned {status}"
    if model:
        message += f" for model {model!r}"
    if cls is RateLimitError:
        return RateLimitError(
            message,
            retry_after=retry_after,
            status_code=status,
            provider=provider,
            model=model,
            body=body,
        )
    return cls(message, status_code=status, provider=provider, model=model, body=body)
