"""Run every benchmark, write benchmarks/results/latest.{json,md}, print the table.

    .venv/bin/python -m benchmarks.run            # full run (a few minutes)
    .venv/bin/python -m benchmarks.run --quick    # fewer iterations
    .venv/bin/python -m benchmarks.run --only pool,cache
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

from benchmarks._common import ROOT, Row

MODULES = ["pool", "cache", "memory", "startup", "auto", "peers", "sidecar", "otlp_encode"]


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(rows: list[Row]) -> str:
    out = ["| benchmark | routerscope / ours | baseline or peer | ratio | seed or aim | verdict |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.name} | {r.a_label}: {fmt(r.a_value)} {r.unit} | "
                   f"{r.b_label}: {fmt(r.b_value)} {r.unit} | {r.ratio:.2f}x | {r.claim} | "
                   f"{r.verdict} |")
    return "\n".join(out)


def write_md(meta: dict[str, Any], rows: list[Row], update_readme: bool) -> None:
    out_dir = os.path.join(ROOT, "benchmarks", "results")
    groups = meta.get("groups") or {r.group: meta["when"] for r in rows}
    dates = sorted(set(groups.values()))
    stamp = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    md = (f"Measured {stamp} on {meta['machine']} with `{meta['command']}` "
          f"(each row: ours and the baseline or peer in one run).\n\n" + table(rows) + "\n")
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(md)
    print(md)
    if update_readme:
        readme = os.path.join(ROOT, "README.md")
        with open(readme) as f:
            text = f.read()
        begin, end = "<!-- BENCHMARKS:BEGIN -->", "<!-- BENCHMARKS:END -->"
        i, j = text.index(begin) + len(begin), text.index(end)
        with open(readme, "w") as f:
            f.write(text[:i] + "\n" + md + text[j:])


def render_only(update_readme: bool) -> int:
    with open(os.path.join(ROOT, "benchmarks", "results", "latest.json")) as f:
        data = json.load(f)
    rows = [Row(**r) for r in data.pop("rows")]
    write_md(data, rows, update_readme)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(MODULES))
    ap.add_argument("--render", action="store_true",
                    help="only rebuild latest.md (and the README with --update-readme) from latest.json")
    ap.add_argument("--update-readme", action="store_true",
                    help="write the table between the README's BENCHMARKS markers")
    args = ap.parse_args(argv)
    if args.render:
        return render_only(args.update_readme)
    wanted = [m for m in MODULES if not args.only or m in args.only.split(",")]
    rows: list[Row] = []
    failed: list[str] = []
    started = time.time()
    for name in wanted:
        try:
            mod = importlib.import_module(f"benchmarks.bench_{name}")
        except ModuleNotFoundError:
            continue
        t0 = time.perf_counter()
        try:
            got = mod.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - report and go on with the others
            failed.append(name)
            traceback.print_exc()
            continue
        rows.extend(got)
        print(f"[{name}] {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out_dir = os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(out_dir, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    groups = {r.group: when for r in rows}
    latest = os.path.join(out_dir, "latest.json")
    if args.only and os.path.exists(latest):  # a partial run replaces only its own groups
        with open(latest) as f:
            old = json.load(f)
        kept = [Row(**r) for r in old["rows"] if r["group"] not in groups]
        groups = {**{r["group"]: old["when"] for r in old["rows"]}, **old.get("groups", {}),
                  **groups}
        rows = kept + rows
        command = old.get("command", command)
    order = {g: i for i, g in enumerate(MODULES)}
    rows.sort(key=lambda r: order.get(r.group, 99))
    meta = {"machine": machine(), "when": when, "command": command, "failed": failed,
            "groups": groups}
    with open(latest, "w") as f:
        json.dump({**meta, "rows": [r.to_dict() for r in rows]}, f, indent=2)
    write_md(meta, rows, args.update_readme)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
