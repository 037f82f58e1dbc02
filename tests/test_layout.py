"""The package's layout: which module may know what, read from the source.

- The stores, and the session service, know the record's format (`_record`), never the
  engine: a store works with any engine, and the engine is free to change.
- The engine names no feature: the fields of flash messages, the CSRF secret and the
  client recorded at log-in are the record module's, moved by its table.
- No module imports another's private names; the import circle of `health` and `manager`
  is gone; no method is longer than about 45 lines.
"""

import ast
import inspect
from pathlib import Path

import pytest

import fastapi_session_deps
from fastapi_session_deps import Session as FormerName
from fastapi_session_deps import SessionDict, SessionManager
from fastapi_session_deps._engine import SessionEngine
from fastapi_session_deps.policy import POLICY_SETTINGS

PACKAGE = Path(fastapi_session_deps.__file__).parent
#: The most lines a method's body may have, its docstring aside.
LONGEST_METHOD = 45


def tree(relative: str) -> ast.Module:
    return ast.parse((PACKAGE / relative).read_text(), relative)


def imported_modules(relative: str) -> set[str]:
    """Every module ``relative`` imports, as an absolute dotted name."""
    package = ["fastapi_session_deps", *Path(relative).parent.parts]
    found = set()
    for node in ast.walk(tree(relative)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def modules() -> list[str]:
    return sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    "module", [m for m in modules() if m.startswith("backends/")] + ["service.py"]
)
def test_stores_and_the_service_never_import_the_engine(module: str) -> None:
    assert "fastapi_session_deps._engine" not in imported_modules(module)


def test_the_helpers_in_this_test_see_relative_imports() -> None:
    assert "fastapi_session_deps._engine" in imported_modules("flash.py")
    assert "fastapi_session_deps._record" in imported_modules("backends/redis.py")


def test_the_engine_names_no_feature_field() -> None:
    named = {node.id for node in ast.walk(tree("_engine.py")) if isinstance(node, ast.Name)} | {
        alias.name
        for node in ast.walk(tree("_engine.py"))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    features = {"FLASH_FIELD", "CSRF_FIELD", "ADDRESS_FIELD", "AGENT_FIELD", "csrf_field"}
    assert named.isdisjoint(features)
    assert "Scope" not in inspect.signature(SessionEngine.log_in).parameters
    assert list(inspect.signature(SessionEngine.log_in).parameters) == [
        "self",
        "state",
        "user",
        "address",
        "user_agent",
    ]


@pytest.mark.parametrize("module", modules())
def test_no_module_imports_another_modules_private_names(module: str) -> None:
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.ImportFrom):
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert private == [], f"{module} imports {private} from {node.module}"


def test_manager_and_health_import_each_other_no_more() -> None:
    assert "fastapi_session_deps.health" not in imported_modules("manager.py")
    runtime = [
        node
        for node in tree("health.py").body
        if isinstance(node, ast.ImportFrom) and node.module == "manager"
    ]
    assert runtime == []  # only for type checking


@pytest.mark.parametrize("module", modules())
def test_no_method_is_longer_than_about_45_lines(module: str) -> None:
    too_long = []
    for cls in ast.walk(tree(module)):
        if not isinstance(cls, ast.ClassDef):
            continue
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = method.body
            if ast.get_docstring(method) is not None:
                body = body[1:]
            lines = (method.end_lineno or 0) - body[0].lineno + 1 if body else 0
            if lines > LONGEST_METHOD:
                too_long.append(f"{cls.name}.{method.name}: {lines} lines")
    assert too_long == []


def test_the_manager_lists_every_setting_it_takes() -> None:
    documented = (SessionManager.__doc__ or "").split("**settings:", 1)[1].split("Attributes:")[0]
    assert {name for name in POLICY_SETTINGS if f"``{name}``" not in documented} == set()


def test_the_engine_is_one_read_only_name_everywhere() -> None:
    from fastapi_session_deps import CookieFrontend, MemoryBackend

    from .helpers import SECRET
    from .support import AppSession

    sessions = SessionManager(AppSession, frontend=CookieFrontend(SECRET), backend=MemoryBackend())
    assert isinstance(sessions.engine, SessionEngine)
    with pytest.raises(AttributeError):
        sessions.engine = sessions.engine  # type: ignore[misc]
    for module in modules():
        for node in ast.walk(tree(module)):
            assert not (isinstance(node, ast.Attribute) and node.attr == "core"), module


def test_the_request_session_dict_keeps_its_former_name() -> None:
    assert FormerName is SessionDict
    assert {"Session", "SessionDict"} <= set(fastapi_session_deps.__all__)
