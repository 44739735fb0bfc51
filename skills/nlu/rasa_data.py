"""Rasa-format training data (public facade): ``nlu.yml``, ``domain.yml``, stories, rules, CSV.

Public API: ``load_nlu_file``, ``load_csv``, ``load_domain``, ``load_project``,
``load_training_data`` (files/folders -> ``TrainingData``), ``parse_annotated``.
"""

from skills.nlu.data.annotations import parse_annotated
from skills.nlu.data.nlu_file import SourceLine, load_csv, load_nlu_file
from skills.nlu.data.project import (
    DataFiles,
    RasaProject,
    load_config,
    load_data_files,
    load_project,
    load_training_data,
)
from skills.nlu.data.stories import Story
from skills.nlu.domain import Domain, load_domain
from skills.nlu.errors import TrainingDataError

__all__ = [
    "DataFiles",
    "Domain",
    "RasaProject",
    "SourceLine",
    "Story",
    "TrainingDataError",
    "load_config",
    "load_csv",
    "load_data_files",
    "load_domain",
    "load_nlu_file",
    "load_project",
    "load_training_data",
    "parse_annotated",
]
