"""Durations given as seconds or as a timedelta."""

from __future__ import annotations

from datetime import timedelta

from .exceptions import ConfigurationError


def to_seconds(value: float | timedelta, name: str) -> float:
    """Return ``value`` in seconds, refusing anything that is not a positive duration."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{name} must be a number of seconds or a timedelta.")
    if not seconds > 0:
        raise ConfigurationError(f"{name} must be positive, not {value!r}.")
    return seconds
