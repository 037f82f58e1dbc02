"""Print pip constraints that pin every requirement to the lowest version pyproject.toml allows.

Usage: python scripts/floors.py [--check | --extras] [pyproject.toml]

With ``--extras``, it prints the promised extras instead, comma-separated, for an install
of the package with every one of them.

With ``--check``, nothing is printed unless the running interpreter has a version other
than the floor installed for one of them (it then names each, and exits 1): the
lowest-versions lane runs it to show that it tested the floors and not something newer.

Every requirement of the package and of each of its extras except ``dev`` must name a floor
(``>=X`` or ``==X``); it is printed as ``name==X``, with its environment marker kept. A
requirement without a floor is an error: a version we claim must be one we can test.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the lane runs on whichever Python the machine has
    import tomli as tomllib

#: Extras that are tools for working on the package, not promises to its users.
UNPROMISED = {"dev"}


def floor(requirement: Requirement) -> str:
    """The lowest version `requirement` allows, or SystemExit naming it."""
    floors = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
    if len(floors) != 1:
        raise SystemExit(f"{requirement}: give it exactly one floor (>=X) so it can be tested")
    return floors[0]


def extras(pyproject: dict[str, Any]) -> list[str]:
    """The extras the package promises its users."""
    return sorted(set(pyproject["project"].get("optional-dependencies", {})) - UNPROMISED)


def constraints(pyproject: dict[str, Any]) -> list[str]:
    project = pyproject["project"]
    name = canonicalize_name(project["name"])
    wanted = list(project["dependencies"])
    for extra in extras(pyproject):
        wanted.extend(project["optional-dependencies"][extra])
    pins: dict[str, str] = {}
    for text in wanted:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == name:
            continue  # an extra that includes another
        pin = f"{requirement.name}=={floor(requirement)}"
        if requirement.marker is not None:
            pin += f"; {requirement.marker}"
        pins[str(requirement.marker) + canonicalize_name(requirement.name)] = pin
    return sorted(pins.values())


def mismatches(pins: list[str]) -> list[str]:
    """The pins the running interpreter does not have installed exactly, each explained."""
    wrong = []
    for pin in pins:
        requirement = Requirement(pin)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            wrong.append(
                f"{requirement.name}: not installed, the floor is {requirement.specifier}"
            )
            continue
        if not requirement.specifier.contains(installed, prereleases=True):  # 4.0.0 is ==4
            wrong.append(
                f"{requirement.name}: {installed} installed, the floor is {requirement.specifier}"
            )
    return wrong


def main(argv: list[str]) -> int:
    paths = [arg for arg in argv if not arg.startswith("--")]
    pyproject = tomllib.loads(Path(paths[0] if paths else "pyproject.toml").read_text("utf-8"))
    if "--extras" in argv:
        print(",".join(extras(pyproject)))
        return 0
    pins = constraints(pyproject)
    if "--check" not in argv:
        print("\n".join(pins))
        return 0
    wrong = mismatches(pins)
    for line in wrong:
        print(line, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
