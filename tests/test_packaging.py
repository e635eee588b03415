"""Every top-level package ships: `pyproject.toml`'s package list names each one (a
package left out imports in the source tree and fails in an installed `opengate`, as
`ckan` did)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "bench"}


def test_every_package_is_in_the_distribution():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    named = {pattern.rstrip("*") for pattern in include}
    packages = {
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in NOT_SHIPPED and not p.parent.name.startswith(".")
    }
    assert packages - named == set(), "add them to [tool.setuptools.packages.find] include"
