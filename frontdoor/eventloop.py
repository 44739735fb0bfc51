"""Run Frontdoor's asyncio programs on uvloop when it is installed, plain asyncio otherwise.

uvloop comes with ``uvicorn[standard]``; it runs the event loop itself in C (cheaper callbacks,
direct socket writes). Before the loop starts, the objects created so far (modules, classes,
pydantic schemas: hundreds of thousands) are moved out of the garbage collector's sight with
``gc.freeze()``: a full collection otherwise walks all of them and stalls the loop for ~30 ms,
which showed up as the p99 of the bus round trip (see docs/spine.md, *Measured*).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

LoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_name(choice: LoopChoice = "auto") -> str:
    """The loop ``run`` will use for ``choice``: ``uvloop`` or ``asyncio``."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("uvloop is not installed (pip install uvloop)") from None
        return "asyncio"
    return "uvloop"


def run(coro: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """``asyncio.run(coro)``, on uvloop unless ``choice`` is ``asyncio`` or it is missing."""
    gc.freeze()  # start-up objects live as long as the process: keep them out of collections
    if loop_name(choice) == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
