"""Configuration errors a user can fix, raised before any compute starts."""


class ModelConfigError(ValueError):
    """A bad model configuration, stated in one line naming the value and what is accepted."""
