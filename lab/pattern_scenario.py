"""Pattern scenario: one randomly drawn degradation pattern, played on a real lab's primary.

Why this exists: the fixed service scenarios (``degrading-node``,
``noise-only``) each show one hand-made pattern, and a failover method tuned to
them can fail on the next real one or move needlessly on a change that never
ends in failure. ``lab.degradation_patterns`` draws patterns from families with
random parameters (steps, ramps, plateaus, loss-first and sudden deaths; benign
level shifts, flaps and jitter), and ``bench/failover_sim.py`` plays them
through the controller's judgement in process, with simulated probes. This
plays the same generator's patterns on real OVS, real probes and a real client,
so the simulation's verdicts can be checked against the lab's, one seed at a
time. The seed is in the result: a run is repeated by passing it again (with
or without the kind it picked: see :func:`pattern_for`). A seed and kind give
the simulation's draw for that seed and kind, fitted to a lab run: the same
levels (baseline, peak, loss, jitter, flap period), but drawn with
``warmup_s=30`` and ``horizon_s=120`` (the simulation: 60 and 300), so the onset
sits at the same relative place in a shorter window, and about half the failing
patterns have their death clamped at ``horizon - 10`` s.

Timeline (pattern time ``t``, seconds):

- ``t = 0`` is the moment the servers are up. The pattern is applied from
  ``t = 0``: its baseline (latency, jitter and loss) holds until its onset,
  which :func:`draw` places at or after ``warmup_s`` (:data:`WARMUP_S`), so the
  first 30 s are the warm-up in which the probes and the engine learn the
  node's own healthy noise, as in ``degrading-node``.
- At ``t = WARMUP_S`` the client starts (10 requests/s to the VIP), before any
  onset; it runs until ``death + 10 s`` for a failing pattern, to the horizon
  for a benign one.
- From then on, every :data:`TICK_S` seconds (and exactly at the death), the
  conditions ``pattern.at(t)`` are applied when they changed:
  ``set_delay(latency, jitter)`` (the node answers after ``latency + U(0,
  jitter)``, as the pattern means; see ``lab.http_node``) and ``set_loss``
  (iptables drops that share of the packets the node receives). At the death
  the primary is killed once and nothing is applied after it.

The standbys get the pattern's baseline (latency, jitter, loss) at ``t = 0``
and keep it, as in the simulation, where the standby's story is the primary's
baseline: a move lands on a node as noisy as the primary was when healthy.

Switchover events carry wall-clock times (``time.time()``); the wall clock at
``t = 0`` converts them to pattern time.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

from lab.degradation_patterns import KINDS, Conditions, Pattern, draw
from lab.network import Lab
from lab.service_scenarios import MODES, RATE, WARMUP_S, ServiceLab, event_reason, request_summary
from shadownet import progress

HORIZON_S = 120.0  # benign patterns run this long; deaths fall by HORIZON_S - 10
TICK_S = 0.5  # how often the pattern's conditions are (re)applied
AFTER_DEATH_S = 10.0  # the client runs this long after a death
STATUS_S = 10.0  # a progress line at least this often while the pattern plays
MAX_FAILED_AFTER_DEATH = int(RATE)  # 1 s of failures at 10 requests/s


def pattern_run(lab: Lab, mode: str, seed: int | None = None,
                kind: str | None = None) -> dict[str, Any]:
    """Draw one pattern (``kind`` random unless given) and play it on the primary."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    pattern = pattern_for(seed, kind)
    slab = ServiceLab(lab)
    progress.phase(f"starting the servers ({pattern.kind}, seed {seed})")
    slab.start_servers()
    return play(slab, pattern, mode, seed)


def pattern_for(seed: int, kind: str | None = None) -> Pattern:
    """The pattern of ``seed``: ``kind``'s, or the kind ``seed`` picks.

    The kind is picked from a stream of its own, so the parameters depend on the
    seed and the kind alone: seed 7 picking ``ramp`` draws the very pattern that
    seed 7 with ``kind="ramp"`` does, and a run is repeated either way. (Letting
    :func:`draw` pick would spend the stream's first value on the kind.)
    """
    if kind is None:
        kind = random.Random(f"{seed}:kind").choice(KINDS)
    return draw(random.Random(seed), kind, warmup_s=WARMUP_S, horizon_s=HORIZON_S)


def pattern_end(pattern: Pattern) -> float:
    """Pattern time at which the run ends: 10 s after the death, or the horizon."""
    if pattern.death_at is None:
        return HORIZON_S
    return pattern.death_at + AFTER_DEATH_S


def play(slab: ServiceLab, pattern: Pattern, mode: str, seed: int) -> dict[str, Any]:
    """Play ``pattern`` on ``slab``'s primary (servers already up: now is ``t = 0``)."""
    if pattern.onset < WARMUP_S:
        raise ValueError(f"pattern onset {pattern.onset:.1f}s falls in the {WARMUP_S:g}s warm-up")
    end = pattern_end(pattern)
    t0_mono, t0_wall = time.monotonic(), time.time()
    applier = _Applier(slab)
    applier.apply(pattern.at(0.0))
    _standby_baseline(slab, pattern)
    progress.wait(WARMUP_S, "warmup")  # the baseline: onset is at or after the warm-up
    slab.start_client(end - WARMUP_S)
    died_wall: float | None = None
    label, last_status = "", -STATUS_S
    for t in _ticks(pattern, end):
        _sleep_until(t0_mono + t)
        now = pattern.at(t)
        if now.dead:
            if died_wall is None:
                died_wall = time.time()
                slab.kill_primary()
        else:
            applier.apply(now)
        stage = "primary dead" if now.dead else "baseline" if t < pattern.onset else pattern.kind
        if stage != label or t - last_status >= STATUS_S:
            label, last_status = stage, t
            progress.phase(_status(stage, now, t, end))
    _sleep_until(t0_mono + end)
    results = slab.client_results()
    moves = slab.switchovers()
    return _result(mode, seed, pattern, results, moves, t0_wall, died_wall)


class _Applier:
    """Sets the primary's delay and loss, each only when it changed (iptables is rewritten
    on every set_loss)."""

    def __init__(self, slab: ServiceLab) -> None:
        self.slab = slab
        self.delay: tuple[float, float] | None = None
        self.loss: float | None = None

    def apply(self, c: Conditions) -> None:
        delay = (round(c.latency_ms / 1000, 4), round(c.jitter_ms / 1000, 4))  # 0.1 ms
        loss = round(c.loss, 4)
        if delay != self.delay:
            self.slab.set_delay(*delay)
            self.delay = delay
        if loss != self.loss:
            self.slab.set_loss(loss)
            self.loss = loss


def _standby_baseline(slab: ServiceLab, pattern: Pattern) -> None:
    """The standbys answer with the pattern's baseline latency, jitter and loss throughout."""
    for host in slab.standbys:
        slab.control[host.name].write_text(
            f"{round(pattern.base_ms / 1000, 4)} {round(pattern.base_jitter_ms / 1000, 4)}\n")
        if pattern.base_loss > 0:
            host.cmd("iptables -F INPUT; iptables -A INPUT -m statistic --mode random "
                     f"--probability {pattern.base_loss} -j DROP")


def _ticks(pattern: Pattern, end: float) -> list[float]:
    """Pattern times at which conditions are applied: every TICK_S from the warm-up's end,
    and the death itself, so the node dies on time rather than up to a tick late."""
    ticks = {WARMUP_S + i * TICK_S for i in range(int((end - WARMUP_S) / TICK_S) + 1)}
    if pattern.death_at is not None:
        ticks.add(pattern.death_at)
    return sorted(t for t in ticks if WARMUP_S <= t < end)


def _sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the monotonic clock; at once if it has passed (a slow
    iptables call must not shift the pattern's clock)."""
    left = deadline - time.monotonic()
    if left > 0:
        time.sleep(left)


def _status(stage: str, c: Conditions, t: float, end: float) -> str:
    clock = f"t={t:.0f}s/{end:.0f}s"
    if c.dead:
        return f"{stage}, {clock}"
    return (f"{stage}: {c.latency_ms:.0f} ms, jitter {c.jitter_ms:.0f} ms, "
            f"{c.loss:.0%} loss, {clock}")


def _result(mode: str, seed: int, pattern: Pattern, results: list[dict[str, Any]],
            moves: list[dict[str, Any]], t0_wall: float, died_wall: float | None
            ) -> dict[str, Any]:
    first = moves[0] if moves else None
    moved_at = round(first["ts"] - t0_wall, 1) if first is not None else None
    out: dict[str, Any] = {
        "mode": mode, "kind": pattern.kind, "seed": seed, "fails": pattern.fails,
        "death_s": round(pattern.death_at, 1) if pattern.death_at is not None else None,
        "onset_s": round(pattern.onset, 1),
        "pattern": {k: round(v, 3) if isinstance(v, float) else v
                    for k, v in dataclasses.asdict(pattern).items()},
        **request_summary(results),
        "migrations": len(moves),
        "moved_at_s": moved_at,
        "moved_s_before_death": (round(died_wall - first["ts"], 1)
                                 if first is not None and died_wall is not None else None),
        "failed_before_death": None, "failed_after_death": None,
        "needless": not pattern.fails and bool(moves),
    }
    if died_wall is not None:
        after = sum(1 for r in results if not r["ok"] and r["t"] >= died_wall)
        out["failed_after_death"] = after
        out["failed_before_death"] = out["failed"] - after
    if first is not None:
        out["migration_reason"] = event_reason(first)
    return out


def pattern_misses(mode: str | None, result: dict[str, Any]) -> list[str]:
    """The target: a benign pattern moves nothing; a failing one costs at most 1 s of failed
    requests after the death with probes on (``predictive``, ``health``); ``none`` promises
    nothing."""
    if not result.get("fails"):
        if result.get("migrations"):
            return [f"needless move on a benign {result.get('kind')} pattern "
                    f"({result['migrations']} migrations, target 0)"]
        return []
    if mode not in ("predictive", "health"):
        return []
    after = result.get("failed_after_death")
    if after is None or after > MAX_FAILED_AFTER_DEATH:
        return [f"{after} failed requests after the death of a {result.get('kind')} node "
                f"(target <= {MAX_FAILED_AFTER_DEATH})"]
    return []
