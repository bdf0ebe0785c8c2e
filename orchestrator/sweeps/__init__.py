"""Sweeps of (dataset size x model variant x seed) cells.

The spec and its plan, the run through a backend, the record in the store, reports across their runs.
"""
