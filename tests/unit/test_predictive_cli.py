"""``shadownet predict`` sub-commands: happy paths and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shadownet.cli import main

NAB_DIR = Path(__file__).parents[2] / ".." / "shared" / "data" / "nab"


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _series(path: Path, n=300, label=False) -> Path:
    rng = np.random.default_rng(0)
    lines = ["timestamp,cpu,latency" + (",label" if label else "")]
    for i in range(n):
        bad = i >= n - 30
        cpu = 50 + rng.normal(0, 2) + (30 if bad else 0)
        lat = "" if i % 17 == 0 else f"{10 + rng.normal(0, 1):.3f}"
        row = f"2024-01-01T00:00:00+00:00,{cpu:.3f},{lat}".replace(
            "00:00:00", f"{i // 60:02d}:{i % 60:02d}:00"
        )
        lines.append(row + (f",{int(i >= n - 40)}" if label else ""))
    return _csv(path, "\n".join(lines) + "\n")


def test_score_json_and_csv_output(tmp_path, capsys):
    src = _series(tmp_path / "in.csv")
    assert main(["predict", "score", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 300 and out["metrics"] == ["cpu", "latency"]
    assert out["columns"] == ["timestamp", "failure_probability", "alert", "alarm", "top_metric"]
    probs = [r[1] for r in out["scores"]]
    assert all(0 <= p <= 1 for p in probs)
    assert max(probs[-30:]) > max(probs[100:270])  # the cpu jump stands out
    assert {r[4] for r in out["scores"][-30:]} == {"cpu"}
    dst = tmp_path / "out.csv"
    assert main(["predict", "score", str(src), "-o", str(dst)]) == 0
    lines = dst.read_text().splitlines()
    assert lines[0] == "timestamp,failure_probability,alert,alarm,top_metric"
    assert len(lines) == 301


def test_score_ignores_label_columns_with_a_warning(tmp_path, capsys):
    """A label column scored as a metric would feed the answers in."""
    src = _series(tmp_path / "in.csv", label=True)
    text = src.read_text().replace(",label", ",is_anomaly", 1)
    src.write_text(text)
    assert main(["predict", "score", str(src), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["metrics"] == ["cpu", "latency"] and out["ignored"] == ["is_anomaly"]
    assert "ignoring label column(s) is_anomaly" in captured.err
    # The scores are those of the file without the column.
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(",".join(line.split(",")[:3]) for line in text.splitlines()) + "\n")
    assert main(["predict", "score", str(bare), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scores"] == out["scores"]


def test_score_metrics_option_picks_columns_and_refuses_labels(tmp_path, capsys):
    src = _series(tmp_path / "in.csv", label=True)
    assert main(["predict", "score", str(src), "--json", "--metrics", "latency"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] == ["latency"] and {r[4] for r in out["scores"]} == {"latency"}
    assert main(["predict", "score", str(src), "--metrics", "label"]) == 2
    assert "'label' is a label column" in capsys.readouterr().err
    assert main(["predict", "score", str(src), "--metrics", "cpu,disk"]) == 2
    assert "no column 'disk'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("timestamp,value\n", "no data rows"),
        ("time,value\n1,2\n", "expected 'timestamp'"),
        ("timestamp,value\nyesterday,1\n", "unparsable timestamp"),
        ("timestamp,value\n2024-01-01 00:00:00,abc\n", "non-numeric"),
        ("timestamp,value\n2024-01-01 00:00:00,1,2\n", "expected 2 columns"),
        ("timestamp\n2024-01-01 00:00:00\n", "no metric columns"),
    ],
)
def test_score_malformed_files_exit_2_with_one_line(tmp_path, capsys, text, message):
    src = _csv(tmp_path / "bad.csv", text)
    assert main(["predict", "score", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shadownet: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_score_missing_file_and_bad_model(tmp_path, capsys):
    assert main(["predict", "score", str(tmp_path / "nope.csv")]) == 2
    src = _series(tmp_path / "in.csv", n=50)
    bogus = _csv(tmp_path / "m.skops", "nope")
    assert main(["predict", "score", str(src), "--model", str(bogus)]) == 2
    assert "not a shadownet model" in capsys.readouterr().err


def test_train_from_labelled_csvs_then_score_with_model(tmp_path, capsys):
    one = _series(tmp_path / "hist1.csv", n=400, label=True)
    two = _series(tmp_path / "hist2.csv", n=400, label=True)
    model = tmp_path / "model.skops"
    assert main(["predict", "train", "--csv", str(one), str(two), "-o", str(model)]) == 0
    assert "threshold" in capsys.readouterr().out and model.exists()
    assert main(["predict", "score", str(_series(tmp_path / "new.csv")), "--model", str(model),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["model"]["rows"] == 1600  # two metrics in each of two files
    assert main(["predict", "train", "--csv", str(one), "-o", str(model)]) == 2
    assert "two groups" in capsys.readouterr().err
    unlabelled = _series(tmp_path / "u.csv")
    assert main(["predict", "train", "--csv", str(unlabelled), str(one), "-o", str(model)]) == 2
    assert "no 'label' column" in capsys.readouterr().err


SUBSET = ("art_daily_jumpsup", "art_daily_flatmiddle", "ec2_request_latency_system_failure",
          "occupancy_6005", "art_daily_no_noise")


@pytest.mark.skipif(not NAB_DIR.exists(), reason="NAB corpus not available")
def test_nab_leave_one_group_out_on_a_subset(capsys):
    args = ["predict", "nab", "--data", str(NAB_DIR), "--json"]
    for name in SUBSET:
        args += ["--only", name]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["detectors"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    std = out["detectors"]["standard"]
    assert set(std) == {"shadownet", "robust-max", "rolling-z", "windowed-gaussian"}
    assert set(std["shadownet"]["groups"]) == {"artificialNoAnomaly", "artificialWithAnomaly",
                                               "realKnownCause", "realTraffic"}
    assert all(-200 <= d["score"] <= 100 for d in std.values())
    assert "tuned_on_everything" in std["shadownet"]
    assert sum(b["rows"] for b in out["reliability"]) > 0
    assert set(out["importance"]) and out["timing"]["signals_points_per_second"] > 0
    assert main(["predict", "nab", "--data", str(NAB_DIR), "--only", "art_daily_jumpsup"]) == 2
    assert "two groups" in capsys.readouterr().err


def test_nab_bad_directory(tmp_path, capsys):
    assert main(["predict", "nab", "--data", str(tmp_path / "none")]) == 2
    assert "NAB directory not found" in capsys.readouterr().err
