"""Turn a ``Reply`` into a Slack message (mrkdwn text + Block Kit), and Slack text back to plain.

Reply text is data from users and services: ``&``, ``<`` and ``>`` are escaped as Slack requires,
so nobody can forge a mention (``<!channel>``) or a link. The tiny markdown the widget knows
(``**bold**``, ``*italic*``/``_italic_``, `` `code` ``, ``[label](http(s)://...)``) is converted to
Slack's mrkdwn after escaping.
"""

from __future__ import annotations

import html
import re
from typing import Any

from events.payloads import Reply

#: Prefix of the action ids of quick-reply buttons (Slack wants them unique per message).
QUICK_REPLY_ACTION = "fd_quick_reply"
#: Slack's limits: 3000 characters in a section, 75 in a button text, 2000 in a button value.
_SECTION_LIMIT = 3000
_BUTTON_TEXT_LIMIT = 75
_MAX_BUTTONS = 25

_MD_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s)]{1,2000})\)")
_MD_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_SLACK_MENTION = re.compile(r"<[@#!]([^|>]+)(?:\|([^>]*))?>")
_STATUS_PREFIX = {"error": ":warning: ", "denied": ":no_entry: ", "invalid": ":grey_question: "}


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    """Escape ``text`` and convert the widget's tiny markdown to Slack mrkdwn."""
    out = escape(text)
    # Links first: their labels may hold bold markers; the URL was escaped like everything else.
    out = _MD_LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1).replace('|', '/')}>", out)
    return _MD_BOLD.sub(r"*\1*", out)


def from_slack(text: str) -> str:
    """Slack message text -> plain text with the tiny markdown (for the widget).

    ``<https://x|label>`` becomes ``[label](https://x)``, mentions keep their label, Slack's
    ``*bold*`` becomes ``**bold**`` and the HTML entities are decoded. The result is still
    data: the widget renders it with ``textContent``.
    """

    def link(m: re.Match[str]) -> str:
        url, label = m.group(1), m.group(2)
        if url.startswith("mailto:"):
            return label or url[len("mailto:") :]
        return f"[{label}]({url})" if label else url

    out = _SLACK_LINK.sub(link, text)
    out = _SLACK_MENTION.sub(lambda m: "@" + (m.group(2) or m.group(1)), out)
    out = re.sub(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])", r"**\1**", out)
    return html.unescape(out)


def reply_text(reply: Reply) -> str:
    """The text to show for ``reply`` (status marker and error reference included), escaped."""
    text = reply.text.strip() or _fallback_text(reply)
    if reply.status == "error" and reply.reference and reply.reference not in text:
        text += f" (reference {reply.reference})"
    return _STATUS_PREFIX.get(reply.status, "") + to_mrkdwn(text)


def _fallback_text(reply: Reply) -> str:
    if reply.status == "error":
        return "Sorry, something went wrong."
    if reply.image:
        return "Here is the chart."
    return "Done."


def reply_blocks(reply: Reply) -> list[dict[str, Any]]:
    """Block Kit blocks for ``reply``: its text, its image, its quick-reply buttons."""
    text = reply_text(reply)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
        for chunk in _chunks(text, _SECTION_LIMIT)
    ]
    if reply.image and reply.image.startswith(("https://", "http://")):
        blocks.append({"type": "image", "image_url": reply.image, "alt_text": "chart"})
    if reply.buttons:
        blocks.append(buttons_block(reply.buttons))
    return blocks


def buttons_block(buttons: list[Any]) -> dict[str, Any]:
    """An actions block with one button per quick reply; pressing it sends its payload."""
    elements = [
        {
            "type": "button",
            "action_id": f"{QUICK_REPLY_ACTION}:{i}",
            "text": {"type": "plain_text", "text": b.title[:_BUTTON_TEXT_LIMIT], "emoji": True},
            "value": b.payload,
        }
        for i, b in enumerate(buttons[:_MAX_BUTTONS])
    ]
    return {"type": "actions", "block_id": "fd_quick_replies", "elements": elements}


def _chunks(text: str, size: int) -> list[str]:
    if len(text) <= size:
        return [text]
    out: list[str] = []
    while text:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        out.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return out
