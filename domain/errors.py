"""The one error taxonomy: every layer raises these, the HTTP layer maps them in one place."""

from __future__ import annotations


class InsPilotError(Exception):
    """Base of every error the service reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(InsPilotError):
    """A request broke a rule; the message names the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFound(InsPilotError):
    """Something the request refers to does not exist (an unknown participant)."""


class NotPermitted(InsPilotError):
    """The request is well formed but this caller may not make it (outside the roster)."""


class TooManyJobs(InsPilotError):
    """A user already has as many generation jobs running as one user may."""


class ModelError(InsPilotError):
    """A model service failed; the request produced no partial result."""


class ModelUnavailable(ModelError):
    """The model service cannot be reached or has no capacity now."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelTimeout(ModelError):
    """The model service did not answer within the step's deadline."""


class ContentRejected(ModelError):
    """The model's content filter refused the prompt or the answer."""


class ModelAnswerInvalid(ModelError):
    """The model answered, but not in a shape we can use, even after asking again."""


class StorageError(InsPilotError):
    """The experiment store failed; the participant's previous data is untouched."""


class StorageFull(StorageError):
    """The store's disk is below its free-space floor: refused before anything is written."""
