"""Requesters hear about their tickets: a message in the conversation the ticket was opened in
(widget, REST, Slack thread or DM) when support comments publicly or the status changes, and
optionally an e-mail.

- ``TicketConversations``: ticket number -> the requester's conversation (KV
  ``fd_ticket_conversations``), learnt from ``ticket.created``.
- ``ChatNotices``: follows the ticket events (a durable consumer every gateway replica shares)
  and publishes one ``reply`` per notice into that conversation; the channels deliver it like
  any reply (the widget live and after a reload, REST late replies, the Slack thread).
- ``EmailNotices``: the same notices by e-mail through SMTP (``SmtpSettings``; off unless
  ``FRONTDOOR_SMTP_HOST`` is set).
"""

from .chat import ChatNotices
from .conversations import TicketConversation, TicketConversations
from .mail import EmailNotices, Mailer, SmtpSettings
from .texts import Notice, notice_for

__all__ = [
    "ChatNotices",
    "EmailNotices",
    "Mailer",
    "Notice",
    "SmtpSettings",
    "TicketConversation",
    "TicketConversations",
    "notice_for",
]
