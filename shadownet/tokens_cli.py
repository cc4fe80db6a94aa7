"""``shadownet token new``: make an API token; only its digest goes into the tokens file."""

from __future__ import annotations

import argparse
import sys

from shadownet.access import ROLES, TokenFileError, add_token


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser("token", help="REST API tokens (see README, Security)")
    sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    new = sub.add_parser("new", help="create a token, print it once, store its SHA-256 digest")
    new.add_argument("--name", required=True, help="who or what uses it (unique in the file)")
    new.add_argument("--role", required=True, choices=ROLES)
    new.add_argument("--file", required=True, help="tokens file (rest.tokens_file)")
    new.set_defaults(func=new_token)


def new_token(args: argparse.Namespace) -> int:
    try:
        token = add_token(args.file, args.name, args.role)
    except TokenFileError as exc:
        print(f"shadownet: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"shadownet: error: cannot write {args.file!r}: {exc.strerror}", file=sys.stderr)
        return 2
    print(token)
    print(f"token {args.name!r} ({args.role}) added to {args.file}; this is the only time it "
          "is shown", file=sys.stderr)
    return 0
