"""``frontdoor bench nlu`` end to end on tiny CSV and Rasa YAML files (sparse-only engine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RAW

KEYS = {
    "accuracy",
    "macro_f1",
    "train_seconds",
    "latency_p50_ms",
    "latency_p99_ms",
    "throughput_per_s",
    "engine",
}
TEST_ROWS = [
    ("hello bot, good morning", "greet"),
    ("bye for now", "goodbye"),
    ("status of ticket #3", "ticket_status"),
    ("send 10 euro to Ivan", "transfer"),
    ("sales report for last week", "report"),
]


def bench_nlu(train: Path, test: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``frontdoor bench nlu --json --embeddings off`` in a child process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "frontdoor.cli",
            "bench",
            "nlu",
            "--train",
            str(train),
            "--test",
            str(test),
            "--json",
            "--embeddings",
            "off",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def run_bench(train: Path, test: Path) -> dict[str, object]:
    done = bench_nlu(train, test, "--concurrency", "5")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # exactly one JSON object on stdout


def check(result: dict[str, object]) -> None:
    assert KEYS <= set(result)
    assert result["engine"] == "builtin"
    for key in ("accuracy", "macro_f1"):
        assert 0.0 <= float(result[key]) <= 1.0  # type: ignore[arg-type]
    assert float(result["accuracy"]) >= 0.6  # type: ignore[arg-type]
    for key in ("train_seconds", "latency_p50_ms", "latency_p99_ms", "throughput_per_s"):
        assert float(result[key]) > 0  # type: ignore[arg-type]
    assert result["test_examples"] == len(TEST_ROWS)


def test_bench_on_csv_with_any_label_header(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    lines = ["text,my_label"] + [
        f'"{t.replace("[", "").replace("](person)", "").replace("](period)", "")}",{i}'
        for i, texts in RAW.items()
        for t in texts
    ]
    train.write_text("\n".join(lines) + "\n")
    test = tmp_path / "test.csv"
    test.write_text("text,my_label\n" + "".join(f'"{t}",{i}\n' for t, i in TEST_ROWS))
    check(run_bench(train, test))


def test_bench_on_rasa_yaml(tmp_path: Path) -> None:
    def nlu(rows: dict[str, list[str]]) -> str:
        out = ['version: "3.1"', "nlu:"]
        for intent, texts in rows.items():
            out += [f"- intent: {intent}", "  examples: |"] + [f"    - {t}" for t in texts]
        return "\n".join(out) + "\n"

    train = tmp_path / "nlu.yml"
    train.write_text(nlu(RAW))
    test = tmp_path / "test.yml"
    grouped: dict[str, list[str]] = {}
    for text, intent in TEST_ROWS:
        grouped.setdefault(intent, []).append(text)
    test.write_text(nlu(grouped))
    check(run_bench(train, test))


def test_bench_rejects_unknown_file_types(tmp_path: Path) -> None:
    bad = tmp_path / "data.txt"
    bad.write_text("hello\n")
    done = bench_nlu(bad, bad)
    assert done.returncode == 2
    assert "expected a .yml/.yaml" in done.stderr


@pytest.mark.parametrize("header", ["text,intent", "text,category"])
def test_load_data_accepts_common_headers(tmp_path: Path, header: str) -> None:
    from skills.nlu.bench import load_data

    path = tmp_path / "d.csv"
    path.write_text(f"{header}\nhello,greet\nbye,goodbye\n")
    data = load_data(path)
    assert [(e.text, e.intent) for e in data.examples] == [("hello", "greet"), ("bye", "goodbye")]
