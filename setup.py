"""Packages of the wheel: `nightshift` and its three layers, each mapped from its top-level folder.

The folders stay where the design card puts them (models/, pipelines/,
orchestrator/); their import names live under `nightshift.*`, so a user's own
`models/` package never collides with ours. Metadata is in pyproject.toml.
"""

from setuptools import find_packages, setup

LAYERS = ("pipelines", "models", "orchestrator")

packages = ["nightshift"] + [f"nightshift.{layer}{'.' + sub if sub else ''}"
                             for layer in LAYERS for sub in ("", *find_packages(layer))]
setup(packages=packages, package_dir={"nightshift": "nightshift", **{f"nightshift.{n}": n for n in LAYERS}},
      # the planner's recorded figures, generated from benchmarks/results/ by `python -m benchmarks tables`
      package_data={"nightshift.orchestrator.planning": ["recorded.json"]})
