"""Errors the core raises. Each kind has a stable machine `code`; one HTTP module renders them."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every expected failure; `code` is stable for clients, `message` is for people."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """Refused input; `field` names the one at fault as the request names it (dotted when nested:
    `recurrence.timezone`), when there is one, so a form can show the message beside it."""

    code = "invalid_input"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class AuthenticationFailed(DomainError):
    code = "authentication_failed"


class Forbidden(DomainError):
    code = "forbidden"


class PreconditionFailed(DomainError):
    """A conditional write lost: the caller's version is stale; `current_version` lets it recover."""

    code = "precondition_failed"

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(DomainError):
    """A dependency (the database) cannot serve now; the client may retry after `retry_after_s`."""

    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 2, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class TransientConflict(ServiceUnavailable):
    """The database aborted a transaction it could not serialise (or a deadlock): safe to retry."""

    code = "write_conflict"


class Gone(DomainError):
    """What the caller asks for is no longer kept (a sync token older than the retention window)."""

    code = "gone"
