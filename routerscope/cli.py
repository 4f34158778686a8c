"""The ``routerscope`` command line. Each subcommand imports what it needs when run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from routerscope._version import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routerscope",
        description="Performance observability for Python AI model routers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"routerscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_later_commands(sub)
    return parser


def _add_later_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Subcommands defined in their own modules (doctor, sidecar, demo, report)."""
    import importlib

    for module in (
        "routerscope.doctor_cli",
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
    if handler is None:  # no command: the help, and the exit status of a usage error
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
