"""What mirroring costs the primary: TCP throughput with mirrors off, on, and on without shunts.

One Mininet lab (``linear,2`` by default: the client's and the server's
containers both mirrored), then rounds of a single full-speed iperf3 flow:

* ``off``: no agent, no mirrors, no copy rules (the baseline);
* ``ports-only``: no agent and no copies, but one idle veth port per container on
  its bridge, as a mirror port is: what the port alone costs, because the
  userspace datapath's forwarding thread polls every port of the datapath;
* ``shunt``: the agent as shipped: bulk connections are shunted once busy;
* ``copy-all``: the agent with ``--no-shunt``: every segment is copied.

The modes are interleaved round by round, so drift on this shared machine
hits all of them alike; the medians, their ratios to ``off`` and the median of
the round-by-round (paired) ratios are printed side by side. Needs root, Open vSwitch and Mininet.

    .venv/bin/python bench/mirror_throughput.py [--rounds 3] [--seconds 5] [--topo linear,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.network import Lab  # noqa: E402
from shadownet.progress import Progress  # noqa: E402

MODES = {"off": None, "ports-only": None, "shunt": [], "copy-all": ["--no-shunt"]}


def idle_ports(lab: Lab, add: bool) -> None:
    """One idle veth port per container, on the container's bridge (``ports-only``)."""
    for i, host in enumerate(lab.net.hosts):
        bridge = host.intfs[0].link.intf2.node.name if host.intfs[0].link else None
        name = f"snbench{i}"
        if add and bridge:
            subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name",
                            f"{name}p"], check=True)
            for dev in (name, f"{name}p"):
                subprocess.run(["ip", "link", "set", dev, "up"], check=True)
            subprocess.run(["ovs-vsctl", "add-port", bridge, name], check=True)
        elif not add:
            subprocess.run(["ovs-vsctl", "--if-exists", "del-port", name], check=False)
            subprocess.run(["ip", "link", "del", name], check=False,
                           stderr=subprocess.DEVNULL)


def iperf(client: Any, server: Any, seconds: int) -> float:
    out = client.cmd(f"iperf3 -c {server.IP()} -t {seconds} -J")
    try:
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e6
    except (ValueError, KeyError):
        return 0.0


def paired_ratio(runs: list[float], base: list[float]) -> float:
    """Median of round-by-round ratios: each round's mode against the ``off`` run next to it.

    Rounds are interleaved, so a slow spell of the shared machine lowers both
    members of a pair; the ratio of medians mixes pairs from different spells.
    """
    ratios = [r / b for r, b in zip(runs, base, strict=True) if b > 0]
    return statistics.median(ratios) if ratios else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--topo", default="linear,2")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated subset of " + ", ".join(MODES) + " (off always runs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    modes = ["off"] + [m for m in args.modes.split(",") if m != "off"]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        p.error(f"unknown mode {unknown[0]!r}; use {', '.join(MODES)}")
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    progress = Progress("mirror-throughput", total=args.rounds * len(modes), quiet=args.quiet)
    progress.phase("starting the lab")
    with progress, Lab(args.topo) as lab:
        client, server = lab.net.hosts[0], lab.net.hosts[-1]
        server.cmd("iperf3 -s -D >/dev/null 2>&1")
        time.sleep(1)
        lab.net.pingAll(timeout="3")
        for rnd in range(args.rounds):
            for mode in modes:
                progress.step(f"round {rnd + 1} {mode}")
                agent_args = MODES[mode]
                if agent_args is not None:
                    lab.start_agent(args=agent_args)
                    lab.wait_for_mirrors(len(lab.net.hosts))
                    time.sleep(1)
                elif mode == "ports-only":
                    idle_ports(lab, add=True)
                    time.sleep(1)
                try:
                    mbps = iperf(client, server, args.seconds)
                finally:
                    if agent_args is not None:
                        lab.stop_agent()
                    elif mode == "ports-only":
                        idle_ports(lab, add=False)
                time.sleep(1)
                results[mode].append(mbps)
                progress.clear()  # the result goes to stdout, on the same terminal
                print(f"round {rnd + 1} {mode:>8}: {mbps:7.1f} Mbit/s", flush=True)
    base = statistics.median(results["off"])
    print(f"\n{'mode':>10}  {'median Mbit/s':>13}  {'ratio to off':>12}  {'paired':>6}  runs")
    for mode, runs in results.items():
        med = statistics.median(runs)
        ratio = med / base if base else float("nan")
        print(f"{mode:>10}  {med:13.1f}  {ratio:12.3f}  {paired_ratio(runs, results['off']):6.3f}"
              f"  {', '.join(f'{r:.0f}' for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
