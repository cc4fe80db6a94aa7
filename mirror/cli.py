"""``shadownet mirror ...`` sub-commands (placeholder until the sync engine lands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mirror", help="mirror namespaces: offline replay")
    p.set_defaults(func=lambda args: p.print_help())
