"""Who may read what (SPEC section 8): a user sees only their own records; a group's
members see the group; an admin sees everything."""

from __future__ import annotations

from api.tokens import Viewer
from schema.context import Context
from schema.errors import Forbidden


def is_self_or_admin(viewer: Viewer, user_id: int) -> bool:
    return viewer.is_admin or viewer.user_id == user_id


def require_self_or_admin(ctx: Context, user_id: int, what: str) -> Viewer:
    """The viewer when it is user `user_id` or an admin, else FORBIDDEN."""
    viewer = ctx.require_viewer()
    if not is_self_or_admin(viewer, user_id):
        raise Forbidden(f"{what} of user {user_id} is visible to that user and admins only")
    return viewer


async def is_member(ctx: Context, group_id: int) -> bool:
    """Whether the signed-in user belongs to group `group_id`."""
    viewer = ctx.require_viewer()
    if viewer.user_id is None:
        return False
    return group_id in await ctx.loaders.group_ids_of_user.load(viewer.user_id)


async def require_group_reader(ctx: Context, group_id: int) -> Viewer:
    """The viewer when an admin or a member of the group, else FORBIDDEN."""
    viewer = ctx.require_viewer()
    if not viewer.is_admin and not await is_member(ctx, group_id):
        raise Forbidden(f"group {group_id} is visible to its members and admins only")
    return viewer


def is_party(viewer: Viewer, debtor_id: int, creditor_id: int) -> bool:
    return viewer.user_id is not None and viewer.user_id in (debtor_id, creditor_id)
