"""The os-ken application: a thin layer between OpenFlow events and ``ControllerCore``.

It turns os-ken events into core calls, binds the returned messages to the
right datapath and sends them, runs the reconciliation and persistence loops,
and serves the REST API. All decisions live in the core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3
from os_ken.topology import event as topo_event

from controller import config as config_mod
from controller import config_reload, ofmsgs
from controller.config_reload import ConfigDiff
from controller.core import LLDP_UNANSWERED_MIN, ControllerCore
from controller.forwarding import ForwardingSettings
from controller.mirroring import MirrorPolicy
from controller.network_graph import Link
from controller.ofmsgs import OutMsg
from controller.port_stats import PortCounters
from controller.reconciler import ObservedFlow
from controller.services.liveness import LivenessProber, LivenessSettings
from controller.state_store import StateStore, default_db_url
from controller.switch_drain import DrainSettings

LOG = logging.getLogger("shadownet")

LIVENESS_TARGETS_S = 0.5  # how stale the liveness checks' node list may be
SHUNT_COUNTER_INTERVAL = 1.0  # seconds between counter polls of shunt flows
# Seconds between saves of the predictive engines' baselines (and one on stop): a
# crash costs at most this much learning, a save costs one JSON row per engine.
BASELINE_SAVE_INTERVAL = 60.0
LOOP_LAG_WARNING = 3.0  # seconds; os-ken times a link out after 10 s without LLDP
_REMOVED_REASONS = {0: "idle_timeout", 1: "hard_timeout", 2: "delete", 3: "group_delete"}


class ShadownetApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, shadownet_config: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        """``shadownet_config``: the validated config; ``shadownet-manager`` passes it to
        every app it instantiates (os-ken's own apps ignore it); None: the defaults."""
        super().__init__(*args, **kwargs)
        cfg = shadownet_config or config_mod.defaults()
        self.cfg = cfg
        fwd = cfg["forwarding"]
        store = StateStore(cfg["controller"]["db_url"] or default_db_url())
        self.core = ControllerCore(
            store,
            ForwardingSettings(
                idle_timeout=fwd["idle_timeout"],
                hard_timeout=fwd["hard_timeout"],
                priority=fwd["priority"],
                fast_failover=fwd["fast_failover"],
                critical_switches=DrainSettings.from_config(cfg["switch_drain"]).critical,
                every_switch_critical=cfg["switch_drain"]["critical"] == "all",
                bypass_sample_percent=cfg["switch_drain"]["sample_percent"],
            ),
            history_seconds=cfg["reconcile"]["history_seconds"],
            mirror_policy=MirrorPolicy.from_dict(cfg["mirroring"], "mirroring"),
            services=cfg.get("services", []),
            predictive=cfg["prediction"]["enabled"],
            switch_drain=cfg["switch_drain"],
        )
        self.core.sender = self.send
        self.datapaths: dict[int, Any] = {}
        self._stats_requested: dict[int, float] = {}
        self._stats_rows: dict[int, list[ObservedFlow]] = {}
        # Fast counter polls of shunt flows: (dpid, xid) -> (sent at, rows so far).
        self._counter_polls: dict[tuple[int, int], tuple[float, list[ObservedFlow]]] = {}
        self._running = True
        self._outbox = hub.Queue()
        self._barriers: dict[tuple[int, int], threading.Event] = {}
        self._workers = [hub.spawn(self._sender_loop), hub.spawn(self._reconcile_loop),
                         hub.spawn(self._flush_loop), hub.spawn(self._probe_loop),
                         hub.spawn(self._shunt_counter_loop), hub.spawn(self._loop_lag_loop)]
        if cfg["switch_drain"]["critical"]:
            self._workers.append(hub.spawn(self._switch_probe_loop))
        self._liveness = self._start_liveness(cfg["node_probes"])
        self._api = None
        self._flask: Any = None
        port = cfg["controller"]["wsapi_port"]
        if port:
            from controller.api_server import ApiServer
            from controller.rest_api import ControllerAPI
            from webui.app import create_app
            from webui.guard import RestSecurity

            host = cfg["controller"]["wsapi_host"]
            security = RestSecurity.from_config(cfg["rest"], host)
            self._flask = create_app(ControllerAPI(self.core), security)
            self._api = ApiServer(self._flask, host, port)
            self._api.start()

    # --- reload ---------------------------------------------------------------
    def reload(self, new_cfg: dict[str, Any]) -> ConfigDiff:
        """Apply a validated config as a diff (SIGHUP; see :mod:`controller.config_reload`).

        The REST tokens are read again even when the config names the same file,
        so adding a token needs no restart.
        """
        change = config_reload.diff(self.cfg, new_cfg)
        cfg = change.config
        if self._flask is not None:
            # Always: the tokens file may have changed under the same name.
            from webui import guard

            guard.replace(self._flask, guard.RestSecurity.from_config(
                cfg["rest"], cfg["controller"]["wsapi_host"]))
        logging.getLogger().setLevel(cfg["controller"]["log_level"])
        self.send(self.core.reconfigure(change))
        self.cfg = cfg  # the loops read their intervals from here on each round
        LOG.warning("config reloaded: %s", change.summary())
        return change

    # --- sending --------------------------------------------------------------
    def send(self, msgs: list[OutMsg]) -> None:
        """Queue messages for the sender thread, which keeps their order."""
        if msgs:
            self._outbox.put(list(msgs))

    def _sender_loop(self) -> None:
        while self._running or not self._outbox.empty():
            try:
                msgs = self._outbox.get(timeout=0.2)
            except hub.QueueEmpty:
                continue
            try:
                self._send_now(msgs)
            except Exception:  # noqa: BLE001 - one bad batch must not stop all sending
                LOG.exception("sending %d messages failed", len(msgs))

    def _send_now(self, msgs: list[OutMsg]) -> None:
        """Send in order; before the first delete that follows adds, wait for barriers.

        The core orders make-before-break changes as adds (new flows and groups,
        the ingress flip last), then deletes of the old path. OpenFlow keeps order
        within one switch connection but not across switches, so the deletes wait
        until every switch that got adds has confirmed them.
        """
        touched: set[int] = set()
        for dpid, msg in msgs:
            deleting = ofmsgs.is_delete(msg)
            if deleting and touched:
                self._barrier(touched)
                touched = set()
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            msg.datapath = dp
            dp.send_msg(msg)
            if not deleting and ofmsgs.is_table_change(msg):
                touched.add(dpid)

    def _barrier(self, dpids: set[int], timeout: float = 2.0) -> None:
        """Barrier requests to ``dpids``; return once all replied (or ``timeout``)."""
        waits: dict[tuple[int, int], threading.Event] = {}
        for dpid in dpids:
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            req = dp.ofproto_parser.OFPBarrierRequest(dp)
            key = (dpid, dp.set_xid(req))
            waits[key] = self._barriers[key] = threading.Event()
            dp.send_msg(req)
        deadline = time.monotonic() + timeout
        for event in waits.values():
            if not event.wait(max(0.0, deadline - time.monotonic())):
                LOG.warning("barrier: a switch did not confirm within %.1fs", timeout)
                break
        for key in waits:  # a switch that never answered must not leave its entry behind
            self._barriers.pop(key, None)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        event = self._barriers.pop((ev.msg.datapath.id, ev.msg.xid), None)
        if event is not None:
            event.set()

    # --- switch lifecycle -----------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        LOG.info("switch %016x connected", dp.id)
        # Ports arrive with the port-desc reply; see _state_change.
        self.send(self.core.switch_connected(dp.id, []))

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER and dp.id is not None:
            self.datapaths[dp.id] = dp
            ofp = dp.ofproto
            for port in dp.ports.values():
                up = not (port.state & ofp.OFPPS_LINK_DOWN or port.config & ofp.OFPPC_PORT_DOWN)
                self.send(self.core.port_changed(dp.id, port.port_no, up, _port_name(port)))
            self._request_stats(dp)
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            dpid: int = dp.id
            if self.datapaths.get(dpid) is dp:
                del self.datapaths[dpid]
                LOG.info("switch %016x disconnected", dpid)
                self.send(self.core.switch_disconnected(dpid))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        msg, dp = ev.msg, ev.msg.datapath
        ofp = dp.ofproto
        port = msg.desc
        up = msg.reason != ofp.OFPPR_DELETE and not (
            port.state & ofp.OFPPS_LINK_DOWN or port.config & ofp.OFPPC_PORT_DOWN
        )
        LOG.info("port %s:%s %s", dp.id, port.port_no, "up" if up else "down")
        self.send(self.core.port_changed(dp.id, port.port_no, up, _port_name(port),
                                         deleted=msg.reason == ofp.OFPPR_DELETE))

    @set_ev_cls(topo_event.EventLinkAdd)
    def _link_add(self, ev: Any) -> None:
        link = ev.link
        self.send(self.core.link_added(
            Link(link.src.dpid, link.src.port_no, link.dst.dpid, link.dst.port_no)))

    @set_ev_cls(topo_event.EventLinkDelete)
    def _link_delete(self, ev: Any) -> None:
        """os-ken drops a link on port down, switch leave, or 10 s without LLDP."""
        link = ev.link
        name = f"{link.src.dpid}:{link.src.port_no}-{link.dst.dpid}:{link.dst.port_no}"
        unanswered = self._lldp_unanswered(link.src)
        believed, msgs = self.core.link_silent(
            Link(link.src.dpid, link.src.port_no, link.dst.dpid, link.dst.port_no), unanswered)
        if believed:
            LOG.info("link %s gone", name)
            self.send(msgs)
        else:
            LOG.warning("link %s: LLDP timed out, but only %d frames were sent since its "
                        "last answer and both ports are up; kept", name, unanswered)

    @staticmethod
    def _lldp_unanswered(port: Any) -> int:
        """LLDP frames os-ken sent out of ``port`` since one last came back."""
        switches = app_manager.lookup_service_brick("switches")
        data = switches.ports.get(port) if switches is not None else None
        return data.lldp_dropped() if data is not None else LLDP_UNANSWERED_MIN

    # --- packets and flows ----------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        self.send(self.core.packet_in(msg.datapath.id, msg.match["in_port"], bytes(msg.data)))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        self.send(self.core.flow_removed(
            msg.cookie, _REMOVED_REASONS.get(msg.reason, str(msg.reason)),
            msg.packet_count, msg.byte_count,
        ))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        msg, dpid = ev.msg, ev.msg.datapath.id
        observed = [ObservedFlow(s.cookie, s.table_id, s.priority, s.packet_count, s.byte_count)
                    for s in msg.body]
        more = msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE
        poll = self._counter_polls.get((dpid, msg.xid))
        if poll is not None:  # a shunt's counters, not a reconciliation round
            poll[1].extend(observed)
            if not more:
                del self._counter_polls[(dpid, msg.xid)]
                self.core.shunt_counters(dpid, poll[1])
            return
        self._stats_rows.setdefault(dpid, []).extend(observed)
        if more:
            return
        requested = self._stats_requested.pop(dpid, None)
        observed = self._stats_rows.pop(dpid, [])
        if requested is not None:
            self.send(self.core.flow_stats(dpid, observed, requested))

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def _port_stats(self, ev: Any) -> None:
        self.core.port_stats_reply(ev.msg.datapath.id, [
            PortCounters(s.port_no, s.rx_packets, s.tx_packets, s.rx_dropped, s.tx_dropped,
                         s.rx_errors, s.tx_errors)
            for s in ev.msg.body if s.port_no < ev.msg.datapath.ofproto.OFPP_MAX])

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        ofp = msg.datapath.ofproto
        if (msg.type, msg.code) == (ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_GROUP_EXISTS):
            # Groups go out as ADD then MODIFY (see Forwarder.group_msgs): the ADD
            # of a group that is already there fails by design, the MODIFY sets it.
            LOG.debug("switch %s: group exists (its MODIFY follows)", msg.datapath.id)
            return
        LOG.warning("switch %s error type=%s code=%s", msg.datapath.id, msg.type, msg.code)

    # --- loops ------------------------------------------------------------------
    def _request_stats(self, dp: Any) -> None:
        if dp.id in self._stats_requested:
            return
        self._stats_requested[dp.id] = time.time()
        self._stats_rows[dp.id] = []
        ports = dp.ofproto_parser.OFPPortStatsRequest(dp, 0, dp.ofproto.OFPP_ANY)
        # Through the sender, so the request follows every flow-mod already queued.
        self.send([(dp.id, ofmsgs.our_flow_stats_request()), (dp.id, ports)])

    def _sleep(self, seconds: float) -> bool:
        """Sleep in short steps so shutdown never waits a whole interval."""
        deadline = time.monotonic() + seconds
        while self._running and time.monotonic() < deadline:
            hub.sleep(min(0.2, deadline - time.monotonic()))
        return self._running

    def _reconcile_loop(self) -> None:
        while self._sleep(interval := self.cfg["reconcile"]["interval"]):
            now = time.time()
            for dp in list(self.datapaths.values()):
                # A reply that never came (switch gone mid-request) must not block the next.
                started = self._stats_requested.get(dp.id)
                if started is not None and now - started > 3 * interval:
                    self._stats_requested.pop(dp.id, None)
                self._request_stats(dp)
            # Service decisions use the counters the previous round brought in.
            self.send(self.core.service_tick())

    def _probe_loop(self) -> None:
        """The Flow Monitor's active probes: every node of every service, each interval."""
        from controller.services.health import probe_metrics
        from controller.services.probes import probe_round, run_off_hub

        while self._sleep((probes := self.cfg["node_probes"])["interval"]):
            services = self.core.service_nodes()
            if not services:
                continue
            now = time.time()
            for node, results in run_off_hub(probe_round, services, probes["count"],
                                             probes["timeout"]).items():
                self.core.observe_node(node, now, probe_metrics(results))

    def _start_liveness(self, probes: dict[str, Any]) -> LivenessProber | None:
        """Liveness checks of active nodes on their own OS thread; what they find is
        handed over through a deque (thread-safe) to a green thread that acts on it."""
        settings = LivenessSettings(probes["liveness_interval"], probes["liveness_timeout"],
                                    probes["liveness_misses"])
        if not settings.enabled:
            return None
        found: deque[tuple[str, int]] = deque()
        prober = LivenessProber(settings, lambda node, misses: found.append((node, misses)))
        prober.start()
        self._workers.append(hub.spawn(self._liveness_loop, prober, found))
        return prober

    def _liveness_loop(self, prober: LivenessProber, found: deque[tuple[str, int]]) -> None:
        """Act on unreachable nodes at once (every 50 ms), and refresh the prober's targets
        every ``LIVENESS_TARGETS_S``: they change only when services or nodes do, and the
        refresh takes the core's lock."""
        step = min(0.05, prober.settings.interval)
        refresh_every = max(1, round(LIVENESS_TARGETS_S / step))
        ticks = 0
        while self._sleep(step):
            if ticks % refresh_every == 0:
                prober.targets = self.core.liveness_targets()
            ticks += 1
            while found:
                node, misses = found.popleft()
                self.send(self.core.node_unreachable(node, misses))

    def _shunt_counter_loop(self) -> None:
        """Every second, the counters of each shunt flow, for the mirror agents."""
        while self._sleep(SHUNT_COUNTER_INTERVAL):
            now = time.time()
            for key, (sent, _rows) in list(self._counter_polls.items()):
                if now - sent > 10 * SHUNT_COUNTER_INTERVAL:  # a reply that never came
                    del self._counter_polls[key]
            for dpid, cookies in self.core.shunt_cookies().items():
                dp = self.datapaths.get(dpid)
                if dp is None:
                    continue
                requests = []
                for cookie in cookies:
                    req = ofmsgs.cookie_flow_stats_request(cookie)
                    self._counter_polls[(dpid, dp.set_xid(req))] = (now, [])
                    requests.append((dpid, req))
                self.send(requests)

    def _switch_probe_loop(self) -> None:
        """Critical switches: probe their links, score them, drain before they fail."""
        while self._sleep(self.cfg["switch_drain"]["probe_interval"]):
            self.send(self.core.switch_tick())

    def _loop_lag_loop(self, step: float = 0.1) -> None:
        """Measure how late a short sleep wakes: the time nothing else could run.

        Every green thread shares one hub; a long stall delays LLDP, barriers and
        packet-ins alike, so it is a metric, and a warning when it nears danger.
        """
        while self._running:
            started = time.monotonic()
            hub.sleep(step)
            lag = max(0.0, time.monotonic() - started - step)
            self.core.metrics.loop_lag_window.add(lag)
            if lag > LOOP_LAG_WARNING:
                LOG.warning("event loop held up %.1fs (links time out after 10s)", lag)

    def _flush_loop(self) -> None:
        baselines_saved = time.monotonic()
        while self._sleep(self.cfg["reconcile"]["flush_interval"]):
            try:
                self.core.flush()
                self.core.refresh_gauges()
                if time.monotonic() - baselines_saved >= BASELINE_SAVE_INTERVAL:
                    baselines_saved = time.monotonic()
                    self.core.save_baselines()
            except Exception:  # noqa: BLE001 - keep the controller up; the next flush retries
                LOG.exception("persisting state failed")

    def stop(self) -> None:
        """Stop our own threads first: os-ken's stop() joins the app's threads."""
        self._running = False
        if self._api is not None:
            self._api.stop()
        if self._liveness is not None:
            self._liveness.stop()
        hub.joinall(self._workers)
        super().stop()

    def close(self) -> None:
        self._running = False
        try:
            self.core.flush()
            self.core.save_baselines()
        finally:
            if self.core.store is not None:
                self.core.store.close()
        LOG.info("state saved; shadownet stopped")


def _port_name(port: Any) -> str:
    """A port description's name as text (os-ken gives bytes)."""
    name = port.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
