"""Dynamic micro-batching: concurrent ``await``s of one costly batch function share one call.

Requests that arrive while a batch is running (or within ``wait_s`` of the first one) are
encoded together in a worker thread, so 50 concurrent callers cost a few batched encoder calls
instead of 50 single ones, and the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BatchFn = Callable[[Sequence[str]], np.ndarray]


class MicroBatcher:
    """Collects texts from concurrent callers and runs ``fn`` on them in batches."""

    def __init__(
        self, fn: BatchFn, executor: ThreadPoolExecutor, max_batch: int = 64, wait_s: float = 0.0
    ):
        self.fn = fn
        self.executor = executor
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, text: str) -> np.ndarray:
        """The row ``fn`` produces for ``text``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((text, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        # let every caller that is ready in this loop iteration enqueue first
        await asyncio.sleep(self.wait_s)
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                rows = await loop.run_in_executor(self.executor, self.fn, [t for t, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for row, (_, future) in zip(rows, batch, strict=True):
                    if not future.done():
                        future.set_result(row)
