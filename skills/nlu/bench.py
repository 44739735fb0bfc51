"""Benchmark an NLU engine on a train/test pair: accuracy, macro-F1, training time, latency
and concurrent throughput (``frontdoor bench nlu``).

Data files are Rasa YAML (``nlu:``) or CSV with a header row whose first column is the text and
whose second is the intent (``text,intent``, ``text,category``, ...).
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import f1_score

from skills.nlu.errors import TrainingDataError
from skills.nlu.rasa_data import load_csv, load_nlu_file, parse_annotated
from skills.nlu.types import Example, ParseResult, TrainingData

Progress = Callable[[str, float], None]


class BenchResult(BaseModel):
    """What ``frontdoor bench nlu --json`` prints (fractions are 0..1)."""

    engine: str
    accuracy: float
    macro_f1: float
    train_seconds: float
    latency_p50_ms: float
    latency_p99_ms: float
    throughput_per_s: float
    #: extra context (not targets): sizes, fallback share, share of encoder-free parses
    train_examples: int
    test_examples: int
    concurrency: int
    accuracy_counting_fallback_as_wrong: float
    fallback_rate: float
    model_stats: dict[str, Any] = {}


def load_data(path: Path) -> TrainingData:
    """Read a Rasa YAML NLU file or a two-column CSV (first column: text)."""
    suffix = path.suffix.lower()
    if suffix in (".yml", ".yaml"):
        return load_nlu_file(path)
    if suffix != ".csv":
        raise TrainingDataError("expected a .yml/.yaml Rasa NLU file or a .csv file", path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"cannot read file: {exc}", path) from exc
    names = [h.strip().lower() for h in header]
    if (
        names[:1] == ["text"]
        and len(names) == 2
        and names[1] not in ("intent", "category", "label")
    ):
        return _two_column_csv(path)
    return load_csv(path)


def _two_column_csv(path: Path) -> TrainingData:
    """A ``text,<any label name>`` CSV (the shared loader knows only the common names)."""
    examples: list[Example] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise TrainingDataError("a row needs a text and an intent", path, reader.line_num)
            text, spans = parse_annotated(row[0].strip())
            examples.append(Example(text=text, intent=row[1].strip(), entities=spans))
    return TrainingData(examples=examples)


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


async def measure(
    engine: Any, texts: Sequence[str], concurrency: int = 50
) -> tuple[list[ParseResult], list[float], float, list[ParseResult]]:
    """Sequential parses (results, latencies in ms) then ``concurrency`` callers (parses/s)."""
    clear = getattr(engine, "clear_cache", None)
    if clear:
        clear()
    results: list[ParseResult] = []
    latencies: list[float] = []
    for text in texts:
        start = time.perf_counter()
        results.append(await engine.parse(text))
        latencies.append((time.perf_counter() - start) * 1000.0)
    if clear:
        clear()  # throughput is measured on uncached parses too
    concurrent: list[ParseResult | None] = [None] * len(texts)
    next_index = iter(range(len(texts)))

    async def caller() -> None:
        for i in next_index:
            concurrent[i] = await engine.parse(texts[i])

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    throughput = len(texts) / (time.perf_counter() - start)
    return results, latencies, throughput, [r for r in concurrent if r is not None]


def run_bench(
    train: TrainingData,
    test: TrainingData,
    engine_name: str = "builtin",
    config: Any = None,
    concurrency: int = 50,
    progress: Progress | None = None,
) -> BenchResult:
    """Train ``engine_name`` on ``train`` and measure it on ``test``."""
    from skills.nlu.lifecycle.engines import engine_class

    if not test.examples:
        raise TrainingDataError("the test file has no examples")
    cls = engine_class(engine_name)
    start = time.perf_counter()
    engine = cls.train(train, config, progress)
    train_seconds = time.perf_counter() - start
    texts = [e.text for e in test.examples]
    gold = [e.intent for e in test.examples]
    if progress:
        progress(f"parsing {len(texts)} test messages", 1.0)
    results, latencies, throughput, concurrent = asyncio.run(measure(engine, texts, concurrency))
    if [r.intent_ranking[0].name for r in concurrent] != [
        r.intent_ranking[0].name for r in results
    ]:
        raise RuntimeError("concurrent parses disagree with sequential parses")
    predicted = [r.intent_ranking[0].name if r.intent_ranking else r.intent.name for r in results]
    final = [r.intent.name for r in results]
    labels = sorted(set(gold) | set(predicted))
    stats = getattr(getattr(engine, "classifier", None), "stats", {}) or {}
    return BenchResult(
        engine=f"{engine.name}{'+embeddings' if stats.get('cv_full_accuracy') else ''}",
        accuracy=float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)])),
        macro_f1=float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        train_seconds=round(train_seconds, 3),
        latency_p50_ms=round(_percentile(latencies, 50), 3),
        latency_p99_ms=round(_percentile(latencies, 99), 3),
        throughput_per_s=round(throughput, 1),
        train_examples=len(train.examples),
        test_examples=len(texts),
        concurrency=concurrency,
        accuracy_counting_fallback_as_wrong=float(
            np.mean([p == g for p, g in zip(final, gold, strict=True)])
        ),
        fallback_rate=float(np.mean([r.is_fallback for r in results])),
        model_stats={k: v for k, v in stats.items() if k != "cv_threshold_curve"},
    )
