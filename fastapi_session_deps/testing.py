"""Helpers for testing apps that use sessions.

Set up a session's contents without going through a log-in route (the counterpart of
Django's ``force_login`` and Flask's ``session_transaction``):

```python
from fastapi_session_deps.testing import session_headers

async def test_the_account_page(client):
    headers = await session_headers(sessions, UserSession(user_id=1))
    response = await client.get("/account", headers=headers)
    assert response.status_code == 200
```

The session is stored in the manager's real backend, with the manager's expiry, exactly as
one the app created; only the route that would have created it is skipped.
"""

from __future__ import annotations

from typing import Any

from .manager import SessionManager

__all__ = ["session_headers"]


async def session_headers(sessions: SessionManager[Any], data: Any) -> dict[str, str]:
    """Store ``data`` as a new session and return the request headers that carry it.

    Args:
        sessions: the app's `SessionManager`.
        data: the session's contents: an instance of the manager's model.

    Returns:
        Headers to send with the test client's requests: a ``cookie`` header for
        `CookieFrontend`, the token header for `HeaderFrontend`.
    """
    session_id = await sessions.engine.store_new(data)
    return sessions.frontend.request_headers(session_id, issued_at=int(sessions.policy.clock()))
