"""Flash messages: set in one request, shown once in a later one (after a redirect).

Kept in the session's record, in a field of the library's own, so adding or showing one
is part of the session's usual save: no extra store call. A regeneration (a log-in) keeps
them; `destroy` drops them, and a message flashed after it starts the new session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from ._engine import SessionState, bound_state
from ._record import FLASH_FIELD
from .exceptions import SessionError

__all__ = ["FlashMessage", "flash", "get_flashed_messages"]

#: At most this many messages wait in a session; older ones give way.
MAX_MESSAGES = 20
#: The longest text and category kept.
MAX_TEXT, MAX_CATEGORY = 1000, 40


@dataclass(frozen=True)
class FlashMessage:
    """One message: its ``category`` (``"info"``, ``"error"``, your own) and ``text``."""

    category: str
    text: str


def flash(session: object, text: str, category: str = "info") -> None:
    """Add a message to show in a later request of this session.

    Args:
        session: the session a dependency gave, or ``request.session`` (loaded).
        text: the message, at most 1,000 characters.
        category: what kind of message it is, at most 40 characters.
    """
    if not isinstance(text, str) or not isinstance(category, str):
        raise SessionError("A flash message's text and category must be strings.")
    state = _state(session)
    messages = _pending(state)[-(MAX_MESSAGES - 1) :]
    messages.append(FlashMessage(category[:MAX_CATEGORY], text[:MAX_TEXT]))
    _keep(state, messages)


def get_flashed_messages(session: object) -> list[FlashMessage]:
    """The messages waiting in this session, oldest first; they will not be shown again."""
    state = _state(session)
    messages = _pending(state)
    if messages:
        _keep(state, [])
    return messages


def _state(session: object) -> SessionState[Any]:
    state = bound_state(session)
    state.engine.make_writable(state)
    return state


def _pending(state: SessionState[Any]) -> list[FlashMessage]:
    """The waiting messages; a damaged field holds none."""
    raw = state.reserved(FLASH_FIELD)
    try:
        stored = json.loads(raw) if raw is not None else []
    except ValueError:
        return []
    if not isinstance(stored, list):
        return []
    return [
        FlashMessage(item[0], item[1])
        for item in stored
        if isinstance(item, list)
        and len(item) == 2
        and all(isinstance(part, str) for part in item)
    ]


def _keep(state: SessionState[Any], messages: list[FlashMessage]) -> None:
    value = to_json([[m.category, m.text] for m in messages]) if messages else None
    state.set_reserved(FLASH_FIELD, value)
