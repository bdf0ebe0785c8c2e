"""Helpers shared across test folders (paths, data, the CLI, real servers, the Modal app, test families).

Test modules import helpers from here (or from their own folder's helpers.py),
never from a conftest.py: conftest files hold fixtures only.
"""
