"""The one error the simulator's callers see: a simulated farm asked for with settings it cannot have."""

from __future__ import annotations

from ..errors import BadInput

__all__ = ["SimulationError"]


class SimulationError(BadInput):
    """A simulated farm asked for with an unknown profile or quirk, quirks that cannot go together, serials that
    are not usable, a benchmark binary that is not executable, or a time scale that is not positive."""
