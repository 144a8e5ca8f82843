"""The latency package's base error: a predictor that cannot answer (not installed, unreadable, or without a
latency for some block of an arch). Callers that go on without predictions catch this one type."""

from __future__ import annotations

from ..errors import BadInput

__all__ = ["PredictorError"]


class PredictorError(BadInput):
    """A latency predictor that is missing, unreadable, or does not cover what it is asked."""
