"""The agent's retries against real local HTTP servers: controller calls, registration, webhooks.

Waits are shrunk through the agent's policies, so no test sleeps for long; each
one checks the number of requests the server really received.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
from types import SimpleNamespace
from typing import Any

import pytest

from mirror import agent as agent_mod
from mirror.agent import CONTROLLER_RETRY, MirrorAgent
from mirror.history_store import HistoryStore
from mirror.lifecycle import MirrorRecord
from mirror.notify import Notifier, post_json
from shadownet.retry import RetryPolicy, transient_http
from tests.unit.http_stub import closed_port_url, http_stub, tcp_stub

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.02, jitter=0.01, deadline=3.0)


def record(name: str = "c1") -> MirrorRecord:
    return MirrorRecord(container=name, tenant="blue", netns=f"mirror-{name}", bridge="br0",
                        bridge_port=f"mp-{name}", mirror_ofport=7, container_ofport=3, dpid=1,
                        mac="00:00:00:00:00:0a", ips=["10.0.0.10"])


@pytest.fixture()
def make_agent(tmp_path):
    agents: list[MirrorAgent] = []

    def make(url: str, *, controller_retry: RetryPolicy = FAST,
             webhook_retry: RetryPolicy = FAST) -> MirrorAgent:
        store = HistoryStore(f"sqlite:///{tmp_path / f'agent{len(agents)}.db'}")
        agent = MirrorAgent(url, store, {}, controller_token="agent-token-123",
                            controller_retry=controller_retry, webhook_retry=webhook_retry)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.notifier.close(0.5)


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]


# --- the shared classification -------------------------------------------------------------

@pytest.mark.parametrize(("exc", "retried"), [
    (urllib.error.HTTPError("u", 503, "busy", {}, None), True),  # type: ignore[arg-type]
    (urllib.error.HTTPError("u", 500, "bug", {}, None), True),  # type: ignore[arg-type]
    (urllib.error.HTTPError("u", 429, "slow down", {}, None), True),  # type: ignore[arg-type]
    (urllib.error.HTTPError("u", 400, "bad", {}, None), False),  # type: ignore[arg-type]
    (urllib.error.HTTPError("u", 404, "gone", {}, None), False),  # type: ignore[arg-type]
    (urllib.error.URLError(ConnectionRefusedError(111, "refused")), True),
    (urllib.error.URLError(TimeoutError("timed out")), True),
    (urllib.error.URLError("unknown url type: ftp"), False),
    (ConnectionResetError(104, "reset"), True),
    (TimeoutError("read timed out"), True),
    (ValueError("unknown url type"), False),
])
def test_only_errors_that_can_pass_are_retried(exc, retried):
    assert transient_http(exc) is retried


def test_a_policy_needs_a_bound():
    with pytest.raises(ValueError, match="attempts, a deadline"):
        RetryPolicy(attempts=None, deadline=None)
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)


def test_the_default_controller_policy_stays_within_a_few_seconds():
    # Refused connections: the waits alone, which is what the agent's loop pays.
    assert CONTROLLER_RETRY.worst_case_wait() < 1.5
    assert CONTROLLER_RETRY.deadline is not None and CONTROLLER_RETRY.deadline <= 5.0


# --- controller calls ----------------------------------------------------------------------

def test_controller_call_retries_503_then_takes_the_201(make_agent, caplog):
    caplog.set_level(logging.WARNING, "shadownet.agent")
    with http_stub([503, 503, 201], body=b'{"container": "c1"}') as (url, script):
        status, body = make_agent(url)._controller_json("POST", "/api/mirrors", {"a": 1})
    assert (status, body) == (201, {"container": "c1"})
    assert [s.method for s in script.seen] == ["POST"] * 3
    assert all(json.loads(s.body) == {"a": 1} for s in script.seen)
    assert script.seen[-1].headers["Authorization"] == "Bearer agent-token-123"
    lines = retry_lines(caplog)
    assert len(lines) == 2 and "attempt 1/3 failed (HTTPError" in lines[0]


def test_controller_call_never_retries_a_400(make_agent, caplog):
    with http_stub([400, 201]) as (url, script):
        status, body = make_agent(url)._controller_json("POST", "/api/mirrors", {"a": 1})
    assert (status, body) == (400, None)
    assert len(script.seen) == 1 and not retry_lines(caplog)


def test_controller_call_gives_up_on_503_after_its_attempts(make_agent):
    with http_stub([503]) as (url, script):
        assert make_agent(url)._controller("DELETE", "/api/mirrors/c1") == 503
    assert len(script.seen) == FAST.attempts


def test_controller_unreachable_is_status_0_after_the_attempts(make_agent, caplog):
    caplog.set_level(logging.WARNING, "shadownet.agent")
    started = time.monotonic()
    assert make_agent(closed_port_url())._controller_json("GET", "/api/health") == (0, None)
    assert time.monotonic() - started < 1.0
    assert len(retry_lines(caplog)) == FAST.attempts - 1


def test_a_controller_that_hangs_costs_the_deadline_not_attempts_times_timeout(make_agent):
    policy = RetryPolicy(attempts=3, initial=0.01, maximum=0.02, jitter=0.0, deadline=0.6)
    with tcp_stub("hang") as (url, accepts):
        started = time.monotonic()
        assert make_agent(url, controller_retry=policy)._controller("GET", "/x") == 0
        elapsed = time.monotonic() - started
    assert accepts.count == 1  # the one attempt used the whole budget
    assert 0.5 <= elapsed < 1.5


# --- registration --------------------------------------------------------------------------

def test_registration_retries_then_stays_pending_then_registers_on_a_later_poll(make_agent):
    with http_stub([503, 503, 503, 201]) as (url, script):
        agent = make_agent(url)
        agent.mirrors["c1"] = SimpleNamespace(record=record("c1"))
        assert agent._register("c1") == 503  # tenacity gave up after 3 attempts
        assert agent.unregistered == {"c1"} and len(script.seen) == 3
        assert agent._register("c1") == 201  # the next poll's pass
        assert agent.unregistered == set() and len(script.seen) == 4
    assert json.loads(script.seen[-1].body) == record("c1").registration()


def test_a_refused_registration_is_not_retried_but_kept_for_later(make_agent):
    with http_stub([409]) as (url, script):
        agent = make_agent(url)
        agent.mirrors["c1"] = SimpleNamespace(record=record("c1"))
        assert agent._register("c1") == 409
    assert len(script.seen) == 1 and agent.unregistered == {"c1"}


def test_a_silent_controller_costs_one_retry_budget_per_pass_not_one_per_mirror(
        make_agent, monkeypatch):
    names = ["c1", "c2", "c3"]
    monkeypatch.setattr(agent_mod.lifecycle, "attached_containers", lambda: [
        SimpleNamespace(name=n) for n in names])
    with tcp_stub("reset") as (url, accepts):
        agent = make_agent(url)
        for name in names:
            agent.mirrors[name] = SimpleNamespace(
                record=SimpleNamespace(registration=record(name).registration,
                                       mirrors=lambda container: True))
        agent.unregistered = set(names)
        agent.reconcile()
        assert accepts.count == FAST.attempts  # the first mirror's attempts only
        assert agent.unregistered == set(names)
        agent.reconcile()  # the next poll tries again
        assert accepts.count == 2 * FAST.attempts
    with http_stub([201]) as (url, script):
        agent.controller_url = url
        agent.reconcile()
    assert agent.unregistered == set() and len(script.seen) == 3


# --- webhooks and health marks -------------------------------------------------------------

ALERT = {"rule": "arp-spoof", "status": "firing", "message": "mac changed",
         "webhook": None, "mark_unhealthy": False}


def test_webhook_is_sent_off_the_loop_and_retried(make_agent, caplog):
    caplog.set_level(logging.WARNING, "shadownet.agent.notify")
    with http_stub([503, 503, 200], delay=0.15) as (url, script):
        agent = make_agent(closed_port_url())
        started = time.monotonic()
        assert agent._webhook(url + "/hook", record("c1"), ALERT)
        assert time.monotonic() - started < 0.1  # the receiver takes 0.45 s in all
        assert agent.notifier.drain(5.0)
    assert [s.path for s in script.seen] == ["/hook"] * 3
    assert json.loads(script.seen[-1].body) == {"container": "c1", "tenant": "blue",
                                                "alert": ALERT}
    assert len(retry_lines(caplog)) == 2 and agent.notifier.failed == 0


def test_webhook_answered_400_is_not_retried(make_agent):
    with http_stub([400, 200]) as (url, script):
        agent = make_agent(closed_port_url())
        agent._webhook(url, record("c1"), ALERT)
        assert agent.notifier.drain(5.0)
    assert len(script.seen) == 1 and agent.notifier.failed == 1


def test_rules_pass_does_not_wait_for_webhook_or_health_mark(make_agent):
    alert = dict(ALERT, mark_unhealthy=True)

    class Fake:
        def __init__(self) -> None:
            self.record = record("c1")

        def evaluate_rules(self, now: float) -> list[dict[str, Any]]:
            return [dict(alert, webhook=hook_url)]

    with http_stub([503, 200], delay=0.15) as (controller_url, controller), \
            http_stub([503, 200], delay=0.15) as (hook_url, hook):
        agent = make_agent(controller_url)
        agent.mirrors["c1"] = Fake()  # type: ignore[assignment]
        started = time.monotonic()
        agent._rules_pass(time.time())
        assert time.monotonic() - started < 0.1
        assert agent.notifier.drain(5.0)
    assert [s.path for s in controller.seen] == ["/api/hosts/00:00:00:00:00:0a/health"] * 2
    assert json.loads(controller.seen[-1].body) == {"healthy": False,
                                                   "reason": "arp-spoof: mac changed"}
    assert len(hook.seen) == 2


def test_post_json_raises_the_last_error_when_it_gives_up():
    with http_stub([502]) as (url, script), pytest.raises(urllib.error.HTTPError) as err:
        post_json(url, b"{}", policy=FAST)
    assert err.value.code == 502 and len(script.seen) == FAST.attempts


def test_notifier_queue_is_bounded_and_close_drops_late_jobs():
    notifier = Notifier(workers=1, size=2)
    gate = threading.Event()
    assert notifier.submit("slow", lambda: gate.wait(5))  # bounded: never hangs the suite
    time.sleep(0.05)  # the worker holds the first job
    assert notifier.submit("a", lambda: None) and notifier.submit("b", lambda: None)
    assert not notifier.submit("c", lambda: None) and notifier.dropped == 1
    gate.set()
    notifier.close(2.0)
    assert not notifier.submit("late", lambda: None)
