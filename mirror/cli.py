"""``shadownet mirror ...``: offline replay of a capture and rule-file checking.

Registered into the ``shadownet`` parser by ``shadownet/cli.py``.  User errors
(missing file, unreadable capture, ambiguous container, bad rule file) are
raised as ValueError / FileNotFoundError with one line; the top-level CLI
prints ``shadownet: error: <msg>`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``mirror`` command group to the ``shadownet`` parser."""
    p = subparsers.add_parser("mirror", help="mirror namespaces: offline replay, rule checks")
    sub = p.add_subparsers(dest="mirror_command", metavar="SUBCOMMAND", required=True)

    r = sub.add_parser("replay", help="run a pcap through the sync engine and print the state")
    r.add_argument("pcap", type=Path, help="capture file (pcap or pcapng, Ethernet)")
    r.add_argument("--json", action="store_true", help="print the state as JSON")
    r.add_argument("--container-mac", metavar="MAC",
                   help="the container's MAC (default: the MAC in clearly the most frames)")
    r.add_argument("--container-ip", metavar="IP", action="append",
                   help="the container's IP (repeatable; default: addresses its MAC sent from)")
    r.add_argument("--subnet", metavar="CIDR", help="the container's on-link subnet")
    r.add_argument("--rules", type=Path, metavar="YAML", help="evaluate these alert rules")
    r.add_argument("--limit", type=int, default=50, help="connections shown in the table")
    r.set_defaults(func=cmd_replay)

    c = sub.add_parser("check-rules", help="validate a rule file")
    c.add_argument("rules", type=Path, help="rule file (YAML)")
    c.set_defaults(func=cmd_check_rules)


def cmd_replay(args: argparse.Namespace) -> int:
    from mirror.replay import format_result, replay

    if not args.pcap.exists():
        raise FileNotFoundError(f"{args.pcap}: no such file")
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.subnet:
        import ipaddress

        try:
            ipaddress.ip_network(args.subnet, strict=False)
        except ValueError:
            raise ValueError(f"--subnet: not a CIDR prefix: {args.subnet!r}") from None
    for ip in args.container_ip or []:
        from mirror.packets import ip_bytes

        ip_bytes(ip)
    rules = None
    if args.rules:
        from mirror.rules import load_rules

        rules = load_rules(args.rules)
    result = replay(args.pcap, args.container_mac, args.container_ip, subnet=args.subnet,
                    rules=rules)
    if args.json:
        # Compact on purpose: with ``indent`` the json module falls back to its pure-Python
        # encoder, which takes longer than the replay itself on large captures.
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    else:
        print(format_result(result, limit=args.limit))
    return 0


def cmd_check_rules(args: argparse.Namespace) -> int:
    from mirror.rules import load_rules

    rules = load_rules(args.rules)
    for rule in rules.rules:
        print(f"{rule.name}: {rule.type} ({rule.severity})")
    print(f"{args.rules}: {len(rules.rules)} rule(s) OK")
    return 0
