"""The `Frontend` protocol: how the signed session id travels between client and server.

Frontends are synchronous and do no I/O: they read a token from the request, and write or
clear it on the response headers, signing and verifying with their own keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import Scope

from ..signing import VerifiedToken

__all__ = ["Frontend", "SessionScheme"]


class SessionScheme(SecurityBase):
    """The OpenAPI security scheme of a frontend: where the session token travels.

    Every session dependency depends on it, so ``/openapi.json`` lists it and marks the
    routes that use a session (Swagger UI's "Authorize" then sends the token). Calling it
    does nothing: the frontend reads and verifies the token itself.
    """

    def __init__(self, location: Literal["cookie", "header"], name: str, scheme_name: str) -> None:
        self.model = APIKey(
            **{"in": APIKeyIn(location)},  # type: ignore[arg-type]
            name=name,
            description=f"The signed session token, in the {name!r} {location}.",
        )
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        return None


class Frontend(ABC):
    """Base class of session-id transports.

    Attributes:
        vary: the request header that a response depends on once it has read the session
            (added to the response's ``Vary`` header so that shared caches keep users apart).
        security_scheme: how the OpenAPI schema describes this transport, or ``None``.
        max_age: the longest, in seconds, that the client keeps a token after it was
            issued, or ``None`` for no limit of the transport's own. A session's sliding
            lifetime is the shorter of this and the idle timeout, and a token older than
            it is refused.
    """

    vary: str
    security_scheme: SessionScheme | None = None
    max_age: float | None = None

    @abstractmethod
    def read(self, connection: HTTPConnection) -> VerifiedToken | None:
        """Return the verified token the request carries, or ``None``.

        Must never raise on client input: anything malformed is ``None``.
        """

    @abstractmethod
    def write(
        self,
        headers: MutableHeaders,
        session_id: str,
        *,
        issued_at: int,
        max_age: int,
        scope: Scope,
    ) -> None:
        """Add the signed ``session_id`` to the response ``headers``.

        Args:
            headers: the response headers, at ``http.response.start``.
            session_id: the id to sign and send.
            issued_at: the current time, in whole seconds, to sign into the token.
            max_age: seconds the client may keep it; never more than the server-side
                session has left (zero or less: the session has already ended).
            scope: the request's ASGI scope (its scheme decides ``secure="auto"``).
        """

    @abstractmethod
    def clear(self, headers: MutableHeaders, *, scope: Scope) -> None:
        """Tell the client to drop its token."""

    @abstractmethod
    def request_headers(self, session_id: str, *, issued_at: int) -> dict[str, str]:
        """The headers a client sends to present ``session_id`` (used by the test helper)."""
