"""``routerscope report PATH.jsonl [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="charts and a summary from OTLP JSON lines",
                       description="Reads OTLP JSON lines (the sidecar's file:// output or the "
                                   "OpenTelemetry Collector's file exporter) and writes PNG "
                                   "charts and summary.md.")
    p.add_argument("path", type=Path, help="OTLP JSON lines file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: beside it)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from routerscope.report import write_report

    if not args.path.is_file():
        print(f"routerscope report: no such file: {args.path}", file=sys.stderr)
        return 2
    out = args.out or args.path.parent / "report"
    _, made = write_report(args.path, out)
    print((out / "summary.md").read_text())
    print("wrote " + ", ".join(str(p) for p in made))
    return 0
