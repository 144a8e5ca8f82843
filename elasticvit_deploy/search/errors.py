"""The search's errors: settings the search cannot run with (bad input, exit 2); the command line words them."""

from __future__ import annotations

from ..errors import BadInput

__all__ = ["BudgetError", "ConfigError", "NoMeasuringDevice", "StateMismatchError"]


class ConfigError(BadInput):
    """Evolution settings out of range (a negative count, a probability outside [0, 1])."""


class BudgetError(BadInput):
    """The budget is below what the smallest subnet reaches."""


class StateMismatchError(BadInput):
    """A saved search state that cannot be continued: made with other settings, by another release, or unreadable."""


class NoMeasuringDevice(BadInput):
    """A device a search must measure on that does not exist or cannot be used (no registered phone, no twin)."""
