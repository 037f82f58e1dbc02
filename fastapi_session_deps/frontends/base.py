"""The `Frontend` protocol: how the signed session id travels between client and server.

Frontends are synchronous and do no I/O: they read a token from the request, and write or
clear it on the response headers, signing and verifying with their own keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from ..signing import VerifiedToken

__all__ = ["Frontend"]


class Frontend(ABC):
    """Base class of session-id transports.

    Attributes:
        vary: the request header that a response depends on once it has read the session
            (added to the response's ``Vary`` header so that shared caches keep users apart).
    """

    vary: str

    @abstractmethod
    def read(self, connection: HTTPConnection) -> VerifiedToken | None:
        """Return the verified token the request carries, or ``None``.

        Must never raise on client input: anything malformed is ``None``.
        """

    @abstractmethod
    def write(
        self, headers: MutableHeaders, session_id: str, *, issued_at: int, max_age: int
    ) -> None:
        """Add the signed ``session_id`` to the response ``headers``.

        Args:
            headers: the response headers, at ``http.response.start``.
            session_id: the id to sign and send.
            issued_at: the current time, in whole seconds, to sign into the token.
            max_age: seconds the client may keep it; never more than the server-side
                session has left.
        """

    @abstractmethod
    def clear(self, headers: MutableHeaders) -> None:
        """Tell the client to drop its token."""

    @abstractmethod
    def request_headers(self, session_id: str, *, issued_at: int) -> dict[str, str]:
        """The headers a client sends to present ``session_id`` (used by the test helper)."""
