"""Task helpers."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[object] | None, *, attempts: int = 20) -> None:
    """Cancel ``task`` and wait until it is done.

    Cancels again while it keeps running: on Python 3.11 ``asyncio.wait_for`` (used inside
    nats-py's ``next_msg``) can swallow a cancellation that races with a message arriving.
    """
    if task is None:
        return
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if task.done():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
