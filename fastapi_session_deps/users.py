"""A user's sessions: list them, revoke one, log out everywhere.

Sessions are bound to a user by a log-in (`SessionManager.login`, `login_session`), which
also moves the session to a new id. With ``user_index=True`` the store keeps an index of
each user's sessions (`SessionIndex`), and `UserSessions` reads and revokes through it.

A session is named by its *handle*: a digest of its store key (itself a digest of the id),
so it can be shown, put in a URL or logged without giving anyone the session. Revoking
takes the user and the handle, so a user can only ever name sessions of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from ._engine import USER_PAGE, SessionEngine, state_of
from ._record import RecordFacts, owner_of
from .backends.base import SessionIndex
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
        remembered: whether it was given a lifetime of its own that keeps its cookie
            across browser restarts ("Keep me signed in", `SessionManager.set_lifetime`
            with ``persistent=True``); ``expires_at`` says until when.
    """

    handle: str
    user: str
    created_at: float
    last_seen: float
    expires_at: float
    ip: str | None
    user_agent: str | None
    current: bool
    remembered: bool = False


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

    async def list(
        self, user: str, *, current: object = None, offset: int = 0, limit: int = 100
    ) -> list[SessionInfo]:
        """A page of the user's live sessions: those most recently in use (the latest to
        expire) first, from the ``offset``-th, at most ``limit``; within the page, the
        most recently seen first.

        Args:
            user: the user, as given to the log-in.
            current: the session of this request (the object a dependency gave, or
                ``request.session``), to mark it as current.
            offset: how many of the most recently used sessions to pass over.
            limit: the most sessions to list (a store call reads no more).
        """
        _check_user(user)
        if not (isinstance(offset, int) and offset >= 0 and isinstance(limit, int) and limit > 0):
            raise SessionError(
                f"offset must be 0 or more and limit more than 0, not {offset!r} and {limit!r}."
            )
        now = self._engine.policy.clock()
        mine = _stored_key(current)
        found = [
            info
            for key, fields, left in await self._index.index_page(user, offset=offset, limit=limit)
            if owner_of(fields) == user
            and (info := self._info(user, key, fields, now, left, mine)) is not None
        ]
        return sorted(found, key=lambda info: info.last_seen, reverse=True)

    async def revoke(self, user: str, handle: str) -> bool:
        """End the user's session named ``handle``; ``False`` if it has none by that name.

        The user's index is read a page of keys at a time, the most recently used first
        (where a session shown in a listing is), and no record is read but the one
        revoked: bounded whatever the number of sessions.
        """
        _check_user(user)
        offset = 0
        while True:
            keys = await self._index.index_keys(user, offset=offset, limit=HANDLE_PAGE)
            for key in keys:
                if session_handle(key) == handle:
                    return await self._engine.end_sessions(user, [key]) == 1
            if len(keys) < HANDLE_PAGE:
                return False
            offset += len(keys)

    async def revoke_all(self, user: str, *, keep: object = None) -> int:
        """End every session of the user, except ``keep`` (a session object, to log out
        everywhere else); return how many were ended.

        In batches of `USER_PAGE` sessions, each one store call to find them and one or two to
        end them, without reading the sessions' data: a hundred thousand sessions of one
        user end in seconds.
        """
        _check_user(user)
        kept = _stored_key(keep)
        index, engine, ended = self._index, self._engine, 0
        after: str | None = None
        while True:
            batch, after = await index.index_end_some(
                user, keep=() if kept is None else (kept,), after=after, limit=USER_PAGE
            )
            ended += await engine.announce_ended(user, batch)
            if after is None:
                return ended

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
        lifetime = self._engine.lifetime_of(fields)
        absolute = lifetime.absolute
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
            remembered=lifetime is not self._engine.default_lifetime
            and lifetime.persistent is True,
        )


#: Keys of a user's index read per store call in search of a handle (only keys: a page
#: of them costs what a few records would).
HANDLE_PAGE = 10_000


def _check_user(user: object) -> None:
    if not isinstance(user, str) or not user:
        raise SessionError(f"The user must be a non-empty string, not {user!r}.")


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
