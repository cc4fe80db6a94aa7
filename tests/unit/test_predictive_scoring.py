"""NAB scorer: the rules of NAB v1.1's sweeper, edge cases, and the corpus sweep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from predictive.nab import scoring as S
from predictive.nab.corpus import load_corpus

NAB_DIR = Path(__file__).parents[2] / ".." / "shared" / "data" / "nab"
STD = S.Profile("standard", 1.0, 0.11, 1.0)
LOW_FN = S.Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)


def test_scaled_sigmoid_published_values():
    assert S.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert S.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert S.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert S.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert S.scaled_sigmoid(3.5) == -1.0


def test_probation_length():
    assert S.probation_length(4032) == 604
    assert S.probation_length(22695) == 750
    assert S.probation_length(10) == 1


def _layout(rows=1000, windows=((500, 599),)):
    return S.file_layout("g/f.csv", rows, windows)


def test_flag_nothing_is_minus_fn_per_window_and_normalises_to_zero():
    lay = _layout(windows=((300, 349), (600, 699)))
    r = S.score_detections(lay, np.zeros(1000, bool), STD)
    assert r.score == -2.0 and r.windows == 2 and r.windows_detected == 0
    assert S.normalise(r.score, S.null_score([lay], STD), S.perfect_score([lay], STD)) == 0.0


def test_flag_each_window_start_scores_100():
    lay = _layout(windows=((300, 349), (600, 699)))
    det = np.zeros(1000, bool)
    det[[300, 600]] = True
    r = S.score_detections(lay, det, STD)
    assert r.score == pytest.approx(2.0)  # S(-1)/S(-1) per window
    null, perfect = S.null_score([lay], LOW_FN), S.perfect_score([lay], LOW_FN)
    assert S.normalise(S.score_detections(lay, det, LOW_FN).score, null, perfect) == 100.0


def test_only_earliest_detection_in_window_counts():
    lay = _layout()
    one = np.zeros(1000, bool)
    one[550] = True
    many = one.copy()
    many[560:600] = True
    later_only = np.zeros(1000, bool)
    later_only[590] = True
    s_one = S.score_detections(lay, one, STD).score
    assert S.score_detections(lay, many, STD).score == pytest.approx(s_one)
    assert S.score_detections(lay, later_only, STD).score < s_one
    # Position of row 550 in window [500, 599]: -(599 - 550 + 1) / 100 = -0.5
    assert s_one == pytest.approx(S.scaled_sigmoid(-0.5) / S.scaled_sigmoid(-1.0))


def test_detection_before_first_window_costs_full_fp_weight():
    lay = _layout()
    det = np.zeros(1000, bool)
    det[400] = True
    assert S.score_detections(lay, det, STD).score == pytest.approx(-0.11 - 1.0)


def test_detection_after_window_scaled_by_distance():
    lay = _layout()
    near, far = np.zeros(1000, bool), np.zeros(1000, bool)
    near[600] = True  # 1 row after the window's end
    far[950] = True  # 3.5 window lengths after: full penalty
    s_near = S.score_detections(lay, near, STD).score + 1.0  # remove the missed window
    s_far = S.score_detections(lay, far, STD).score + 1.0
    assert s_near == pytest.approx(0.11 * S.scaled_sigmoid(1 / 99))
    assert -0.11 < s_near < 0
    assert s_far == pytest.approx(-0.11)


def test_detections_in_probation_are_ignored():
    lay = _layout(rows=1000, windows=((500, 599),))
    assert lay.probation == 150
    det = np.zeros(1000, bool)
    det[:150] = True
    r = S.score_detections(lay, det, STD)
    assert r.score == -1.0 and r.fp == 0


def test_window_entirely_in_probation_is_not_counted_but_stays_in_perfect():
    lay = S.file_layout("g/f.csv", 1000, ((10, 20), (500, 599)))
    assert lay.scored_windows == 1
    assert S.null_score([lay], STD) == -1.0
    assert S.perfect_score([lay], STD) == 2.0


def test_file_without_windows_only_loses_points():
    lay = S.file_layout("g/quiet.csv", 1000, ())
    det = np.zeros(1000, bool)
    det[[500, 800]] = True
    assert S.score_detections(lay, det, STD).score == pytest.approx(-0.22)
    assert S.null_score([lay], STD) == 0.0
    with pytest.raises(ValueError):
        S.normalise(0.0, 0.0, 0.0)
    thr, raw = S.optimise_threshold([lay], [np.random.default_rng(0).random(1000)], STD)
    assert thr == math.inf and raw == 0.0  # flagging nothing is best


def test_rejects_bad_windows():
    with pytest.raises(ValueError):
        S.file_layout("x", 100, ((50, 150),))
    with pytest.raises(ValueError):
        S.file_layout("x", 100, ((10, 30), (20, 40)))


def _reference_sweep(layouts, scores, profile):
    """A direct port of NAB's Sweeper.calcScoreByThreshold loop over all rows."""
    points = []
    parts = {"fp": 0.0}
    for fi, (lay, s) in enumerate(zip(layouts, scores, strict=True)):
        for i in range(lay.rows):
            w = int(lay.window[i])
            if w == S.PROBATION:
                continue
            if w >= 0:
                name = (fi, w)
                parts[name] = -profile.fn_weight
                sweep = lay.weight[i] * profile.tp_weight
            else:
                name = None
                sweep = lay.weight[i] * profile.fp_weight
            points.append((float(s[i]), sweep, name))
    points.sort(key=lambda p: -p[0])
    best = (math.inf, sum(parts.values()))
    cur = 1.1
    for score, sweep, name in points:
        if score != cur:
            total = sum(parts.values())
            if total > best[1]:
                best = (cur, total)
            cur = score
        if name is None:
            parts["fp"] += sweep
        else:
            parts[name] = max(parts[name], sweep)
    total = sum(parts.values())
    if total > best[1]:
        best = (cur, total)
    return best


def test_vectorised_sweep_matches_reference_loop():
    rng = np.random.default_rng(7)
    layouts = [
        S.file_layout("a/1.csv", 800, ((300, 379), (500, 579))),
        S.file_layout("a/2.csv", 500, ((400, 449),)),
        S.file_layout("b/3.csv", 600, ()),
    ]
    # Coarse scores so there are many ties, like real detectors emitting 0.
    scores = [np.round(rng.random(lay.rows) ** 8, 2) for lay in layouts]
    for prof in (STD, LOW_FN, S.Profile("fp", 1.0, 0.22, 1.0)):
        thr, raw = S.optimise_threshold(layouts, scores, prof)
        ref_thr, ref_raw = _reference_sweep(layouts, scores, prof)
        assert raw == pytest.approx(ref_raw)
        assert thr == pytest.approx(ref_thr)
        # score_corpus re-scores every file at the threshold and checks it agrees.
        assert S.score_corpus(layouts, scores, prof).raw == pytest.approx(raw)


@pytest.mark.skipif(not NAB_DIR.exists(), reason="NAB corpus not available")
def test_scorer_on_real_nab_files():
    corpus = load_corpus(NAB_DIR, only=["art_daily_jumpsup", "ec2_cpu_utilization_fe7f93"])
    layouts = [f.layout for f in corpus.files]
    assert [len(lay.windows) for lay in layouts] == [1, 3]
    prof = corpus.profiles["standard"]
    assert prof.fp_weight == 0.11
    starts = [np.isin(np.arange(lay.rows), [a for a, _ in lay.windows]) * 1.0 for lay in layouts]
    assert S.score_corpus(layouts, starts, prof).normalised == pytest.approx(100.0)
    zeros = [np.zeros(lay.rows) for lay in layouts]
    assert S.score_corpus(layouts, zeros, prof).normalised == 0.0
