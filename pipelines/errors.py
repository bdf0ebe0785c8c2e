"""Errors a user can fix (bad source, bad size, corrupt shard).

The CLI turns these into one line and exit code 2; anything else is a bug and
keeps its traceback.
"""


class DataError(ValueError):
    """A problem with the data or the request for it, stated in one line."""
