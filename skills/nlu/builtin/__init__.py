"""Frontdoor's built-in NLU engine (``BuiltinEngine``, ``BuiltinConfig``)."""

from skills.nlu.builtin.config import BuiltinConfig
from skills.nlu.builtin.engine import FALLBACK_INTENT, BuiltinEngine

__all__ = ["FALLBACK_INTENT", "BuiltinConfig", "BuiltinEngine"]
