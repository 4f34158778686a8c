"""The redaction rules themselves: patterns and the string/value rewriting.

Kept apart from :mod:`._redact` (the span processor and log filter) because it
imports nothing from the OpenTelemetry SDK: settings warnings use it before the
SDK may safely be imported (the SDK reads some variables while it imports).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["REDACTED", "has_secret", "redact", "redact_value"]

REDACTED: Final = "REDACTED"

# provider keys by their well-known prefixes (Groq, Hugging Face, Google, xAI, Perplexity,
# Replicate, GitHub, AWS access key ids); ``sk-`` keys have their own pattern
_KEY_PREFIXES: Final = r"(?:gsk|hf|xai|pplx|r8|gh[pousr]|github_pat)[_-]|AIza|A[KS]IA"
_KEYS: Final = (r"\b(?:(?:gsk_|hf_|xai-|pplx-|r8_|gh[pousr]_)[A-Za-z0-9]{20,}|github_pat_\w{20,}"
                r"|AIza[0-9A-Za-z_\-]{30,}|A[KS]IA[0-9A-Z]{16}\b)")  # not identifiers like hf_hub_...
# query parameters whose value is a secret (OTel HTTP semconv: the value becomes REDACTED):
# a name containing key/token/secret/password/credential, ending in sig/signature/auth, or
# ``code`` (Azure Functions): api_key, subscription-key, X-Amz-Signature, AWSAccessKeyId...
_SECRET_PARAM: Final = (r"[?&;](?i:[\w.\-]*?(?:key|token|secret|passw|pwd|credential)[\w.\-]*"
                        r"|[\w.\-]*?(?:sig|signature|auth|authorization)|code)=")

_PATTERNS: Final = [
    (re.compile(r"\bsk-(?:or-|ant-|proj-)?[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(_KEYS), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(://)[^/\s:@]+:[^/\s@]+@"), r"\1" + REDACTED + ":" + REDACTED + "@"),
    (re.compile(rf"({_SECRET_PARAM})[^&#\s\"'<>]+"), r"\1" + REDACTED),
]
# one search, a superset of the patterns (a secret query parameter's name holds one of these words)
_QUICK: Final = re.compile(rf"sk-|{_KEY_PREFIXES}|(?i:bearer|basic)\s|://[^/\s]*@|[?&;][\w.\-]*?"
                           r"(?i:key|token|secret|passw|pwd|credential|sig|auth|code)")


def has_secret(text: str) -> bool:
    return _QUICK.search(text) is not None


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``REDACTED``."""
    if not _QUICK.search(text):
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_value(value: Any) -> Any:
    """``value`` with secrets redacted in it (a string, or each string of a list or tuple)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list):
        return type(value)(redact_value(v) for v in value)
    return value
