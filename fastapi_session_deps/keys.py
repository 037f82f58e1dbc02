"""New random keys: what ``fastapi-session-deps keygen`` prints."""

from __future__ import annotations

import base64
import os
import secrets

__all__ = ["new_encryption_key", "new_secret_key"]


def new_secret_key() -> str:
    """A new signing key for ``SESSION_SECRET_KEY``: 48 random bytes, 64 characters."""
    return secrets.token_urlsafe(48)


def new_encryption_key() -> str:
    """A new AES-256 key for ``SESSION_ENCRYPTION_KEYS``, as URL-safe base64 text."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
