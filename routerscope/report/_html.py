"""``report.html``: one self-contained page (tables, charts as ``data:`` URIs, no scripts)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from routerscope.report._build import Summary, Telemetry, console_rows, fmt, leak_text

__all__ = ["page"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 60em; color: #1f1f1f; background: #ffffff; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #c8c8c8; padding: 0.3em 0.7em; text-align: left; }
th { background: #eef2f8; }
img { max-width: 100%; border: 1px solid #e0e0e0; margin: 0.5em 0; }
.muted { color: #5a5a5a; }
"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    thead = f"<thead><tr>{h}</tr></thead>" if any(head) else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def page(sm: Summary, tel: Telemetry, charts: list[Path]) -> str:
    """The whole report as one HTML document."""
    by_name = {p.name: p for p in charts}
    svc = html.escape(str(sm.service))
    c = sm.counts
    parts = [f"<h1>routerscope report — service <code>{svc}</code></h1>",
             f'<p class="muted">{c["spans"]} spans, {c["logs"]} log records and {c["points"]} '
             f"metric points from this service ({tel.lines} OTLP requests read).</p>"]
    if sm.others:
        parts.append("<p>Other services in the file (choose with <code>--service NAME</code>): "
                     + ", ".join(f"<code>{html.escape(n)}</code> ({k} GenAI calls)"
                                 for n, k in sorted(sm.others.items())) + ".</p>")
    parts.append("<h2>At a glance</h2>" + _table(["", ""], [[k, v] for k, v in console_rows(sm)]))
    parts.append("<h2>Start-up</h2>" + _table(
        ["phase", "seconds from process start"],
        [[k, fmt(v)] for k, v in sorted(sm.startup.items(), key=lambda kv: kv[1])]))
    if sm.lazy_inits:
        starts = {n: t for n, t, _ in sm.lazy_timeline}
        parts.append(_table(["lazy init", "count", "mean seconds", "first start (s)"],
                            [[k, str(n), fmt(v, digits=4), fmt(starts.get(k))]
                             for k, (n, v) in sorted(sm.lazy_inits.items())]))
    for name, title in (("startup.png", None), ("cache_hit_rate.png", "Model cache"),
                        ("memory.png", "Memory"), ("api_latency.png", "API latency"),
                        ("time_to_first_chunk.png", "Time to first chunk")):
        if title == "Time to first chunk" and not sm.ttfc:
            continue
        if title:
            parts.append(f"<h2>{title}</h2>")
        if title == "Memory":
            parts.append(f"<p>Leak suspected: <b>{html.escape(leak_text(sm))}</b>; alerts "
                         f"{sm.alerts:.0f}; RSS limit {fmt(sm.rss_limit_mb, ' MB', 0)}.</p>")
        if title in ("API latency", "Time to first chunk"):
            qs, calls = (sm.latency, sm.calls) if title == "API latency" else (sm.ttfc,
                                                                               sm.ttfc_calls)
            if qs:
                parts.append(_table(["model", "calls", "p50 s", "p95 s", "p99 s"],
                                    [[m, str(calls.get(m, 0)), fmt(q["p50"]), fmt(q["p95"]),
                                      fmt(q["p99"])] for m, q in qs.items()]))
        if name in by_name:
            parts.append(_img(by_name[name]))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>routerscope report — {svc}</title><style>{_STYLE}</style></head>"
            "<body>" + "\n".join(parts) + "</body></html>\n")
