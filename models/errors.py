"""Typed domain errors; the edges map `code` to GraphQL `extensions.code` (SPEC section 7)."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal by the domain, with a human-readable message naming the record."""

    code: str = "INTERNAL"


class NotFound(DomainError):
    code = "NOT_FOUND"


class UserNotFound(NotFound):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} not found")


class GroupNotFound(NotFound):
    def __init__(self, group_id: int) -> None:
        super().__init__(f"group {group_id} not found")


class DebtNotFound(NotFound):
    def __init__(self, debt_id: int) -> None:
        super().__init__(f"debt {debt_id} not found")


class WebhookEventNotFound(NotFound):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"webhook event {event_id} not found")


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"


class TransitionNotAllowed(DomainError):
    """A move the state machine does not allow (e.g. settling a SETTLED debt)."""

    code = "CONFLICT"

    def __init__(self, entity: str, from_status: str, to_status: str) -> None:
        super().__init__(f"{entity}: {from_status} -> {to_status} is not allowed")
        self.entity, self.from_status, self.to_status = entity, from_status, to_status


class Conflict(DomainError):
    """The request clashes with stored state (email used, event already processed, ...)."""

    code = "CONFLICT"
