"""A user's sessions: list them, revoke one, log out everywhere.

Sessions are bound to a user by a log-in (`SessionManager.login`, `login_session`), which
also moves the session to a new id. With ``user_index=True`` the store keeps an index of
each user's sessions (`SessionIndex`), and `UserSessions` reads and revokes through it.

A session is named by its *handle*: a digest of its store key (itself a digest of the id),
so it can be shown, put in a URL or logged without giving anyone the session. Revoking
takes the user and the handle, so a user can only ever name sessions of their own.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from ._engine import SessionEngine, state_of
from ._record import RecordFacts, owner_of
from .backends.base import SessionIndex, UserRecord
from .exceptions import ConfigurationError, SessionError
from .signing import session_handle

__all__ = ["SessionInfo", "UserSessions", "session_handle"]


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's live sessions, as a list of devices shows it.

    Attributes:
        handle: the session's public name (`session_handle`), for revoking it.
        user: the user it is bound to.
        created_at: when the session began (seconds since the epoch).
        last_seen: when it was last used, to within a tenth of the idle timeout (it is
            written when the session's expiry is renewed).
        expires_at: when it ends if left idle (or at its absolute timeout, if sooner).
        ip: the client's address at log-in, if ``record_client`` is on.
        user_agent: the client's ``User-Agent`` at log-in, if ``record_client`` is on.
        current: whether this is the session of the request that asked.
    """

    handle: str
    user: str
    created_at: float
    last_seen: float
    expires_at: float
    ip: str | None
    user_agent: str | None
    current: bool


class UserSessions:
    """Lists and revokes the sessions of a user (``sessions.users``, `user_sessions`).

    A revoked session's record is deleted from the store, so its next request, on any
    process, is anonymous.
    """

    def __init__(self, engine: SessionEngine[Any]) -> None:
        self._engine = engine

    @property
    def _index(self) -> SessionIndex:
        if self._engine.index is None:
            raise ConfigurationError(
                "Listing a user's sessions needs user_index=True in the session settings."
            )
        return self._engine.index

    async def list(self, user: str, *, current: object = None) -> list[SessionInfo]:
        """The user's live sessions, the most recently seen first.

        Args:
            user: the user, as given to the log-in.
            current: the session of this request (the object a dependency gave, or
                ``request.session``), to mark it as current.
        """
        now = self._engine.policy.clock()
        mine = _stored_key(current)
        found = [
            info
            for key, fields, left in await self._live(user)
            if (info := self._info(user, key, fields, now, left, mine)) is not None
        ]
        return sorted(found, key=lambda info: info.last_seen, reverse=True)

    async def revoke(self, user: str, handle: str) -> bool:
        """End the user's session named ``handle``; ``False`` if it has none by that name."""
        for record in await self._live(user):
            if session_handle(record[0]) == handle:
                await self._end(user, [record])
                return True
        return False

    async def revoke_all(self, user: str, *, keep: object = None) -> int:
        """End every session of the user, except ``keep`` (a session object, to log out
        everywhere else); return how many were ended."""
        kept = _stored_key(keep)
        records = [record for record in await self._live(user) if record[0] != kept]
        await self._end(user, records)
        return len(records)

    async def _live(self, user: str) -> builtins.list[UserRecord]:
        if not isinstance(user, str) or not user:
            raise SessionError(f"The user must be a non-empty string, not {user!r}.")
        records = await self._index.index_list(user)
        return [record for record in records if owner_of(record[1]) == user]

    async def _end(self, user: str, records: builtins.list[UserRecord]) -> None:
        for key, _fields, _left in records:
            await self._engine.store.delete(key)
        if records:
            await self._index.index_remove(user, [key for key, _fields, _left in records])
        for key, fields, _left in records:
            await self._engine.emit("revoked", key, fields)

    def _info(
        self,
        user: str,
        key: str,
        fields: dict[str, bytes],
        now: float,
        left: float,
        mine: str | None,
    ) -> SessionInfo | None:
        expires_at = now + left
        facts = RecordFacts.of(fields)
        created = facts.created_at
        if created is None:
            return None  # damaged: its next read treats it as no session
        absolute = self._engine.policy.absolute_timeout
        if absolute is not None:
            if created + absolute <= now:
                return None  # past its absolute timeout: ended, whatever the store says
            expires_at = min(expires_at, created + absolute)
        return SessionInfo(
            handle=session_handle(key),
            user=user,
            created_at=created,
            last_seen=facts.last_seen or created,
            expires_at=expires_at,
            ip=facts.ip,
            user_agent=facts.user_agent,
            current=key == mine,
        )


def _stored_key(session: object) -> str | None:
    """The store key of the record a session object was loaded from, if any."""
    if session is None:
        return None
    state = state_of(session)
    if state is None:
        raise SessionError("Pass the session object a dependency gave, or request.session.")
    return None if state.origin is None else state.origin.key


def client_of(connection: HTTPConnection) -> tuple[str | None, str | None]:
    """The client's address and ``User-Agent`` as a log-in records them (``record_client``)."""
    scope = connection.scope
    client = scope.get("client")
    address = str(client[0]) if client else None
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            return address, value.decode("latin-1")
    return address, None
