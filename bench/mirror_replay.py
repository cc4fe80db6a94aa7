"""Replay speed of the mirror sync engine against ``tshark -q -z conv,tcp``, and agreement.

Two captures:

* ``real``: traffic between two ``snt-`` network namespaces captured with tcpdump
  on the "container" side — curl against ``python3 -m http.server``, iperf3 for a
  few seconds (offloads off, so frames are MTU-sized as on a real wire), ping,
  and dig against a tiny DNS responder (this file, ``--serve-dns``), including
  NXDOMAIN answers;
* ``synthetic``: many short TCP connections written with :mod:`mirror.pcap`
  (handshake, request, response, FIN close; some RSTs and retransmissions).

For each: our replay rate (in process, and end to end through the CLI), tshark's
(end to end, and minus its start-up measured on a 1-frame capture), the ratio,
and how well the two TCP connection tables agree (connections; frames and bytes
per direction).  Needs root for the ``real`` capture; ``--only synthetic`` does not.

    .venv/bin/python bench/mirror_replay.py [--only real|synthetic] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mirror import packets as P  # noqa: E402
from mirror.pcap import PcapWriter  # noqa: E402
from mirror.replay import replay  # noqa: E402
from shadownet import progress  # noqa: E402
from shadownet.progress import Progress  # noqa: E402

NS_A, NS_B = "snt-bench-a", "snt-bench-b"
IF_A, IF_B = "snt-va", "snt-vb"
IP_A, IP_B = "10.77.0.1", "10.77.0.2"
MAC_A, MAC_B = "02:77:00:00:00:01", "02:77:00:00:00:02"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


# -- tiny DNS responder -----------------------------------------------------------------------


def serve_dns(addr: str) -> None:
    """Answer A queries: ``missing*`` -> NXDOMAIN, anything else -> 10.77.0.<hash> TTL 300."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        data, peer = s.recvfrom(2048)
        try:
            q = P.parse_dns(data)
            name, qtype = q.questions[0]
        except (P.MalformedPacket, IndexError):
            continue
        if name.startswith("missing"):
            resp = P.build_dns(q.ident, name, qtype, response=True, rcode=3, soa_minimum=30)
        else:
            ip = f"10.77.1.{sum(name.encode()) % 250 + 1}"
            answers = [(name, P.DNS_A, ip, 300)] if qtype == P.DNS_A else []
            resp = P.build_dns(q.ident, name, qtype, response=True, answers=answers)
        s.sendto(resp, peer)


# -- real capture -----------------------------------------------------------------------------


def capture_real(out: Path, iperf_seconds: int) -> dict[str, Any]:
    """Build the namespaces, run the traffic, capture on the container side; always tear down."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", IF_A, "netns", NS_A, "address", MAC_A, "type", "veth",
           "peer", "name", IF_B, "netns", NS_B, "address", MAC_B)
        for ns, ifname, ip in ((NS_A, IF_A, IP_A), (NS_B, IF_B, IP_B)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
            sh("ip", "-n", ns, "link", "set", ifname, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            if shutil.which("ethtool"):
                sh("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tso", "off", "gso", "off",
                   "gro", "off", check=False)
        web = Path(tempfile.mkdtemp(prefix="snt-web-"))
        (web / "index.html").write_bytes(b"<html>" + b"x" * 20000 + b"</html>")
        (web / "big.bin").write_bytes(os.urandom(2_000_000))

        def bg(ns: str, *cmd: str) -> subprocess.Popen[bytes]:
            p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            return p

        bg(NS_B, sys.executable, "-m", "http.server", "8080", "--bind", IP_B, "-d", str(web))
        bg(NS_B, "iperf3", "-s", "-B", IP_B)
        bg(NS_B, sys.executable, str(Path(__file__).resolve()), "--serve-dns", IP_B)
        time.sleep(1.0)
        dump = bg(NS_A, "tcpdump", "-i", IF_A, "-s", "0", "-B", "32768", "-w", str(out), "-U")
        time.sleep(1.0)
        a = ("ip", "netns", "exec", NS_A)
        sh(*a, "ping", "-c", "20", "-i", "0.05", IP_B, check=False)
        for i in range(30):
            sh(*a, "dig", f"@{IP_B}", "+tries=1", "+time=1",
               f"missing{i}.test" if i % 5 == 0 else f"host{i}.svc.test", check=False)
        for i in range(40):
            sh(*a, "curl", "-s", "-o", "/dev/null",
               f"http://{IP_B}:8080/{'big.bin' if i % 10 == 0 else 'index.html'}", check=False)
        sh(*a, "curl", "-s", "-o", "/dev/null", "--max-time", "1", f"http://{IP_B}:9/",
           check=False)  # refused: SYN answered by RST
        sh(*a, "iperf3", "-c", IP_B, "-t", str(iperf_seconds), "-b", "400M", "-P", "2",
           check=False)
        time.sleep(1.0)
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        shutil.rmtree(web, ignore_errors=True)
        return {"container_mac": MAC_A, "container_ip": IP_A}
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "del", ns, check=False)


# -- synthetic capture ------------------------------------------------------------------------


def write_synthetic(out: Path, connections: int, seed: int = 7) -> dict[str, Any]:
    """Many TCP connections from the container to several servers, interleaved 50 at a time."""
    rng = random.Random(seed)
    C, S = MAC_A, MAC_B
    A = P.TCP_ACK

    def fr(out_dir: bool, sip: str, sport: int, dip: str, dport: int, flags: int, seq: int,
           ack: int, data: bytes = b"") -> bytes:
        src, dst = (sip, dip) if out_dir else (dip, sip)
        sp, dp = (sport, dport) if out_dir else (dport, sport)
        sm, dm = (C, S) if out_dir else (S, C)
        return P.build_eth(dm, sm, P.ETH_IPV4, P.build_ipv4(src, dst, 6, P.build_tcp(
            sp, dp, seq, ack, flags, data)))

    def conv(i: int) -> list[bytes]:
        server = f"10.78.{i % 200}.{1 + i % 250}"
        sport = 1024 + (i % 60000)
        port = 80 if i % 3 else 443
        c0, s0 = rng.getrandbits(32), rng.getrandbits(32)
        f = [fr(True, IP_A, sport, server, port, P.TCP_SYN, c0, 0),
             fr(False, IP_A, sport, server, port, P.TCP_SYN | A, s0, c0 + 1)]
        if i % 50 == 7:  # refused
            return [f[0], fr(False, IP_A, sport, server, port, P.TCP_RST | A, 0, c0 + 1)]
        f.append(fr(True, IP_A, sport, server, port, A, c0 + 1, s0 + 1))
        req = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
        f.append(fr(True, IP_A, sport, server, port, A | P.TCP_PSH, c0 + 1, s0 + 1, req))
        seq, n = s0 + 1, rng.randrange(1, 12)
        for k in range(n):
            body = bytes(rng.randrange(200, 1448))
            f.append(fr(False, IP_A, sport, server, port, A, seq, c0 + 1 + len(req), body))
            if k == 1 and i % 10 == 3:  # retransmission
                f.append(fr(False, IP_A, sport, server, port, A, seq, c0 + 1 + len(req), body))
            seq += len(body)
            if k % 2:
                f.append(fr(True, IP_A, sport, server, port, A, c0 + 1 + len(req), seq))
        cs = c0 + 1 + len(req)
        f += [fr(True, IP_A, sport, server, port, A | P.TCP_FIN, cs, seq),
              fr(False, IP_A, sport, server, port, A | P.TCP_FIN, seq, cs + 1),
              fr(True, IP_A, sport, server, port, A, cs + 1, seq + 1)]
        return f

    ts = 1_700_000_000.0
    frames = 0
    with PcapWriter(out) as w:
        for base in range(0, connections, 50):
            convs = [conv(i) for i in range(base, min(base + 50, connections))]
            while convs:
                nxt = []
                for c in convs:
                    ts += 2e-6
                    w.write(c.pop(0), ts)
                    frames += 1
                    if c:
                        nxt.append(c)
                convs = nxt
    return {"container_mac": C, "container_ip": IP_A}


# -- measurement ------------------------------------------------------------------------------


_CONV = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+([\d,.]+)\s+(\S*bytes|kB|MB|GB)"
                   r"\s+(\d+)\s+([\d,.]+)\s+(\S*bytes|kB|MB|GB)")
_UNIT = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def _size(value: str, unit: str) -> tuple[float, float]:
    """(bytes shown, precision of the display) for tshark's ``156 MB`` / ``1.5 kB``."""
    value = value.replace(",", "")
    decimals = len(value.split(".")[1]) if "." in value else 0
    mult = _UNIT.get(unit, 1)
    return float(value) * mult, mult / 10**decimals


def run_tshark(path: Path) -> tuple[float, dict[Any, Any]]:
    t0 = time.perf_counter()
    res = sh("tshark", "-q", "-z", "conv,tcp", "-r", str(path))
    elapsed = time.perf_counter() - t0
    table: dict[Any, Any] = {}
    for line in res.stdout.splitlines():
        m = _CONV.match(line.strip())
        if not m:
            continue
        a, ap, b, bp = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        to_a = (int(m.group(5)), *_size(m.group(6), m.group(7)))
        to_b = (int(m.group(8)), *_size(m.group(9), m.group(10)))
        table[((a, ap), (b, bp))] = (to_b, to_a)  # (A->B, B->A)
    return elapsed, table


def compare(ours: list[dict[str, Any]], theirs: dict[Any, Any]) -> dict[str, Any]:
    """Match connections by endpoints; frames must be equal, bytes equal at the precision
    tshark prints (it shows e.g. ``156 MB`` for 156,954,487 bytes)."""
    mine: dict[Any, Any] = {}
    for c in ours:
        if c["proto"] != "tcp":
            continue
        o, r = (c["orig_ip"], c["orig_port"]), (c["resp_ip"], c["resp_port"])
        mine[(o, r)] = c
    matched = frames_ok = bytes_ok = 0
    mismatches = []
    for (a, b), (ab, ba) in theirs.items():
        conn = mine.get((a, b))
        flip = False
        if conn is None:
            conn, flip = mine.get((b, a)), True
        if conn is None:
            mismatches.append(f"tshark only: {a} {b}")
            continue
        matched += 1
        o, r = conn["orig"], conn["resp"]
        fwd, rev = (r, o) if flip else (o, r)
        if (fwd["packets"], rev["packets"]) == (ab[0], ba[0]):
            frames_ok += 1
        ok = True
        for ours_b, (_, shown, prec) in ((fwd["bytes"], ab), (rev["bytes"], ba)):
            # tshark 4.0 truncates sizes to the digits it prints (bytes/kB/MB/GB).
            ok &= shown - 1e-6 <= ours_b < shown + prec
        bytes_ok += ok
        if not ok or (fwd["packets"], rev["packets"]) != (ab[0], ba[0]):
            mismatches.append(f"{a} {b}: ours {fwd['packets']}/{rev['packets']} frames "
                              f"{fwd['bytes']}/{rev['bytes']} B, tshark {ab[0]}/{ba[0]} frames "
                              f"{ab[1]:.0f}/{ba[1]:.0f} B")
    return {"ours": len(mine), "tshark": len(theirs), "matched": matched,
            "frames_agree": frames_ok, "bytes_agree": bytes_ok, "mismatches": mismatches[:5]}


def tshark_startup(tmp: Path) -> float:
    one = tmp / "one.pcap"
    with PcapWriter(one) as w:
        w.write(P.build_eth(MAC_B, MAC_A, P.ETH_IPV4, P.build_ipv4(
            IP_A, IP_B, 6, P.build_tcp(1, 2, 0, 0, P.TCP_SYN))), 1.0)
    return min(run_tshark(one)[0] for _ in range(3))


def measure(name: str, path: Path, who: dict[str, Any], startup: float, repeat: int
            ) -> dict[str, Any]:
    progress.phase(f"replaying {repeat}x in process")
    best = None
    for _ in range(repeat):
        res = replay(path, who["container_mac"], [who["container_ip"]])
        if best is None or res.elapsed < best.elapsed:
            best = res
    assert best is not None
    packets = best.engine.stats.packets
    # End to end: the real command, `shadownet mirror replay --json`, against tshark's
    # wall time. Also the library alone in a fresh interpreter (start-up, pcap read,
    # replay, JSON out), which shows what the CLI's own imports cost.
    code = ("import json, os, sys; from mirror.replay import replay; "
            "r = replay(sys.argv[1], sys.argv[2], [sys.argv[3]]); "
            "open(os.devnull, 'w').write(json.dumps(r.as_dict()))")
    root = str(Path(__file__).resolve().parents[1])
    progress.phase("replaying end to end")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(path), who["container_mac"],
                    who["container_ip"]], cwd=root, check=True, capture_output=True)
    ours_cli = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "shadownet", "mirror", "replay", str(path),
                    "--json", "--container-mac", who["container_mac"], "--container-ip",
                    who["container_ip"]], cwd=root, check=True, capture_output=True)
    shadownet_cli = time.perf_counter() - t0
    progress.phase(f"tshark {repeat}x")
    t_elapsed, table = min((run_tshark(path) for _ in range(repeat)), key=lambda x: x[0])
    snap = best.engine.snapshot()
    out = {
        "capture": name, "file_mb": round(path.stat().st_size / 1e6, 1), "frames": packets,
        "tcp_connections": sum(1 for c in snap["connections"] if c["proto"] == "tcp"),
        "ours_pps": round(packets / best.elapsed),
        "ours_cli_pps": round(packets / ours_cli),
        "shadownet_cli_seconds": round(shadownet_cli, 2),
        "tshark_pps": round(packets / t_elapsed),
        "tshark_pps_minus_startup": round(packets / max(t_elapsed - startup, 1e-9)),
        "ratio_in_process": round((packets / best.elapsed) / (packets / t_elapsed), 2),
        # End to end means the command a user runs: `shadownet mirror replay --json`.
        "ratio_end_to_end": round(t_elapsed / shadownet_cli, 2),
        "ratio_end_to_end_library_only": round(t_elapsed / ours_cli, 2),
        "ratio_vs_tshark_minus_startup": round(
            (packets / best.elapsed) / (packets / max(t_elapsed - startup, 1e-9)), 2),
        "malformed": best.engine.stats.malformed,
        "retransmissions": best.engine.stats.counters()["tcp_retransmissions"],
        "agreement": compare(snap["connections"], table),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("real", "synthetic"))
    ap.add_argument("--connections", type=int, default=20000, help="synthetic connections")
    ap.add_argument("--iperf-seconds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="keep the captures in this directory")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument("--serve-dns", metavar="ADDR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_dns:
        serve_dns(args.serve_dns)
        return 0
    if not shutil.which("tshark"):
        print("tshark is not installed", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="snt-bench-"))
    where = args.keep or tmp
    where.mkdir(parents=True, exist_ok=True)
    results = []
    captures = [c for c in ("real", "synthetic") if args.only in (None, c)]
    try:
        with Progress("mirror-replay", total=len(captures), unit="capture", quiet=args.quiet):
            progress.phase("tshark start-up")
            startup = tshark_startup(tmp)
            if "real" in captures:
                progress.step("real")
                progress.phase("capturing traffic between two namespaces")
                path = where / "mirror_real.pcap"
                who = capture_real(path, args.iperf_seconds)
                results.append(measure("real", path, who, startup, args.repeat))
            if "synthetic" in captures:
                progress.step("synthetic")
                progress.phase(f"writing {args.connections} connections")
                path = where / "mirror_synthetic.pcap"
                who = write_synthetic(path, args.connections)
                results.append(measure("synthetic", path, who, startup, args.repeat))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"tshark_startup_s": round(startup, 3), "results": results}, indent=2))
        return 0
    print(f"tshark start-up (1-frame capture): {startup:.3f}s")
    for r in results:
        ag = r["agreement"]
        print(f"\n[{r['capture']}] {r['frames']} frames, {r['file_mb']} MB, "
              f"{r['tcp_connections']} TCP connections, {r['retransmissions']} retransmissions")
        print(f"  ours   {r['ours_pps']:>10,} frames/s in process; "
              f"`shadownet mirror replay --json` took {r['shadownet_cli_seconds']}s "
              f"({r['ours_cli_pps']:,} frames/s for the library alone in a fresh process)")
        print(f"  tshark {r['tshark_pps']:>10,} frames/s end to end, "
              f"{r['tshark_pps_minus_startup']:,} minus start-up")
        print(f"  ratio ours/tshark: {r['ratio_in_process']} (in process vs end to end), "
              f"{r['ratio_end_to_end']} (both end to end: the shadownet CLI against tshark), "
              f"{r['ratio_vs_tshark_minus_startup']} (vs tshark minus start-up)")
        print(f"  connections: ours {ag['ours']}, tshark {ag['tshark']}, matched {ag['matched']}; "
              f"frames agree {ag['frames_agree']}, bytes agree {ag['bytes_agree']}")
        for m in ag["mismatches"]:
            print(f"    {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
