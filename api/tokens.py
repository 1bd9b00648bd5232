"""Bearer tokens: JWT HS256 with `sub`, `role` (`admin` or `user`) and `exp`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import jwt

from api.settings import Settings

Role = Literal["admin", "user"]


class InvalidToken(Exception):
    """The token is missing, expired, forged or malformed."""


@dataclass(frozen=True, slots=True)
class Viewer:
    sub: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def user_id(self) -> int | None:
        """The user's id for a user token; None for an admin (who needs no user row)."""
        return int(self.sub) if self.role == "user" and self.sub.isdigit() else None


def issue_token(settings: Settings, sub: str, role: Role, ttl: timedelta = timedelta(hours=12)) -> str:
    exp = datetime.now(timezone.utc) + ttl
    return jwt.encode({"sub": sub, "role": role, "exp": exp}, settings.jwt_secret, algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Viewer:
    try:
        claims = jwt.decode(
            token, settings.jwt_secret, algorithms=["HS256"], options={"require": ["sub", "role", "exp"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    role, sub = claims.get("role"), claims.get("sub")
    if role not in ("admin", "user") or not isinstance(sub, str) or not sub:
        raise InvalidToken("token needs a `sub` and a `role` of admin or user")
    if role == "user" and not sub.isdigit():
        raise InvalidToken("a user token's `sub` is the user's id")
    return Viewer(sub=sub, role=role)


def viewer_from_header(settings: Settings, authorization: str | None) -> Viewer | None:
    """Viewer for an `Authorization: Bearer …` value; None when absent; raises when bad."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("expected `Authorization: Bearer <jwt>`")
    return decode_token(settings, token.strip())
