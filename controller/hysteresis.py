"""One trip-and-clear machine for everything the controller judges: service nodes and switches.

Each interval brings a fresh :class:`~controller.services.health.NodeHealth`
for a node (a service node, or ``switch:<dpid>`` for a critical switch).
:class:`Hysteresis` turns that stream into a verdict, *healthy* or *tripped*,
with the same rules for both, so a node and a switch judged on the same
evidence get the same verdict:

- an observation is *beyond* when the failure probability reaches
  ``enter_probability`` or health falls to ``enter_health``; it is *within*
  when the probability is at or below ``exit_probability`` **and** health is at
  or above ``exit_health``. The enter and exit levels differ, so a value
  wobbling around one line cannot flip the verdict back and forth;
- a healthy verdict trips after ``confirm`` consecutive beyond observations,
  and not before ``min_observations`` observations (no verdict during warm-up);
- a tripped verdict clears after ``confirm`` consecutive within observations,
  and not before ``hold_seconds`` have passed since it tripped;
- the engine's probability counts only once the engine has a baseline
  (``NodeHealth.ready``); before that, health alone decides;
- with ``adaptive`` on, the probability levels rise above what the node shows
  while healthy (:class:`AdaptiveThreshold`), for nodes that are noisy by
  nature.

It decides nothing about what to do: the service redirection engine starts a
switchover when a node trips, the switch drain moves paths off a switch. Each
owner keeps its own *cool-down* (``cooldown_seconds``: the least time between
two actions it takes), and passes it here as ``hold_seconds`` when the action
it guards is the one a clear triggers (undraining a switch).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from controller.services.health import NodeHealth

HEALTHY = "healthy"
TRIPPED = "tripped"
CLEARED = "cleared"  # the transition back to healthy


@dataclass(frozen=True)
class Levels:
    """The enter and exit levels of one judged thing (from a service's thresholds or the
    ``switch_drain`` section)."""

    enter_probability: float
    exit_probability: float
    enter_health: float
    exit_health: float
    confirm: int = 2
    min_observations: int = 0
    hold_seconds: float = 0.0
    adaptive: bool = False


class AdaptiveThreshold:
    """A per-node probability threshold that rises above what the node does when healthy.

    Some nodes run with a permanently raised failure probability (a bursty
    batch server, a noisy probe path). A fixed threshold either fires on them
    all the time or is set too high for everyone else. This keeps the
    probabilities a node showed while healthy and sets its enter level to the
    ``quantile`` of those plus ``margin`` (never below the configured level,
    never above ``ceiling``); the exit level keeps the configured gap below it.
    """

    def __init__(self, base_enter: float, base_exit: float, *, window: int = 200,
                 min_samples: int = 20, quantile: float = 0.95, margin: float = 0.1,
                 ceiling: float = 0.95) -> None:
        self.base_enter, self.base_exit = base_enter, base_exit
        self.min_samples, self.quantile = min_samples, quantile
        self.margin, self.ceiling = margin, max(ceiling, base_enter)
        self._seen: deque[float] = deque(maxlen=window)

    def learn(self, probability: float) -> None:
        """Only call with probabilities observed while the node is healthy."""
        self._seen.append(probability)

    @property
    def enter(self) -> float:
        if len(self._seen) < self.min_samples:
            return self.base_enter
        ordered = sorted(self._seen)
        q = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]
        return min(self.ceiling, max(self.base_enter, q + self.margin))

    @property
    def exit(self) -> float:
        return max(0.0, self.enter - (self.base_enter - self.base_exit))


@dataclass
class Verdict:
    """The hysteresis state of one judged thing."""

    state: str = HEALTHY
    beyond: int = 0  # consecutive observations at or beyond the enter levels
    within: int = 0  # consecutive observations at or within the exit levels
    observations: int = 0
    last_ts: float | None = None
    since: float | None = None  # when the state last changed
    trigger: dict[str, Any] = field(default_factory=dict)  # why it tripped (while tripped)
    adaptive: AdaptiveThreshold | None = None

    @property
    def tripped(self) -> bool:
        return self.state == TRIPPED


@dataclass(frozen=True)
class Transition:
    """A verdict changed: ``kind`` is :data:`TRIPPED` or :data:`CLEARED`."""

    kind: str
    reason: dict[str, Any]


class Hysteresis:
    """Verdicts by key (a ``(service, node)`` pair, a dpid) under one set of rules."""

    def __init__(self) -> None:
        self._verdicts: dict[Any, Verdict] = {}

    def verdict(self, key: Any, levels: Levels) -> Verdict:
        v = self._verdicts.get(key)
        if v is None:
            adaptive = (AdaptiveThreshold(levels.enter_probability, levels.exit_probability)
                        if levels.adaptive else None)
            v = self._verdicts[key] = Verdict(adaptive=adaptive)
        return v

    def tripped(self) -> set[Any]:
        return {key for key, v in self._verdicts.items() if v.tripped}

    def observe(self, key: Any, h: NodeHealth, now: float, levels: Levels
                ) -> Transition | None:
        """Advance ``key``'s verdict with a fresh observation; the transition, if any.

        An observation no newer than the last one counted is ignored, so calling
        this twice in an interval with the same health changes nothing.
        """
        v = self.verdict(key, levels)
        if v.last_ts is not None and h.timestamp <= v.last_ts:
            return None
        v.last_ts = h.timestamp
        v.observations += 1
        prob = h.failure_probability if h.ready else 0.0
        enter_p = v.adaptive.enter if v.adaptive else levels.enter_probability
        exit_p = v.adaptive.exit if v.adaptive else levels.exit_probability
        beyond = prob >= enter_p or h.score <= levels.enter_health
        within = prob <= exit_p and h.score >= levels.exit_health
        v.beyond = v.beyond + 1 if beyond else 0
        v.within = v.within + 1 if within else 0
        if not v.tripped:
            if v.adaptive is not None and not beyond:
                v.adaptive.learn(prob)
            if beyond and v.beyond >= levels.confirm and v.observations >= levels.min_observations:
                v.trigger = {
                    "trigger": "failure_probability" if prob >= enter_p else "health",
                    "enter_probability": round(enter_p, 4),
                    "enter_health": levels.enter_health,
                    "intervals": v.beyond,
                    **h.reason(),  # health, probability, top metrics and weak factors
                }
                v.state, v.since, v.within = TRIPPED, now, 0
                return Transition(TRIPPED, v.trigger)
            return None
        held = v.since is None or now - v.since >= levels.hold_seconds
        if within and v.within >= levels.confirm and held:
            reason = {"exit_probability": round(exit_p, 4), "exit_health": levels.exit_health,
                      "intervals": v.within,
                      "tripped_seconds": round(now - v.since, 3) if v.since is not None else None,
                      **h.reason()}
            v.state, v.since, v.beyond, v.trigger = HEALTHY, now, 0, {}
            return Transition(CLEARED, reason)
        return None

    def trip(self, key: Any, levels: Levels, now: float, trigger: dict[str, Any]) -> None:
        """Trip on evidence that is not a health reading (a switchover that failed
        verification): decisive, so no confirmation."""
        v = self.verdict(key, levels)
        v.state, v.since, v.beyond, v.within, v.trigger = TRIPPED, now, 0, 0, trigger
