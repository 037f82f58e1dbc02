"""The library's exceptions: one tree, one root.

```text
SessionError                      base of everything raised here
├── ConfigurationError            (ValueError) wrong settings, raised at construction
├── MissingDependencyError        (ImportError) an optional extra is not installed
├── MissingMiddlewareError        (RuntimeError) a session dependency ran without the
│                                 manager's middleware in the app
├── BackendUnavailable            the store could not be reached or did not answer in time
├── SessionBusy                   another request held the session's lock too long
└── InvalidSessionData            (ValueError) stored bytes that do not decode or validate
```

Core code raises these; only the dependency and middleware layer turns them into HTTP
responses (a 503 for `BackendUnavailable`, "no session" for `InvalidSessionData`).
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class of every exception raised by fastapi-session-deps."""


class ConfigurationError(SessionError, ValueError):
    """A setting is missing, insecure or inconsistent.

    Raised when a frontend, backend or manager is constructed, never at the first request.
    The message names the fix.
    """


class MissingDependencyError(SessionError, ImportError):
    """A backend's optional dependency is not installed; the message names the extra."""


class MissingMiddlewareError(SessionError, RuntimeError):
    """A session dependency ran in an app that does not have the manager's middleware.

    The middleware is the commit point that saves the session and sets the cookie; without
    it every change would be lost silently, so the dependency refuses to run.
    """


class BackendUnavailable(SessionError):
    """The session store could not be reached, failed, or did not answer in time.

    Attributes:
        backend: the name of the backend class that failed.
        operation: the store operation that failed (``"get"``, ``"set"``, ...).
    """

    def __init__(self, message: str, *, backend: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation


class SessionBusy(SessionError):
    """With ``concurrency="lock"``, another request held the session for all of ``lock_timeout``.

    The request is answered 503 with ``Retry-After``: the session is only busy, and a retry a
    moment later will most likely get it.
    """


class InvalidSessionData(SessionError, ValueError):
    """Stored session bytes that do not decode, or no longer validate against the model.

    The request then goes on as if it had no session; the record is never handed to a
    route.
    """
