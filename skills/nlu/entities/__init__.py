"""Entity extraction for the built-in NLU engine.

``EntityPipeline`` combines regexes, lookup tables, a learned CRF tagger and the built-in value
parsers (numbers, emails, ticket references, dates), then maps every value through synonyms.
"""

from skills.nlu.entities.pipeline import EntityPipeline
from skills.nlu.entities.values import parse_builtin_values

__all__ = ["EntityPipeline", "parse_builtin_values"]
