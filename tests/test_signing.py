"""Session ids, store keys and signed tokens."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fastapi_session_deps import ConfigurationError
from fastapi_session_deps.signing import (
    SECRET_KEY_ENV,
    TokenSigner,
    new_session_id,
    resolve_secret_keys,
    store_key,
)

from .helpers import OLD_SECRET, SECRET


def test_session_ids_carry_256_random_bits() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for session_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session_id)  # 43 * 6 >= 256 bits


def test_store_key_is_a_hash_that_does_not_contain_the_id() -> None:
    session_id = new_session_id()
    key = store_key(session_id)
    assert key == store_key(session_id)
    assert session_id not in key
    assert key != store_key(new_session_id())
    # It is SHA-256 of the id, URL-safe base64 without padding.
    assert len(key) == 43
    digest = hashlib.sha256(session_id.encode()).digest()
    assert key == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_sign_and_verify_round_trip() -> None:
    signer = TokenSigner(SECRET)
    session_id = new_session_id()
    token = signer.sign(session_id, 1_800_000_123)
    verified = signer.verify(token)
    assert verified is not None
    assert verified.session_id == session_id
    assert verified.issued_at == 1_800_000_123
    assert verified.rotated is False


def test_first_key_signs_and_every_key_verifies() -> None:
    old = TokenSigner(OLD_SECRET)
    rotated = TokenSigner([SECRET, OLD_SECRET])
    session_id = new_session_id()
    old_token = old.sign(session_id, 100)
    verified = rotated.verify(old_token)
    assert verified is not None
    assert verified.session_id == session_id
    assert verified.rotated is True
    new_token = rotated.sign(session_id, 100)
    assert new_token == TokenSigner(SECRET).sign(session_id, 100)
    assert old.verify(new_token) is None
    fresh = rotated.verify(new_token)
    assert fresh is not None
    assert fresh.rotated is False


def test_a_token_from_another_key_is_refused() -> None:
    token = TokenSigner(OLD_SECRET).sign(new_session_id(), 100)
    assert TokenSigner(SECRET).verify(token) is None


def test_repr_never_shows_a_key() -> None:
    signer = TokenSigner([SECRET, OLD_SECRET])
    assert SECRET[:8] not in repr(signer)
    assert repr(signer) == "TokenSigner(keys=2, namespace='')"


def test_secret_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_KEY_ENV, SECRET)
    assert resolve_secret_keys(None) == [SECRET.encode()]


def test_the_environment_holds_several_keys_for_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Comma-separated, newest first: the first signs, every one verifies, as with a list.
    monkeypatch.setenv(SECRET_KEY_ENV, f"{SECRET}, {OLD_SECRET}")
    assert resolve_secret_keys(None) == [SECRET.encode(), OLD_SECRET.encode()]
    session_id = new_session_id()
    from_env = TokenSigner()
    old_token = TokenSigner(OLD_SECRET).sign(session_id, 100)
    verified = from_env.verify(old_token)
    assert verified is not None
    assert verified.rotated
    assert TokenSigner(SECRET).verify(from_env.sign(session_id, 100)) is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"{SECRET},,{OLD_SECRET}", "empty key: separate rotation keys with single commas"),
        (f"{SECRET},", "empty key"),
        (f"{SECRET},short", "key 2 of SESSION_SECRET_KEY is 5 bytes long"),
        ("  ", "No session secret key"),
    ],
)
def test_bad_keys_in_the_environment_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv(SECRET_KEY_ENV, value)
    with pytest.raises(ConfigurationError, match=message):
        resolve_secret_keys(None)


def test_missing_secret_key_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)
    with pytest.raises(ConfigurationError, match="SESSION_SECRET_KEY") as caught:
        TokenSigner()
    assert "`fastapi-session-deps keygen`" in str(caught.value)


@pytest.mark.parametrize(
    ("secret_key", "message"),
    [
        ("short", "secret_key is 5 bytes long"),
        (b"x" * 31, "secret_key is 31 bytes long"),
        ([SECRET, "short"], r"secret_key\[1\] is 5 bytes long"),
        ([], "empty list"),
        ([SECRET, 42], r"secret_key\[1\] is a int"),
    ],
)
def test_bad_secret_keys_are_refused(secret_key: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TokenSigner(secret_key)  # type: ignore[arg-type]


def test_a_32_byte_key_is_enough() -> None:
    assert TokenSigner(b"k" * 32).verify(TokenSigner(b"k" * 32).sign(new_session_id(), 1))


SIGNER = TokenSigner(SECRET)
VALID = SIGNER.sign("A" * 43, 1_800_000_000)


@given(st.text(max_size=400))
@example("")
@example(VALID + "x")
@example(VALID[:-1])
@example("A" * 43 + ".." + VALID.rsplit(".", 1)[1])
@example(VALID.replace(".", "", 1))
@example("é" * 10)
def test_verify_never_raises_and_rejects_anything_not_signed(text: str) -> None:
    result = SIGNER.verify(text)
    assert result is None or text == VALID


@given(st.integers(min_value=0, max_value=len(VALID) * 8 - 1))
def test_any_single_bit_flip_of_a_token_is_refused(bit: int) -> None:
    raw = bytearray(VALID.encode())
    raw[bit // 8] ^= 1 << (bit % 8)
    assert SIGNER.verify(raw.decode("latin-1")) is None


def test_the_verified_token_cache_is_bounded_and_evicts_the_oldest() -> None:
    from fastapi_session_deps.signing import VERIFIED_CACHE_SIZE

    signer = TokenSigner(SECRET)
    tokens = [signer.sign(new_session_id(), 1) for _ in range(VERIFIED_CACHE_SIZE + 5)]
    for token in tokens:
        assert signer.verify(token) is not None
    assert len(signer._verified) == VERIFIED_CACHE_SIZE
    assert tokens[0] not in signer._verified  # the oldest went first
    assert tokens[-1] in signer._verified
    assert signer.verify(tokens[0]) is not None  # evicted tokens still verify, the slow way
    assert signer.verify(tokens[0] + "x") is None
    assert len(signer._verified) == VERIFIED_CACHE_SIZE


def test_a_cached_token_carries_the_store_key() -> None:
    session_id = new_session_id()
    verified = TokenSigner(SECRET).verify(TokenSigner(SECRET).sign(session_id, 1))
    assert verified is not None
    assert verified.key == store_key(session_id)


@given(
    key=st.binary(min_size=32, max_size=200),
    salt=st.binary(max_size=80),
    message=st.binary(max_size=300),
)
def test_the_signature_is_itsdangerous_own_hmac_sha256(
    key: bytes, salt: bytes, message: bytes
) -> None:
    # The keyed HMAC states are this module's; the bytes must be itsdangerous's exactly.
    import hmac

    from itsdangerous import Signer

    from fastapi_session_deps.signing import _KeySigner

    ours = _KeySigner(key, salt)
    reference = Signer(
        key, salt=salt, sep=".", key_derivation="hmac", digest_method=hashlib.sha256
    )
    assert ours.get_signature(message) == reference.get_signature(message)
    expected = hmac.digest(reference.derive_key(), message, "sha256")
    assert ours.get_signature(message) == base64.urlsafe_b64encode(expected).rstrip(b"=")


def test_tokens_signed_in_one_second_share_a_stamp_and_still_verify() -> None:
    signer = TokenSigner(SECRET)
    first, second = signer.sign(new_session_id(), 1000), signer.sign(new_session_id(), 1000)
    later = signer.sign(new_session_id(), 1001)
    assert first.split(".")[1] == second.split(".")[1] != later.split(".")[1]
    for token, stamp in ((first, 1000), (second, 1000), (later, 1001)):
        verified = signer.verify(token)
        assert verified is not None
        assert verified.issued_at == stamp


def test_a_forked_child_never_hands_out_its_parents_ids() -> None:
    import os

    new_session_id()  # the parent now holds a batch of ids it has not handed out
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which exits at once
        os.write(writer, new_session_id().encode())
        os._exit(0)
    os.close(writer)
    from_child = os.read(reader, 100).decode()
    os.close(reader)
    os.waitpid(child, 0)
    from_parent = {new_session_id() for _ in range(200)}
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", from_child)
    assert from_child not in from_parent
