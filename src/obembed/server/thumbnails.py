"""Thumbnails of image hits, bounded: a small cache, one render per image at a time, few renders at once.

A thumbnail costs a full decode of a non-JPEG file (a 10,900 x 10,900 PNG: ~0.5 GB and seconds). So
:class:`Thumbnails` keeps the last JPEGs made (by file, mtime, size and thumbnail size), lets concurrent requests
for one thumbnail share a single render, and runs at most ``max_renders`` renders at once; requests beyond
``max_waiting`` waiting ones get 503 + Retry-After. Requested sizes snap up to a few fixed sizes, so an image has
at most that many renders. The rendering itself (reduced decoding) is :func:`obembed.images.thumbnail_jpeg`.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from pathlib import Path

from ..errors import InvalidInputError, ServerBusyError

__all__ = ["SIZES", "Thumbnails"]

SIZES = (64, 128, 256, 512, 1024)
"""The sizes thumbnails are made at; a request for another size gets the next larger one."""


def snap_size(size: int) -> int:
    return next((s for s in SIZES if s >= size), SIZES[-1])


class Thumbnails:
    """The server's thumbnail renderer (see the module docstring). Use from the event loop only."""

    def __init__(self, *, max_renders: int = 2, max_waiting: int = 64, cache_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_renders = max_renders
        self.max_waiting = max_waiting
        self.cache_bytes = cache_bytes
        self._sem: asyncio.Semaphore | None = None
        self._cache: OrderedDict[tuple[object, ...], bytes | str] = OrderedDict()
        self._cached = 0
        self._inflight: dict[tuple[object, ...], asyncio.Future[bytes | str]] = {}
        self._waiting = 0
        self.renders = 0
        """Renders done (for /health and tests)."""

    async def get(self, path: Path, size: int) -> bytes:
        """The JPEG thumbnail of the image file ``path`` (longer side <= the snapped ``size``); an unreadable image
        raises :class:`InvalidInputError` (remembered like a thumbnail, so a broken file is not decoded again)."""
        from starlette.concurrency import run_in_threadpool

        from ..images import thumbnail_jpeg

        size = snap_size(size)
        st = path.stat()
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, size)
        hit = self._cache.get(key)
        if hit is None:
            fut = self._inflight.get(key)
            if fut is not None:  # someone is rendering this one: share it
                hit = await asyncio.shield(fut)
            else:
                if self._waiting >= self.max_waiting:
                    raise ServerBusyError(f"{self._waiting} thumbnails are waiting to be made; retry shortly", 2)
                fut = asyncio.get_running_loop().create_future()
                self._inflight[key] = fut
                self._waiting += 1
                try:
                    if self._sem is None:
                        self._sem = asyncio.Semaphore(self.max_renders)
                    async with self._sem:
                        try:
                            hit = await run_in_threadpool(thumbnail_jpeg, path, size)
                        except InvalidInputError as exc:
                            hit = str(exc)
                        self.renders += 1
                    self._store(key, hit)
                    fut.set_result(hit)
                except BaseException as exc:
                    fut.set_exception(exc)
                    fut.exception()  # mark retrieved: nobody else may be waiting
                    raise
                finally:
                    self._waiting -= 1
                    self._inflight.pop(key, None)
        else:
            self._cache.move_to_end(key)
        if isinstance(hit, str):
            raise InvalidInputError(hit)
        return hit

    def _store(self, key: tuple[object, ...], value: bytes | str) -> None:
        n = len(value)
        if n > self.cache_bytes:
            return
        self._cache[key] = value
        self._cached += n
        while self._cached > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)
