"""Input and output models of the generative service's actions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.envelope import Channel

Mode = Literal["llm", "extractive"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChatLine(_In):
    """One line of a conversation given inline."""

    author: str = Field(default="user", max_length=100)
    text: str = Field(min_length=1, max_length=4000)


class ConversationRef(_In):
    """A conversation on the bus."""

    channel: Channel
    id: str = Field(min_length=1, max_length=256)


class Summarize(_In):
    """``summarize``: exactly one of ``text``, ``messages``, ``ticket`` or ``conversation``."""

    text: str | None = Field(default=None, max_length=40000)
    messages: list[ChatLine] | None = Field(default=None, max_length=500)
    ticket: int | None = Field(default=None, ge=1, description="A ticket of the management service")
    conversation: ConversationRef | None = Field(
        default=None, description="A conversation read from the event bus"
    )
    sentences: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _one_source(self) -> Summarize:
        given = [
            n
            for n in ("text", "messages", "ticket", "conversation")
            if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one thing to summarise: text, messages, ticket or conversation"
            )
        return self


class DraftReply(_In):
    """``draft_reply``: a reply for an agent, to a ticket or a pasted customer message."""

    ticket: int | None = Field(default=None, ge=1)
    text: str | None = Field(default=None, max_length=20000, description="The customer's message")
    customer_name: str | None = Field(default=None, max_length=200)
    expert: str | None = Field(
        default=None, max_length=40, description="Whose knowledge to use (default: the first)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> DraftReply:
        if (self.ticket is None) == (self.text is None):
            raise ValueError("give either a ticket number or the customer's text")
        return self


class MarketingCopy(_In):
    """``marketing_copy``: copy from a brief."""

    product: str = Field(min_length=1, max_length=200)
    audience: str | None = Field(default=None, max_length=200)
    key_points: list[str] = Field(default_factory=list, max_length=10)
    call_to_action: str | None = Field(default=None, max_length=200)
    tone: Literal["friendly", "formal", "playful", "urgent"] = "friendly"


class ExpertAsk(_In):
    """``expert_ask``: a question to a named expert."""

    expert: str = Field(min_length=1, max_length=40)
    question: str = Field(min_length=2, max_length=2000)


class NoInput(_In):
    """An action without parameters."""


class _Out(BaseModel):
    mode: Mode = Field(description="llm: a chat model wrote it; extractive: offline methods")
    note: str | None = None

    def _mode_note(self) -> str:
        if self.note:
            return f"\n({self.note})"
        if self.mode == "extractive":
            return "\n(Offline mode: extractive, no language model configured.)"
        return ""


class SummaryOut(_Out):
    """A summary."""

    summary: str
    source: str

    def reply_text(self) -> str:
        """The summary with its mode."""
        return f"Summary of {self.source}: {self.summary}{self._mode_note()}"


class DraftOut(_Out):
    """A reply draft for an agent."""

    draft: str
    sources: list[str] = Field(default_factory=list)

    def reply_text(self) -> str:
        """The draft, ready to edit."""
        cites = f"\nSources: {', '.join(self.sources)}" if self.sources else ""
        return f"Draft reply:\n\n{self.draft}{cites}{self._mode_note()}"


class CopyOut(_Out):
    """Marketing copy."""

    headline: str
    body: str

    def reply_text(self) -> str:
        """Headline and body."""
        return f"{self.headline}\n\n{self.body}{self._mode_note()}"


class SourceRef(BaseModel):
    """A cited passage."""

    source: str
    heading: str | None = None
    score: float


class ExpertAnswer(_Out):
    """An expert's grounded answer (or "I don't know")."""

    expert: str
    question: str
    answer: str
    known: bool = Field(description="False when nothing relevant was found")
    sources: list[SourceRef] = Field(default_factory=list)
    retrieval: Literal["embeddings", "tfidf"]
    retrieval_detail: str = Field(default="", description="How passages were found, for people")

    def reply_text(self) -> str:
        """The answer and its sources."""
        if not self.known:
            return (
                f"I don't know: nothing in the {self.expert} knowledge base answers that."
                + self._mode_note()
            )
        files = list(dict.fromkeys(s.source for s in self.sources))
        return f"{self.answer}\nSources: {', '.join(files)}{self._mode_note()}"

    def _mode_note(self) -> str:
        retrieval = self.retrieval_detail or self.retrieval
        if self.note:
            return f"\n({self.note} Retrieval: {retrieval}.)"
        mode = "language model" if self.mode == "llm" else "offline extractive answer"
        return f"\n({mode}; retrieval: {retrieval})"


class ExpertInfo(BaseModel):
    """An expert as listed."""

    name: str
    description: str
    documents: int | None = None


class ExpertList(BaseModel):
    """The experts one can ask."""

    experts: list[ExpertInfo]

    def reply_text(self) -> str:
        """One line per expert."""
        return "Experts you can ask:\n" + "\n".join(
            f"- {e.name}: {e.description}" for e in self.experts
        )
