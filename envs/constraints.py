"""Write ../constraints.txt: every package that dejavu and its extras pull in, pinned at the
version installed in this environment (after `pip install -e ".[test]"`).

    python envs/constraints.py
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The exact versions dejavu is tested with (Python 3.11, Linux x86_64): README's quick start
# and .ci/run install with `pip install -c constraints.txt ...`. pyproject.toml declares the
# ranges the code needs. Regenerate after an upgrade with: python envs/constraints.py
"""
# Build tools live in pip's isolated build environment, where constraints do not reach.
SKIP = {"setuptools", "pip", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def applies(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


def closure(requirements: list[Requirement]) -> dict[str, str]:
    """Installed distributions reachable from `requirements` -> their versions."""
    pinned: dict[str, str] = {}
    todo = [r for r in requirements if applies(r)]
    while todo:
        requirement = todo.pop()
        name = canonical(requirement.name)
        if name in pinned or name in SKIP or name == "dejavu":
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        pinned[name] = dist.version
        todo += [r for r in map(Requirement, dist.requires or []) if applies(r)]
    return pinned


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    pins = closure([Requirement(r) for r in declared])
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n")
    print(f"constraints.txt: {len(lines)} packages")


if __name__ == "__main__":
    main()
