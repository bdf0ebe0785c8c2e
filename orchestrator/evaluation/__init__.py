"""Scoring: bits per byte on the validation split.

Beside it: ablations of a family's mechanisms, reference compressors on the same bytes.
"""
