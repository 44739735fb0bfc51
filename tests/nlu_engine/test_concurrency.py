"""Concurrent parsing and the micro-batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from skills.nlu.builtin import BuiltinEngine
from skills.nlu.builtin.batcher import LoopBatcher, MicroBatcher

from .test_persistence import TEXTS


async def test_concurrent_parse_equals_sequential(engine: BuiltinEngine) -> None:
    texts = [f"{t} {i}" for i in range(20) for t in TEXTS]
    engine.clear_cache()
    sequential = [engine.parse_sync(t) for t in texts]
    engine.clear_cache()
    concurrent = await asyncio.gather(*(engine.parse(t) for t in texts))
    assert concurrent == sequential
    # and again from the cache
    assert await asyncio.gather(*(engine.parse(t) for t in texts)) == sequential


async def test_micro_batcher_groups_concurrent_callers() -> None:
    calls: list[int] = []

    def lengths(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([[len(t)] for t in texts], dtype=np.float32)

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(lengths, pool, max_batch=16)
        texts = ["x" * n for n in range(1, 41)]
        rows = await asyncio.gather(*(batcher.submit(t) for t in texts))
    assert [int(r[0]) for r in rows] == list(range(1, 41))
    assert sum(calls) == 40
    assert max(calls) == 16
    assert len(calls) == 3  # 40 concurrent callers -> 16 + 16 + 8


async def test_micro_batcher_passes_errors_to_every_caller() -> None:
    def broken(texts: Sequence[str]) -> np.ndarray:
        raise ValueError("encoder failed")

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(broken, pool)
        results = await asyncio.gather(
            *(batcher.submit(t) for t in ("a", "b")), return_exceptions=True
        )
    assert all(isinstance(r, ValueError) for r in results)


async def test_micro_batcher_chunks_answer_their_callers_as_each_chunk_is_done() -> None:
    calls: list[list[str]] = []

    def lengths(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t)] for t in texts], dtype=np.float32)

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(lengths, pool, max_batch=64, chunk=4)
        texts = ["x" * n for n in (9, 1, 7, 3, 5, 2, 8, 4, 6, 10)]
        rows = await asyncio.gather(*(batcher.submit(t) for t in texts))
    assert [int(r[0]) for r in rows] == [len(t) for t in texts]
    # one micro-batch, sorted by length, cut into chunks of 4 (short messages pad less)
    assert [[len(t) for t in call] for call in calls] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


async def test_loop_batcher_runs_once_per_loop_iteration() -> None:
    calls: list[list[str]] = []

    def upper(texts: list[str]) -> list[str]:
        calls.append(texts)
        if "boom" in texts:
            raise ValueError("fast path failed")
        return [t.upper() for t in texts]

    batcher: LoopBatcher[str] = LoopBatcher(upper)
    assert await asyncio.gather(*(batcher.submit(t) for t in "abc")) == ["A", "B", "C"]
    assert await batcher.submit("d") == "D"
    assert calls == [["a", "b", "c"], ["d"]]
    results = await asyncio.gather(
        *(batcher.submit(t) for t in ("e", "boom")), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
