"""The clients `RedisBackend.from_url` builds pack commands with hiredis, byte for byte as
redis-py's own packer does, and keep the connection class the URL asks for."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)

from fastapi_session_deps import RedisBackend

#: Command names as redis-py and this library send them: one word or several, text or bytes.
NAMES = st.sampled_from(
    ["EVALSHA", "HGETALL", "SCRIPT LOAD", "CLIENT SETINFO", b"HSET", b"CONFIG GET", b"DEL"]
)
#: Any argument a caller may pass: what both packers take, and what they refuse.
ARGUMENTS = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary().map(bytearray),
    st.binary().map(memoryview),
)


def connection_of(url: str, **options: Any) -> AbstractConnection:
    """A connection as the backend's client would make it (not connected)."""
    pool = RedisBackend.from_url(url, **options).client.connection_pool  # type: ignore[union-attr]
    return pool.connection_class(**pool.connection_kwargs)


def packed(connection: AbstractConnection, args: tuple[Any, ...]) -> bytes | type[Exception]:
    try:
        return b"".join(connection.pack_command(*args))
    except Exception as exc:  # the kind of refusal is what is compared
        return type(exc)


@given(name=NAMES, rest=st.lists(ARGUMENTS, max_size=8))
def test_any_command_is_packed_as_redis_py_packs_it(name: str | bytes, rest: list[Any]) -> None:
    args = (name, *rest)
    ours = connection_of("redis://127.0.0.1:1/0")
    assert type(ours).pack_command is not Connection.pack_command  # the packer under test
    assert packed(ours, args) == packed(Connection(), args)


@given(rest=st.lists(st.one_of(st.text(), st.binary(), st.integers()), max_size=8))
def test_another_text_encoding_packs_as_redis_py_does(rest: list[Any]) -> None:
    args = ("HSET", *rest)
    ours = connection_of("redis://127.0.0.1:1/0", encoding="latin-1")
    assert packed(ours, args) == packed(Connection(encoding="latin-1"), args)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", Connection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
        ("unix:///nonexistent/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_the_connection_class_the_url_asks_for_is_kept(url: str, kind: type) -> None:
    connection = connection_of(url)
    assert isinstance(connection, kind)
    assert type(connection).__name__ == kind.__name__
