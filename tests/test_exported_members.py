"""The public root re-exports the contract's names and nothing private."""

import subprocess
import sys

import pytest

import fastapi_session_deps

#: The public names the package promises to keep.
CONTRACT = {
    "SessionModel",
    "SessionManager",
    "CookieFrontend",
    "HeaderFrontend",
    "MemoryBackend",
    "RedisBackend",
    "SessionMiddleware",
    "SessionError",
    "BackendUnavailable",
}


def test_all_holds_the_contract_names() -> None:
    assert set(fastapi_session_deps.__all__) >= CONTRACT


def test_all_is_sorted_unique_and_every_name_resolves() -> None:
    exported = fastapi_session_deps.__all__
    assert exported == sorted(set(exported))
    for name in exported:
        member = getattr(fastapi_session_deps, name)
        assert member.__module__.startswith("fastapi_session_deps.")
        assert not name.startswith("_")


def test_every_exported_class_has_a_docstring() -> None:
    for name in fastapi_session_deps.__all__:
        assert getattr(fastapi_session_deps, name).__doc__, name


def test_importing_the_package_does_not_import_redis_httpx_or_sqlalchemy() -> None:
    code = (
        "import sys, fastapi_session_deps; "
        "print(sorted(m for m in ('redis', 'httpx', 'sqlalchemy') if m in sys.modules))"
    )
    output = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_the_optional_backends_resolve_lazily_from_both_packages() -> None:
    import pytest

    import fastapi_session_deps.backends as backends
    from fastapi_session_deps.backends.redis import RedisBackend
    from fastapi_session_deps.backends.sql import SQLBackend

    assert fastapi_session_deps.RedisBackend is RedisBackend
    assert backends.RedisBackend is RedisBackend
    assert fastapi_session_deps.SQLBackend is SQLBackend
    assert backends.SQLBackend is SQLBackend
    for module in (fastapi_session_deps, backends):
        with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
            _ = module.Nothing


@pytest.mark.parametrize(
    ("module", "name", "extra"),
    [
        ("redis", "RedisBackend", "redis"),
        ("httpx", "HTTPBackend", "http"),
        ("sqlalchemy", "SQLBackend", "sql"),
    ],
)
def test_a_backend_without_its_extra_names_the_extra(module: str, name: str, extra: str) -> None:
    code = f"import sys; sys.modules[{module!r}] = None\nfrom fastapi_session_deps import {name}\n"
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "MissingDependencyError" in result.stderr
    assert f"pip install 'fastapi-session-deps[{extra}]'" in result.stderr
