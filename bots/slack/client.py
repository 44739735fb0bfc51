"""The Slack Web API client: our base URL, our token, and retries that respect ``Retry-After``."""

from __future__ import annotations

import logging

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from .settings import ResolvedSlack

#: Slack API errors that retrying cannot fix (the reply is dropped and logged instead).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "restricted_action",
        "cannot_reply_to_message",
        "thread_not_found",
        "message_not_found",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
    }
)


def build_web_client(config: ResolvedSlack, *, token: str | None = None) -> AsyncWebClient:
    """An ``AsyncWebClient`` on ``config.api_url``.

    A ``429`` is retried after the ``Retry-After`` seconds Slack asks for (up to
    ``rate_limit_retries`` times); connection resets and 500/503 are retried once.
    """
    return AsyncWebClient(
        token=token or config.bot_token.get_secret_value(),
        base_url=config.api_url,
        timeout=15,
        logger=logging.getLogger("frontdoor.slack.web"),
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=config.rate_limit_retries),
            AsyncServerErrorRetryHandler(max_retry_count=1),
        ],
    )
