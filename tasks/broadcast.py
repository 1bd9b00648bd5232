"""Live push of committed status changes: in-process, or Redis pub/sub when distributed.

Placeholder interface; the GraphQL issue implements fan-out to subscribers."""

from __future__ import annotations

from api.settings import Settings
from models.changes import StatusChange, set_publisher


class Broadcast:
    """Publishes changes after commit; subscribers live in `schema/`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def publish(self, changes: list[StatusChange]) -> None:
        pass

    async def start(self) -> None:
        set_publisher(self.publish)

    async def close(self) -> None:
        set_publisher(None)
