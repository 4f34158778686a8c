"""``routerscope sidecar``: argument parsing and ``--status``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sidecar", help="run the OTLP sidecar (durable spool, ships to a collector)",
        description="Accepts OTLP/HTTP on --listen, writes every request to a durable spool "
                    "before answering, and ships the spool in order to --upstream.")
    p.add_argument("--listen", default="127.0.0.1:4318", help="HOST:PORT (default %(default)s)")
    p.add_argument("--upstream", default=None,
                   help="collector base URL (http://host:4318) or file://PATH.jsonl; default: "
                        "$OTEL_EXPORTER_OTLP_ENDPOINT")
    p.add_argument("--spool", type=Path, default=None,
                   help="spool directory (default: $XDG_STATE_HOME/routerscope/spool)")
    p.add_argument("--max-spool-mb", type=float, default=1024.0)
    p.add_argument("--on-full", choices=("reject", "drop-oldest"), default="reject",
                   help="when the spool is full: answer 503 (reject) or drop the oldest")
    p.add_argument("--fsync", choices=("always", "interval", "never"), default="always",
                   help="always: fsync before the 2xx (default); interval: once a second; never")
    p.add_argument("--max-body-mb", type=float, default=64.0,
                   help="largest decompressed request body")
    p.add_argument("--token", default=os.environ.get("ROUTERSCOPE_SIDECAR_TOKEN"),
                   help="require 'Authorization: Bearer TOKEN' (needed off loopback)")
    p.add_argument("--send-timeout", type=float, default=10.0,
                   help="seconds per upstream attempt")
    p.add_argument("--self-metrics-interval", type=float, default=10.0,
                   help="seconds between self-metric collections (0 = off)")
    p.add_argument("--status", action="store_true",
                   help="print the counters of the sidecar running at --listen and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging

    if args.status:
        return _status(args)
    upstream = args.upstream or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not upstream:
        print("routerscope sidecar: no upstream: pass --upstream http://collector:4318 (or "
              "file://out.jsonl), or set OTEL_EXPORTER_OTLP_ENDPOINT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    from routerscope.sidecar import Sidecar, SidecarConfig

    cfg = SidecarConfig(upstream=upstream, listen=args.listen, spool_dir=args.spool,
                        max_spool_mb=args.max_spool_mb, on_full=args.on_full, fsync=args.fsync,
                        max_body_mb=args.max_body_mb, token=args.token,
                        send_timeout=args.send_timeout,
                        self_metrics_interval=args.self_metrics_interval)
    try:
        sidecar = Sidecar(cfg)
    except (ValueError, OSError) as exc:
        print(f"routerscope sidecar: {exc}", file=sys.stderr)
        return 2
    return sidecar.run()


def _status(args: argparse.Namespace) -> int:
    import requests

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    url = f"http://{args.listen}/status"
    try:
        resp = requests.get(url, headers=headers, timeout=5)
    except requests.RequestException as exc:
        print(f"routerscope sidecar: no sidecar answers at {args.listen} ({type(exc).__name__})",
              file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"routerscope sidecar: {url} answered {resp.status_code}", file=sys.stderr)
        return 1
    st = resp.json()
    print(f"sidecar {st['listen']} -> {st['upstream']} (up {st['uptime_s']} s)")
    q = st["queue"]
    print(f"  queue     {q['requests']} requests, {q['bytes']} bytes (max {q['max_bytes']})")
    print(f"  received  {json.dumps(st['received'])} ({st['received_bytes']} bytes)")
    print(f"  shipped   {json.dumps(st['shipped'])}")
    print(f"  retries   {st['retries']}")
    print(f"  dropped   {json.dumps(st['dropped'])}")
    print(f"  send s    {json.dumps(st['send_latency_s'])}")
    if st.get("last_error"):
        print(f"  last error {st['last_error']}")
    return 0
