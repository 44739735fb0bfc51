"""First start of ``frontdoor up``: make sure an NLU model exists, training one if needed.

With no model in the registry, the shipped assistant's data (``skills/data/nlu.yml``) is trained
into a new versioned model and made ``latest`` — once; later starts load it in a second. A model
trained or published by you (``frontdoor train`` / ``frontdoor nlu publish``) is never replaced.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("frontdoor.nlu")


async def ensure_default_model(registry: Any, *, data_file: Path | None = None) -> str:
    """Return the latest model version, training the shipped data into ``registry`` if empty."""
    latest = await registry.latest()
    if latest is not None:
        return str(latest)
    from skills.data import NLU_FILE
    from skills.nlu.lifecycle.training import train_model
    from skills.nlu.rasa_data import load_nlu_file

    source = data_file or NLU_FILE
    data = load_nlu_file(source)
    print(
        f"No NLU model yet: training one on {len(data.examples)} examples of "
        f"{len(data.intents)} intents from {source.name} (first start only)...",
        file=sys.stderr,
        flush=True,
    )
    last_stage = [""]

    def progress(stage: str, fraction: float) -> None:
        if stage != last_stage[0]:
            last_stage[0] = stage
            print(f"  {fraction:4.0%} {stage}", file=sys.stderr, flush=True)

    started = time.monotonic()
    root = getattr(registry, "root", None)
    if root is not None:  # a models folder: train straight into it
        artifact = await asyncio.to_thread(
            train_model, data, Path(root), evaluate=False, progress=progress
        )
        await registry.set_latest(artifact.version)
    else:  # e.g. the NATS object store: train aside, then publish
        with tempfile.TemporaryDirectory(prefix="frontdoor-model-") as tmp:
            artifact = await asyncio.to_thread(
                train_model, data, Path(tmp), evaluate=False, progress=progress
            )
            await registry.publish(Path(artifact.path), make_latest=True)
    print(
        f"  model {artifact.version} ready in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    log.info("default NLU model trained", version=artifact.version)
    return str(artifact.version)
