"""PromptWatcher: live prompt edits, watched with watchfiles (inotify and its kin).

Every catalog's directory is watched; a burst of changes (an editor's save is often a
temporary file, a rename and a chmod) arrives as one debounced batch, and each catalog
whose files changed reloads once. A refused edit is one error line naming the file and
the reason; the catalog keeps serving its last good set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import watchfiles

from adapters.filesystem_prompts import FilesystemPromptCatalog

logger = logging.getLogger("inspilot.prompts")


class PromptWatcher:
    """Reloads each catalog whose directory changed, while the app runs (start/close)."""

    def __init__(
        self,
        catalogs: Sequence[FilesystemPromptCatalog],
        *,
        debounce_ms: int = 1600,
        enabled: bool = True,
    ) -> None:
        self._catalogs = tuple(catalogs)
        self._debounce_ms = debounce_ms
        self._enabled = enabled
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._enabled or not self._catalogs or self._task is not None:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._watch(), name="prompt-watcher")
        # The task's first step sets the watches (synchronously, before its first wait in
        # a thread): yield to it once, so an edit made right after start-up is seen.
        await asyncio.sleep(0)

    async def close(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(5.0):
                await self._task
        except TimeoutError:
            self._task.cancel()
        self._task = None

    def _changed(self, paths: set[str]) -> list[FilesystemPromptCatalog]:
        changed = [Path(path) for path in paths]
        return [
            catalog
            for catalog in self._catalogs
            if any(path.is_relative_to(catalog.directory) for path in changed)
        ]

    async def _watch(self) -> None:
        directories = sorted({str(catalog.directory) for catalog in self._catalogs})
        try:
            watch = watchfiles.awatch(
                *directories,
                debounce=self._debounce_ms,
                stop_event=self._stop,
            )
            async for changes in watch:
                for catalog in self._changed({path for _, path in changes}):
                    await self._reload(catalog)
        except Exception:
            # Never take the service down: it keeps serving the last good sets.
            logger.exception("prompt watcher stopped; prompt edits need a restart now")

    async def _reload(self, catalog: FilesystemPromptCatalog) -> None:
        before = catalog.set_version
        result = await asyncio.to_thread(catalog.reload)
        if not result.applied:
            logger.error(
                "prompt edit refused: %s: %s (still serving version %s of %s)",
                catalog.directory / (result.file or ""),
                result.reason,
                result.set_version,
                catalog.directory,
            )
        elif result.changed:
            logger.info(
                "prompt set %s reloaded: version %s -> %s",
                catalog.directory,
                before,
                result.set_version,
            )
