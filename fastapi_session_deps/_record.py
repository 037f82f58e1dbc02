"""The stored record: the one place that knows its format.

A record is a flat mapping of field name to bytes. The session's own fields are the JSON
of one top-level value each (`serializers`); the library's *reserved* fields have names
that start with `RESERVED_PREFIX` (NUL), which no session field can have, and never reach
the model.

This module names every reserved field, says how large a record may be and how that is
measured, decodes what the reserved fields hold, and declares in `RESERVED_FIELDS` what
a regeneration and a log-in do to each of them. The engine reads that table and names no
feature: a feature that keeps something in the session's record (flash messages, the CSRF
secret) adds a row, and reads and writes its field through `SessionState.reserved` and
`SessionState.set_reserved`, which refuse a field that has no row.

Stores import this module, never the engine.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from pydantic_core import to_json

from .exceptions import SessionError

__all__ = [
    "ADDRESS_FIELD",
    "AGENT_FIELD",
    "CREATED_FIELD",
    "CREATED_SIZE",
    "CSRF_FIELD",
    "CSRF_SECRET_BYTES",
    "FACT_FIELDS",
    "FLASH_FIELD",
    "LIFETIME_FIELD",
    "LISTED_FIELDS",
    "MAX_AGENT_LENGTH",
    "MAX_RECORD_BYTES",
    "MAX_USER_LENGTH",
    "OWNER_FIELD",
    "RESERVED_FIELDS",
    "RESERVED_PREFIX",
    "SEEN_FIELD",
    "Move",
    "RecordFacts",
    "ReservedField",
    "StoredLifetime",
    "carried_fields",
    "csrf_field",
    "csrf_secret",
    "declared",
    "facts_fields",
    "lifetime_field",
    "lifetime_of",
    "log_in_fields",
    "moved",
    "owner_of",
    "record_size",
    "reserved_fields",
    "reserved_number",
    "reserved_text",
]

#: Field names starting with this belong to the library, not to the session data.
RESERVED_PREFIX = "\x00"

# -- the size limit ------------------------------------------------------------------------

#: The default size limit of one session's record: field names and values, in bytes.
#: The engine refuses to write more, and treats a larger record it reads as no session;
#: `HTTPBackend` and the session service size their answers and bodies from it.
MAX_RECORD_BYTES = 64 * 1024


def record_size(fields: Mapping[str, bytes]) -> int:
    """The size of a record as the limit counts it: every field's value in bytes, and every
    name in characters (names are short and almost always ASCII; this runs on every read)."""
    size = 0
    for name, value in fields.items():  # a loop beats two sums for a handful of fields
        size += len(name) + len(value)
    return size


# -- the reserved fields ---------------------------------------------------------------------

#: The session's creation time (seconds since the epoch, a JSON number). Every record has
#: it: one without a valid creation time is no session. The engine keeps it as the
#: state's ``created_at``; a regeneration and a log-in keep it (the absolute timeout
#: bounds the whole session, log-in included), and `destroy` starts it afresh.
CREATED_FIELD = RESERVED_PREFIX + "created"
#: The most the creation time adds to a record: its name, and a float's longest JSON.
CREATED_SIZE = len(CREATED_FIELD) + 24

#: The user a session is bound to by a log-in (JSON text): the key of the user index.
OWNER_FIELD = RESERVED_PREFIX + "user"
#: When an owned session was last seen (a JSON number), written when its expiry is
#: renewed and whenever it is written whole.
SEEN_FIELD = RESERVED_PREFIX + "seen"
#: The client's address and user agent at log-in (JSON text), when the policy records
#: them (``record_client``).
ADDRESS_FIELD = RESERVED_PREFIX + "ip"
AGENT_FIELD = RESERVED_PREFIX + "agent"
#: The flash messages waiting to be shown (`flash`).
FLASH_FIELD = RESERVED_PREFIX + "flash"
#: The session's CSRF secret (`csrf`): base64url of `CSRF_SECRET_BYTES` random bytes, as
#: JSON text.
CSRF_FIELD = RESERVED_PREFIX + "csrf"

#: The lifetime a route chose for this session (`SessionManager.set_lifetime`), as the
#: JSON list ``[idle seconds, absolute seconds or null, persistent]``; absent for a
#: session that lives by the app's settings. It goes with the session wherever it moves,
#: a log-in included, so that the order of a log-in and the choice does not matter.
LIFETIME_FIELD = RESERVED_PREFIX + "life"

#: The longest user name a session can be bound to (an id, an email address).
MAX_USER_LENGTH = 255
#: The longest user agent kept.
MAX_AGENT_LENGTH = 256
#: Bytes of a CSRF secret.
CSRF_SECRET_BYTES = 32


class Move(enum.Enum):
    """What moving a session to a new id does to one of its reserved fields."""

    #: The value goes along unchanged.
    CARRY = "carry"
    #: The value is dropped. A log-in then writes its own, where it has one (the owner;
    #: the client, when recorded), and the engine stamps a new last-seen time.
    RESET = "reset"
    #: A value the session has is replaced by a fresh one (`ReservedField.fresh`), so
    #: that nothing seen before the move is valid after it.
    RENEW = "renew"


@dataclass(frozen=True)
class ReservedField:
    """One row of `RESERVED_FIELDS`: a reserved field a session carries with it.

    Attributes:
        name: the field's name, `RESERVED_PREFIX` included.
        regenerate: what `regenerate` (a new id, same data) does to it.
        log_in: what a log-in (a regeneration that binds a user) does to it.
        fresh: makes a new value, for `Move.RENEW`.
        purpose: what the field holds, for the documentation.
    """

    name: str
    regenerate: Move
    log_in: Move
    purpose: str
    fresh: Callable[[], bytes] | None = None

    def __post_init__(self) -> None:
        if not self.name.startswith(RESERVED_PREFIX):
            raise ValueError(f"a reserved field's name starts with NUL, not {self.name!r}")
        if Move.RENEW in (self.regenerate, self.log_in) and self.fresh is None:
            raise ValueError(f"{self.name!r} is renewed, so it needs fresh=")


def csrf_field(secret: bytes) -> bytes:
    """A CSRF secret as its field holds it: base64url (unpadded) JSON text."""
    return to_json(base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii"))


def _new_csrf_field() -> bytes:
    return csrf_field(secrets.token_bytes(CSRF_SECRET_BYTES))


#: Every reserved field a session carries besides its creation time, and what moving the
#: session to a new id does to each. `destroy` drops them all. A new feature adds a row.
RESERVED_FIELDS = (
    ReservedField(OWNER_FIELD, Move.CARRY, Move.RESET, "the user a log-in bound it to"),
    ReservedField(SEEN_FIELD, Move.RESET, Move.RESET, "when an owned session was last seen"),
    ReservedField(ADDRESS_FIELD, Move.CARRY, Move.RESET, "the client's address at log-in"),
    ReservedField(AGENT_FIELD, Move.CARRY, Move.RESET, "the client's user agent at log-in"),
    ReservedField(FLASH_FIELD, Move.CARRY, Move.CARRY, "flash messages not shown yet"),
    ReservedField(CSRF_FIELD, Move.RENEW, Move.RENEW, "the CSRF secret", fresh=_new_csrf_field),
    ReservedField(LIFETIME_FIELD, Move.CARRY, Move.CARRY, "the lifetime a route chose for it"),
)

_ROWS = {row.name: row for row in RESERVED_FIELDS}
_NAMES = frozenset(_ROWS)


def declared(name: str) -> None:
    """Check that ``name`` has a row in `RESERVED_FIELDS`.

    Raises:
        ValueError: it has none, so a regeneration would not know what to do with it.
    """
    if name not in _NAMES:
        raise ValueError(
            f"{name!r} is not a reserved field a session carries: add a row for it to "
            "RESERVED_FIELDS in fastapi_session_deps/_record.py, saying what a "
            "regeneration and a log-in do to it."
        )


def carried_fields(fields: Mapping[str, bytes]) -> dict[str, bytes] | None:
    """The reserved fields of `RESERVED_FIELDS` a loaded record has (what the session
    carries with it); ``None`` if it has none."""
    if _NAMES.isdisjoint(fields):  # most records: one set operation says so
        return None
    return {name: fields[name] for name in _ROWS if name in fields}


def moved(meta: dict[str, bytes] | None, *, log_in: bool) -> dict[str, bytes] | None:
    """A session's carried fields after it moves to a new id: by a log-in, or by a plain
    regeneration. Each field goes as its row says."""
    if not meta:
        return meta
    result: dict[str, bytes] = {}
    for name, raw in meta.items():
        row = _ROWS[name]
        move = row.log_in if log_in else row.regenerate
        if move is Move.CARRY:
            result[name] = raw
        elif move is Move.RENEW:
            result[name] = cast("Callable[[], bytes]", row.fresh)()
    return result or None


def log_in_fields(user: str, address: str | None, user_agent: str | None) -> dict[str, bytes]:
    """The fields a log-in of ``user`` writes: the owner, and the client if given.

    Raises:
        SessionError: ``user`` is not a string of 1 to `MAX_USER_LENGTH` characters.
    """
    if not isinstance(user, str) or not 0 < len(user) <= MAX_USER_LENGTH:
        raise SessionError(
            f"The user must be a non-empty string of at most {MAX_USER_LENGTH} "
            f"characters, not {user!r}."
        )
    fields = {OWNER_FIELD: to_json(user)}
    if address is not None:
        fields[ADDRESS_FIELD] = to_json(address)
    if user_agent is not None:
        fields[AGENT_FIELD] = to_json(user_agent[:MAX_AGENT_LENGTH])
    return fields


def reserved_fields(fields: Mapping[str, bytes]) -> dict[str, bytes]:
    """Only the library's own fields of a record (a listing needs no session data)."""
    return {name: value for name, value in fields.items() if name.startswith(RESERVED_PREFIX)}


# -- decoders ------------------------------------------------------------------------------
#
# A reserved field read from a store may be damaged like anything else there: each
# decoder answers ``None`` rather than raise.


def _reserved(raw: bytes | None) -> object:
    """A reserved field's JSON value; ``None`` if absent or not JSON."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def reserved_number(raw: bytes | None) -> float | None:
    """A reserved time field's value (a finite JSON number); ``None`` if absent or damaged."""
    return _number(_reserved(raw))


def _number(value: object) -> float | None:
    """``value`` as a finite float, if it is a JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def reserved_text(raw: bytes | None) -> str | None:
    """A reserved text field's value (JSON text); ``None`` if absent or damaged."""
    value = _reserved(raw)
    return value if isinstance(value, str) else None


def owner_of(fields: Mapping[str, bytes] | None) -> str | None:
    """The user a record (or a session's carried fields) is bound to, if any."""
    return reserved_text(fields.get(OWNER_FIELD)) if fields else None


def csrf_secret(raw: bytes | None) -> bytes | None:
    """The CSRF secret a field holds; ``None`` if absent or damaged."""
    text = reserved_text(raw)
    if text is None:
        return None
    try:
        secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return secret if len(secret) == CSRF_SECRET_BYTES else None


@dataclass(frozen=True, slots=True)
class StoredLifetime:
    """What `LIFETIME_FIELD` holds: the lifetime a route chose for one session.

    Attributes:
        idle: seconds of inactivity after which the session ends.
        absolute: seconds after its creation at which it ends, or ``None`` for no limit.
        persistent: whether its cookie outlives the browser (a ``Max-Age``).
    """

    idle: float
    absolute: float | None
    persistent: bool


def lifetime_field(lifetime: StoredLifetime) -> bytes:
    """A lifetime as its field holds it."""
    return to_json([lifetime.idle, lifetime.absolute, lifetime.persistent])


def lifetime_of(raw: bytes | None) -> StoredLifetime | None:
    """The lifetime a field holds; ``None`` if absent or damaged (the session then lives
    by the app's settings)."""
    value = _reserved(raw)
    if not (isinstance(value, list) and len(value) == 3):
        return None
    idle, absolute, persistent = value
    idle_seconds = _number(idle)
    absolute_seconds = None if absolute is None else _number(absolute)
    if (
        idle_seconds is None
        or idle_seconds <= 0
        or (absolute is not None and (absolute_seconds is None or absolute_seconds <= 0))
        or not isinstance(persistent, bool)
    ):
        return None
    return StoredLifetime(idle_seconds, absolute_seconds, persistent)


def facts_fields(fields: Mapping[str, bytes]) -> dict[str, bytes]:
    """Only the fields `RecordFacts` reads, of a record: what a store hands back of a
    session it ended, for its event, without the session's data."""
    return {name: fields[name] for name in FACT_FIELDS if name in fields}


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What a record's reserved fields say of its session, each ``None`` if absent or
    damaged."""

    user: str | None
    created_at: float | None
    last_seen: float | None
    ip: str | None
    user_agent: str | None

    @classmethod
    def of(cls, fields: Mapping[str, bytes]) -> RecordFacts:
        """Decode the facts of ``fields`` (a record, or part of one)."""
        return cls(
            user=reserved_text(fields.get(OWNER_FIELD)),
            created_at=reserved_number(fields.get(CREATED_FIELD)),
            last_seen=reserved_number(fields.get(SEEN_FIELD)),
            ip=reserved_text(fields.get(ADDRESS_FIELD)),
            user_agent=reserved_text(fields.get(AGENT_FIELD)),
        )


#: The fields `RecordFacts` reads.
FACT_FIELDS = (OWNER_FIELD, CREATED_FIELD, SEEN_FIELD, ADDRESS_FIELD, AGENT_FIELD)
#: The fields a listing of a user's sessions reads of each record (a store may hand back
#: only these): its facts, and the lifetime it was given.
LISTED_FIELDS = (*FACT_FIELDS, LIFETIME_FIELD)
