"""A search's saved state: everything it needs to continue (an ``.npz`` written atomically after every generation),
and the settings it was made with, so that a search with other settings refuses it by naming what differs.

The arrays are stored as such; the rest (generation, random generator state, settings) is one JSON ``header``
array that starts with the document header ``elasticvit-deploy.search-state`` and its version. Version 1 was the
headerless layout of earlier releases, whose settings named predictors by where their files lay: such a state is
refused (start over with ``--fresh``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from supernet.atomic import atomic_output
from supernet.documents import DocumentError, check_header, header

from ..errors import shorten
from .errors import StateMismatchError

__all__ = ["STATE_KIND", "STATE_VERSION", "SearchState", "check_settings", "settings_differences"]

STATE_KIND = "search-state"
STATE_VERSION = 2
FRESH_HINT = "start over with --fresh (or use another output directory)"


@dataclass
class SearchState:
    """Everything a search needs to continue: the population and every candidate ever scored, in order;
    `settings` is what the search was made with (see `check_settings`), `objective_state` what its objective
    learned."""

    generation: int
    population: np.ndarray
    scores: np.ndarray
    latency: np.ndarray
    seen: np.ndarray
    seen_scores: np.ndarray
    seen_latency: np.ndarray
    rng_state: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    objective_state: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the state to `path` atomically (a crash leaves the previous state)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        about = {**header(STATE_KIND, STATE_VERSION), "generation": self.generation, "rng_state": self.rng_state,
                 "settings": self.settings, "objective_state": self.objective_state}
        buf = io.BytesIO()
        np.savez(buf, population=self.population, scores=self.scores, latency=self.latency, seen=self.seen,
                 seen_scores=self.seen_scores, seen_latency=self.seen_latency, header=np.array(json.dumps(about)))
        with atomic_output(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> SearchState:
        """The state saved at `path`; StateMismatchError for a file of another kind or version, or one that cannot
        be read."""
        try:
            with np.load(path, allow_pickle=False) as z:
                about = json.loads(str(z["header"]))
                check_header(about, STATE_KIND, STATE_VERSION, str(path))
                return cls(about["generation"], z["population"], z["scores"], z["latency"], z["seen"],
                           z["seen_scores"], z["seen_latency"], about["rng_state"], about["settings"],
                           about["objective_state"])
        except DocumentError as e:
            raise StateMismatchError(f"{e}; {FRESH_HINT}") from None
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: zip, npy, JSON or key errors
            raise StateMismatchError(f"{path}: not a readable search state ({type(e).__name__}); "
                                     f"{FRESH_HINT}") from None


def _flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _shown(flat: Mapping[str, Any], key: str) -> str:
    return shorten(flat[key]) if key in flat else "(none)"


def settings_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Each setting that differs, as ``name saved != current`` (nested settings by dotted name)."""
    old, new = _flat(saved), _flat(json.loads(json.dumps(current)))  # as saved: tuples become lists
    return [f"{key} {_shown(old, key)} != {_shown(new, key)}" for key in sorted(old.keys() | new.keys())
            if key not in old or key not in new or old[key] != new[key]]


def check_settings(state: SearchState, current: Mapping[str, Any], path: Path) -> None:
    """StateMismatchError naming every setting that differs between `state` and the current search's."""
    differences = settings_differences(state.settings, current)
    if differences:
        raise StateMismatchError(f"{path}: saved by a search with other settings (saved != now): "
                                 f"{', '.join(differences)}; {FRESH_HINT}")
