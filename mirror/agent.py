"""The Namespace Mirroring Agent: one per host, one mirror per container.

It watches OVSDB for containers attached to bridges (ovs-docker style
``external_ids``), gives each a mirror namespace, registers the mirror port
with the controller (which installs the copy rules), reads the mirror port,
keeps the replica of the container's state in the mirror namespace, stores
every change, evaluates alert rules, and serves all of it over a tenant-scoped
REST API. An agent that restarts adopts the mirrors it already made.

    shadownet-agent --controller http://127.0.0.1:8080 [--api-port 8081]
                    [--controller-token-file agent.token]
                    [--tokens tokens.yaml] [--rules rules.yaml] [--db-url URL]
"""

from __future__ import annotations

import argparse
import copy
import functools
import http.client
import json
import logging
import queue
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from typing import Any

from mirror import lifecycle
from mirror.capture import MirrorCapture
from mirror.engine import SyncEngine
from mirror.history_store import HistoryStore, HistoryStoreError
from mirror.lifecycle import Container, MirrorRecord
from mirror.notify import WEBHOOK_RETRY, Notifier, post_json
from mirror.rules import RuleError, RuleSet, load_rules
from mirror.shunt_driver import ShuntDriver
from mirror.shunt_policy import Shunter, ShuntKey, ShuntPolicy
from mirror.tenancy import Principal, TokenFileError, load_tokens
from shadownet.retry import RetryPolicy, transient_http

LOG = logging.getLogger("shadownet.agent")

PCAP_RING_BYTES = 64 << 20  # per mirror: the window a pcap export can reach back into
LAG_SAMPLES = 20000
SWITCH_INTERVAL = 0.0005  # seconds; see main()
RESCAN_INTERVAL = 30.0  # a full OVSDB scan even when the watcher reported nothing
# Controller calls run on the agent's loop (registration, removal) and the shunt
# thread, so one call never takes much longer than a single attempt did before:
# a refused connection costs under a second of retries, and no attempt starts, nor
# waits for an answer, past CONTROLLER_RETRY.deadline. A mirror that is still not
# accepted then is registered again on the next poll.
CONTROLLER_TIMEOUT = 5.0
CONTROLLER_RETRY = RetryPolicy(attempts=3, initial=0.2, maximum=1.0, jitter=0.2, deadline=5.0)


class MirroredContainer:
    """One live mirror: capture -> engine -> (namespace, history, rules)."""

    def __init__(self, record: MirrorRecord, store: HistoryStore, rules: RuleSet | None,
                 apply_state: bool = True, shunt_policy: ShuntPolicy | None = None) -> None:
        self.record = record
        self.store = store
        self.rules = copy.deepcopy(rules) if rules is not None else None
        self.lock = threading.Lock()
        self.engine = SyncEngine(record.mac, record.ips, on_change=self._changed)
        self.shunter = Shunter(shunt_policy or ShuntPolicy())
        self.wake_shunts: threading.Event | None = None  # set by the agent's ShuntDriver
        if self.shunter.policy.enabled:
            self.engine.state.connections.on_busy = self._busy
        self.ring: deque[tuple[float, bytes]] = deque()
        self.ring_bytes = 0
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        # The two halves of each lag: kernel receive -> change made by the engine,
        # and change made -> applied in the namespace.
        self.lags_engine: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.lags_apply: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.alerts_total = 0
        self.active_alerts: dict[str, dict[str, Any]] = {}
        self._apply_queue: queue.Queue[Any] = queue.Queue()  # (change, made) or None: stop
        self._applier = None
        if apply_state:
            from mirror.apply import NamespaceApplier

            self._applier = NamespaceApplier(record.netns, lifecycle.MIRROR_IFNAME, enter=True)
        self._apply_thread = threading.Thread(target=self._apply_loop, daemon=True,
                                              name=f"apply-{record.container}")
        self.capture = MirrorCapture(record.netns, lifecycle.MIRROR_IFNAME, self._frame)

    def restore_from_history(self) -> int:
        """After an agent restart: take ARP, routes and DNS back from the stored changes.

        Connections are not restored: the TCP tracker picks live ones up mid-stream.
        Returns how many entries came back.
        """
        final: dict[tuple[str, str], dict[str, Any] | None] = {}
        record = self.record
        for change in self.store.changes(record.container, None, None, limit=10**7,
                                         tenant=record.tenant, uid=record.uid):
            if change["kind"] in ("arp", "route", "dns"):
                final[(change["kind"], change["key"])] = (
                    None if change["action"] == "remove" else change["value"])
        tables = {"arp": self.engine.state.arp, "route": self.engine.state.routes,
                  "dns": self.engine.state.dns}
        restored = 0
        with self.lock:
            for (kind, key), value in final.items():
                if value is not None:
                    tables[kind][key] = value
                    restored += 1
        return restored

    def start(self) -> None:
        self._apply_thread.start()
        self.capture.start()

    def stop(self) -> None:
        self.capture.stop()
        self._apply_queue.put(None)
        self._apply_thread.join(2)
        if self._applier is not None:
            self._applier.close()

    # --- capture path -----------------------------------------------------------------
    def _frame(self, frame: bytes, ts: float) -> None:
        with self.lock:
            self.ring.append((ts, frame))
            self.ring_bytes += len(frame)
            while self.ring_bytes > PCAP_RING_BYTES:
                self.ring_bytes -= len(self.ring.popleft()[1])
            self.engine.feed(frame, ts)

    def _busy(self, _flow: Any) -> None:
        if self.wake_shunts is not None:
            self.wake_shunts.set()  # decide on this transfer now, not at the next round

    def _changed(self, change: Any) -> None:
        self._apply_queue.put((change, time.time()))
        if (change.kind == "connection" and change.action != "add"
                and self.wake_shunts is not None and self.shunter.shunted()):
            self.wake_shunts.set()  # a shunted connection may be closing: copy it in full

    def _apply_loop(self) -> None:
        if self._applier is not None:
            # This thread lives in the mirror namespace from here on (see NamespaceApplier).
            # Routes via a gateway need an address on the interface, as in the container.
            self._applier.ensure_addresses(self.record.ips, self.record.prefixlen)
        while True:
            batch = [self._apply_queue.get()]
            while True:
                try:
                    batch.append(self._apply_queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            batch = batch[:batch.index(None)] if stopping else batch
            self._apply_batch(batch)
            if stopping:
                return

    def _apply_batch(self, batch: list[tuple[Any, float]]) -> None:
        """Apply a backlog, each entry once, in its latest state; record every change.

        A short connection makes five or six state changes within a millisecond or
        two; when the applier is behind, only the last one of each entry needs
        writing into the namespace. Every change still goes to the history, and its
        lag runs until its entry was written in a state that includes it.
        """
        latest: dict[tuple[str, str], Any] = {}
        for change, _made in batch:
            latest.pop((change.kind, change.key), None)
            latest[(change.kind, change.key)] = change  # in order of last change
        applied: dict[tuple[str, str], float] = {}
        for entry, change in latest.items():
            if self._applier is not None:
                self._applier.apply(change)
            applied[entry] = time.time()
        for change, made in batch:
            # Lag: kernel receive time of the frame that caused it -> applied in the mirror.
            done = applied[(change.kind, change.key)]
            self.lags.append(done - change.ts)
            self.lags_engine.append(made - change.ts)
            self.lags_apply.append(done - made)
            self.store.add_change(self.record.container, change.as_dict(),
                                  tenant=self.record.tenant, uid=self.record.uid)

    # --- views --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            snap = self.engine.snapshot(time.time())
            shunted = set(self.shunter.shunted())
            for conn in snap["connections"]:
                if conn["proto"] != "tcp" or not shunted:
                    continue
                key = ShuntKey.of_connection(conn)
                if key in shunted:
                    conn["shunted"] = True
                    conn["shunt_counters"] = self.shunter.totals(key)
            snap["stats"]["shunts"] = self.shunter.stats()
            return snap

    def pcap(self, start: float | None, end: float | None) -> bytes:
        import io

        from mirror.pcap import PcapWriter

        with self.lock:
            frames = [(ts, f) for ts, f in self.ring
                      if (start is None or ts >= start) and (end is None or ts <= end)]
        buf = io.BytesIO()
        writer = PcapWriter(buf)
        for ts, frame in frames:
            writer.write(frame, ts)
        return buf.getvalue()

    def lag_summary(self) -> dict[str, Any]:
        """Sync lag percentiles, with the engine's and the applier's share of them."""
        summary = _percentiles(self.lags)
        if summary["samples"]:
            summary["engine"] = _percentiles(self.lags_engine)
            summary["apply"] = _percentiles(self.lags_apply)
        return summary

    def evaluate_rules(self, now: float) -> list[dict[str, Any]]:
        if self.rules is None:
            return []
        with self.lock:
            alerts = self.rules.evaluate(self.engine.state, self.engine.stats, now)
        out = []
        for alert in alerts:
            data = alert.as_dict()
            if alert.status == "firing":
                self.alerts_total += 1
                self.active_alerts[alert.rule] = data
                self.store.add_alert(self.record.container, self.record.tenant, data,
                                     uid=self.record.uid)
            else:
                self.active_alerts.pop(alert.rule, None)
            out.append(data)
        return out

    def summary(self) -> dict[str, Any]:
        stats = self.engine.stats
        return {
            "container": self.record.container, "tenant": self.record.tenant,
            "netns": self.record.netns, "mac": self.record.mac, "ips": self.record.ips,
            "dpid": self.record.dpid, "mirror_port": self.record.mirror_ofport,
            "packets": stats.packets, "bytes": stats.bytes, "malformed": stats.malformed,
            "kernel_drops": self.capture.kernel_drops, "lag": self.lag_summary(),
            "alerts_active": len(self.active_alerts), "alerts_total": self.alerts_total,
            "applier": self._applier.stats if self._applier else None,
            "shunts": self.shunter.stats(),
        }


def _percentiles(samples: deque[float]) -> dict[str, Any]:
    values = sorted(samples)
    if not values:
        return {"samples": 0}

    def pct(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3)

    return {"samples": len(values), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": round(values[-1] * 1000, 3)}


class MirrorAgent:
    def __init__(self, controller_url: str, store: HistoryStore,
                 tokens: dict[str, Principal], rules: RuleSet | None = None,
                 poll_interval: float = 1.0, apply_state: bool = True,
                 shunt_policy: ShuntPolicy | None = None,
                 controller_token: str | None = None,
                 controller_retry: RetryPolicy = CONTROLLER_RETRY,
                 webhook_retry: RetryPolicy = WEBHOOK_RETRY) -> None:
        self.controller_url = controller_url.rstrip("/")
        self.controller_token = controller_token  # an 'agent' role token of the controller
        self.store = store
        self.tokens = tokens
        self.rules = rules
        self.poll_interval = poll_interval
        self.apply_state = apply_state
        self.shunt_policy = shunt_policy or ShuntPolicy()
        self.shunts = ShuntDriver(self._live_mirrors, self._controller_json)
        self.mirrors: dict[str, MirroredContainer] = {}
        self.unregistered: set[str] = set()  # mirrors the controller has not accepted yet
        self.controller_retry = controller_retry
        self.webhook_retry = webhook_retry
        self.notifier = Notifier()  # webhooks and health marks, off the loop
        # Set when a registration found no controller: the rest of that pass waits.
        self._controller_silent = False
        self.lock = threading.RLock()
        self._stop = threading.Event()

    # --- controller ---------------------------------------------------------------------
    def _controller(self, method: str, path: str, body: Any = None) -> int:
        """Call the controller's REST API; the status, 0 when it cannot be reached."""
        return self._controller_json(method, path, body)[0]

    def _controller_json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None); status 0 when it cannot be reached.

        Retried under ``controller_retry`` while the error can pass (no answer, a
        timeout, 5xx, 429); a 4xx is final at once. Every call the agent makes is
        idempotent (registration and shunts replace, deletions of what is gone
        are no-ops), so a retried POST whose answer was lost does no harm.
        """
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.controller_token:
            headers["Authorization"] = f"Bearer {self.controller_token}"
        policy = self.controller_retry
        started = time.monotonic()
        detail = b""

        def once() -> tuple[int, Any]:
            nonlocal detail
            timeout = CONTROLLER_TIMEOUT
            if policy.deadline is not None:  # the last attempt ends by the deadline too
                left = policy.deadline - (time.monotonic() - started)
                timeout = max(0.5, min(timeout, left))
            req = urllib.request.Request(self.controller_url + path, data=data,
                                         method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    status, raw = resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                try:
                    detail = exc.read()[:200]
                except (OSError, http.client.HTTPException):
                    detail = b""
                exc.close()
                raise
            try:
                return status, json.loads(raw) if raw else None
            except ValueError:
                return status, None

        try:
            return policy.call(once, retry_if=transient_http,
                               what=f"controller {method} {path}", logger=LOG)
        except urllib.error.HTTPError as exc:
            LOG.warning("controller %s %s: %s %s", method, path, exc.code,
                        detail.decode(errors="replace"))
            return exc.code, None
        except (OSError, http.client.HTTPException) as exc:
            LOG.warning("controller %s %s unreachable: %s", method, path, exc)
            return 0, None

    def _live_mirrors(self) -> list[MirroredContainer]:
        with self.lock:
            return list(self.mirrors.values())

    def _register(self, name: str) -> int:
        """Register one mirror with the controller; the status (0: not sent or no answer).

        A mirror not accepted stays in ``unregistered`` and is tried again on every
        poll, after the retries of this call gave up. Once a registration found no
        controller at all, the others of the same pass wait for the next poll
        instead of each spending the retry budget again.
        """
        mirrored = self.mirrors.get(name)
        if mirrored is None:
            self.unregistered.discard(name)
            return 0
        if self._controller_silent:
            self.unregistered.add(name)
            return 0
        status = self._controller("POST", "/api/mirrors", mirrored.record.registration())
        if status == 201:
            self.unregistered.discard(name)
        else:
            self.unregistered.add(name)  # retried every poll until the controller takes it
            self._controller_silent = status == 0
        return status

    # --- lifecycle ----------------------------------------------------------------------
    def adopt_existing(self) -> None:
        """Pick up mirrors an earlier agent made; drop those whose container is gone."""
        self._controller_silent = False
        attached = {c.name: c for c in lifecycle.attached_containers()}
        for record in lifecycle.existing_mirrors():
            container = attached.get(record.container)
            if container is None or not record.mirrors(container):
                LOG.info("mirror %s: its container is gone (or is another one now); "
                         "removing the mirror", record.container)
                lifecycle.destroy(record.container, record.bridge)
                self._controller("DELETE", f"/api/mirrors/{record.container}")
                continue
            self._start(record, restore=True)

    def reconcile(self) -> None:
        self._controller_silent = False  # a new pass: the controller may be back
        attached = {c.name: c for c in lifecycle.attached_containers()}
        with self.lock:
            for name in list(self.mirrors):
                container = attached.get(name)
                if container is None or not self.mirrors[name].record.mirrors(container):
                    self._remove(name)  # gone, or a new container took its name
            for name, container in attached.items():
                if name not in self.mirrors:
                    self._add(container)
            for name in list(self.unregistered):
                self._register(name)

    def _add(self, container: Container) -> None:
        if not container.mac:
            LOG.warning("container %s has no attached-mac; not mirrored", container.name)
            return
        LOG.info("container %s attached to %s port %s; creating its mirror",
                 container.name, container.bridge, container.ofport)
        record = lifecycle.create_mirror(container)
        self._start(record)

    def _start(self, record: MirrorRecord, restore: bool = False) -> None:
        mirrored = MirroredContainer(record, self.store, self.rules, self.apply_state,
                                     self.shunt_policy)
        mirrored.wake_shunts = self.shunts.wake
        if restore:
            count = mirrored.restore_from_history()
            LOG.info("mirror %s: adopted from an earlier agent (%d entries restored)",
                     record.container, count)
        mirrored.start()
        self.mirrors[record.container] = mirrored
        self._register(record.container)

    def _remove(self, name: str) -> None:
        mirrored = self.mirrors.pop(name)
        self.unregistered.discard(name)
        LOG.info("container %s detached; removing its mirror", name)
        self._controller("DELETE", f"/api/mirrors/{name}")
        mirrored.stop()
        lifecycle.destroy(name, mirrored.record.bridge)

    def run(self) -> None:
        self.adopt_existing()
        self.shunts.start()
        changed = threading.Event()
        watcher = lifecycle.OvsdbWatcher(changed.set)
        watching = watcher.start()
        last_rules = last_scan = 0.0
        try:
            while not self._stop.is_set():
                now = time.time()
                # OVSDB tells us when interfaces change; without the watcher, poll.
                if (not watching or not watcher.alive or changed.is_set() or self.unregistered
                        or now - last_scan >= RESCAN_INTERVAL):
                    changed.clear()
                    last_scan = now
                    try:
                        self.reconcile()
                    except Exception:  # noqa: BLE001 - OVSDB hiccups must not kill the agent
                        LOG.exception("reconcile failed")
                if now - last_rules >= 1.0:
                    last_rules = now
                    self._rules_pass(now)
                self.store.flush()
                changed.wait(self.poll_interval)
        finally:
            watcher.stop()
            self.store.flush()

    def _rules_pass(self, now: float) -> None:
        with self.lock:
            mirrors = list(self.mirrors.values())
        for mirrored in mirrors:
            for alert in mirrored.evaluate_rules(now):
                if alert["status"] != "firing":
                    continue
                LOG.warning("alert %s on %s: %s", alert["rule"], mirrored.record.container,
                            alert["message"])
                if alert.get("mark_unhealthy"):
                    self._mark_unhealthy(mirrored.record, alert)
                if alert.get("webhook"):
                    self._webhook(alert["webhook"], mirrored.record, alert)

    def _mark_unhealthy(self, record: MirrorRecord, alert: dict[str, Any]) -> bool:
        """Tell the controller the container's host is unhealthy, from the notifier."""
        path = f"/api/hosts/{record.mac}/health"
        body = {"healthy": False, "reason": f"{alert['rule']}: {alert['message']}"}
        return self.notifier.submit(f"health mark {record.mac}",
                                    functools.partial(self._controller, "POST", path, body))

    def _webhook(self, url: str, record: MirrorRecord, alert: dict[str, Any]) -> bool:
        """Queue the alert for ``url``; sent and retried off the rules pass."""
        body = json.dumps({"container": record.container, "tenant": record.tenant,
                           "alert": alert}).encode()
        return self.notifier.submit(f"webhook {url}", functools.partial(
            post_json, url, body, policy=self.webhook_retry))

    def stop(self, remove_mirrors: bool = False) -> None:
        """Stop capturing. Mirrors stay (a restarted agent adopts them) unless asked."""
        self._stop.set()
        self.shunts.stop()
        with self.lock:
            for name in list(self.mirrors):
                if remove_mirrors:
                    self._remove(name)
                else:
                    self.mirrors.pop(name).stop()
        self.notifier.close()  # alerts already raised get a moment to go out
        self.store.flush()


def read_token_file(path: str) -> str:
    """The one token in ``path`` (a line of printable text); ValueError naming the file."""
    try:
        raw = open(path, "rb").read(4097)
    except OSError as exc:
        raise ValueError(f"cannot read controller token file {path!r}: {exc.strerror}") from None
    token = raw.decode("ascii", errors="replace").strip()
    if not token or len(raw) > 4096 or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(f"{path}: expected one token on one line")
    return token


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shadownet-agent", description=__doc__.splitlines()[0])
    p.add_argument("--controller", default="http://127.0.0.1:8080",
                   help="controller REST API base URL")
    p.add_argument("--api-host", default="127.0.0.1")
    p.add_argument("--api-port", type=int, default=8081)
    p.add_argument("--controller-token-file",
                   help="file holding the controller token (role 'agent') this agent uses")
    p.add_argument("--tokens", help="tokens.yaml (tenant-scoped API tokens)")
    p.add_argument("--rules", help="rules.yaml (alert rules)")
    p.add_argument("--db-url", default="sqlite:////var/lib/shadownet/agent.db")
    p.add_argument("--poll-interval", type=float, default=1.0)
    p.add_argument("--shunt-pps", type=float, default=ShuntPolicy.min_pps,
                   help="shunt a TCP connection busier than this many packets/s: its "
                        "segments without SYN/FIN/RST are counted on the switch instead "
                        "of copied (default %(default)s)")
    p.add_argument("--no-shunt", action="store_true",
                   help="copy every segment of every connection (retransmissions of "
                        "bulk transfers stay visible, at the switch's cost)")
    p.add_argument("--remove-on-exit", action="store_true",
                   help="remove all mirrors on exit (default: keep them for the next agent)")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        shunt_policy = ShuntPolicy(enabled=not args.no_shunt, min_pps=args.shunt_pps)
    except ValueError as exc:
        parser.error(f"--shunt-pps: {exc}")
    try:
        tokens = load_tokens(args.tokens) if args.tokens else {}
        controller_token = (read_token_file(args.controller_token_file)
                            if args.controller_token_file else None)
        rules = load_rules(args.rules) if args.rules else None
        if args.db_url.startswith("sqlite:///"):
            from pathlib import Path

            Path(args.db_url[len("sqlite:///"):]).expanduser().parent.mkdir(
                parents=True, exist_ok=True)
        store = HistoryStore(args.db_url)
    except (TokenFileError, RuleError, HistoryStoreError, FileNotFoundError, ValueError) as exc:
        print(f"shadownet-agent: error: {exc}", file=sys.stderr)
        return 2
    # The applier's netlink calls drop the GIL, and with the default 5 ms switch interval
    # a busy capture thread may keep it for up to 5 ms before each call returns (the
    # convoy effect). 0.5 ms bounds that wait; every sync-lag figure in docs/ uses it.
    sys.setswitchinterval(SWITCH_INTERVAL)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = MirrorAgent(args.controller, store, tokens, rules, args.poll_interval,
                        shunt_policy=shunt_policy, controller_token=controller_token)
    from mirror.observability import serve

    server = serve(agent, args.api_host, args.api_port)

    def _stop(signum: int, _frame: Any) -> None:
        agent._stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        agent.run()
    finally:
        agent.stop(remove_mirrors=args.remove_on_exit)
        server.shutdown()
    LOG.info("agent stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
