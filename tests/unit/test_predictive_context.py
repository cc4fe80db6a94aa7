"""Contextual novelty and anomaly likelihood (predictive.context)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictive.baseline import BaselineConfig, MetricBaseline
from predictive.context import AnomalyLikelihood, ContextNovelty


def test_context_novelty_scores_new_sequences_only_once():
    c = ContextNovelty(bins=4, depth=3)
    c.fit_range([0.0, 4.0])
    pattern = [0.5, 1.5, 2.5, 3.5] * 5
    scores = [c.update(x) for x in pattern]
    assert scores[0] == pytest.approx(1 / 3)  # one new bin, no longer context yet
    assert max(scores[8:]) == 0.0  # the cycle is learnt
    assert c.update(0.5) == 0.0 and c.update(2.5) > 0.0  # a skipped step is a new context
    assert c.symbol(-10.0) == -1 and c.symbol(10.0) == 4  # overflow bins


def test_likelihood_is_low_for_usual_rates_and_high_for_a_burst():
    rng = np.random.default_rng(0)
    lik = AnomalyLikelihood(short=10, long=500)
    usual = [lik.update(float(rng.random() < 0.05)) for _ in range(2000)]
    assert max(usual[200:]) < 0.5
    burst = [lik.update(1.0) for _ in range(10)]
    assert max(burst) > 0.5
    with pytest.raises(ValueError):
        AnomalyLikelihood(short=10, long=10)


def test_baseline_context_flags_in_range_pattern_change_and_round_trips():
    cfg = BaselineConfig(warmup=400, window=500)
    b = MetricBaseline(cfg)
    xs = [float(i % 20) for i in range(1500)]  # a saw-tooth, always inside its range
    xs[1200:1230] = [float((7 * i) % 20) for i in range(30)]  # same range, new order
    out = [b.update(60.0 * i, x) for i, x in enumerate(xs[:1100])]
    assert max(s.context for s in out[500:]) < 0.5 and max(s.novelty for s in out[500:]) == 0
    c = MetricBaseline.from_state(json.loads(json.dumps(b.state_dict())))
    later = [b.update(60.0 * i, x) for i, x in enumerate(xs[1100:], start=1100)]
    assert [c.update(60.0 * i, x) for i, x in enumerate(xs[1100:], start=1100)] == later
    assert max(s.context for s in later[100:130]) > 0.5
    assert max(s.novelty for s in later) == 0.0
