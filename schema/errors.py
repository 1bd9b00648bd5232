"""GraphQL errors: the one place an exception becomes an `extensions.code` (SPEC section 7)."""

from __future__ import annotations

import logging

from graphql import GraphQLError

from models.errors import DomainError

log = logging.getLogger("trackit.graphql")

INTERNAL = "INTERNAL_SERVER_ERROR"


class ApiError(Exception):
    """A refusal by the GraphQL layer itself; `code` is its `extensions.code`."""

    code = INTERNAL


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"

    def __init__(self, reason: str = "sign in: send `Authorization: Bearer <jwt>`") -> None:
        super().__init__(reason)


class Forbidden(ApiError):
    code = "FORBIDDEN"


class NotFound(ApiError):
    code = "NOT_FOUND"


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"


def error_code(error: GraphQLError) -> str:
    """The `extensions.code` for `error`, from the typed exception behind it."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        # Parse and validation errors (depth, size, unknown fields, bad variables).
        return BadUserInput.code
    if isinstance(original, (ApiError, DomainError)):
        return original.code
    return INTERNAL



def annotate_errors(errors: list[GraphQLError]) -> None:
    """Give every error its code; unexpected ones are logged and their message hidden."""
    for error in errors:
        code = error_code(error)
        if code == INTERNAL:
            log.error("unexpected error in a GraphQL operation", exc_info=error.original_error)
            error.message = "internal error (logged on the server)"
        error.extensions = {**(error.extensions or {}), "code": code}
