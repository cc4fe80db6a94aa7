"""The pattern scenario plays a drawn pattern on the primary, on a fake lab: no OVS, no Mininet.

The real :class:`ServiceLab` runs against fake hosts (commands recorded, the
client's output canned from a story of which requests fail) under a fake
clock, so a two-minute pattern plays in milliseconds. Its knobs are wrapped
to record when they were turned, in pattern time.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab import pattern_scenario as ps
from lab import service_scenarios as ss
from lab.degradation_patterns import BENIGN, FAILING, KINDS, Pattern, draw
from tests.unit.fakes import FakeClock

WALL0 = 1.7e9  # the wall clock when the fake monotonic clock reads 0 (the servers are up)


class Proc:
    pid = 4242

    def wait(self, timeout: float | None = None) -> int:
        return 0


class Host:
    def __init__(self, lab: FakeLab, n: int) -> None:
        self.lab, self.name = lab, f"h{n}"
        self.cmds: list[str] = []

    def cmd(self, command: str) -> str:
        self.cmds.append(command)
        return ""

    def popen(self, args: list[str], stdout: Any = None) -> Proc:
        if "lab.request_client" in args:  # 10 requests/s from now on, failing as the story says
            seconds = float(args[args.index("--seconds") + 1])
            start = time.time()
            self.lab.client_started.append((start - WALL0, seconds))
            stamps = [start + i / ss.RATE for i in range(int(seconds * ss.RATE))]
            stdout.write(json.dumps([{"t": t, "ok": self.lab.ok(t - WALL0), "node": "h2"}
                                     for t in stamps]))
        return Proc()


class Net:
    def __init__(self, lab: FakeLab) -> None:
        self.hosts = [Host(lab, i) for i in (1, 2, 3)]

    def pingAll(self, timeout: str = "") -> float:  # noqa: N802 - Mininet's name
        return 0.0


class Controller:
    def __init__(self, lab: FakeLab) -> None:
        self.lab = lab

    def get(self, path: str) -> Any:
        assert path == "/api/services/events"
        return [{"kind": "switchover", "ts": WALL0 + t, "node": "h2",
                 "reason": {"trigger": "probability", "failure_probability": 0.9}}
                for t in self.lab.moves] + [{"kind": "committed", "ts": WALL0 + 99}]


class FakeLab:
    """A lab whose service moves at ``moves`` (pattern seconds); requests fail when
    ``ok(t)`` says so."""

    def __init__(self, workdir: Path, moves: tuple[float, ...] = (),
                 ok: Callable[[float], bool] = lambda t: True) -> None:
        self.workdir, self.moves, self.ok = workdir, moves, ok
        self.net = Net(self)
        self.controller = Controller(self)
        self.client_started: list[tuple[float, float]] = []


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock.installed(monkeypatch)
    monkeypatch.setattr(time, "time", lambda: WALL0 + clock.now)
    return clock


@pytest.fixture
def knobs(monkeypatch, clock) -> list[tuple]:
    """Every set_delay, set_loss and kill_primary, with the fake clock's time (pattern time)."""
    calls: list[tuple] = []
    real_delay, real_loss, real_kill = (ss.ServiceLab.set_delay, ss.ServiceLab.set_loss,
                                        ss.ServiceLab.kill_primary)

    def set_delay(self, delay, jitter=0.0):
        calls.append((clock.now, "delay", delay, jitter))
        real_delay(self, delay, jitter)

    def set_loss(self, probability):
        calls.append((clock.now, "loss", probability))
        real_loss(self, probability)

    def kill_primary(self):
        calls.append((clock.now, "kill"))
        real_kill(self)

    monkeypatch.setattr(ss.ServiceLab, "set_delay", set_delay)
    monkeypatch.setattr(ss.ServiceLab, "set_loss", set_loss)
    monkeypatch.setattr(ss.ServiceLab, "kill_primary", kill_primary)
    return calls


def drawn(seed: int, kind: str) -> Pattern:
    return draw(random.Random(seed), kind, warmup_s=ss.WARMUP_S, horizon_s=ps.HORIZON_S)


def applied_at(calls: list[tuple], what: str, t: float) -> tuple:
    """The values of the last ``what`` call at or before ``t``."""
    return [c[2:] for c in calls if c[1] == what and c[0] <= t + 1e-9][-1]


# --- the pattern is played as drawn ---------------------------------------------------------


@pytest.mark.parametrize("kind", FAILING + BENIGN)
def test_the_primary_follows_the_pattern_at_every_tick(tmp_path, clock, knobs, kind):
    lab = FakeLab(tmp_path)
    out = ps.pattern_run(lab, "predictive", seed=7, kind=kind)
    pattern = drawn(7, kind)
    assert out["kind"] == kind and out["seed"] == 7 and out["fails"] == pattern.fails
    end = ps.pattern_end(pattern)
    assert clock.now == pytest.approx(end)  # the whole pattern, in pattern time
    ticks = [0.0] + [ss.WARMUP_S + i * ps.TICK_S for i in range(int((end - ss.WARMUP_S) * 2))]
    for t in ticks:
        c = pattern.at(t)
        if c.dead:
            continue
        delay, jitter = applied_at(knobs, "delay", t)
        assert delay == pytest.approx(c.latency_ms / 1000, abs=1e-4)
        assert jitter == pytest.approx(c.jitter_ms / 1000, abs=1e-4)
        assert applied_at(knobs, "loss", t)[0] == pytest.approx(c.loss, abs=1e-4)
    # Only changes are written: no knob is set twice in a row to the same value.
    for what in ("delay", "loss"):
        values = [c[2:] for c in knobs if c[1] == what]
        assert all(a != b for a, b in zip(values, values[1:], strict=False))
    # The file the server reads holds the last delay (seconds, "delay jitter").
    primary = lab.workdir / "delay-h2"
    if not pattern.fails:
        assert primary.read_text() == "{} {}\n".format(*applied_at(knobs, "delay", end))


def test_the_client_runs_from_the_warmup_to_the_end(tmp_path, clock, knobs):
    lab = FakeLab(tmp_path)
    out = ps.pattern_run(lab, "health", seed=3, kind="ramp")
    pattern = drawn(3, "ramp")
    assert lab.client_started == [(ss.WARMUP_S, pattern.death_at + ps.AFTER_DEATH_S
                                   - ss.WARMUP_S)]
    assert out["requests"] == int((pattern.death_at + 10 - ss.WARMUP_S) * ss.RATE)
    assert pattern.onset >= ss.WARMUP_S  # the warm-up sees the baseline only
    assert all(c[0] in (0.0,) or c[0] >= ss.WARMUP_S for c in knobs)


@pytest.mark.parametrize("kind", FAILING)
def test_a_failing_pattern_kills_the_primary_once_at_its_death(tmp_path, clock, knobs, kind):
    lab = FakeLab(tmp_path)
    out = ps.pattern_run(lab, "predictive", seed=11, kind=kind)
    pattern = drawn(11, kind)
    kills = [c[0] for c in knobs if c[1] == "kill"]
    assert kills == [pytest.approx(pattern.death_at)]  # on time, not a tick late
    assert all(c[0] < pattern.death_at for c in knobs if c[1] != "kill")  # nothing after
    primary = lab.net.hosts[1]
    assert primary.cmds[-2:] == ["iptables -F INPUT; iptables -A INPUT -j DROP", "kill -9 4242"]
    assert out["death_s"] == round(pattern.death_at, 1)


@pytest.mark.parametrize("kind", BENIGN)
def test_a_benign_pattern_never_kills(tmp_path, clock, knobs, kind):
    out = ps.pattern_run(FakeLab(tmp_path), "predictive", seed=5, kind=kind)
    assert not any(c[1] == "kill" for c in knobs)
    assert clock.now == pytest.approx(ps.HORIZON_S)
    assert out["death_s"] is None and out["failed_after_death"] is None
    assert out["moved_s_before_death"] is None and out["needless"] is False


def test_the_standbys_get_the_baseline(tmp_path, clock, knobs):
    seed = next(s for s in range(100) if drawn(s, "step").base_loss > 0)
    pattern = drawn(seed, "step")
    lab = FakeLab(tmp_path)
    ps.pattern_run(lab, "predictive", seed=seed, kind="step")
    delay, jitter = (float(x) for x in (lab.workdir / "delay-h3").read_text().split())
    assert delay == pytest.approx(pattern.base_ms / 1000, abs=1e-4)
    assert jitter == pytest.approx(pattern.base_jitter_ms / 1000, abs=1e-4)
    assert any(f"--probability {pattern.base_loss} -j DROP" in c for c in lab.net.hosts[2].cmds)


def test_the_flaps_write_only_their_edges(tmp_path, clock, knobs):
    pattern = drawn(2, "flaps")
    ps.pattern_run(FakeLab(tmp_path), "predictive", seed=2, kind="flaps")
    spikes = sum(1 for c in knobs if c[1] == "delay" and c[2] > pattern.base_ms / 1000 + 1e-4)
    assert spikes <= (ps.HORIZON_S - pattern.onset) / pattern.period_s + 1
    assert len([c for c in knobs if c[1] == "loss"]) == 1  # the baseline, once


def test_no_seed_draws_one_and_reports_it(tmp_path, clock, knobs):
    out = ps.pattern_run(FakeLab(tmp_path), "none")
    assert isinstance(out["seed"], int)
    again = drawn(out["seed"], out["kind"])
    assert out["pattern"]["peak_ms"] == round(again.peak_ms, 3)
    assert out["onset_s"] == round(again.onset, 1)


def test_a_seed_picks_its_kind_apart_from_its_pattern():
    for seed in range(40):
        picked = ps.pattern_for(seed)
        assert ps.pattern_for(seed, picked.kind) == picked == drawn(seed, picked.kind)
    assert len({ps.pattern_for(seed).kind for seed in range(40)}) == len(KINDS)


def test_bad_mode_or_kind_starts_nothing(tmp_path, clock, knobs):
    lab = FakeLab(tmp_path)
    with pytest.raises(ValueError, match="mode"):
        ps.pattern_run(lab, "psychic", seed=1)
    with pytest.raises(ValueError, match="kind"):
        ps.pattern_run(lab, "health", seed=1, kind="meltdown")
    assert knobs == [] and not (lab.workdir / "delay-h2").exists()


# --- the result -----------------------------------------------------------------------------


def story(pattern: Pattern, moved: float | None) -> Callable[[float], bool]:
    """Requests fail from the death until the service moves."""
    assert pattern.death_at is not None
    death = pattern.death_at
    return lambda t: t < death or (moved is not None and t >= moved)


def test_an_early_move_is_positive_and_loses_nothing(tmp_path, clock, knobs):
    pattern = drawn(4, "plateau")
    lab = FakeLab(tmp_path, moves=(pattern.death_at - 5,), ok=story(pattern, pattern.death_at - 5))
    out = ps.pattern_run(lab, "predictive", seed=4, kind="plateau")
    assert out["moved_s_before_death"] == 5.0
    assert out["moved_at_s"] == round(pattern.death_at - 5, 1)
    assert out["failed_after_death"] == 0 and out["failed_before_death"] == 0
    assert out["migrations"] == 1 and out["needless"] is False
    assert out["migration_reason"] == {"trigger": "probability", "failure_probability": 0.9}
    assert out["pattern"]["kind"] == "plateau" and out["onset_s"] == round(pattern.onset, 1)
    assert ps.pattern_misses("predictive", out) == []


def test_a_late_move_is_negative_and_counts_the_failures(tmp_path, clock, knobs):
    pattern = drawn(4, "step")
    moved = pattern.death_at + 2
    lab = FakeLab(tmp_path, moves=(moved,), ok=story(pattern, moved))
    out = ps.pattern_run(lab, "health", seed=4, kind="step")
    assert out["moved_s_before_death"] == -2.0
    assert out["failed_after_death"] == pytest.approx(2 * ss.RATE, abs=1)
    assert out["failed"] == out["failed_after_death"]
    assert ps.pattern_misses("health", out) == [
        f"{out['failed_after_death']} failed requests after the death of a step node "
        "(target <= 10)"]
    assert ps.pattern_misses("none", out) == []


def test_no_move_on_a_failing_pattern(tmp_path, clock, knobs):
    pattern = drawn(9, "sudden")
    lab = FakeLab(tmp_path, ok=story(pattern, None))
    out = ps.pattern_run(lab, "none", seed=9, kind="sudden")
    assert out["migrations"] == 0 and out["moved_at_s"] is None
    assert out["moved_s_before_death"] is None and "migration_reason" not in out
    assert out["failed_after_death"] == ps.AFTER_DEATH_S * ss.RATE
    assert ps.pattern_misses("none", out) == []
    assert len(ps.pattern_misses("predictive", out)) == 1


def test_a_move_on_a_benign_pattern_is_needless(tmp_path, clock, knobs):
    lab = FakeLab(tmp_path, moves=(80.0, 95.0))
    out = ps.pattern_run(lab, "predictive", seed=6, kind="level_shift")
    assert out["needless"] is True and out["migrations"] == 2 and out["moved_at_s"] == 80.0
    assert out["moved_s_before_death"] is None and out["death_s"] is None
    misses = ps.pattern_misses("predictive", out)
    assert len(misses) == 1 and misses[0].startswith(
        "needless move on a benign level_shift pattern")
    assert ps.pattern_misses("health", out) == misses  # whatever the mode


# --- the target alone -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "result", "missed"), [
    ("predictive", {"fails": False, "kind": "flaps", "migrations": 0}, False),
    ("none", {"fails": False, "kind": "flaps", "migrations": 1}, True),
    ("predictive", {"fails": True, "kind": "ramp", "failed_after_death": 10}, False),
    ("predictive", {"fails": True, "kind": "ramp", "failed_after_death": 11}, True),
    ("health", {"fails": True, "kind": "ramp", "failed_after_death": 0}, False),
    ("health", {"fails": True, "kind": "ramp", "failed_after_death": 50}, True),
    ("health", {"fails": True, "kind": "ramp", "failed_after_death": None}, True),
    ("none", {"fails": True, "kind": "ramp", "failed_after_death": 100}, False),
])
def test_pattern_misses(mode, result, missed):
    assert bool(ps.pattern_misses(mode, result)) is missed
