"""One parser of store URLs: every kind it knows reaches a real store."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastapi_session_deps import ConfigurationError, MemoryBackend, RedisBackend, SQLBackend
from fastapi_session_deps._wire import counted_stats
from fastapi_session_deps.backends.http import HTTPBackend
from fastapi_session_deps.health import ping
from fastapi_session_deps.service import create_app
from fastapi_session_deps.store_url import open_store

from .helpers import SERVICE_TOKEN, served_in_thread

pytestmark = pytest.mark.anyio


async def test_redis_urls_with_a_key_prefix(redis_url: str) -> None:
    store = open_store(f"{redis_url}?key_prefix=app1:", timeout=2)
    assert isinstance(store, RedisBackend)
    assert (store.key_prefix, store.timeout) == ("app1:", 2)
    assert await ping(store) >= 0
    await store.aclose()
    plain = open_store(redis_url)
    assert isinstance(plain, RedisBackend)
    assert plain.key_prefix == "session:"
    await plain.aclose()


async def test_a_cluster_url_reaches_every_node(redis_cluster_url: str) -> None:
    url = redis_cluster_url.replace("redis://", "redis+cluster://", 1)
    store = open_store(f"{url}?key_prefix=cli:")
    assert isinstance(store, RedisBackend)
    await store.set("k", {"a": b"1"}, ttl=60)
    assert await store.get("k") == {"a": b"1"}
    assert (await store.stats()) is not None
    await store.delete("k")
    await store.aclose()


async def test_the_session_service_by_url_with_its_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with served_in_thread(create_app(MemoryBackend(), token=SERVICE_TOKEN)) as base:
        monkeypatch.delenv("SESSION_SERVICE_TOKEN", raising=False)
        with pytest.raises(ConfigurationError, match=r"\$SESSION_SERVICE_TOKEN"):
            open_store(base)
        monkeypatch.setenv("SESSION_SERVICE_TOKEN", SERVICE_TOKEN)
        store = open_store(base)
        assert isinstance(store, HTTPBackend)
        assert await ping(store) >= 0
        counted = await store.stats()
        assert counted is not None
        assert counted.live == 0
        await store.aclose()


@pytest.mark.parametrize(
    ("url", "table", "dialect"),
    [
        ("sqlite:///{tmp}/sessions.db", "sessions", "sqlite"),
        ("sqlite:///relative.db?table=web_sessions", "web_sessions", "sqlite"),
        ("postgres://app@db.internal/app?table=s&sslmode=require", "s", "postgresql"),
        ("mariadb://app@db.internal/app", "sessions", "mariadb"),
    ],
)
async def test_sql_urls_keep_their_path_and_take_a_table(
    url: str, table: str, dialect: str, tmp_path: Path
) -> None:
    store = open_store(url.format(tmp=tmp_path))
    assert isinstance(store, SQLBackend)
    assert store.table.name == table
    assert store.engine.dialect.name == dialect
    assert "table=" not in str(store.engine.url)
    if "{tmp}" in url:  # an absolute path: four slashes, kept as written
        assert store.engine.url.database == f"{tmp_path}/sessions.db"
    await store.aclose()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ftp://host/x", "ftp:// is not a store's scheme"),
        ("nothing", "a store URL needs a scheme"),
        ("redis://localhost?table=x", "table= is for SQL stores"),
        ("sqlite:///x.db?key_prefix=a:", "key_prefix= is for Redis"),
    ],
)
def test_what_is_not_a_store_url_is_refused_naming_the_kinds(url: str, complaint: str) -> None:
    # (And never quoting the URL past its scheme: the rest may hold a password.)
    with pytest.raises(ConfigurationError, match=complaint):
        open_store(url)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=9), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@example(document={"live": 2, "users": 1, "top_users": [["ada", 2]]})
@example(document={"live": 1, "users": 1, "top_users": [["ada"]]})
@example(document={"live": 1, "users": 1, "top_users": [["ada", -1]]})
@example(document={"live": True, "users": 1, "top_users": []})
@given(
    document=st.dictionaries(
        st.sampled_from(["live", "users", "top_users", "other"]), JSON, max_size=4
    )
)
def test_any_stats_answer_is_counts_or_a_value_error(document: dict[str, Any]) -> None:
    try:
        live, users, ranked = counted_stats(json.loads(json.dumps(document)))
    except ValueError:
        return
    assert isinstance(live, int)
    assert isinstance(users, int)
    assert min(live, users) >= 0
    assert all(isinstance(user, str) and count >= 0 for user, count in ranked)


@pytest.mark.parametrize(
    "url", ["app:PASSWORD@db/app", "ftp://app:PASSWORD@db/app", "PASSWORD", "mysql:PASSWORD@db"]
)
def test_a_refused_url_is_never_quoted_past_its_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        open_store(url)
    assert "PASSWORD" not in str(refused.value)


def test_the_service_backend_never_shows_a_password_written_into_its_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSION_SERVICE_TOKEN", SERVICE_TOKEN)
    store = open_store("https://svc:PASSWORD@sessions.internal:8100")
    assert "PASSWORD" not in repr(store)
    assert "https://***@sessions.internal:8100" in repr(store)
