"""Learned model: calibrated output, safe save/load, version and feature checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import skops.io as sio

from predictive import model as M


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, len(M.FEATURES)))
    y = (X[:, 0] + 0.5 * X[:, 3] + rng.normal(0, 0.5, n) > 1.5).astype(int)
    return X, y


def test_fit_gives_probabilities_that_rank_and_calibrate():
    X, y = _data()
    m = M.FailureModel().fit(X, y, description="synthetic")
    Xt, yt = _data(seed=1)
    p = m.predict_proba(Xt)
    assert ((p >= 0) & (p <= 1)).all()
    assert p[yt == 1].mean() > p[yt == 0].mean() + 0.4
    assert abs(p.mean() - yt.mean()) < 0.05  # calibrated on average
    assert m.meta["rows"] == 3000 and m.meta["description"] == "synthetic"


def test_save_load_round_trip(tmp_path):
    X, y = _data()
    m = M.FailureModel().fit(X, y, negative_stride=2)
    path = m.save(tmp_path / "sub" / "model.skops")
    loaded = M.FailureModel.load(path)
    assert np.array_equal(loaded.predict_proba(X[:50]), m.predict_proba(X[:50]))
    assert loaded.probability(X[0]) == pytest.approx(m.predict_proba(X[:1])[0])


def test_load_refuses_other_version(tmp_path):
    X, y = _data()
    path = M.FailureModel().fit(X, y).save(tmp_path / "m.skops")
    blob = sio.load(path, trusted=list(M.TRUSTED_TYPES))
    blob["version"] = M.MODEL_VERSION + 1
    sio.dump(blob, path)
    with pytest.raises(M.ModelVersionError, match="version .* retrain"):
        M.FailureModel.load(path)


def test_load_refuses_other_features(tmp_path):
    X, y = _data()
    path = M.FailureModel().fit(X, y).save(tmp_path / "m.skops")
    blob = sio.load(path, trusted=list(M.TRUSTED_TYPES))
    blob["features"] = blob["features"][:-1]
    sio.dump(blob, path)
    with pytest.raises(M.ModelVersionError, match="features"):
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
    X, y = _data(200)
    with pytest.raises(ValueError, match="both"):
        M.FailureModel().fit(X, np.zeros(200))
    with pytest.raises(ValueError, match="columns"):
        M.FailureModel().fit(X[:, :3], y)
    with pytest.raises(ValueError):
        M.FailureModel().save("never.skops")
