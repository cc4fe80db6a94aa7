"""The failover scenarios of ``shadownet lab run``, end to end, with counts asserted.

Each runs a fresh lab in one mode. Assertions are on counts (failed requests,
lost packets, migrations), never on timings, except the link-cut gap, which
is itself counted in packets (1000 packets/s: one lost packet is 1 ms).
"""

from __future__ import annotations

from lab.scenarios import run_scenario


class TestDegradingNode:
    def test_predicted_the_service_moves_first_and_no_request_fails(self):
        r = run_scenario("degrading-node", mode="predictive")
        assert r["requests"] > 300
        assert r["failed"] == 0, r
        assert r["migrations"] == 1 and r["migrated_s_before_death"] > 0, r
        # The engine saw it coming (its probability is in the health score too).
        assert r["migration_reason"]["failure_probability"] >= 0.5, r
        # Drained, verified by counters on the new node, then the old node retired.
        events = r["switchover_events"]
        assert events[0] == "switchover" and "verification_failed" not in events, r
        assert events.index("committed") < events.index("retired"), r
        assert set(r["served_by"]) == {"h2", "h3"}

    def test_without_failover_the_death_fails_requests(self):
        r = run_scenario("degrading-node", mode="none")
        assert r["migrations"] == 0
        assert r["failed_after_death"] > 0 and set(r["served_by"]) == {"h2"}


class TestNoiseOnly:
    def test_noise_moves_nothing(self):
        r = run_scenario("noise-only", mode="predictive")
        assert r["requests"] > 500
        assert r["migrations"] == 0 and r["trips"] == 0, r
        assert r["served_by"].get("h2", 0) > 0


class TestLinkCut:
    def test_fast_failover_gap_is_within_50ms(self):
        r = run_scenario("link-cut", mode="reactive")
        assert r["sent"] == 6000 and r["received"] > 0
        assert r["path_after"] != r["path_before"]
        assert r["lost"] <= 50 and r["gap_ms"] <= 50.0, r
