"""Keep long-lived objects out of the garbage collector's full passes (``gc.freeze``).

A process that loaded an NLU model, pydantic schemas and a web app holds several hundred
thousand objects that live as long as it does. Python's full (generation 2) collection walks all
of them, and while it does the event loop stands still: ~100-170 ms here, every conversation
of the process at once, which showed as the p99 of ``frontdoor bench e2e``. Freezing moves them
to a permanent generation the collector does not walk; reference counting still frees them.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("frontdoor.memory")


def freeze_long_lived(reason: str) -> None:
    """Collect the garbage, then freeze every object alive now.

    Call it after loading something that stays (a server's start-up, a new NLU model, a
    knowledge index). Objects frozen earlier are unfrozen first, so what was replaced since
    (an old model) is collected rather than kept forever. Only a process that opted in by
    freezing before its event loop started (``frontdoor.eventloop.run``) is changed: a test run
    or an application that embeds these packages keeps its collector as it is.
    """
    if gc.get_freeze_count() == 0:
        return
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.debug(
        "froze %d long-lived objects after %s in %.0f ms",
        gc.get_freeze_count(),
        reason,
        (time.perf_counter() - started) * 1000,
    )
