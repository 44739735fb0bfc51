"""Ticket notices by e-mail (SMTP, aiosmtplib): off unless ``FRONTDOOR_SMTP_HOST`` is set."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events import subjects
from events.bus import Bus, Worker
from events.envelope import Envelope
from events.follow import FollowPolicy

from .chat import TICKET_EVENTS
from .conversations import TicketConversations
from .texts import NOTICE_TYPES, TICKET_CREATED, Notice, learn, notice_for

log = logging.getLogger("frontdoor.ticket_updates")

FOOTER = "You get this e-mail because a support ticket was opened with this address."


class SmtpSettings(BaseSettings):
    """SMTP server for ticket notices (env ``FRONTDOOR_SMTP_*``); no host, no e-mail."""

    model_config = SettingsConfigDict(env_prefix="FRONTDOOR_SMTP_", extra="ignore")

    host: str | None = Field(default=None, description="SMTP server; unset: no e-mail at all")
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = Field(default=None, description="Login, when the server wants one")
    password: SecretStr | None = Field(default=None, description="Its password (never logged)")
    from_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FRONTDOOR_SMTP_FROM", "from_address"),
        description="The notices' From, e.g. 'Support <support@example.com>'",
    )
    starttls: bool = Field(
        default=True, description="Require STARTTLS (false only for a trusted local relay)"
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    attempts: int = Field(default=4, ge=1, le=20, description="Tries per e-mail, then logged")

    @property
    def enabled(self) -> bool:
        """True when e-mail notices are on."""
        return bool(self.host)

    @model_validator(mode="after")
    def _complete(self) -> SmtpSettings:
        if not self.host:
            return self
        if not self.from_address or "@" not in parseaddr(self.from_address)[1]:
            raise ValueError(
                "FRONTDOOR_SMTP_FROM (an e-mail address) is required with FRONTDOOR_SMTP_HOST"
            )
        if bool(self.username) != bool(self.password):
            raise ValueError(
                "set both FRONTDOOR_SMTP_USERNAME and FRONTDOOR_SMTP_PASSWORD, or neither"
            )
        return self


class Mailer:
    """Sends one plain-text e-mail per call (a connection each: notices are rare)."""

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.host or not settings.from_address:
            raise ValueError("SMTP is not configured")
        self._settings = settings
        self.sent = 0

    def message(self, to: str, subject: str, body: str, *, message_id: str) -> EmailMessage:
        """The e-mail (``message_id`` lets the receiving side drop a resent copy)."""
        message = EmailMessage()
        message["From"] = self._settings.from_address
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = message_id
        message.set_content(body)
        return message

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; raises on any failure (the caller retries)."""
        s = self._settings
        assert s.host is not None
        await aiosmtplib.send(
            message,
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            start_tls=s.starttls,
            timeout=s.timeout_seconds,
        )
        self.sent += 1


class EmailNotices:
    """Follows the ticket events and e-mails each notice to the ticket's requester e-mail.

    Its own durable consumer (``gw_ticket_emails``, shared by the gateway replicas), so a slow
    or failing SMTP server never holds up the chat notices; several e-mails are sent at once.
    A failed e-mail is retried ``attempts`` times in all, then logged once and dropped.
    """

    def __init__(
        self, bus: Bus, mailer: Mailer, settings: SmtpSettings, conversations: TicketConversations
    ) -> None:
        self._bus = bus
        self.mailer = mailer
        self._conversations = conversations
        self._policy = FollowPolicy(
            ordered=False,
            attempts=settings.attempts,
            retry_delays=(2.0, 10.0, 30.0),
            ack_wait=max(60.0, 3 * settings.timeout_seconds),
            concurrency=4,
        )
        self._worker: Worker | None = None

    async def start(self) -> None:
        """Start following."""
        self._worker = await self._bus.follow(
            subjects.TICKET_EMAILS_CONSUMER, TICKET_EVENTS, self.handle, self._policy
        )

    async def stop(self) -> None:
        """Stop following (an e-mail being sent is finished, or sent later)."""
        if self._worker is not None:
            await self._worker.stop(grace=5.0)
            self._worker = None

    async def handle(self, _seq: int, event: Envelope) -> None:
        """E-mail the notice ``event`` gives (raise: retried)."""
        if event.type == TICKET_CREATED:
            # Learnt here too: this follower may reach a ticket's first change before the
            # chat follower has stored where the ticket came from (same value either way).
            learnt = learn(event)
            if learnt is not None:
                try:
                    await self._conversations.remember(*learnt)
                except Exception as exc:  # the chat follower stores it too, and says so
                    log.debug("could not remember ticket #%s: %r", learnt[0], exc)
            return
        if event.type not in NOTICE_TYPES:
            return
        number = event.payload.get("ticket")
        record = await self._conversations.lookup(number) if isinstance(number, int) else None
        notice = notice_for(event, record)
        if notice is None or "@" not in notice.requester_email:
            return
        await self.mailer.send(self.message(event, notice))

    def message(self, event: Envelope, notice: Notice) -> EmailMessage:
        """The e-mail of ``notice`` (its Message-ID derives from the event id)."""
        return self.mailer.message(
            notice.requester_email,
            notice.email_subject,
            f"{notice.text}\n\n-- \n{FOOTER}\n",
            message_id=f"<ticket-{notice.ticket}-{event.id}@frontdoor>",
        )
