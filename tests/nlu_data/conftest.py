"""Fixtures of the Rasa-data tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE_PROJECT = Path(__file__).parent / "fixtures" / "project"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture Rasa project."""
    target = tmp_path / "project"
    shutil.copytree(FIXTURE_PROJECT, target)
    return target
