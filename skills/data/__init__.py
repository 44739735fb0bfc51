"""Frontdoor's shipped assistant: Rasa-format ``nlu.yml`` and ``domain.yml`` plus ``skills.yml``.

The folder is also a Rasa project data layout: ``frontdoor train`` learns from ``nlu.yml``; the
dialogue loads ``domain.yml`` and ``skills.yml`` (see docs/dialogue-and-skills.md).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
NLU_FILE = DATA_DIR / "nlu.yml"
DOMAIN_FILE = DATA_DIR / "domain.yml"
SKILLS_FILE = DATA_DIR / "skills.yml"
