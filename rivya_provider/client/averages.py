"""The one moving average the client keeps of what it measures (durations, round trips)."""

from __future__ import annotations


def moving_average(mean: float | None, sample: float, weight: float) -> float:
    """Fold ``sample`` into ``mean`` with ``weight`` (0-1); the first sample (no mean) sets it."""
    return sample if mean is None else mean + weight * (sample - mean)
