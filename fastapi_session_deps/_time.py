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


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def in_words(seconds: float) -> str:
    """A duration as a person says it: ``14 days``, ``90 minutes``, ``1.5 seconds``."""
    for unit, size in _UNITS:
        count = seconds / size
        if count >= 1 and count == int(count):
            return f"{int(count):,} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:,.3g} seconds"
