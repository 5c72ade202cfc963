"""Domain errors. Each interface (form, API, admin) turns them into its own clear message."""


class DomainError(Exception):
    """A request the rules refuse. `field` names the input at fault, where there is one."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidTransition(DomainError):
    status_code = 409


class PermissionDenied(DomainError):
    status_code = 403


class Conflict(DomainError):
    status_code = 409
