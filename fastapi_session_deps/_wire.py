"""The session service's wire format, shared by `HTTPBackend` (the client) and the service.

A record's fields travel as a JSON object of field name to base64 of the value. Both sides
size their bodies from one record limit (``max_record_bytes``), so that the service never
accepts a record its clients would refuse to read back.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeGuard

__all__ = [
    "MAX_INDEX_PAGE",
    "MAX_KEYS_PAGE",
    "MAX_LISTING_BYTES",
    "MAX_TTL_SECONDS",
    "SERVICE_TOKEN_ENV",
    "counted_stats",
    "decode_fields",
    "encode_fields",
    "ended_records",
    "json_object",
    "listed_records",
    "max_body_bytes",
    "record_fields",
    "string_list",
]

#: The environment variable that holds the token clients and the service share.
SERVICE_TOKEN_ENV = "SESSION_SERVICE_TOKEN"  # noqa: S105 - a variable's name
#: The longest time-to-live the service takes for a record or an index entry: a year.
MAX_TTL_SECONDS = 366 * 86400
#: The most records of a user's one call of the service reads or ends, and the most keys
#: of a user's index it answers (keys are small: a page of them is a few hundred KB).
MAX_INDEX_PAGE, MAX_KEYS_PAGE = 1000, 10_000
#: The largest answer to a listing of a user's sessions: the library's fields of each (a
#: few hundred bytes) for thousands of sessions.
MAX_LISTING_BYTES = 16 * 1024 * 1024


def encode_fields(fields: dict[str, bytes]) -> dict[str, str]:
    """Field values as base64 text, for JSON."""
    return {name: base64.b64encode(value).decode("ascii") for name, value in fields.items()}


def decode_fields(fields: dict[str, str]) -> dict[str, bytes]:
    """The inverse of `encode_fields`. Raises ``ValueError`` on anything that is not base64."""
    try:
        return {name: base64.b64decode(value, validate=True) for name, value in fields.items()}
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"a field value is not base64: {exc}") from exc


def max_body_bytes(max_record_bytes: int) -> int:
    """The largest JSON body that can carry a record of ``max_record_bytes``.

    A record byte can take up to 16 bytes on the wire: a one-byte field name escaped as
    ``\\u0000`` with its quotes, colon and comma, and base64's padding of an empty value.
    """
    return 16 * max_record_bytes + 4096


def json_object(content_type: str, body: bytes) -> dict[str, Any]:
    """An answer's body as a JSON object. Raises ``ValueError`` saying what else it is."""
    if not content_type.startswith("application/json"):
        raise ValueError("not JSON")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError("invalid JSON") from exc
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def record_fields(document: dict[str, Any]) -> dict[str, bytes]:
    """The fields of a ``{"fields": {name: base64}}`` answer. Raises ``ValueError``."""
    fields = document.get("fields")
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ValueError("fields is not a mapping of text")
    return decode_fields(fields)


def listed_records(document: dict[str, Any]) -> list[tuple[str, dict[str, bytes], float]]:
    """The records of a ``{"sessions": [{"key", "fields", "ttl"}, ...]}`` answer.

    Raises:
        ValueError: anything else.
    """
    sessions = document.get("sessions")
    if not isinstance(sessions, list):
        raise ValueError("sessions is not a list")
    found = []
    for entry in sessions:
        if not isinstance(entry, dict):
            raise ValueError("a listed session is not an object")
        key, ttl = entry.get("key"), entry.get("ttl")
        if not isinstance(key, str) or isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise ValueError("a listed session lacks its key or ttl")
        if not 0 < ttl < float("inf"):
            raise ValueError("a listed session's ttl is out of range")
        found.append((key, record_fields(entry), float(ttl)))
    return found


def ended_records(document: dict[str, Any]) -> list[tuple[str, dict[str, bytes]]]:
    """The records of an ``{"ended": [{"key", "fields"}, ...]}`` answer.

    Raises:
        ValueError: anything else.
    """
    ended = document.get("ended")
    if not isinstance(ended, list):
        raise ValueError("ended is not a list")
    found = []
    for entry in ended:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ValueError("an ended session lacks its key")
        found.append((entry["key"], record_fields(entry)))
    return found


def string_list(document: dict[str, Any], name: str) -> list[str]:
    """The list of text under ``name`` in an answer. Raises ``ValueError`` on anything else."""
    items = document.get(name)
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} is not a list of text")
    return items


def counted_stats(document: dict[str, Any]) -> tuple[int, int, list[tuple[str, int]]]:
    """The counts of a ``{"live", "users", "top_users": [[user, count], ...]}`` answer.

    Raises:
        ValueError: anything else.
    """
    live, users, top = document.get("live"), document.get("users"), document.get("top_users")
    if not (_count(live) and _count(users) and isinstance(top, list)):
        raise ValueError("stats lacks its counts")
    ranked = []
    for entry in top:
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and _count(entry[1])
        ):
            raise ValueError("a user's count is not [user, count]")
        ranked.append((entry[0], entry[1]))
    return live, users, ranked


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
