"""nightshift's benchmark suite: one harness, one entry point (`python -m benchmarks`), results as JSON.

Not part of the installed package: it runs from a checkout (the project's
root on sys.path). It sits on top of the layers: it may import nightshift,
nightshift never imports it (tests/test_layers.py).
"""
