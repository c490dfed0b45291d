"""Per-project limits as a worker applies them: the project of a line's batch and its limit on the model.

The limits come from SQL (set over the Administration API), read off the event loop and refreshed in the
background every ``REFRESH_SECONDS`` (calls never queue behind a refresh, only behind the very first load); the
buckets themselves live in the shared limiter (Redis across processes), under keys of their own next to the
providers' (providers/throttle.py), so they hold across every worker process and host.
"""

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy import Engine

from broker.project_limits import all_limits, projects_of
from providers.limits import Limit

REFRESH_SECONDS = 5.0  #: a changed project limit reaches running workers within this
MAX_BATCHES_REMEMBERED = 100_000  #: batch -> project entries kept before the memo starts over


class ProjectLimits:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._limits: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self._projects: dict[str, str] = {}  #: batch id -> project id (never changes)

    async def _load(self) -> None:
        self._limits = await asyncio.to_thread(all_limits, self.engine)
        self._loaded_at = time.monotonic()

    async def _fresh_limits(self) -> None:
        stale = self._loaded_at is None or time.monotonic() - self._loaded_at >= REFRESH_SECONDS
        if stale and (self._loading is None or self._loading.done()):
            self._loading = asyncio.ensure_future(self._load())
        if self._loaded_at is None and self._loading is not None:
            await asyncio.shield(self._loading)

    async def keys(self, batch_ids: Sequence[str], model: str | None) -> list[tuple[str, Limit]]:
        """The limiter keys and limits a call of ``model`` for these batches' lines draws on (usually none)."""
        if model is None:
            return []
        await self._fresh_limits()
        if not self._limits:
            return []
        missing = sorted({b for b in batch_ids if b not in self._projects})
        if missing:
            found = await asyncio.to_thread(projects_of, self.engine, missing)
            if len(self._projects) > MAX_BATCHES_REMEMBERED:
                self._projects.clear()
            self._projects.update(found)
        keys: list[tuple[str, Limit]] = []
        for project in sorted({self._projects.get(b, "") for b in batch_ids}):
            limit = self._limits.get((project, model))
            if limit is not None:
                keys.append((f"project:{project}:{model}", Limit(*limit)))
        return keys
