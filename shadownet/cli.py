"""The ``shadownet`` command: one entry point for the lab, the predictive engine and benchmarks.

Each area owns its sub-commands and registers them here, so ``predictive``
stays a pure library (it never imports the controller) while users get one
command to learn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CliError(Exception):
    """A user error: printed as one line, exit status 2, never a stack trace."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadownet", description="shadownet: predictive SDN controller tools"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from predictive import cli as predict_cli

    predict_cli.register(sub)
    from lab import cli as lab_cli
    from mirror import cli as mirror_cli
    from shadownet import tokens_cli

    lab_cli.register(sub)
    mirror_cli.register(sub)
    tokens_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError) as exc:
        print(f"shadownet: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is a directory, unwritable, missing, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"shadownet: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shadownet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
