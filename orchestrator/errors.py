"""User-fixable errors of the orchestrator, and the set the CLI reports in one line."""

from nightshift.models.errors import ModelConfigError
from nightshift.pipelines.errors import DataError


class UserError(ValueError):
    """A bad request (unknown run, bad flag combination...), stated in one line."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, DataError, ModelConfigError)
