"""The controller's view: one object holding a detector per entity.

The controller polls OpenFlow port/flow stats and node health every interval and
calls, per entity::

    engine = PredictiveEngine.load(path) if path.exists() else PredictiveEngine()
    ...
    up = engine.update("s1:port2", now, {"rx_bytes_rate": 1.2e6, "drops": 0.0})
    if up.alert >= ALERT_LEVEL:                  # a new incident: move traffic once
        reroute_around("s1:port2", reason=engine.explain("s1:port2"))
    risk = engine.probability("s1:port2")      # ongoing risk, for path costs
    ...
    engine.save(path)                          # on shutdown: baselines survive restarts

Entity ids are free-form strings (``"node:h1"``, ``"switch:s1"``,
``"link:s1-s2"``, ``"flow:10.0.0.1->10.0.0.2"``).  An entity's detector is
created on its first update.  Nothing here knows about OpenFlow or os-ken.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from predictive.detector import DetectorConfig, EntityDetector, Update, explanation
from predictive.model import FailureModel

STATE_FORMAT = "shadownet-predictive-state"
STATE_VERSION = 1


class PredictiveEngine:
    """Per-entity streaming detectors behind three calls: update, probability, explain."""

    def __init__(
        self, config: DetectorConfig | None = None, model: FailureModel | None = None
    ) -> None:
        self.config = config or DetectorConfig()
        self.model = model
        self._entities: dict[str, EntityDetector] = {}

    def update(self, entity: str, timestamp: float, metrics: Mapping[str, float]) -> Update:
        """Feed one polling interval's metrics for ``entity``; returns its new assessment."""
        det = self._entities.get(entity)
        if det is None:
            det = self._entities[entity] = EntityDetector(self.config, self.model)
        return det.update(timestamp, metrics)

    def probability(self, entity: str) -> float:
        """Latest failure probability of ``entity`` (0.0 if it was never seen)."""
        det = self._entities.get(entity)
        return det.last.failure_probability if det is not None and det.last else 0.0

    def explain(self, entity: str) -> dict[str, Any]:
        """Why the engine thinks what it thinks about ``entity``, as a JSON-able dict."""
        det = self._entities.get(entity)
        if det is None or det.last is None:
            return {"entity": entity, "known": False}
        return {**explanation(entity, det.n, list(det.metrics), det.last),
                "model": self.model is not None}

    def entities(self) -> list[str]:
        return list(self._entities)

    def forget(self, entity: str) -> None:
        """Drop an entity (e.g. a removed link) and its baselines."""
        self._entities.pop(entity, None)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "entities": {k: d.state_dict() for k, d in self._entities.items()},
        }

    def save(self, path: str | Path) -> Path:
        """Write every entity's state as JSON, atomically (a crash never leaves half a file)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=p.name, dir=p.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.state_dict(), fh)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p

    @classmethod
    def load(
        cls,
        path: str | Path,
        config: DetectorConfig | None = None,
        model: FailureModel | None = None,
    ) -> PredictiveEngine:
        """Restore an engine saved with :meth:`save`; entities keep their own stored config."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: engine state file not found")
        try:
            state = json.loads(p.read_text())
        except ValueError as exc:
            raise ValueError(f"{p}: not a JSON engine state ({exc})") from None
        eng = cls(config, model)
        try:
            eng.restore_state(state)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
        return eng

    def restore_state(self, state: object) -> None:
        """Take back :meth:`state_dict`'s output (from a file or a database): every
        entity's baselines, replacing those this engine has."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a shadownet predictive state")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')} is not {STATE_VERSION}; "
                             "delete it to start fresh baselines")
        self._entities = {
            k: EntityDetector.from_state(v, self.model) for k, v in state["entities"].items()
        }
