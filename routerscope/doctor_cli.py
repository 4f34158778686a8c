"""``routerscope doctor``: prints what :func:`routerscope.core.batch.doctor` returns."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from routerscope.core.batch import DoctorReport, HardwareInfo, Recommendation

__all__ = ["add_parser", "format_hardware", "format_table", "run"]

_GB: Final = 1024**3


def add_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="show detected hardware and batch/context advice",
                       description="Detects CPU, RAM and CUDA/MPS devices and recommends batch "
                                   "sizes and context lengths per model.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--context", type=int, default=4096,
                   help="context length for the batch-size advice")
    p.add_argument("--batch", type=int, default=1, help="batch size for the context-length advice")
    p.add_argument("--model", action="append", default=None,
                   help="a built-in profile name or a Hugging Face config.json (repeatable; "
                        "None: every built-in profile)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from routerscope.core.batch import doctor

    try:
        report = doctor(context=args.context, batch=args.batch, models=args.model)
    except ValueError as exc:
        print(f"routerscope doctor: {exc}", file=sys.stderr)
        return 2
    print(render(report, as_json=args.json))
    return 0


def render(report: DoctorReport, *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(report.to_dict(), indent=2)
    return (format_hardware(report.hardware) + "\n\n"
            + format_table(report.recommendations, report.context, report.batch))


def format_hardware(hw: HardwareInfo) -> str:
    lines = [f"CPU: {hw.cpu_logical} logical cores"
             + (f" ({hw.cpu_physical} physical)" if hw.cpu_physical else ""),
             f"RAM: {hw.ram_total / _GB:.1f} GiB total, {hw.ram_available / _GB:.1f} GiB available",
             f"torch: {hw.torch_version or 'not installed (psutil only)'}"]
    for d in hw.cuda:
        cc = f", compute {d.compute_capability[0]}.{d.compute_capability[1]}" \
            if d.compute_capability else ""
        lines.append(f"{d.name}: {d.description}, {d.total_bytes / _GB:.1f} GiB total, "
                     f"{d.free_bytes / _GB:.1f} GiB free{cc}")
    if not hw.cuda:
        lines.append("CUDA: none")
    lines.append(f"MPS: {'available' if hw.mps else 'no'}")
    return "\n".join(lines)


def format_table(recs: list[Recommendation], context: int, batch: int) -> str:
    head = ("model", "device", "dtype", "weights GiB", "KV KiB/token",
            f"max batch @ {context}", f"max context @ batch {batch}", "advice")
    rows = [head]
    for r in recs:
        rows.append((r.model, r.device, r.dtype, f"{r.weight_bytes / _GB:.1f}",
                     f"{r.kv_bytes_per_token / 1024:.0f}",
                     str(r.max_batch), str(r.max_context),
                     "fits" if r.fits else "; ".join(r.advice) or "does not fit"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    out = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        out.append("  ".join([*cells, row[-1]]))
        if n == 0:
            out.append("  ".join(["-" * w for w in widths] + ["-" * 6]))
    return "\n".join(out)
