"""`SessionModel`, the base class of typed session data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SessionModel(BaseModel):
    """Base class for the data of one session.

    Subclass it with the fields your app keeps per visitor; every field needs a default,
    since a new visitor gets ``YourModel()``:

    ```python
    class UserSession(SessionModel):
        user_id: int | None = None
        cart: list[str] = []
    ```

    A route changes the session by assigning attributes or editing them in place
    (``session.cart.append("book")``); the change is saved when the response starts.
    Values must be JSON-serialisable through Pydantic: sessions are stored as JSON, never
    pickled. Fields the stored data lacks take their defaults, and stored fields the model
    no longer has are ignored, so adding or removing a field does not log anyone out.
    """

    model_config = ConfigDict(extra="ignore")
