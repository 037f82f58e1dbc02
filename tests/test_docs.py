"""Every complete program in the docs runs: a fenced block titled ``*.py`` is a program."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from fastapi_session_deps import SQLBackend

from .helpers import uvicorn_server

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PROGRAM = re.compile(r'```python title="([\w-]+\.py)"\n(.*?)```', re.DOTALL)


def programs() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for title, code in PROGRAM.findall(page.read_text()):
            found.append((f"{page.relative_to(DOCS)}:{title}", code))
    return found


def test_the_docs_have_programs() -> None:
    assert len(programs()) >= 2


def run(code: str, name: str) -> ModuleType:
    module = ModuleType(name)
    exec(compile(code, name, "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


@pytest.mark.parametrize(("where", "code"), programs(), ids=[w for w, _ in programs()])
async def test_every_program_in_the_docs_runs(
    where: str, code: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", "docs-test-secret-key-0123456789-abcdef")
    monkeypatch.chdir(tmp_path)  # where a program keeps its files (a SQLite database)
    program = run(code, where.split(":")[1][:-3])
    app: Any = program.app
    async with (
        app.router.lifespan_context(app),  # the program's own, as a server runs it
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        assert (await client.get("/openapi.json")).status_code == 200
        login = await client.post("/login", params={"user_id": 7})
        assert login.status_code == 200
        assert "set-cookie" in login.headers
        cart = await client.post("/cart", params={"item": "tea"})
        assert cart.json() == ["tea"]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_the_sql_lifespan_program_starts_two_workers_on_a_new_database(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Both workers create the tables as they start, on a database that has none.
    (code,) = (code for where, code in programs() if where.endswith(":sql_app.py"))
    (tmp_path / "sql_app.py").write_text(code)
    # Two rounds: the race itself is shown by tests/backends/test_sql.py's six engines at
    # once; this shows the documented program starting under two workers.
    for round_ in range(2):
        if store == "sqlite":
            url = f"sqlite:///{tmp_path}/sessions-{round_}.db"
        else:
            url = request.getfixturevalue("postgres_url")
            anyio.run(drop_tables, url)
        env = {"SESSION_STORE_URL": url, "SESSION_SECRET_KEY": "docs-two-workers-0123456789abcdef"}
        log = tmp_path / f"uvicorn-{round_}.log"
        try:
            with uvicorn_server(
                "sql_app:app", app_dir=tmp_path, env=env, workers=2, ready_path="/docs", log=log
            ) as base:
                for _ in range(10):  # a new connection each: both workers answer some
                    answer = httpx.post(f"{base}/cart", params={"item": "tea"}, timeout=5)
                    assert answer.json() == ["tea"]
        finally:
            if store != "sqlite":
                anyio.run(drop_tables, url)
        text = log.read_text()
        assert text.count("Application startup complete.") == 2, text
        assert "Traceback" not in text, text


async def drop_tables(url: str) -> None:
    backend = SQLBackend.from_url(url)
    await backend.drop_table()
    await backend.aclose()


async def test_the_tutorial_program_logs_in_and_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", "docs-test-secret-key-0123456789-abcdef")
    [code] = [code for where, code in programs() if where.endswith("tutorial.py")]
    program = run(code, "tutorial")
    transport = httpx.ASGITransport(app=program.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/me")).status_code == 401
        await client.post("/login", params={"user_id": 7})
        await client.post("/cart", params={"item": "tea"})
        assert (await client.get("/me")).json() == {"user_id": 7, "cart": ["tea"]}
        await client.post("/logout")
        assert (await client.get("/me")).status_code == 401


def test_the_readme_quickstart_is_the_tested_example_verbatim() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    block = readme.split("## Quickstart\n\n```python\n", 1)[1].split("```", 1)[0]
    example = (DOCS.parent / "examples" / "quickstart.py").read_text()
    docstring, _, body = example.partition('"""\n\n')
    assert docstring.startswith('"""')
    assert body == block


def test_every_test_the_security_table_names_exists() -> None:
    table = (DOCS / "security.md").read_text()
    named = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)`", table))
    named |= set(re.findall(r"`(test_\w+)`", table))
    defined = {
        name
        for path in (DOCS.parent / "tests").rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    assert len(named) >= 25
    assert named - defined == set()


def migration_snippet() -> str:
    """The hand-written migration of the "choosing a store" page."""
    page = (DOCS / "how-to" / "choosing-a-store.md").read_text()
    block = r'```python title="alembic/versions/0001_sessions.py"\n(.*?)```'
    [code] = re.findall(block, page, re.DOTALL)
    return str(code)


@pytest.mark.parametrize(
    ("page", "start", "end", "report"),
    [
        ("docs/tour.md", "Measured by `bash bench/run.sh stores`", "[Choosing a store]", "STORES"),
        (
            "docs/benchmarks.md",
            "µs per request in process, over bare",
            "Requests that do",
            "RESULTS",
        ),
        ("docs/how-to/choosing-a-store.md", "| store | survives", "## SQL in", "STORES"),
        ("docs/how-to/choosing-a-store.md", "In one run of `bash bench", "The clients,", "STORES"),
        ("docs/how-to/user-sessions.md", "| store | log-in |", "On Redis an indexed", "STORES"),
        ("docs/how-to/encryption.md", "| store | `/read`", "A read opens", "FEATURES"),
        ("docs/how-to/html-apps.md", "| app | `GET`", "- **CSRF** costs", "FEATURES"),
        ("docs/how-to/operations.md", "| memory, telemetry off", "On with the API", "FEATURES"),
        ("docs/benchmarks.md", "What `hiredis` buys, from", "## Concurrent requests", "PARSERS"),
    ],
)
def test_the_figures_quoted_come_from_the_recorded_benchmark(
    page: str, start: str, end: str, report: str
) -> None:
    text = (ROOT / page).read_text()
    quoted = text[text.index(start) : text.index(end, text.index(start))]
    recorded = (ROOT / "bench" / f"{report}.md").read_text().replace(",", "")
    figures = re.findall(r"\d[\d,]*\.\d|\d{1,3}(?:,\d{3})+", quoted)
    assert len(figures) >= 9
    for figure in figures:
        assert figure.replace(",", "") in recorded, f"{page}: {figure} is not in {report}.md"


def test_the_code_in_the_docs_fits_the_column() -> None:
    # 88 characters fit the docs site's column at 1280 px without a scroll bar.
    wide = [
        f"{page.relative_to(DOCS)}: {line}"
        for page in sorted(DOCS.rglob("*.md"))
        for fence, code in re.findall(r"```([^\n]*)\n(.*?)```", page.read_text(), re.DOTALL)
        if "mermaid" not in fence
        for line in code.splitlines()
        if len(line) > 88
    ]
    assert wide == []


def test_the_docs_search_finds_how_tos_by_the_names_of_the_api(tmp_path: Path) -> None:
    # A newcomer searching the site for a method finds the how-to that uses it, not only
    # the API reference.
    subprocess.run(  # noqa: S603 - our own interpreter and docs
        [sys.executable, "-m", "mkdocs", "build", "--quiet", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    index = json.loads((tmp_path / "search" / "search_index.json").read_text())["docs"]
    for name in ("create_table", "require_session", "login_url", "regenerate_session"):
        found = {entry["location"].split("/#")[0] for entry in index if name in entry["text"]}
        assert any(page.startswith("how-to/") for page in found), (name, found)


def test_the_readme_is_a_front_door_not_the_manual() -> None:
    # Pitch, install, quickstart, the drop-in, links: the rest lives on the docs site.
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    sections = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert sections[:3] == ["Install", "Quickstart", "Two commands"]
    assert any(section.startswith("`request.session`") for section in sections)
    for page in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / page).is_file(), page
