"""Run Starlette's own session test module against this library's `SessionMiddleware`.

The module comes from the source distribution of the Starlette version installed beside
this package, downloaded with pip. Exactly two things change in it:

* its import line ``from starlette.middleware.sessions import ...`` (``SessionMiddleware``,
  and ``Session`` in newer versions) imports the same names from ``fastapi_session_deps``;
* its toy secret ``"example"`` is lengthened to 32 bytes, since keys shorter than that are
  refused here.

Everything else, every assertion included, runs as Starlette wrote it, on asyncio and on
trio (anyio's pytest plugin runs each case on every backend it finds).

Usage: python scripts/starlette_session_tests.py [--cache DIR] [pytest arguments]

Prints pytest's report and ends with a line ``starlette-session-tests: N passed, N failed``;
exits with pytest's status.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

ORIGINAL_IMPORT = re.compile(r"^from starlette\.middleware\.sessions import ", re.MULTILINE)
SWAPPED_IMPORT = "from fastapi_session_deps import "
ORIGINAL_KEY = 'secret_key="example"'
LONGER_KEY = 'secret_key="example-example-example-example-32"'
#: The files of Starlette's test tree the module needs, as they are in the sdist.
NEEDED = (
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/types.py",
    "tests/middleware/__init__.py",
    "tests/middleware/test_session.py",
)
#: Starlette's own pytest settings, from its pyproject.toml (warnings are errors there too).
PYTEST_INI = """\
[pytest]
addopts = -rXs --strict-config --strict-markers
xfail_strict = true
filterwarnings =
    error
    ignore: Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning
    ignore: Using `httpx` with `starlette.testclient` is deprecated.*:DeprecationWarning
    ignore:Please use `import python_multipart` instead.:PendingDeprecationWarning
"""


def sdist(cache: Path) -> Path:
    """The sdist of the installed Starlette, downloaded into ``cache`` once."""
    wanted = version("starlette")
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"starlette-{wanted}.tar.gz"))
    if found:
        return found[0]
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(cache),
            f"starlette=={wanted}",
        ],
        check=True,
    )
    return next(cache.glob(f"starlette-{wanted}.tar.gz"))


def extract(archive: Path, into: Path) -> Path:
    """Copy the needed test files out of the sdist, with the two changes; return the module."""
    with tarfile.open(archive) as tar:
        members = {name.split("/", 1)[1]: name for name in tar.getnames() if "/" in name}
        for wanted in NEEDED:
            member = tar.extractfile(members[wanted])
            if member is None:  # pragma: no cover - a directory where a file was expected
                raise RuntimeError(f"{wanted} is not a file in {archive.name}")
            target = into / wanted
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
    module = into / "tests/middleware/test_session.py"
    text = module.read_text()
    if len(ORIGINAL_IMPORT.findall(text)) != 1 or ORIGINAL_KEY not in text:
        raise RuntimeError(
            "Starlette's test module no longer has the import line or key this script swaps; "
            "update ORIGINAL_IMPORT / ORIGINAL_KEY."
        )
    text = ORIGINAL_IMPORT.sub(SWAPPED_IMPORT, text).replace(ORIGINAL_KEY, LONGER_KEY)
    module.write_text(text)
    (into / "pytest.ini").write_text(PYTEST_INI)
    return module


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(__file__).resolve().parent.parent / ".venv" / "starlette-sdist",
        help="where the downloaded sdist is kept (default: .venv/starlette-sdist)",
    )
    options, pytest_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="starlette-session-tests-") as directory:
        root = Path(directory)
        module = extract(sdist(options.cache), root)
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-m", "pytest", "-p", "anyio", str(module), "-v", *pytest_args],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    counts = {
        word: int(number)
        for number, word in re.findall(r"(\d+) (passed|failed|error)", result.stdout)
    }
    failed = counts.get("failed", 0) + counts.get("error", 0)
    print(
        f"starlette-session-tests (starlette {version('starlette')}): "
        f"{counts.get('passed', 0)} passed, {failed} failed"
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
