"""One parser of store URLs, for the command line and for apps that configure a store by
one setting (``SESSION_STORE_URL``).

==================================================  =============================================
URL                                                 store
==================================================  =============================================
``redis://host:6379/0``, ``rediss://...``,          `RedisBackend` (redis-py reads the URL: user,
``unix:///run/redis.sock``                          password, database, TLS options)
``redis+cluster://host:7000``,                      `RedisBackend` over a ``RedisCluster``; any
``rediss+cluster://...``                            node of the cluster will do
``sqlite:///sessions.db``, ``postgresql://...``,    `SQLBackend` (the asyncio driver is added when
``mysql://...``, ``mariadb://...``                  the URL names none)
``http://host:8080``, ``https://...``               `HTTPBackend`, the session service; its token
                                                    from ``SESSION_SERVICE_TOKEN``
==================================================  =============================================

Two query parameters are the library's own and are taken out before the rest of the URL
goes to the driver: ``key_prefix`` (Redis, default ``session:``) and ``table`` (SQL,
default ``sessions``). A token or password given in the environment rather than in the
URL stays out of the machine's process list.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from ._wire import SERVICE_TOKEN_ENV as SERVICE_TOKEN_VARIABLE
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["SERVICE_TOKEN_VARIABLE", "open_store"]

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_KINDS = (
    "redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, sqlite://, "
    "postgresql://, mysql://, mariadb://, http:// or https://"
)


def open_store(url: str, *, timeout: float = 1.0) -> Backend:
    """The store ``url`` names, owning its connections (`aclose` closes them).

    Args:
        url: a store URL (see the table above).
        timeout: seconds any one store call may take.

    Raises:
        ConfigurationError: a URL of no known kind, an option the store does not take, or
            the session service without ``SESSION_SERVICE_TOKEN``.
        MissingDependencyError: the store's extra is not installed.
    """
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    base, _, query = url.partition("?")
    options = parse_qsl(query, keep_blank_values=True)
    own = {name: value for name, value in options if name in ("key_prefix", "table")}
    kept = [(name, value) for name, value in options if name not in own]
    # Only the query is rewritten, and only when it held our options: the rest of the URL
    # reaches the driver exactly as written (sqlite:////absolute/path included).
    rest = url if not own else base + ("?" + urlencode(kept) if kept else "")
    kind = scheme.split("+", 1)[0]
    if "table" in own and kind not in _SQL_SCHEMES:
        raise ConfigurationError(f"table= is for SQL stores, not {scheme}://.")
    if "key_prefix" in own and kind not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"key_prefix= is for Redis, not {scheme}://.")
    if scheme in ("redis+cluster", "rediss+cluster"):
        from .backends.redis import RedisBackend

        plain = kind + rest[len(scheme) :]
        return RedisBackend.from_cluster_url(
            plain, key_prefix=own.get("key_prefix", "session:"), timeout=timeout
        )
    if scheme in ("redis", "rediss", "unix"):
        from .backends.redis import RedisBackend

        return RedisBackend.from_url(
            rest, key_prefix=own.get("key_prefix", "session:"), timeout=timeout
        )
    if kind in _SQL_SCHEMES:
        from .backends.sql import SQLBackend

        sql_url = rest.replace("postgres://", "postgresql://", 1)
        return SQLBackend.from_url(
            sql_url, table_name=own.get("table", "sessions"), timeout=timeout
        )
    if scheme in ("http", "https"):
        from .backends.http import HTTPBackend

        token = os.environ.get(SERVICE_TOKEN_VARIABLE)
        if not token:
            raise ConfigurationError(
                f"The session service needs its token in ${SERVICE_TOKEN_VARIABLE}."
            )
        return HTTPBackend.from_url(rest, token=token, timeout=timeout)
    # Only the scheme is quoted: the rest of a URL may hold a password.
    what = f"{scheme}:// is not a store's scheme" if scheme else "a store URL needs a scheme"
    raise ConfigurationError(f"{what}: use {_KINDS}.")
