"""The library's exceptions: one tree, one root.

```text
SessionError                      base of everything raised here
├── ConfigurationError            (ValueError) wrong settings, raised at construction
├── MissingDependencyError        (ImportError) an optional extra is not installed
├── MissingMiddlewareError        (RuntimeError) a session dependency ran without the
│                                 manager's middleware in the app
├── BackendUnavailable            the store could not be reached or did not answer in time
│   └── StoreNotSetUp             the store answers, but its table is missing
├── BackendError                  the store refused an operation in a way a retry will
│                                 not mend (a bug, or a misconfigured store)
├── SessionBusy                   another request held the session's lock too long
├── SessionTooLarge               (ValueError) a change would make the session's record
│                                 larger than ``max_record_bytes``
└── InvalidSessionData            (ValueError) stored bytes that do not decode or validate
```

Core code raises these. The dependency and middleware layer turns them into HTTP
responses: a 503 with ``Retry-After`` for `BackendUnavailable` and `SessionBusy`, a 500
(logged with its reason) for `BackendError` and `SessionTooLarge`. `InvalidSessionData`
never reaches it: the engine treats such a record as no session.
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

    @classmethod
    def of(cls, name: str, extra: str, package: str) -> MissingDependencyError:
        """The error for ``name``, which needs ``package`` from the ``extra`` extra."""
        return cls(f"{name} needs {package}: pip install 'fastapi-session-deps[{extra}]'")


class MissingMiddlewareError(SessionError, RuntimeError):
    """A session dependency ran in an app that does not have the manager's middleware.

    The middleware is the commit point that saves the session and sets the cookie; without
    it every change would be lost silently, so the dependency refuses to run, and the
    manager's lifespan refuses to start.
    """

    @classmethod
    def for_manager(cls) -> MissingMiddlewareError:
        """The error for a `SessionManager` whose middleware the app lacks."""
        return cls(
            "This app has no session middleware, so sessions could never be saved. Add "
            "`app.add_middleware(sessions.middleware)` after creating the app "
            "(`sessions` being your SessionManager)."
        )


class _StoreFault(SessionError):
    """A store operation failed; the evidence is on the attributes.

    Attributes:
        backend: the name of the backend class that failed.
        operation: the store operation that failed (``"get"``, ``"set"``, ...).
    """

    def __init__(self, message: str, *, backend: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation


class BackendUnavailable(_StoreFault):
    """The session store could not be reached, failed, or did not answer in time.

    Attributes:
        backend: the name of the backend class that failed.
        operation: the store operation that failed (``"get"``, ``"set"``, ...).
    """


class StoreNotSetUp(BackendUnavailable):
    """The store answers, but what it needs is not set up: the session table is missing
    (SQLite "no such table", PostgreSQL SQLSTATE 42P01, MySQL error 1146).

    The message names the fix: the app's migration, ``fastapi-session-deps create-tables
    --store URL``, or ``await backend.create_table()``. It is answered as an outage (503,
    ``Retry-After``), since in a deploy the migration may be only moments behind the new
    code, but logged at ERROR (``store_table_missing``, once per backend) as the set-up
    mistake it usually is.
    """


class BackendError(_StoreFault):
    """The store refused an operation, and retrying will not help: a bug or a misconfiguration.

    Unlike `BackendUnavailable` it is not answered "retry shortly" (503) but as the server
    error it is (500), and logged.

    Attributes:
        backend: the name of the backend class that failed.
        operation: the store operation that failed.
    """


class SessionTooLarge(SessionError, ValueError):
    """A change would make the session's stored record larger than ``max_record_bytes``.

    Raised at the commit point, after the route has run: nothing is stored, and the
    response becomes a 500 whose log line names the limit. Keep large data elsewhere and a
    key to it in the session.

    Attributes:
        size: the record's size in bytes, had it been stored.
        limit: the limit it exceeds.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the session's record would be {size} bytes, over max_record_bytes={limit}: "
            "the change was not saved. Keep large data out of the session (a key to it "
            "instead), or raise max_record_bytes."
        )
        self.size = size
        self.limit = limit


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
