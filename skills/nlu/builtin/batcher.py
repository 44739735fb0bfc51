"""Dynamic micro-batching: concurrent ``await``s of one batch function share one call.

``MicroBatcher`` (the sentence encoder) runs the batch in a worker thread; ``LoopBatcher`` (the
cheap fast path) runs it in the event loop, once per loop iteration for every message submitted
in the previous one, so numpy is called once per batch instead of once per message.

Requests that arrive while a batch is running (or within ``wait_s`` of the first one) are
encoded together in a worker thread, so 50 concurrent callers cost a few batched encoder calls
instead of 50 single ones, and the event loop stays free.

With ``chunk``, a micro-batch is sorted by text length and cut into chunks of that size, all
queued on the (one-thread) executor at once, and each chunk's callers are answered as soon as
their chunk is done: they go on with their next (cheap) messages on the event loop while the
worker encodes the following chunk, instead of the loop and the worker taking turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

BatchFn = Callable[[Sequence[str]], np.ndarray]
T = TypeVar("T")
U = TypeVar("U")


class MicroBatcher:
    """Collects texts from concurrent callers and runs ``fn`` on them in batches."""

    def __init__(
        self,
        fn: BatchFn,
        executor: ThreadPoolExecutor,
        max_batch: int = 64,
        wait_s: float = 0.0,
        chunk: int | None = None,
    ):
        self.fn = fn
        self.executor = executor
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.chunk = chunk
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
            if self.chunk:
                batch.sort(key=lambda item: len(item[0]))
                parts = [batch[i : i + self.chunk] for i in range(0, len(batch), self.chunk)]
            else:
                parts = [batch]
            # queue every part now: the worker never waits for the loop between parts
            calls = [
                loop.run_in_executor(self.executor, self.fn, [t for t, _ in part]) for part in parts
            ]
            for part, call in zip(parts, calls, strict=True):
                try:
                    rows = await call
                except Exception as exc:
                    _settle(part, None, exc)
                else:
                    _settle(part, list(rows), None)


class LoopBatcher(Generic[T]):
    """Runs ``fn`` in the event loop on every text submitted during one loop iteration."""

    def __init__(self, fn: Callable[[list[str]], Sequence[T]]):
        self.fn = fn
        self._pending: list[tuple[str, asyncio.Future[T]]] = []

    def submit(self, text: str) -> asyncio.Future[T]:
        """A future of ``fn``'s item for ``text`` (callers resumed together share one call)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._run)  # after every callback already ready in this iteration
        self._pending.append((text, future))
        return future

    def _run(self) -> None:
        batch, self._pending = self._pending, []
        try:
            results = self.fn([t for t, _ in batch])
        except Exception as exc:
            _settle(batch, None, exc)
        else:
            _settle(batch, results, None)


def _settle(
    waiting: Sequence[tuple[str, asyncio.Future[U]]],
    results: Sequence[U] | None,
    error: Exception | None,
) -> None:
    """Give each caller of ``waiting`` its item of ``results``, or ``error`` to all of them."""
    for i, (_, future) in enumerate(waiting):
        if future.done():
            continue
        if error is not None or results is None:
            future.set_exception(error or RuntimeError("no result"))
        else:
            future.set_result(results[i])
