"""``shadownet predict ...`` sub-commands (placeholder until the predictive engine lands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command group to the ``shadownet`` parser."""
    p = subparsers.add_parser("predict", help="predictive engine: NAB evaluation, scoring")
    p.set_defaults(func=lambda args: p.print_help())
