"""Random degradation patterns and the in-process failover simulation (bench/failover_sim.py)."""

from __future__ import annotations

import math
import random

import pytest

from controller.services.liveness import LivenessSettings
from lab.degradation_patterns import BENIGN, FAILING, KINDS, Pattern, draw
from tests.unit.fakes import load_bench

failover_sim = load_bench("failover_sim")


@pytest.mark.parametrize("kind", KINDS)
def test_patterns_are_reproducible_and_keep_their_ground_truth(kind):
    a, b = draw(random.Random(5), kind), draw(random.Random(5), kind)
    assert a == b and a.kind == kind
    for seed in range(50):
        p = draw(random.Random(seed), kind, warmup_s=60, horizon_s=300)
        assert p.onset >= 60
        before = p.at(p.onset - 1)
        assert (before.latency_ms, before.loss, before.dead) == (p.base_ms, p.base_loss, False)
        if kind in FAILING:
            assert p.death_at is not None and p.onset <= p.death_at <= 290
            assert p.at(p.death_at).dead and p.at(p.death_at).loss == 1.0
            assert not p.at(p.death_at - 0.01).dead
        else:
            assert p.death_at is None and not any(p.at(t).dead for t in range(0, 300, 7))


def test_the_families_degrade_the_way_they_are_named():
    rng = random.Random(3)
    ramp = draw(rng, "ramp")
    assert ramp.death_at is not None
    times = [ramp.onset + f * (ramp.death_at - ramp.onset) for f in (0.1, 0.5, 0.9)]
    lat = [ramp.at(t).latency_ms for t in times]
    assert lat[0] < lat[1] < lat[2] <= ramp.peak_ms
    loss = draw(rng, "loss_first")
    assert loss.death_at is not None
    assert loss.at(loss.death_at - 0.1).loss > loss.at(loss.onset + 0.1).loss
    flaps = draw(rng, "flaps")
    spikes = [flaps.at(flaps.onset + k * flaps.period_s + 0.5).latency_ms for k in range(3)]
    calm = flaps.at(flaps.onset + flaps.spike_s + 0.5 * (flaps.period_s - flaps.spike_s))
    assert spikes == [flaps.peak_ms] * 3 and calm.latency_ms == flaps.base_ms
    with pytest.raises(ValueError, match="kind must be one of"):
        draw(rng, "meteor")


def _flat(death_at: float | None) -> Pattern:
    kind = "sudden" if death_at is not None else "level_shift"
    return Pattern(kind, onset=death_at if death_at is not None else math.inf,
                   death_at=death_at, base_ms=2.0, base_jitter_ms=5.0, base_loss=0.0,
                   peak_ms=2.0)


@pytest.mark.parametrize("mode", failover_sim.MODES)
def test_a_sudden_death_is_moved_away_from_within_a_second_by_liveness(mode):
    out = failover_sim.play(_flat(100.0), mode, seed=1, interval=10.0, horizon=300.0)
    assert out.moved_at is not None and 100.0 <= out.moved_at <= 101.0
    assert not out.early and out.downtime == out.moved_at - 100.0


@pytest.mark.parametrize("mode", failover_sim.MODES)
def test_without_liveness_a_sudden_death_waits_for_probe_rounds(mode):
    off = LivenessSettings(interval=0.0)
    out = failover_sim.play(_flat(100.0), mode, seed=1, interval=1.0, horizon=300.0, live=off)
    assert out.moved_at is not None and 101.0 < out.moved_at <= 105.0


@pytest.mark.parametrize("mode", failover_sim.MODES)
def test_a_steady_healthy_node_is_never_moved(mode):
    out = failover_sim.play(_flat(None), mode, seed=2, interval=1.0, horizon=200.0)
    assert out.moved_at is None


def test_summary_counts_precision_lead_and_downtime():
    run = failover_sim.Outcome
    outcomes = [run("ramp", True, 100.0, 80.0, 160.0),  # early, lead 20
                run("sudden", True, 100.0, 103.0, 160.0),  # late, 3 s down
                run("step", True, 100.0, None, 160.0),  # never: 60 s down
                run("flaps", False, None, 50.0, 300.0),  # needless
                run("level_shift", False, None, None, 300.0)]
    r = failover_sim.summarise(outcomes)
    assert (r["failing"], r["benign"], r["early"], r["needless_moves"]) == (3, 2, 1, 1)
    assert r["precision"] == round(2 / 3, 3) and r["lead_s_median"] == 20.0
    assert r["downtime_s_median"] == 3.0
    assert r["kinds"]["step"]["never"] == 1 and r["kinds"]["flaps"]["needless"] == 1
    assert set(BENIGN) & set(FAILING) == set()


def test_what_the_readme_claims_holds_on_a_set_of_patterns_of_its_own():
    """The README's claims, on 48 patterns no figure was taken from (seed 777): prediction
    moves no benign node, leaves at least as many failing nodes early as health alone,
    and liveness leaves a sudden death within a second."""
    patterns = [draw(random.Random(777 + i), KINDS[i % len(KINDS)]) for i in range(48)]
    report = {mode: failover_sim.summarise(
        [failover_sim.play(p, mode, 777 + i, 1.0, 300.0) for i, p in enumerate(patterns)])
        for mode in failover_sim.MODES}
    pred, health = report["predictive"], report["health"]
    assert pred["needless_moves"] == 0 and health["needless_moves"] == 0
    assert pred["early"] >= health["early"] and pred["precision"] == 1.0
    assert pred["downtime_s_median_by_kind"]["sudden"] <= 1.0
