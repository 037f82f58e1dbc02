"""The versions the package claims, and the metadata it is published with.

The lowest-versions lane (scripts/lowest.sh) runs part of this suite at every floor; these
tests keep what it cannot see honest on the one Python this machine has.
"""

import ast
import inspect
import re
import sys
from importlib.metadata import metadata, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from starlette.requests import HTTPConnection

import fastapi_session_deps
from fastapi_session_deps import CSRFProtection
from fastapi_session_deps.dependencies import SessionDependency

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The Python versions the package claims, oldest first.
CLAIMED = ["3.10", "3.11", "3.12", "3.13"]


@pytest.mark.parametrize("dependency", [SessionDependency, CSRFProtection])
def test_a_dependency_names_its_connection_type_as_a_class_not_a_string(
    dependency: type,
) -> None:
    # FastAPI before 0.119 resolves a callable instance's annotations without the module's
    # globals: a string annotation stays unresolved and the parameter becomes a query field
    # (422 on every route).
    parameter = inspect.signature(dependency.__call__).parameters["connection"]
    assert parameter.annotation is HTTPConnection


def modules() -> list[Path]:
    return sorted(
        path
        for folder in ("fastapi_session_deps", "examples", "scripts")
        for path in (ROOT / folder).rglob("*.py")
    )


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_module_parses_under_the_oldest_python_claimed(path: Path) -> None:
    oldest = tuple(int(part) for part in CLAIMED[0].split("."))
    ast.parse(path.read_text(), filename=str(path), feature_version=oldest)


def test_the_classifiers_list_exactly_the_pythons_claimed() -> None:
    project = PYPROJECT["project"]
    listed = [
        classifier.rsplit(" :: ", 1)[1]
        for classifier in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    assert listed == CLAIMED
    requires = SpecifierSet(project["requires-python"])
    assert [v for v in [*CLAIMED, "3.9"] if requires.contains(f"{v}.0")] == CLAIMED
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py310"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == CLAIMED[0]


def test_the_version_is_one_number_in_the_package_and_its_metadata() -> None:
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert fastapi_session_deps.__version__ == version("fastapi-session-deps")
    assert re.fullmatch(r"\d+\.\d+\.\d+", fastapi_session_deps.__version__)


def test_the_changelog_has_an_entry_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{fastapi_session_deps.__version__}]" in changelog
    assert "## [Unreleased]" in changelog


def test_the_metadata_links_the_docs_the_source_and_the_changes() -> None:
    urls = dict(
        entry.split(", ", 1) for entry in metadata("fastapi-session-deps").get_all("Project-URL")
    )
    assert {"Documentation", "Source", "Changelog"} <= urls.keys()
    assert urls["Changelog"].startswith(urls["Source"])
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert f"repo_url: {urls['Source']}" in mkdocs
    assert f"site_url: {urls['Documentation']}" in mkdocs


def test_every_promised_requirement_has_a_floor_the_lane_pins() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import floors
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pins = floors.constraints(PYPROJECT)
    names = {pin.split("==")[0].split("[")[0].lower() for pin in pins}
    assert {"fastapi", "pydantic", "itsdangerous", "anyio", "redis", "sqlalchemy"} <= names
    assert {"aiosqlite", "asyncpg", "aiomysql", "httpx", "cryptography", "uvicorn"} <= names
    assert all(re.fullmatch(r"[\w\[\]-]+==[\w.]+(; .+)?", pin) for pin in pins), pins


@pytest.mark.parametrize("page", ["README.md", "docs/install.md"])
def test_the_extras_tables_list_every_extra_and_what_it_brings(page: str) -> None:
    text = (ROOT / page).read_text()
    table = text[text.index("| extra |") :].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|", table, re.MULTILINE)
    optional = PYPROJECT["project"]["optional-dependencies"]
    assert sorted(extra for extra, _ in rows) == sorted(set(optional) - {"dev"})
    for extra, brings in rows:
        for text in optional[extra]:
            requirement = Requirement(text)
            if requirement.name == PYPROJECT["project"]["name"]:  # another extra, by name
                assert all(f"`{other}`" in brings for other in requirement.extras), brings
            else:
                assert f"`{requirement.name}" in brings, (extra, text, brings)
