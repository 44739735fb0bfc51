"""Replies -> Slack mrkdwn/blocks (escaped), and Slack text -> the widget's tiny markdown."""

from __future__ import annotations

from bots.slack.format import from_slack, reply_blocks, reply_text, to_mrkdwn
from events.payloads import Button, Reply


def test_user_text_cannot_forge_mentions_or_links() -> None:
    out = to_mrkdwn("<!channel> hi <@U123> & <https://evil.example|click>")
    assert "<!channel>" not in out and "<@U123>" not in out and "<https://" not in out
    assert out.startswith("&lt;!channel&gt; hi &lt;@U123&gt; &amp;")


def test_tiny_markdown_becomes_mrkdwn() -> None:
    assert to_mrkdwn("**Ticket #12** created, see [it](https://t.example/12?a=1&b=2)") == (
        "*Ticket #12* created, see <https://t.example/12?a=1&amp;b=2|it>"
    )
    assert to_mrkdwn("[x](javascript:alert(1))") == "[x](javascript:alert(1))"  # not a link


def test_reply_status_and_reference() -> None:
    failed = Reply(text="Sorry, that failed.", status="error", reference="ab12cd34")
    assert reply_text(failed) == ":warning: Sorry, that failed. (reference ab12cd34)"
    blocks = reply_blocks(
        Reply(
            text="x" * 5000,
            buttons=[Button(title="Yes", payload="/affirm")],
            image="https://c/p.png",
        )
    )
    assert [b["type"] for b in blocks] == ["section", "section", "image", "actions"]
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert blocks[-1]["elements"][0]["value"] == "/affirm"


def test_slack_text_to_widget_markdown() -> None:
    text = "Try *this* <https://a.example/x|the page> or <https://b.example>, ask <@U1|ana> &lt;3"
    assert from_slack(text) == (
        "Try **this** [the page](https://a.example/x) or https://b.example, ask @ana <3"
    )
