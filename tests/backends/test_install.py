"""A fresh machine resolves the install: pins on the public index, floors the code is tested with."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.helpers.paths import ROOT


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def test_constraints_pin_no_local_versions_which_the_public_index_does_not_serve() -> None:
    local = {name: v for name, v in pins().items() if "+" in v}
    assert local == {}, f"local versions (+cpu, +cu12x) cannot resolve from PyPI: {local}"
    assert "torch" in pins()


def test_every_dependency_floor_admits_the_version_ci_tests() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pinned = pins()
    for req in requirements:
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pinned, f"{req.name} is not pinned in .ci/constraints.txt"
        assert req.specifier.contains(Version(pinned[name]), prereleases=True), (str(req), pinned[name])
    floors = {r.name: min((Version(s.version) for s in r.specifier if s.operator == ">="), default=None)
              for r in requirements}
    # The floors this code needs: Ray Train V2 APIs, torch's device-mapped process groups as tested.
    assert floors["ray"] >= Version("2.60") and floors["torch"] >= Version("2.13"), floors
