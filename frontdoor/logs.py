"""Structured logging (structlog) for the CLI processes: console for people, JSON for machines.

Standard-library loggers (uvicorn, nats, our ``frontdoor.*``) go through the same renderer.
Secrets are never passed to loggers (settings hold them as ``SecretStr``; URLs are redacted);
as a safety net, ``redact`` removes from every line whatever looks like a credential (session
tokens ``fds_``, API keys ``fdk_``, ``Bearer`` values, JWTs, Slack tokens, a URL's
``user:password@``) and every secret
registered with ``add_secret``. Exceptions are rendered as plain, short text (never the rich
renderer, whose tracebacks cost the event loop a second each).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: What a credential looks like, wherever it appears in a log line.
CREDENTIALS = re.compile(
    r"(?:fd[sk]_[A-Za-z0-9_.\-~+/=]+)"
    r"|(?:(?i:bearer)\s+[^\s'\",}]+)"
    r"|(?:eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.?[A-Za-z0-9_\-]*)"
    r"|(?:xox[a-z]-[A-Za-z0-9\-]+)"
    r"|(?:xapp-[A-Za-z0-9\-]+)"
    r"|(?:(?<=://)[^\s/@:]+:[^\s/@]+(?=@))"  # user:password@ of a URL (NATS_URL, a database)
)
REDACTED = "[redacted]"
_secrets: set[str] = set()


def add_secret(*values: str | None) -> None:
    """Never log these values (configured secrets: signing secrets, tokens); short ones (under
    8 characters) are ignored, they would redact ordinary words."""
    _secrets.update(v for v in values if v and len(v) >= 8)


def redact_text(text: str) -> str:
    """``text`` with credentials and registered secrets replaced by ``[redacted]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return CREDENTIALS.sub(REDACTED, text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``redact_text`` on every string of the event (nested too)."""
    for key, value in event.items():
        if not key.startswith("_"):
            event[key] = _redacted(value)
    return event


class RedactingFilter(logging.Filter):
    """stdlib filter: the record's message (and its exception text) redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except Exception:
                record.msg = str(record.msg)
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        return True


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Route structlog and stdlib logging to stderr as console lines or JSON objects."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # plain text, then redacted (a traceback's locals or message may hold a token)
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
