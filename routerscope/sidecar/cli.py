"""``routerscope sidecar``: argument parsing and ``--status``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from routerscope.sidecar import defaults

_log = logging.getLogger("routerscope.sidecar")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sidecar", help="run the OTLP sidecar (durable spool, ships to a collector)",
        description="Accepts OTLP/HTTP on --listen and OTLP/gRPC on --grpc-listen, writes "
                    "every request to a durable spool before answering, and ships the spool "
                    "in order to --upstream.")
    p.add_argument("--listen", default=defaults.LISTEN,
                   help="OTLP/HTTP HOST:PORT (default %(default)s)")
    p.add_argument("--grpc-listen", default=None, metavar="HOST:PORT|off",
                   help=f"OTLP/gRPC HOST:PORT, or '{defaults.GRPC_OFF}' (default "
                        f"{defaults.GRPC_LISTEN}; when that default port is busy the sidecar "
                        "warns and runs without gRPC)")
    p.add_argument("--upstream", default=None,
                   help="collector base URL (http://host:4318) or file://PATH.jsonl "
                        "(required; OTEL_EXPORTER_OTLP_ENDPOINT is not read: apps use it to "
                        "reach this sidecar)")
    p.add_argument("--spool", type=Path, default=None,
                   help="spool directory (default: $XDG_STATE_HOME/routerscope/spool)")
    p.add_argument("--max-spool-mb", type=float, default=defaults.MAX_SPOOL_MB,
                   help="spool size limit in MiB (default %(default)s)")
    p.add_argument("--on-full", choices=defaults.ON_FULL_POLICIES, default=defaults.ON_FULL,
                   help="when the spool is full: answer 503 (reject) or drop the oldest "
                        "(default %(default)s)")
    p.add_argument("--fsync", choices=defaults.FSYNC_POLICIES, default=defaults.FSYNC,
                   help="always: fsync before the 2xx; interval: once a second; never "
                        "(default %(default)s)")
    p.add_argument("--max-body-mb", type=float, default=defaults.MAX_BODY_MB,
                   help="largest request body in MiB, compressed and decompressed "
                        "(default %(default)s)")
    p.add_argument("--token-file", type=Path, default=None,
                   help="file holding the bearer token that clients must send as "
                        "'Authorization: Bearer TOKEN' (required off loopback; default: "
                        f"${defaults.TOKEN_ENV}, else none)")
    p.add_argument("--token", default=None,
                   help="the bearer token itself; prefer --token-file or "
                        f"${defaults.TOKEN_ENV}: other users can read command lines "
                        "(default: none)")
    p.add_argument("--send-timeout", type=float, default=defaults.SEND_TIMEOUT,
                   help="seconds per upstream attempt (default %(default)s)")
    p.add_argument("--self-metrics-interval", type=float,
                   default=defaults.SELF_METRICS_INTERVAL,
                   help="seconds between self-metric collections, 0 = off "
                        "(default %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=defaults.IDLE_TIMEOUT,
                   help="seconds before an idle connection, or one whose headers are not "
                        "complete, is closed (default %(default)s)")
    p.add_argument("--body-timeout", type=float, default=defaults.BODY_TIMEOUT,
                   help="seconds allowed to receive one request body (default %(default)s)")
    p.add_argument("--max-connections", type=int, default=defaults.MAX_CONNECTIONS,
                   help="HTTP connections served at once; more get 503 (default %(default)s)")
    p.add_argument("--dead-letter-mb", type=float, default=defaults.DEAD_LETTER_MB,
                   help="size cap of SPOOL/dead-letter.jsonl, where undeliverable requests "
                        "are kept with their reason (default %(default)s)")
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   default="INFO", help="log level (default %(default)s)")
    p.add_argument("--status", action="store_true",
                   help="print the counters of the sidecar running at --listen and exit")
    p.set_defaults(handler=run)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            token = str(args.token_file.read_text()).strip()
        except OSError as exc:
            raise ValueError(f"cannot read --token-file {args.token_file}: {exc}") from None
        if not token:
            raise ValueError(f"--token-file {args.token_file} is empty")
        return token
    if args.token:
        return str(args.token)
    env = os.environ.get(defaults.TOKEN_ENV)
    return str(env) if env else None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        token = _token(args)
    except ValueError as exc:
        print(f"routerscope sidecar: {exc}", file=sys.stderr)
        return 2
    if args.status:
        return _status(args, token)
    if not args.upstream:
        print("routerscope sidecar: no upstream: pass --upstream http://collector:4318 (or "
              "file://out.jsonl). OTEL_EXPORTER_OTLP_ENDPOINT is not read: it is how apps "
              "reach this sidecar.", file=sys.stderr)
        return 2
    if args.token:
        _log.warning("--token is visible to other users in the process list; prefer "
                     "--token-file or $%s", defaults.TOKEN_ENV)
    from routerscope.sidecar import Sidecar, SidecarConfig

    grpc = args.grpc_listen or defaults.GRPC_LISTEN
    cfg = SidecarConfig(upstream=args.upstream, listen=args.listen, spool_dir=args.spool,
                        max_spool_mb=args.max_spool_mb, on_full=args.on_full, fsync=args.fsync,
                        max_body_mb=args.max_body_mb, token=token,
                        send_timeout=args.send_timeout,
                        self_metrics_interval=args.self_metrics_interval,
                        grpc_listen=None if grpc == defaults.GRPC_OFF else grpc,
                        grpc_required=args.grpc_listen is not None,
                        idle_timeout=args.idle_timeout, body_timeout=args.body_timeout,
                        max_connections=args.max_connections,
                        dead_letter_mb=args.dead_letter_mb)
    try:
        sidecar = Sidecar(cfg)
    except (ValueError, OSError) as exc:
        print(f"routerscope sidecar: {exc}", file=sys.stderr)
        return 2
    return sidecar.run()


def _status(args: argparse.Namespace, token: str | None) -> int:
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
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
    grpc = f" (gRPC {st['grpc_listen']})" if st.get("grpc_listen") else ""
    print(f"sidecar {st['listen']}{grpc} -> {st['upstream']} (up {st['uptime_s']} s, "
          f"{st.get('ready', '?')})")
    q = st["queue"]
    print(f"  queue     {q['requests']} requests, {q['bytes']} bytes (max {q['max_bytes']})")
    print(f"  received  {json.dumps(st['received'])} ({st['received_bytes']} bytes)")
    print(f"  shipped   {json.dumps(st['shipped'])}")
    print(f"  retries   {st['retries']}")
    print(f"  dropped   {json.dumps(st['dropped'])}")
    dl = st.get("dead_letter") or {}
    if dl.get("records"):
        print(f"  dead letters {json.dumps(dl['records'])} in {dl['file']}")
    print(f"  send s    {json.dumps(st['send_latency_s'])}")
    if st.get("last_error"):
        print(f"  last error {st['last_error']}")
    return 0
