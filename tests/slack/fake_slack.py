"""The Slack stand-in of the tests lives in the product (``frontdoor bench chaos`` uses it)."""

from frontdoor.slack_standin import BOT_ID, BOT_USER, TEAM, Call, FakeSlack, event_body, sign

__all__ = ["BOT_ID", "BOT_USER", "TEAM", "Call", "FakeSlack", "event_body", "sign"]
