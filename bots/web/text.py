"""Text at the edge: one rule for every string a caller sends.

``clean_text``: a lone surrogate (``"a\\ud800b"`` in JSON: not Unicode, cannot be stored or
sent on) is refused; control and format characters (Unicode categories Cc and Cf: NUL, escape
sequences, zero-width characters, bidi overrides) are removed, except newline and tab; the
result is normalised to NFC. ``EdgeText`` is that rule as a pydantic type, ``clean_json``
applies it to every string (and key) of a JSON value.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator

_KEEP = frozenset("\n\t")
_STRIPPED = frozenset(("Cc", "Cf"))


class BadText(ValueError):
    """Text that is not valid Unicode (a lone surrogate)."""


def clean_text(value: str) -> str:
    """``value`` without control/format characters (but ``\\n``, ``\\t``), in NFC;
    ``BadText`` for a lone surrogate."""
    if value.isascii():
        if value.isprintable():
            return value  # the common case: nothing to do
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadText("the text contains a lone surrogate (it is not valid Unicode)") from None
    value = "".join(ch for ch in value if ch in _KEEP or unicodedata.category(ch) not in _STRIPPED)
    return unicodedata.normalize("NFC", value)


def printable(value: object) -> str:
    """``value`` as text that can always be encoded (lone surrogates escaped), for messages."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def clean_json(value: Any) -> Any:
    """``value`` (parsed JSON) with ``clean_text`` applied to every string and key."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


#: A string a caller sent, cleaned by ``clean_text`` (a lone surrogate is a validation error).
EdgeText = Annotated[str, AfterValidator(clean_text)]
