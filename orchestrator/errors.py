"""User-fixable errors of the orchestrator, and the set the CLI reports in one line."""

from nightshift.models.errors import ModelConfigError
from nightshift.pipelines.errors import DataError


class UserError(ValueError):
    """A bad request (unknown run, bad flag combination...), stated in one line."""


class AttemptInterrupted(RuntimeError):
    """A signal stopped this attempt after its checkpoint: fail, so a launcher with retries resumes it.

    Modal and Ray record a function that returns as a success and never retry
    it; a preempted or timed-out attempt must end in an error instead.
    """

    def __init__(self, run_id: str, step: int, signal_name: str | None) -> None:
        self.run_id, self.step, self.signal_name = run_id, step, signal_name
        super().__init__(f"run {run_id} interrupted ({signal_name or 'stop request'}) at step {step} after its "
                         "checkpoint; the retry resumes from it")


USER_ERRORS: tuple[type[Exception], ...] = (UserError, DataError, ModelConfigError)
