"""The ``routerscope`` command line. Each subcommand imports what it needs when run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from routerscope._version import __version__

Handler = Callable[[argparse.Namespace], int]


def _doctor(args: argparse.Namespace) -> int:
    from routerscope.core.batch import run_doctor

    return int(run_doctor(context=args.context, batch=args.batch, models=args.model, as_json=args.json))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routerscope",
        description="Performance observability for Python AI model routers.",
    )
    parser.add_argument("--version", action="version", version=f"routerscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = sub.add_parser("doctor", help="show detected hardware and batch/context advice")
    doctor.add_argument(
        "--context", type=int, default=4096, help="context length for the batch-size advice (default 4096)"
    )
    doctor.add_argument(
        "--batch", type=int, default=1, help="batch size for the context-length advice (default 1)"
    )
    doctor.add_argument(
        "--model",
        action="append",
        default=None,
        help="a built-in profile name or a Hugging Face config.json (repeatable)",
    )
    doctor.add_argument("--json", action="store_true", help="print JSON instead of a table")
    doctor.set_defaults(handler=_doctor)

    _add_later_commands(sub)
    return parser


def _add_later_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Subcommands defined in their own modules (sidecar, demo, report)."""
    import importlib

    for module in (
        "routerscope.sidecar.cli",
        "routerscope.demo.cli",
        "routerscope.report.cli",
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not exc.name or not module.startswith(exc.name):
                raise
            continue
        mod.add_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
