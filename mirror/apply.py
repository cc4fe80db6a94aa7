"""Write replicated state INTO a mirror network namespace.

The mirror namespace is meant to *look like* the container's: ``ip neigh``,
``ip route`` and ``conntrack -L`` run inside it should show what the container
has.  :class:`NamespaceApplier` turns :class:`~mirror.state.StateChange` events
(live) or a whole snapshot (start-up, resync) into kernel state:

* ARP entries -> neighbour entries on ``ifname`` (NUD_PERMANENT by default, so
  the mirror kernel never ages or re-probes them — it must not send ARP);
* routes -> ``replace`` of the subnet route (scope link) and the default route
  (``onlink``, so it applies even before the subnet route is known);
* connections -> conntrack entries via ``ip netns exec NS conntrack -I/-U/-D``,
  the path verified to work per namespace here.  Whether pyroute2 0.9's
  NFCTSocket can create entries in another namespace was not evaluated; it would
  save a fork per connection;
* DNS answers -> ``/etc/netns/<netns>/hosts``: a resolver cache is not kernel
  state, but ``ip netns exec <netns>`` bind-mounts that file over
  ``/etc/hosts``, so ``getent hosts``, ``ping name`` and every libc lookup run
  in the mirror see the names and addresses the container was given (A and
  AAAA answers still within their TTL; NXDOMAIN has no hosts-file form). The
  file is rewritten whole, atomically, on each change.

Every operation is idempotent (``replace``; insert-or-update; deleting what is
already gone is success).  Failures are logged and counted in :attr:`stats`,
never raised: the engine calls this from its change callback.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mirror.state import StateChange
from mirror.tcp_state import ICMP_TIMEOUT, TIMEOUTS

log = logging.getLogger(__name__)

NUD = {"permanent": 0x80, "reachable": 0x02, "stale": 0x04, "noarp": 0x40}
RT_SCOPE_LINK = 253
RTNH_F_ONLINK = 4
ENOENT, ESRCH, EEXIST = 2, 3, 17
IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1 << 1, 1 << 2, 1 << 3
# conntrack's TCP state numbers (include/uapi/linux/netfilter/nf_conntrack_tcp.h)
TCP_STATE_NUM = {"NONE": 0, "SYN_SENT": 1, "SYN_RECV": 2, "ESTABLISHED": 3, "FIN_WAIT": 4,
                 "CLOSE_WAIT": 5, "LAST_ACK": 6, "TIME_WAIT": 7, "CLOSE": 8}

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)


class NamespaceApplier:
    """Applies state changes to network namespace ``netns`` through interface ``ifname``."""

    def __init__(self, netns: str, ifname: str, nud: str = "permanent",
                 runner: Runner = _run, enter: bool = False,
                 etc_dir: Path | None = None) -> None:
        """``enter=True``: the first call moves the calling thread into ``netns`` (setns)
        and talks netlink there directly — neighbours, routes and conntrack entries
        without a proxy process or a fork. Use it from one dedicated thread only."""
        if nud not in NUD:
            raise ValueError(f"nud must be one of {', '.join(NUD)}, got {nud!r}")
        self.netns = netns
        self.ifname = ifname
        self.nud = NUD[nud]
        self._runner = runner
        self._ns: Any = None
        self._ct: Any = None
        self._enter = enter
        self._ifindex: int | None = None
        self.applied: dict[tuple[str, str], dict[str, Any]] = {}
        # Where ``ip netns exec`` finds the namespace's own /etc files.
        self.hosts_file = (etc_dir or Path("/etc/netns") / netns) / "hosts"
        self._dns: dict[str, dict[str, Any]] = {}
        self.stats = {"applied": 0, "removed": 0, "failed": 0, "skipped": 0}

    # -- netlink ------------------------------------------------------------------------------

    def _netns(self) -> Any:
        if self._ns is None:
            from pyroute2 import IPRoute, NetNS

            if self._enter:
                from mirror.capture import enter_netns

                enter_netns(self.netns)
                self._ns = IPRoute()
            else:
                self._ns = NetNS(self.netns)
            idx = self._ns.link_lookup(ifname=self.ifname)
            if not idx:
                self._ns.close()
                self._ns = None
                raise RuntimeError(f"no interface {self.ifname!r} in namespace {self.netns!r}")
            self._ifindex = idx[0]
        return self._ns

    def close(self) -> None:
        if self._ct is not None:
            self._ct.close()
            self._ct = None
        if self._ns is not None:
            self._ns.close()
            self._ns = None

    def __enter__(self) -> NamespaceApplier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public -------------------------------------------------------------------------------

    def apply(self, change: StateChange) -> bool:
        """Apply one change; True on success (or nothing to do), False when it failed."""
        kind, key, value = change.kind, change.key, change.value or {}
        remove = change.action == "remove"
        done: bool | None
        try:
            if kind == "arp":
                done = self._neigh(key, value, remove)
            elif kind == "route":
                done = self._route(key, value, remove)
            elif kind == "connection":
                done = self._conntrack(value, remove)
            elif kind == "dns":
                done = self._dns_answer(key, value, remove)
            else:
                done = None
        except Exception as exc:  # never into the engine
            self.stats["failed"] += 1
            log.warning("mirror apply %s %s %s in %s failed: %s", change.action, kind, key,
                        self.netns, exc)
            return False
        if done is None:
            self.stats["skipped"] += 1
            return True
        if remove:
            self.applied.pop((kind, key), None)
            self.stats["removed"] += 1
        else:
            self.applied[(kind, key)] = value
            self.stats["applied"] += 1
        return True

    def sync(self, snapshot: dict[str, Any]) -> None:
        """Make the namespace hold exactly the snapshot's entries (of those we manage):
        the container's addresses first (the kernel refuses a gateway route on an interface
        without IPv4 configuration), then every entry, then remove what we applied earlier
        that is no longer there."""
        ts = float(snapshot.get("time", 0.0))
        prefix = next((int(r["dst"].split("/")[1]) for r in snapshot.get("routes", [])
                       if r.get("scope") == "link" and "/" in r["dst"]
                       and ":" not in r["dst"]), 32)
        self.ensure_addresses(snapshot.get("container", {}).get("ips", []), prefix)
        wanted: set[tuple[str, str]] = set()
        for a in snapshot.get("arp", []):
            wanted.add(("arp", a["ip"]))
            self.apply(StateChange(ts, "arp", "add", a["ip"], a))
        for r in snapshot.get("routes", []):
            wanted.add(("route", r["dst"]))
            self.apply(StateChange(ts, "route", "add", r["dst"], r))
        for c in snapshot.get("connections", []):
            key = _conn_key(c)
            wanted.add(("connection", key))
            self.apply(StateChange(ts, "connection", "add", key, c))
        for d in snapshot.get("dns", []):
            key = f"{d['name']} {d['type']}"
            wanted.add(("dns", key))
            self.apply(StateChange(ts, "dns", "add", key, d))
        for kind, key in [k for k in self.applied if k not in wanted]:
            self.apply(StateChange(ts, kind, "remove", key, self.applied[(kind, key)]))

    def ensure_addresses(self, ips: list[str], prefixlen: int = 32) -> None:
        """Give ``ifname`` the container's IPv4 addresses (``replace``: idempotent)."""
        for ip in ips:
            if ":" in ip:
                continue
            try:
                self._netns().addr("replace", index=self._ifindex, address=ip,
                                   prefixlen=prefixlen)
                self.stats["applied"] += 1
            except Exception as exc:
                self.stats["failed"] += 1
                log.warning("mirror apply address %s/%d in %s failed: %s", ip, prefixlen,
                            self.netns, exc)

    # -- neighbours and routes ----------------------------------------------------------------

    def _dns_answer(self, key: str, value: dict[str, Any], remove: bool) -> bool:
        if remove:
            self._dns.pop(key, None)
        else:
            self._dns[key] = value
        self.hosts_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.hosts_file.with_name(".hosts.tmp")
        tmp.write_text(hosts_text(self._dns.values(), self.netns))
        os.replace(tmp, self.hosts_file)
        return True

    def _neigh(self, ip: str, value: dict[str, Any], remove: bool) -> bool:
        ns = self._netns()
        if remove:
            try:
                ns.neigh("del", dst=ip, ifindex=self._ifindex)
            except Exception as exc:
                if getattr(exc, "code", None) != ENOENT:
                    raise
            return True
        ns.neigh("replace", dst=ip, lladdr=value["mac"], ifindex=self._ifindex, state=self.nud)
        return True

    def _route(self, dst: str, value: dict[str, Any], remove: bool) -> bool | None:
        ns = self._netns()
        net = "0.0.0.0/0" if dst == "default" else dst
        gateway = value.get("gateway")
        if dst == "default" and not gateway:
            return None  # only the gateway's MAC is known yet: nothing routable to write
        spec: dict[str, Any] = {"dst": net, "oif": self._ifindex}
        if gateway:
            spec.update(gateway=gateway, flags=RTNH_F_ONLINK)
        else:
            spec["scope"] = RT_SCOPE_LINK
        if remove:
            try:
                ns.route("del", dst=net, oif=self._ifindex)
            except Exception as exc:
                if getattr(exc, "code", None) not in (ENOENT, ESRCH):
                    raise
            return True
        ns.route("replace", **spec)
        return True

    # -- conntrack ----------------------------------------------------------------------------

    def _conntrack(self, c: dict[str, Any], remove: bool) -> bool | None:
        proto = c.get("proto")
        if proto not in ("tcp", "udp", "icmp"):
            return None
        src, dst = c["orig_ip"], c["resp_ip"]
        if proto == "icmp":
            if c.get("icmp_type") not in (0, 8):
                return None  # only echo has a conntrack identity we can recreate
            if c["icmp_type"] == 0:  # first seen was the reply: the requester is resp
                src, dst = dst, src
        if self._enter:
            return self._conntrack_netlink(c, proto, src, dst, remove)
        tup = ["-p", proto, "-s", src, "-d", dst]
        if proto == "icmp":
            tup += ["--icmp-type", "8", "--icmp-code", "0", "--icmp-id", str(c["orig_port"])]
        else:
            tup += ["--sport", str(c["orig_port"]), "--dport", str(c["resp_port"])]
        base = ["ip", "netns", "exec", self.netns, "conntrack"]
        if remove:
            res = self._runner(base + ["-D"] + tup)
            if res.returncode != 0 and "0 flow entries" not in (res.stderr or ""):
                raise RuntimeError(_last_line(res))
            return True
        state = c.get("state", "")
        if proto == "tcp":
            timeout = TIMEOUTS.get(state, 120.0)
        elif proto == "udp":
            timeout = TIMEOUTS.get(state, 30.0)
        else:
            timeout = ICMP_TIMEOUT
        if "expires_in" in c:
            timeout = c["expires_in"]
        extra = ["--timeout", str(max(1, int(timeout)))]
        if proto == "tcp":
            extra += ["--state", state or "ESTABLISHED"]
        replied = c.get("resp", {}).get("packets", 0) > 0
        if replied:
            assured = proto != "tcp" or state not in ("SYN_SENT", "SYN_RECV")
            extra += ["-u", "SEEN_REPLY,ASSURED" if assured else "SEEN_REPLY"]
        res = self._runner(base + ["-I"] + tup + extra)
        if res.returncode == 0:
            return True
        if "exists" not in (res.stderr or ""):
            raise RuntimeError(_last_line(res))
        upd = [a for a in extra if a != "-u" and "SEEN_REPLY" not in a]
        res = self._runner(base + ["-U"] + tup + upd)
        if res.returncode != 0:
            raise RuntimeError(_last_line(res))
        return True

    def _conntrack_netlink(self, c: dict[str, Any], proto: str, src: str, dst: str,
                           remove: bool) -> bool:
        """ctnetlink from inside the namespace (``mirror.ctnetlink``): tens of µs a call."""
        from mirror.ctnetlink import CtNetlink, CtNetlinkError, Tuple

        self._netns()  # enters the namespace on first use
        if self._ct is None:
            self._ct = CtNetlink()
        num = {"tcp": 6, "udp": 17, "icmp": 1}[proto]
        if proto == "icmp":
            orig = Tuple(src, dst, num, c["orig_port"], icmp_type=8)
            reply = Tuple(dst, src, num, c["orig_port"], icmp_type=0)
        else:
            orig = Tuple(src, dst, num, c["orig_port"], c["resp_port"])
            reply = Tuple(dst, src, num, c["resp_port"], c["orig_port"])
        if remove:
            try:
                self._ct.delete(orig)
            except CtNetlinkError as exc:
                if exc.errno != ENOENT:
                    raise
            return True
        state = c.get("state", "")
        timeout = c.get("expires_in") or (TIMEOUTS.get(state, 120.0) if proto != "icmp"
                                          else ICMP_TIMEOUT)
        replied = c.get("resp", {}).get("packets", 0) > 0
        status = IPS_CONFIRMED
        if replied:
            status |= IPS_SEEN_REPLY
            if proto != "tcp" or state not in ("SYN_SENT", "SYN_RECV"):
                status |= IPS_ASSURED
        tcp_state = TCP_STATE_NUM.get(state or "ESTABLISHED", 3) if proto == "tcp" else None
        timeout = max(1, int(timeout))
        try:
            self._ct.create(orig, reply, status, timeout, tcp_state)
        except CtNetlinkError as exc:
            if exc.errno != EEXIST:
                raise
            self._ct.update(orig, timeout, tcp_state)
        return True


def hosts_text(entries: Iterable[dict[str, Any]], netns: str) -> str:
    """A hosts file of DNS answers: each A/AAAA address under the name that was asked."""
    lines = [f"# DNS answers seen by the container mirrored in {netns} (shadownet-agent)",
             "127.0.0.1\tlocalhost", "::1\tlocalhost"]
    seen = set()
    for entry in sorted(entries, key=lambda e: (e.get("name", ""), e.get("type", ""))):
        if entry.get("rcode") != "NOERROR":
            continue
        name = str(entry.get("name", "")).rstrip(".")
        if not name or any(c.isspace() or c == "#" for c in name):
            continue  # nothing a hosts file could hold
        for answer in entry.get("answers", []):
            if answer.get("type") in ("A", "AAAA") and (answer["data"], name) not in seen:
                seen.add((answer["data"], name))
                lines.append(f"{answer['data']}\t{name}")
    return "\n".join(lines) + "\n"


def _conn_key(c: dict[str, Any]) -> str:
    def ep(ip: str, port: int) -> str:
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    return f"{c['proto']} {ep(c['orig_ip'], c['orig_port'])} > {ep(c['resp_ip'], c['resp_port'])}"


def _last_line(res: subprocess.CompletedProcess[str]) -> str:
    text = (res.stderr or res.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit status {res.returncode}"
