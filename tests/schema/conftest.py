from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api.settings import Settings
from tests.schema.api import Api, start_api


@pytest.fixture
async def api(db: Settings) -> AsyncIterator[Api]:
    """The schema on the test's database, with a started broadcast (in `mode`)."""
    started = await start_api(db)
    yield started
    await started.broadcast.close()
