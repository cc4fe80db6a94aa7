"""Failure model: calibration on unseen groups, safe save/load, version and signal checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import skops.io as sio

from predictive import model as M
from predictive.alerts import Gate
from predictive.signals import SIGNALS


def _group(seed, n=4000, rate=0.1, shift=0.0):
    """One group of series: the label raises the first two signals (with noise)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    X = np.abs(rng.normal(shift, 1.0, (n, len(SIGNALS))))
    X[:, 0] += 1.5 * y
    X[:, 1] += 0.8 * y
    return X, y


def _data(groups=4, seed=0):
    Xs, ys = zip(*(_group(seed + g, rate=0.05 + 0.05 * g) for g in range(groups)), strict=True)
    return list(Xs), list(ys), [f"g{g}" for g in range(groups)]


def test_fit_ranks_and_is_calibrated_on_a_group_it_never_saw():
    X, y, groups = _data()
    model = M.FailureModel()
    oof = model.fit(X, y, groups, description="synthetic")
    assert len(oof) == 4 and all(o.shape == v.shape for o, v in zip(oof, y, strict=True))
    Xt, yt = _group(99, n=20000, rate=0.12)
    p = model.predict_proba(Xt)
    assert ((p >= 0) & (p <= 1)).all()
    assert p[yt == 1].mean() > p[yt == 0].mean() + 0.2
    assert abs(p.mean() - yt.mean()) < 0.03  # calibrated on average
    high = p >= 0.5
    assert high.any() and abs(yt[high].mean() - p[high].mean()) < 0.1  # and at the top
    assert model.meta["rows"] == 16000 and model.meta["groups"] == ["g0", "g1", "g2", "g3"]


def test_save_load_round_trip_keeps_gate_and_threshold(tmp_path):
    X, y, groups = _data(groups=2)
    m = M.FailureModel()
    m.fit(X, y, groups)
    m.gate, m.threshold = Gate(50, 1.0), 0.3
    loaded = M.FailureModel.load(m.save(tmp_path / "sub" / "model.skops"))
    assert np.array_equal(loaded.predict_proba(X[0][:50]), m.predict_proba(X[0][:50]))
    assert loaded.gate == Gate(50, 1.0) and loaded.threshold == 0.3


def _saved(tmp_path):
    X, y, groups = _data(groups=2)
    m = M.FailureModel()
    m.fit(X, y, groups)
    return m.save(tmp_path / "m.skops")


def test_load_refuses_other_version(tmp_path):
    path = _saved(tmp_path)
    blob = sio.load(path, trusted=list(M.TRUSTED_TYPES))
    blob["version"] = M.MODEL_VERSION + 1
    sio.dump(blob, path)
    with pytest.raises(M.ModelVersionError, match="version .* retrain"):
        M.FailureModel.load(path)


def test_load_refuses_other_signals(tmp_path):
    path = _saved(tmp_path)
    blob = sio.load(path, trusted=list(M.TRUSTED_TYPES))
    blob["signals"] = blob["signals"][:-1]
    sio.dump(blob, path)
    with pytest.raises(M.ModelVersionError, match="signals"):
        M.FailureModel.load(path)


def test_load_refuses_foreign_and_missing_files(tmp_path):
    (tmp_path / "x.skops").write_text("not a model")
    with pytest.raises(ValueError, match="not a shadownet model"):
        M.FailureModel.load(tmp_path / "x.skops")
    sio.dump({"hello": 1}, tmp_path / "y.skops")
    with pytest.raises(ValueError, match="not a shadownet model"):
        M.FailureModel.load(tmp_path / "y.skops")
    with pytest.raises(FileNotFoundError):
        M.FailureModel.load(tmp_path / "missing.skops")
    with pytest.raises(ValueError, match="directory"):
        M.FailureModel.load(tmp_path)


class Planted:
    """A type no model holds; a hostile file could name any such."""

    def __init__(self) -> None:
        self.x = 1


class RunsCode:
    def __reduce__(self):
        import os

        return (os.mkdir, (str(MARK),))


MARK = None


def test_loading_never_runs_code_from_the_file(tmp_path):
    global MARK
    MARK = tmp_path / "ran"
    with open(tmp_path / "evil.joblib", "wb") as fh:  # what an old-style (pickle) file can do
        pickle.dump({"format": M.MODEL_FORMAT, "estimator": RunsCode()}, fh)
    with pytest.raises(ValueError, match="not a shadownet model file"):
        M.FailureModel.load(tmp_path / "evil.joblib")
    assert not MARK.exists()
    sio.dump({"format": M.MODEL_FORMAT, "version": M.MODEL_VERSION, "estimator": Planted()},
             tmp_path / "planted.skops")
    with pytest.raises(ValueError, match="refusing to load.*Planted"):
        M.FailureModel.load(tmp_path / "planted.skops")


def test_fit_input_validation():
    X, y, groups = _data(groups=2)
    with pytest.raises(ValueError, match="two groups"):
        M.FailureModel().fit(X, y, ["same", "same"])
    with pytest.raises(ValueError, match="both"):
        M.FailureModel().fit(X, [np.zeros_like(v) for v in y], groups)
    with pytest.raises(ValueError, match="columns"):
        M.FailureModel().fit([x[:, :3] for x in X], y, groups)
    with pytest.raises(ValueError):
        M.FailureModel().save("never.skops")


def test_the_shipped_model_loads_and_says_what_it_was_trained_on():
    from predictive.predict import default_model

    model = default_model()
    assert model.fitted and model.threshold is not None and 0 < model.threshold < 1
    assert "NAB" in model.meta["description"]
