"""The ``mirror`` lab scenario: how faithful, how fast and how cheap the mirrors are.

Real traffic from the first host to the others (ping, curl against an HTTP
server, dig against dnsmasq, iperf3), then, while an iperf3 connection is up:

- agreement of each container's kernel state with its mirror's replica: ARP
  (``ip neigh``), established TCP connections (``ss -tn``), DNS answers (dig);
- sync lag p50/p99, kernel receive time of a frame to its change applied in
  the mirror namespace, as the agent measures it;
- primary TCP throughput with mirroring off, on, and off again (ratio on/off).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from typing import Any

from lab.network import Lab
from mirror.lifecycle import netns_name
from shadownet import progress

NAMES = [f"svc{i}.shadow.test" for i in range(5)]
ADMIN = "scenario-admin-token"


def _iperf(client: Any, server: Any, seconds: int = 4) -> float:
    out = client.cmd(f"iperf3 -c {server.IP()} -t {seconds} -J")
    try:
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e6
    except (ValueError, KeyError):
        return 0.0


def _kernel_arp(host: Any) -> set[tuple[str, str]]:
    out = host.cmd("ip neigh show")
    pairs = set()
    for line in out.splitlines():
        m = re.match(r"(\S+) dev \S+ lladdr (\S+) (\S+)", line)
        if m and m.group(3) in ("REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"):
            pairs.add((m.group(1), m.group(2).lower()))
    return pairs


def _kernel_established(host: Any) -> set[tuple[str, int, str, int]]:
    out = host.cmd("ss -Htn state established")
    conns = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            local, peer = parts[-2], parts[-1]
            lip, lport = local.rsplit(":", 1)
            pip, pport = peer.rsplit(":", 1)
            conns.add((_plain_ip(lip), int(lport), _plain_ip(pip), int(pport)))
    return conns


def _namespace_arp(netns: str) -> set[tuple[str, str]]:
    """The mirror namespace's own neighbour table (what `ip -n NS neigh` shows)."""
    out = subprocess.run(["ip", "-n", netns, "neigh", "show"], capture_output=True,
                         text=True, check=False).stdout
    pairs = set()
    for line in out.splitlines():
        m = re.match(r"(\S+) dev \S+ lladdr (\S+) (\S+)", line)
        if m:
            pairs.add((m.group(1), m.group(2).lower()))
    return pairs


def _namespace_established(netns: str, ip: str) -> set[tuple[str, int, str, int]]:
    """ESTABLISHED TCP entries of the mirror namespace's conntrack table, seen from ``ip``."""
    out = subprocess.run(["ip", "netns", "exec", netns, "conntrack", "-L", "-p", "tcp"],
                         capture_output=True, text=True, check=False).stdout
    conns = set()
    for line in out.splitlines():
        if " ESTABLISHED " not in line:
            continue
        m = re.search(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)", line)
        if not m:
            continue
        src, dst, sport, dport = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        if src == ip:
            conns.add((ip, sport, dst, dport))
        elif dst == ip:
            conns.add((ip, dport, src, sport))
    return conns


def _namespace_resolves(netns: str, name: str) -> set[str]:
    """What a lookup inside the mirror namespace answers (its hosts file, via libc)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "getent", "ahostsv4", name],
                         capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _plain_ip(addr: str) -> str:
    """``[::ffff:10.0.0.3]`` (a dual-stack socket) is 10.0.0.3 on the wire."""
    addr = addr.strip("[]")
    return addr[7:] if addr.startswith("::ffff:") else addr


def _mirror_established(state: dict[str, Any], ip: str) -> set[tuple[str, int, str, int]]:
    conns = set()
    for c in state["connections"]:
        if c["proto"] != "tcp" or c["state"] != "ESTABLISHED":
            continue
        if c["orig_ip"] == ip:
            conns.add((ip, c["orig_port"], c["resp_ip"], c["resp_port"]))
        elif c["resp_ip"] == ip:
            conns.add((ip, c["resp_port"], c["orig_ip"], c["orig_port"]))
    return conns


def _agreement(kernel: set[Any], mirror: set[Any]) -> tuple[int, int]:
    """(matching, total) over the union: both sides must hold the same entries."""
    union = kernel | mirror
    return len(kernel & mirror), len(union)


def mirror_scenario(lab: Lab) -> dict[str, Any]:
    hosts = lab.net.hosts
    client, server = hosts[0], hosts[-1]
    server.cmd("python3 -m http.server 8000 >/dev/null 2>&1 &")
    addresses = " ".join(f"--address=/{n}/{server.IP()}" for n in NAMES)
    server.cmd(f"dnsmasq --no-daemon --no-resolv --no-hosts --local-ttl=300 "
               f"--listen-address={server.IP()} --bind-interfaces {addresses} "
               "--address=/nosuch.test/ >/dev/null 2>&1 &")
    server.cmd("iperf3 -s -D >/dev/null 2>&1")
    time.sleep(1)
    lab.net.pingAll(timeout="3")
    progress.phase("throughput, mirrors off", 4)
    off_before = _iperf(client, server)

    progress.phase("starting the agent and the mirrors")
    agent = lab.start_agent(tokens={"tokens": {ADMIN: {"admin": True}}})
    lab.wait_for_mirrors(len(hosts))
    time.sleep(1)
    # Start from empty caches so every entry the kernel learns crosses the mirror.
    progress.phase("traffic: ping, curl, dig")
    for host in hosts:
        host.cmd("ip neigh flush all")
    for host in hosts[1:]:
        client.cmd(f"ping -c 3 -i 0.2 {host.IP()}")
    for _ in range(10):
        client.cmd(f"curl -s -o /dev/null http://{server.IP()}:8000/")
    dig_answers: dict[str, set[str]] = {}
    for name in NAMES:
        dig_answers[name] = set(client.cmd(f"dig +short @{server.IP()} {name}").split())
    for i in range(3):
        client.cmd(f"dig +short @{server.IP()} n{i}.nosuch.test")

    progress.phase("throughput, mirrors on", 4)
    on = _iperf(client, server)
    progress.phase("comparing kernels with mirrors under load")
    long_iperf = client.popen(["iperf3", "-c", server.IP(), "-t", "10", "-b", "20M", "-P", "3",
                               "-J"])
    time.sleep(4)
    arp_ok = arp_all = tcp_ok = tcp_all = 0
    states: dict[str, dict[str, Any]] = {}
    for host in hosts:
        _, states[host.name] = agent.request(f"/api/containers/{host.name}/state", ADMIN)
    kernel_tcp = {h.name: _kernel_established(h) for h in hosts}
    kernel_arp = {h.name: _kernel_arp(h) for h in hosts}
    # The same, read from each mirror namespace's own kernel: what `ip -n` and
    # `conntrack` show there, not the agent's model of it.
    ns_arp = {h.name: _namespace_arp(netns_name(h.name)) for h in hosts}
    ns_tcp = {h.name: _namespace_established(netns_name(h.name), h.IP()) for h in hosts}
    ns_arp_ok = ns_arp_all = ns_tcp_ok = ns_tcp_all = 0
    for host in hosts:
        state = states[host.name]
        ok, total = _agreement(kernel_arp[host.name],
                               {(a["ip"], a["mac"].lower()) for a in state["arp"]})
        arp_ok, arp_all = arp_ok + ok, arp_all + total
        ok, total = _agreement(kernel_tcp[host.name], _mirror_established(state, host.IP()))
        tcp_ok, tcp_all = tcp_ok + ok, tcp_all + total
        ok, total = _agreement(kernel_arp[host.name], ns_arp[host.name])
        ns_arp_ok, ns_arp_all = ns_arp_ok + ok, ns_arp_all + total
        ok, total = _agreement(kernel_tcp[host.name], ns_tcp[host.name])
        ns_tcp_ok, ns_tcp_all = ns_tcp_ok + ok, ns_tcp_all + total
    iperf_report = json.loads(long_iperf.communicate(timeout=30)[0] or "{}")
    # Shunted connections: the switch's counters, folded in by the agent, must
    # account for every byte iperf3 sent (plus headers), final counters included.
    progress.wait(6, "shunt counters")  # the agent's unshunt delay, then the final counters
    _, after = agent.request(f"/api/containers/{client.name}/state", ADMIN)
    accounted = _bytes_accounted(iperf_report, after, client.IP())
    dns_state = {d["name"]: {a["data"] for a in d["answers"] if a["type"] == "A"}
                 for d in states[client.name]["dns"] if d["rcode"] == "NOERROR"}
    dns_ok = sum(1 for n, ips in dig_answers.items() if ips and dns_state.get(n) == ips)
    dns_ns_ok = sum(1 for n, ips in dig_answers.items()
                    if ips and _namespace_resolves(netns_name(client.name), n) == ips)
    summaries = [agent.request(f"/api/containers/{h.name}", ADMIN)[1] for h in hosts]
    kernel_drops = sum(s["kernel_drops"] for s in summaries)
    lags = [s["lag"] for s in summaries if s["lag"].get("samples")]
    lab.stop_agent()
    time.sleep(1)
    progress.phase("throughput, mirrors off again", 4)
    off_after = _iperf(client, server)
    off = statistics.mean([off_before, off_after])
    return {
        "hosts": len(hosts),
        "mirrored_packets": sum(s["packets"] for s in summaries),
        "mirror_kernel_drops": kernel_drops,
        "arp_agreement_pct": round(100 * arp_ok / arp_all, 1) if arp_all else None,
        "arp_entries": arp_all,
        "tcp_established_agreement_pct": round(100 * tcp_ok / tcp_all, 1) if tcp_all else None,
        "tcp_established": tcp_all,
        "dns_agreement_pct": round(100 * dns_ok / len(NAMES), 1),
        # Against each mirror namespace's own kernel and resolver, not the agent's model.
        "namespace_arp_agreement_pct": (round(100 * ns_arp_ok / ns_arp_all, 1)
                                        if ns_arp_all else None),
        "namespace_tcp_established_agreement_pct": (round(100 * ns_tcp_ok / ns_tcp_all, 1)
                                                    if ns_tcp_all else None),
        "namespace_dns_agreement_pct": round(100 * dns_ns_ok / len(NAMES), 1),
        "sync_lag_p50_ms": (round(statistics.median(x["p50_ms"] for x in lags), 3)
                            if lags else None),
        "sync_lag_p99_ms": max(x["p99_ms"] for x in lags) if lags else None,
        "lag_samples": sum(x["samples"] for x in lags),
        "throughput_off_mbps": round(off, 1),
        "throughput_on_mbps": round(on, 1),
        "throughput_ratio": round(on / off, 3) if off else None,
        "shunted_connections": sum(s["shunts"]["shunts_total"] for s in summaries),
        "shunted_packets": sum(s["shunts"]["folded_packets"] for s in summaries),
        "shunt_bytes_vs_iperf": accounted,
    }


def _bytes_accounted(iperf_report: dict[str, Any], state: dict[str, Any], ip: str) -> float | None:
    """Wire bytes the mirror counted for iperf3's streams / payload bytes iperf3 sent.

    Slightly above 1 (headers: about 66 bytes per 1448-byte segment) when nothing
    was missed; below 1 when packets went uncounted.
    """
    try:
        ports = {c["local_port"] for c in iperf_report["start"]["connected"]}
        sent = iperf_report["end"]["sum_sent"]["bytes"]
    except (KeyError, TypeError):
        return None
    counted = sum(c["orig"]["bytes"] for c in state["connections"]
                  if c["proto"] == "tcp" and c["orig_ip"] == ip and c["orig_port"] in ports)
    return round(counted / sent, 4) if sent else None
