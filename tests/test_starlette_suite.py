"""Starlette's own session test module, run against this `SessionMiddleware`.

``scripts/starlette_session_tests.py`` takes ``tests/middleware/test_session.py`` from the
sdist of the installed Starlette, swaps its import line for ours and lengthens its toy key,
and runs it on asyncio and trio. Every case must pass.
"""

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from packaging.version import Version

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "starlette_session_tests.py"
#: How many cases the module has at least: 14 (7 on each backend) in Starlette 0.38, the
#: oldest FastAPI 0.115 allows; 29 since 0.39.
CASES = 29 if Version(version("starlette")) >= Version("0.39") else 14


def test_every_case_of_starlettes_session_tests_passes_on_asyncio_and_trio() -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(SCRIPT), "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = re.search(r"starlette-session-tests .*: (\d+) passed, (\d+) failed", result.stdout)
    assert summary is not None, result.stdout + result.stderr
    assert (int(summary[2]), result.returncode) == (0, 0), result.stdout
    passed = re.findall(r"::(\w+)(?:\[([^\]]*)\])? PASSED", result.stdout)
    assert len(passed) == int(summary[1]) >= CASES
    on_trio = {(name, params.replace("trio", "")) for name, params in passed if "trio" in params}
    on_asyncio = {(n, p.replace("asyncio", "")) for n, p in passed if "asyncio" in p}
    assert on_trio == on_asyncio
    assert len(on_trio) >= CASES // 2  # every case that runs a client, on both backends
