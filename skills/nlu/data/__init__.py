"""Readers of Rasa-format files (YAML with line numbers, annotations, nlu, stories, projects).

Import the public API from ``skills.nlu.rasa_data``.
"""
