"""Session ids, their store keys, and the signed tokens that carry them.

A token is ``<session id>.<issued at>.<signature>``, or
``<session id>.<issued at>.<lifetime>.<signature>`` for a session given a lifetime of its
own (`SessionManager.set_lifetime`):

* the session id is 256 bits from :mod:`secrets` (43 URL-safe characters);
* *issued at* is the time the token was signed, in whole seconds, so the manager can tell
  when a cookie is due to be re-issued without asking the store;
* *lifetime*, when present, is the session's sliding lifetime in whole seconds, so that
  the manager can tell when such a token is due or too old without asking the store either
  (the record holds the truth; this is what the token was issued for);
* the signature is HMAC-SHA256 (itsdangerous, key derivation ``hmac``) over the first two
  parts, with a salt of our own that also names the token's *namespace*: by default the
  cookie's or header's name. Another app that shares the secret (and even the store) but
  carries its tokens under another name does not accept these.

The store never sees the id itself, only :func:`store_key` of it: a copy of the store
yields no token that a client could present.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import Signer
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes

from .exceptions import ConfigurationError

__all__ = [
    "MIN_SECRET_KEY_BYTES",
    "SECRET_KEY_ENV",
    "SecretKeys",
    "TokenSigner",
    "VerifiedToken",
    "new_session_id",
    "resolve_secret_keys",
    "store_key",
]

#: Environment variable read when no ``secret_key`` is passed.
SECRET_KEY_ENV = "SESSION_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
#: Separates the keys of a rotation in the environment variable: the first signs.
SECRET_KEY_ENV_SEPARATOR = ","  # noqa: S105 - a separator, not a secret
#: Shortest secret accepted: HMAC-SHA256 wants a key at least as long as its output.
MIN_SECRET_KEY_BYTES = 32
#: A token is about 95 characters; anything much longer is rejected before any hashing.
MAX_TOKEN_LENGTH = 256
#: Verified tokens remembered per signer, so a returning client costs no HMAC.
VERIFIED_CACHE_SIZE = 4096

#: One secret, or several for rotation: the first signs, all verify.
SecretKeys = str | bytes | Sequence[str | bytes]

_SALT = b"fastapi-session-deps/session-id"
#: SHA-256's block size, in bytes: the length HMAC pads its key to.
_BLOCK = 64
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_TIMESTAMP_RE = re.compile(r"[A-Za-z0-9_-]{1,12}")
_KEY_HINT = (
    "Make one with `fastapi-session-deps keygen` and pass it as secret_key=... or set the "
    f"{SECRET_KEY_ENV} environment variable (`fastapi-session-deps keygen --env`)."
)


def new_session_id() -> str:
    """Return a fresh session id: 256 random bits, URL-safe base64 without padding.

    The bits come from `secrets` (the operating system's CSPRNG), a couple of kilobytes at
    a time rather than with a system call per id; each is handed out once. A forked child
    starts with none of its parent's (``os.register_at_fork``), so two worker processes
    never share one.
    """
    try:
        return _random_ids.popleft()
    except IndexError:
        batch = secrets.token_bytes(_ID_BYTES * _IDS_PER_BATCH)
        ids = [
            base64.urlsafe_b64encode(batch[i : i + _ID_BYTES]).rstrip(b"=").decode("ascii")
            for i in range(0, len(batch), _ID_BYTES)
        ]
        _random_ids.extend(ids[1:])
        return ids[0]


_ID_BYTES = 32
_IDS_PER_BATCH = 64
_random_ids: collections.deque[str] = collections.deque()
os.register_at_fork(after_in_child=_random_ids.clear)


def store_key(session_id: str) -> str:
    """Return the key under which a session's record is stored.

    SHA-256 of a 256-bit random id cannot be reversed, so the key can sit in a store, a
    log or a backup without letting anyone present it as a session token.
    """
    digest = hashlib.sha256(session_id.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def session_handle(key: str) -> str:
    """The public handle of the session stored under ``key``: 22 URL-safe characters.

    A digest of the store key (itself a digest of the id), so it can be shown, put in a URL
    or logged without giving anyone the session or its record's key.
    """
    digest = hashlib.sha256(b"fastapi-session-deps handle\x00" + key.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def resolve_secret_keys(secret_key: SecretKeys | None) -> list[bytes]:
    """Turn the ``secret_key`` argument (or the environment) into a list of keys.

    ``SESSION_SECRET_KEY`` may hold several keys for rotation, separated by commas and
    newest first (``"new,old"``), as a list would be.

    Raises:
        ConfigurationError: no key at all, or a key shorter than 32 bytes.
    """
    if secret_key is None:
        return _checked(_keys_from_environment(), SECRET_KEY_ENV)
    candidates = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
    return _checked(candidates, "secret_key")


def _keys_from_environment() -> list[str]:
    from_env = os.environ.get(SECRET_KEY_ENV, "")
    if not from_env.strip():
        raise ConfigurationError(f"No session secret key was given. {_KEY_HINT}")
    # Keys made by secrets.token_urlsafe never contain a comma.
    keys = [key.strip() for key in from_env.split(SECRET_KEY_ENV_SEPARATOR)]
    if not all(keys):
        raise ConfigurationError(
            f"{SECRET_KEY_ENV} holds an empty key: separate rotation keys with single commas, "
            f"newest first ('new,old'). {_KEY_HINT}"
        )
    return keys


def _checked(candidates: Sequence[object], source: str) -> list[bytes]:
    if not candidates:
        raise ConfigurationError(f"{source} is an empty list. {_KEY_HINT}")
    keys: list[bytes] = []
    for position, candidate in enumerate(candidates):
        which = source
        if len(candidates) > 1:
            which = (
                f"{source}[{position}]"
                if source == "secret_key"
                else f"key {position + 1} of {source}"
            )
        if not isinstance(candidate, (str, bytes)):
            raise ConfigurationError(
                f"{which} is a {type(candidate).__name__}; keys are str or bytes."
            )
        key = candidate.encode("utf-8") if isinstance(candidate, str) else candidate
        if len(key) < MIN_SECRET_KEY_BYTES:
            raise ConfigurationError(
                f"{which} is {len(key)} bytes long; session keys must be at least "
                f"{MIN_SECRET_KEY_BYTES} bytes. {_KEY_HINT}"
            )
        keys.append(key)
    return keys


@dataclass(frozen=True)
class VerifiedToken:
    """What a valid token says.

    Attributes:
        session_id: the session id it carries.
        issued_at: when it was signed, in whole seconds of the manager's clock.
        rotated: it verified with an older key; it should be re-signed with the current one.
        key: the store key of the session (:func:`store_key` of the id).
        lifetime: the sliding lifetime (seconds) the token was issued for, if the session
            has one of its own; ``None``: the app's.
    """

    session_id: str
    issued_at: int
    rotated: bool
    key: str
    lifetime: int | None = None


class _KeySigner(Signer):
    """An itsdangerous signer for one key, with its derived key computed once.

    `get_signature` gives itsdangerous's own signature (HMAC-SHA256 with the derived key,
    URL-safe base64 without padding), with the HMAC's inner and outer hash states keyed
    once (RFC 2104) and copied per token, rather than keyed again for every one; the tests
    check it against ``hmac`` and itsdangerous.
    """

    def __init__(self, key: bytes, salt: bytes) -> None:
        super().__init__(
            key, salt=salt, sep=".", key_derivation="hmac", digest_method=hashlib.sha256
        )
        derived = self.derive_key()
        if len(derived) > _BLOCK:  # pragma: no cover - a derived key is one SHA-256 digest
            derived = hashlib.sha256(derived).digest()
        padded = derived.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def get_signature(self, value: str | bytes) -> bytes:
        message = value.encode("utf-8") if isinstance(value, str) else value
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return base64.urlsafe_b64encode(outer.digest()).rstrip(b"=")


class TokenSigner:
    """Signs session ids into tokens and verifies them, with key rotation.

    Args:
        secret_key: a key, or a list of keys: the first signs, every one verifies (the
            reverse of itsdangerous's own lists, where the last signs; here the order reads
            "newest first", as Django's key and its fallbacks do). ``None`` reads
            ``SESSION_SECRET_KEY`` from the environment.
        namespace: what the tokens are for, bound into every signature: a token signed for
            one namespace never verifies in another, whatever the keys.
    """

    __slots__ = ("_signers", "_stamp", "_verified", "namespace")

    def __init__(self, secret_key: SecretKeys | None = None, *, namespace: str = "") -> None:
        if not isinstance(namespace, str):
            raise ConfigurationError(f"namespace must be a string, not {namespace!r}.")
        self.namespace = namespace
        salt = _SALT + b"/" + namespace.encode("utf-8")
        self._signers = [_KeySigner(key, salt) for key in resolve_secret_keys(secret_key)]
        # Only tokens that verified are kept, by their exact text, and the keys never change
        # for this signer: a hit is as good as checking the HMAC again.
        self._verified: dict[str, VerifiedToken] = {}
        self._stamp: tuple[int, str] = (-1, "")

    def __repr__(self) -> str:
        # Never show a key, not even a prefix of one.
        return f"TokenSigner(keys={len(self._signers)}, namespace={self.namespace!r})"

    @property
    def key_count(self) -> int:
        """How many keys verify (the first of them signs)."""
        return len(self._signers)

    def sign(self, session_id: str, issued_at: int, lifetime: int | None = None) -> str:
        """Return the token for ``session_id``, signed with the current (first) key, and
        naming the session's own sliding ``lifetime`` (whole seconds), if it has one."""
        if issued_at != self._stamp[0]:  # tokens signed in one second share their stamp
            self._stamp = (issued_at, _encode_int(issued_at))
        value = f"{session_id}.{self._stamp[1]}"
        if lifetime is not None:
            value = f"{value}.{_encode_int(lifetime)}"
        signature = self._signers[0].get_signature(value.encode("ascii")).decode("ascii")
        return f"{value}.{signature}"

    def verify(self, token: str) -> VerifiedToken | None:
        """Return what ``token`` carries, or ``None`` if it is not a token we signed.

        Never raises: any malformed, truncated, oversized, non-ASCII or tampered value is
        simply ``None``.
        """
        verified = self._verified.get(token)
        if verified is not None:
            return verified
        verified = self._verify(token)
        if verified is not None:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = verified
        return verified

    def _verify(self, token: str) -> VerifiedToken | None:
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        value, _, signature = token.rpartition(".")
        session_id, _, stamps = value.partition(".")
        stamp, marked, lifetime = stamps.partition(".")
        if (
            _SESSION_ID_RE.fullmatch(session_id) is None
            or _TIMESTAMP_RE.fullmatch(stamp) is None
            or (marked and _TIMESTAMP_RE.fullmatch(lifetime) is None)
        ):
            return None
        value_bytes = value.encode("ascii")
        signature_bytes = signature.encode("ascii")
        for position, signer in enumerate(self._signers):
            # Compare the canonical encoding rather than decoding the client's base64:
            # decoding ignores padding bits, which would let two spellings of one
            # signature both pass.
            if hmac.compare_digest(signer.get_signature(value_bytes), signature_bytes):
                return VerifiedToken(
                    session_id,
                    _decode_int(stamp),
                    rotated=position > 0,
                    key=store_key(session_id),
                    lifetime=_decode_int(lifetime) if marked else None,
                )
        return None


def _encode_int(number: int) -> str:
    """A whole number of seconds as a token writes it (itsdangerous's encoding)."""
    return base64_encode(int_to_bytes(max(number, 0))).decode()


def _decode_int(text: str) -> int:
    return bytes_to_int(base64_decode(text))
