"""`EncryptedBackend`: any store, with each stored value encrypted (AES-256-GCM).

Each value is sealed on its own, with a random 96-bit nonce, and with the record's store
key and the field's name as associated data: a value copied into another session, or into
another field, fails to decrypt. The stored form is ASCII text,
``fsd-aead1.<key id>.<base64url(nonce + ciphertext + tag)>``, so it fits every store (SQL
JSON columns and the session service included).

Keys form a ring: the first encrypts, every one decrypts (picked by its id, a digest of
the key). Values sealed with an older key are sealed again with the first as soon as their
record is read, each only if the store still holds what was read
(`Backend.replace_unchanged`): a value another worker changed meanwhile is never written
back. A store without that operation keeps older values as they were sealed until they
change.

A record with a value that does not decrypt (tampered with, moved, or sealed with a key no
longer in the ring) is "no session", logged without its data. It is not deleted: a key
left out of the ring by mistake must not wipe every session.

The user a session is bound to (``user_index=True``) stays readable: the SQL store indexes
it as it is. Bind sessions to an opaque user id, not an e-mail address, if that matters.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from typing import cast

from .._record import OWNER_FIELD
from ..exceptions import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    MissingDependencyError,
)
from ..keys import new_encryption_key
from .base import (
    Backend,
    EndBatch,
    EndedRecord,
    Progress,
    SessionIndex,
    SessionLocks,
    StoreStats,
    UserRecord,
)

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without it
    raise MissingDependencyError.of("EncryptedBackend", "encryption", "cryptography") from exc

__all__ = ["KEYS_ENV", "EncryptedBackend", "new_key"]

logger = logging.getLogger("fastapi_session_deps")

#: The environment variable `EncryptedBackend` reads its keys from when given none.
KEYS_ENV = "SESSION_ENCRYPTION_KEYS"
PREFIX = b"fsd-aead1."


def new_key() -> str:
    """A new random key, as URL-safe base64 text (for ``SESSION_ENCRYPTION_KEYS``)."""
    return new_encryption_key()


class _Key:
    __slots__ = ("aead", "id")

    def __init__(self, raw: str | bytes) -> None:
        material = raw if isinstance(raw, bytes) else _from_text(raw)
        if len(material) != 32:
            raise ConfigurationError(
                "An encryption key must be 32 bytes (or their URL-safe base64): make one "
                'with `python -c "from fastapi_session_deps.backends.encrypted import '
                'new_key; print(new_key())"`.'
            )
        self.aead = AESGCM(material)
        self.id = hashlib.sha256(b"fastapi-session-deps key id\x00" + material).hexdigest()[:8]


def _from_text(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        return b""


class _Undecryptable(Exception):
    """A stored value that does not open with any key of the ring."""


class EncryptedBackend(Backend):
    """Wraps a store so that every value it keeps is encrypted, and decrypted on the way
    back; field names, expiry and the store's own behaviour are unchanged.

    ```python
    backend = EncryptedBackend(RedisBackend.from_url(url), keys=[new_key, old_key])
    ```

    It has the locks and the index of users' sessions of the store it wraps, if that has
    them. Needs the ``encryption`` extra (``cryptography``).

    Args:
        inner: the store that keeps the records.
        keys: the key ring, newest first: 32-byte keys, or their URL-safe base64. Without
            it, ``SESSION_ENCRYPTION_KEYS`` (comma-separated).

    Raises:
        ConfigurationError: no key, or a key that is not 32 bytes.
    """

    def __new__(
        cls, inner: Backend, keys: Sequence[str | bytes] | str | None = None
    ) -> EncryptedBackend:
        if cls is EncryptedBackend:
            cls = _variant(isinstance(inner, SessionLocks), isinstance(inner, SessionIndex))
        return super().__new__(cls)

    def __init__(self, inner: Backend, keys: Sequence[str | bytes] | str | None = None) -> None:
        if keys is None:
            keys = os.environ.get(KEYS_ENV, "")
        if isinstance(keys, str):
            keys = [part for part in keys.split(",") if part.strip()]
        if not keys:
            raise ConfigurationError(
                f"EncryptedBackend needs at least one key: pass keys=[...] or set {KEYS_ENV}."
            )
        if not isinstance(inner, Backend):
            raise ConfigurationError(f"inner must be a Backend, not {inner!r}.")
        self.inner = inner
        self._ring = [_Key(key) for key in keys]
        self._by_id = {key.id: key for key in reversed(self._ring)}

    def __repr__(self) -> str:
        return f"EncryptedBackend({self.inner!r}, keys={len(self._ring)})"

    # -- sealing ---------------------------------------------------------------------------------

    def _seal(self, key: str, name: str, value: bytes) -> bytes:
        if name == OWNER_FIELD:
            return value
        current = self._ring[0]
        nonce = os.urandom(12)
        sealed = current.aead.encrypt(nonce, value, _associated(key, name))
        return b"%s%s.%s" % (PREFIX, current.id.encode(), _b64(nonce + sealed))

    def _open(self, key: str, name: str, stored: bytes) -> tuple[bytes, bool]:
        """The value, and whether it was sealed with the ring's first key."""
        if name == OWNER_FIELD:
            return stored, True
        if not stored.startswith(PREFIX):
            raise _Undecryptable
        key_id, _, body = stored[len(PREFIX) :].partition(b".")
        ring_key = self._by_id.get(key_id.decode("ascii", "replace"))
        if ring_key is None:
            raise _Undecryptable
        try:
            raw = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
            value = ring_key.aead.decrypt(raw[:12], raw[12:], _associated(key, name))
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise _Undecryptable from exc
        return value, ring_key is self._ring[0]

    def _open_record(
        self, key: str, fields: Mapping[str, bytes]
    ) -> tuple[dict[str, bytes], dict[str, tuple[bytes, bytes]]] | None:
        """The record's values, and those sealed with an older key sealed again: each as
        ``name: (stored, resealed)``. ``None`` for a record that does not decrypt."""
        opened: dict[str, bytes] = {}
        stale: dict[str, tuple[bytes, bytes]] = {}
        try:
            for name, stored in fields.items():
                value, current = self._open(key, name, stored)
                opened[name] = value
                if not current:
                    stale[name] = (stored, self._seal(key, name, value))
        except _Undecryptable:
            logger.warning(
                "A session record that does not decrypt (tampered with, moved, or sealed "
                "with a key no longer in the ring): no session",
                extra={"event": "record_undecryptable", "store": "EncryptedBackend"},
            )
            return None
        return opened, stale

    # -- the Backend -----------------------------------------------------------------------------

    async def get(self, key: str, *, ttl: float | None = None) -> dict[str, bytes] | None:
        fields = await self.inner.get(key, ttl=ttl)
        opened = None if fields is None else self._open_record(key, fields)
        if opened is None:
            return None
        values, stale = opened
        if stale:
            # Sealed again now, where the store still holds what was read: a value changed
            # since then (another worker's log-out) is never written back.
            # The record was read: if the store fails now, it is sealed at its next read.
            with contextlib.suppress(BackendUnavailable, BackendError):
                await self.inner.replace_unchanged(key, stale)
        return values

    async def set(self, key: str, fields: Mapping[str, bytes], *, ttl: float) -> None:
        sealed = {name: self._seal(key, name, value) for name, value in fields.items()}
        await self.inner.set(key, sealed, ttl=ttl)

    async def update(
        self,
        key: str,
        changed: Mapping[str, bytes],
        removed: Collection[str] = (),
        *,
        ttl: float,
        exact: bool = False,
    ) -> bool:
        sealed = {name: self._seal(key, name, value) for name, value in changed.items()}
        return await self.inner.update(key, sealed, removed, ttl=ttl, exact=exact)

    async def delete(self, key: str) -> bool | None:
        return await self.inner.delete(key)

    async def delete_expired(
        self, *, batch_size: int = 1000, progress: Progress | None = None
    ) -> int:
        return await self.inner.delete_expired(batch_size=batch_size, progress=progress)

    async def stats(self, *, top: int = 10) -> StoreStats | None:
        return await self.inner.stats(top=top)  # counts and owners are not sealed

    async def aclose(self) -> None:
        await self.inner.aclose()


# The variants `EncryptedBackend.__new__` picks: each only for a store that has the
# capability, so the casts below hold.


class _WithLocks(EncryptedBackend, SessionLocks):
    async def acquire_lock(self, key: str, token: str, *, ttl: float, wait: float) -> bool:
        return await cast("SessionLocks", self.inner).acquire_lock(key, token, ttl=ttl, wait=wait)

    async def release_lock(self, key: str, token: str) -> None:
        await cast("SessionLocks", self.inner).release_lock(key, token)


class _WithIndex(EncryptedBackend, SessionIndex):
    async def index_add(self, user: str, key: str, *, ttl: float) -> None:
        await cast("SessionIndex", self.inner).index_add(user, key, ttl=ttl)

    async def index_remove(self, user: str, keys: Collection[str]) -> None:
        await cast("SessionIndex", self.inner).index_remove(user, keys)

    async def index_list(self, user: str) -> list[UserRecord]:
        return self._opened(await cast("SessionIndex", self.inner).index_list(user))

    async def index_keys(self, user: str, *, offset: int = 0, limit: int = 1000) -> list[str]:
        index = cast("SessionIndex", self.inner)
        return await index.index_keys(user, offset=offset, limit=limit)

    async def index_page(
        self, user: str, *, offset: int = 0, limit: int = 100
    ) -> list[UserRecord]:
        index = cast("SessionIndex", self.inner)
        return self._opened(await index.index_page(user, offset=offset, limit=limit))

    async def index_end_some(
        self, user: str, *, keep: Collection[str] = (), after: str | None = None, limit: int = 1000
    ) -> EndBatch:
        index = cast("SessionIndex", self.inner)
        ended, after = await index.index_end_some(user, keep=keep, after=after, limit=limit)
        return self._opened_facts(ended), after

    async def index_end(self, user: str, keys: Collection[str]) -> list[EndedRecord]:
        return self._opened_facts(await cast("SessionIndex", self.inner).index_end(user, keys))

    def _opened_facts(self, ended: list[EndedRecord]) -> list[EndedRecord]:
        """The facts of ended records, opened (the owner is kept readable)."""
        found: list[EndedRecord] = []
        for key, fields in ended:
            opened = self._open_record(key, fields)
            found.append((key, {} if opened is None else opened[0]))
        return found

    def _opened(self, records: list[UserRecord]) -> list[UserRecord]:
        """The records that decrypt, opened."""
        found: list[UserRecord] = []
        for key, fields, left in records:
            opened = self._open_record(key, fields)
            if opened is not None:
                found.append((key, opened[0], left))
        return found


class _WithLocksAndIndex(_WithLocks, _WithIndex):
    pass


def _variant(locks: bool, index: bool) -> type[EncryptedBackend]:
    """The class with the capabilities of the store it wraps."""
    return {
        (False, False): EncryptedBackend,
        (True, False): _WithLocks,
        (False, True): _WithIndex,
        (True, True): _WithLocksAndIndex,
    }[(locks, index)]


def _associated(key: str, name: str) -> bytes:
    return b"fastapi-session-deps\x00%s\x00%s" % (
        key.encode("utf-8", "surrogatepass"),
        name.encode("utf-8", "surrogatepass"),
    )


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")
