"""Random degradation patterns: how a service node's answers change over time, and whether it dies.

The four fixed lab scenarios show one pattern each; a failover method tuned to
them can fail on the next real one, and can move needlessly on changes that
never end in failure. This draws patterns from families with random
parameters, so a method is judged on cases nobody tuned it to:

- failing: ``step`` (latency jumps, stays, then death), ``ramp`` (latency climbs
  at a random speed until death), ``plateau`` (climbs, levels off for a while,
  then death), ``loss_first`` (probes get lost more and more, then death) and
  ``sudden`` (healthy until it dies, no warning at all);
- benign, never failing: ``level_shift`` (latency moves up once and stays),
  ``flaps`` (short periodic latency spikes) and ``jitter_rise`` (jitter grows
  to a bounded level).

A :class:`Pattern` answers, for a time ``t`` in seconds, what a probe sent then
sees: dead or not, the latency distribution and the loss probability. It is
pure (no I/O): the in-process simulation (``bench/failover_sim.py``) and the lab
can both play it. Ground truth is ``death_at`` (None for benign patterns).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

FAILING = ("step", "ramp", "plateau", "loss_first", "sudden")
BENIGN = ("level_shift", "flaps", "jitter_rise")
KINDS = FAILING + BENIGN


@dataclass(frozen=True)
class Conditions:
    """What a probe sent at one moment sees."""

    dead: bool
    latency_ms: float  # the node's typical answer time now
    jitter_ms: float  # answers take latency_ms + U(0, jitter_ms)
    loss: float  # probability that one probe goes unanswered


@dataclass(frozen=True)
class Pattern:
    """One node's story: healthy until ``onset``, then ``kind``; dead from ``death_at``."""

    kind: str
    onset: float  # seconds; before it the node is at its baseline
    death_at: float | None  # None: it never fails (benign)
    base_ms: float  # baseline answer time
    base_jitter_ms: float
    base_loss: float
    peak_ms: float  # how far latency goes (step, ramp, plateau, level_shift, flaps)
    period_s: float = 0.0  # flaps: one spike per period
    spike_s: float = 0.0  # flaps: how long a spike lasts
    plateau_s: float = 0.0  # plateau: how long it holds before dying
    peak_loss: float = 0.0  # loss_first: loss just before death
    peak_jitter_ms: float = 0.0  # jitter_rise

    @property
    def fails(self) -> bool:
        return self.death_at is not None

    def at(self, t: float) -> Conditions:
        """Conditions at ``t`` seconds."""
        if self.death_at is not None and t >= self.death_at:
            return Conditions(True, math.inf, 0.0, 1.0)
        base = Conditions(False, self.base_ms, self.base_jitter_ms, self.base_loss)
        if t < self.onset or self.kind == "sudden":
            return base
        since = t - self.onset
        span = (self.death_at - self.onset) if self.death_at is not None else 1.0
        if self.kind in ("step", "level_shift"):
            return _with(base, latency_ms=self.peak_ms)
        if self.kind == "ramp":
            return _with(base, latency_ms=self.base_ms + (self.peak_ms - self.base_ms)
                         * min(1.0, since / span))
        if self.kind == "plateau":
            climb = max(1e-9, span - self.plateau_s)
            return _with(base, latency_ms=self.base_ms + (self.peak_ms - self.base_ms)
                         * min(1.0, since / climb))
        if self.kind == "loss_first":
            return _with(base, loss=self.base_loss + (self.peak_loss - self.base_loss)
                         * min(1.0, since / span))
        if self.kind == "flaps":
            spiking = (since % self.period_s) < self.spike_s
            return _with(base, latency_ms=self.peak_ms) if spiking else base
        if self.kind == "jitter_rise":
            grow = min(1.0, since / 60.0)  # over a minute, then it stays
            return _with(base, jitter_ms=self.base_jitter_ms
                         + (self.peak_jitter_ms - self.base_jitter_ms) * grow)
        raise ValueError(f"unknown pattern kind {self.kind!r}")


def _with(c: Conditions, **changes: float) -> Conditions:
    return Conditions(c.dead, changes.get("latency_ms", c.latency_ms),
                      changes.get("jitter_ms", c.jitter_ms), changes.get("loss", c.loss))


def draw(rng: random.Random, kind: str | None = None, *, warmup_s: float = 60.0,
         horizon_s: float = 300.0) -> Pattern:
    """One pattern with random parameters (``kind`` random too unless given).

    Onsets fall after ``warmup_s`` (a detector needs a baseline, as in the lab);
    deaths and benign changes happen within ``horizon_s``. The ranges are wide on
    purpose: slow and fast, subtle and gross.
    """
    kind = kind or rng.choice(KINDS)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    base_ms = rng.uniform(0.5, 20.0)
    common = {"base_ms": base_ms, "base_jitter_ms": rng.uniform(0.0, 30.0),
              "base_loss": rng.choice((0.0, 0.0, 0.005, 0.01, 0.02))}
    onset = rng.uniform(warmup_s, warmup_s + 0.4 * (horizon_s - warmup_s))
    if kind in FAILING:
        lead = rng.uniform(5.0, 120.0)  # how long the warning lasts before death
        death = min(horizon_s - 10.0, onset + lead)
        if kind == "sudden":
            return Pattern(kind, onset=death, death_at=death, peak_ms=base_ms, **common)
        peak = base_ms + rng.uniform(10.0, 500.0)
        return Pattern(kind, onset=onset, death_at=death, peak_ms=peak,
                       plateau_s=rng.uniform(0.2, 0.8) * (death - onset),
                       peak_loss=rng.uniform(0.2, 0.9), **common)
    if kind == "level_shift":
        return Pattern(kind, onset=onset, death_at=None,
                       peak_ms=base_ms + rng.uniform(5.0, 60.0), **common)
    if kind == "flaps":
        return Pattern(kind, onset=onset, death_at=None,
                       peak_ms=base_ms + rng.uniform(20.0, 200.0),
                       period_s=rng.uniform(15.0, 90.0), spike_s=rng.uniform(1.0, 4.0),
                       **common)
    return Pattern(kind, onset=onset, death_at=None, peak_ms=base_ms,
                   peak_jitter_ms=common["base_jitter_ms"] + rng.uniform(10.0, 60.0), **common)
