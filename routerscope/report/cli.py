"""``routerscope report PATH.jsonl [--out DIR] [--service NAME]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="charts, a summary and an HTML page from OTLP JSON lines",
                       description="Reads OTLP JSON lines (the sidecar's file:// output or the "
                                   "OpenTelemetry Collector's file exporter) for one service "
                                   "and writes PNG charts, summary.md and a self-contained "
                                   "report.html.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("path", type=Path, help="OTLP JSON lines file")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: a folder 'report' beside PATH)")
    p.add_argument("--service", default=None,
                   help="service.name to report on (default: the only service in the file, "
                        "else the one with the most GenAI calls)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from routerscope.report import console_rows, format_rows, write_report

    if not args.path.is_file():
        print(f"routerscope report: no such file: {args.path}", file=sys.stderr)
        return 2
    out = args.out or args.path.parent / "report"
    try:
        sm, made = write_report(args.path, out, service=args.service)
    except ValueError as exc:
        print(f"routerscope report: {exc}", file=sys.stderr)
        return 2
    print(f"service {sm.service}" + (f" (others: {', '.join(sorted(sm.others))}; "
                                     "choose with --service)" if sm.others else ""))
    print(format_rows(console_rows(sm)))
    print("wrote " + ", ".join(str(p) for p in made))
    return 0
