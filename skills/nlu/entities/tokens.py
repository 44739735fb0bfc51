"""Tokenisation with character offsets, shared by the tagger and the matchers."""

from __future__ import annotations

import re
from typing import NamedTuple

_TOKEN = re.compile(r"\w+(?:[-'.@]\w+)*|[^\w\s]", re.UNICODE)


class Token(NamedTuple):
    """A token and its ``[start, end)`` character span in the message."""

    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into word and punctuation tokens, keeping character offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
