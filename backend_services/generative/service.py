"""The generative service: summaries, reply drafts, marketing copy, grounded expert answers.

Roles: ``summarize`` (own text, a ticket the caller may see, the caller's own conversation),
``expert_ask`` and ``expert_list`` are open to ``user``, ``agent``, ``admin``; summarising another
conversation, ``draft_reply`` and ``marketing_copy`` need ``agent``/``admin``.

Mode: with a chat model configured (``FRONTDOOR_LLM_PROVIDER``) or injected before start
(``runner.context.state["chat_model"]``) the pipelines use it; otherwise they run offline
(extractive) and every reply says so. Knowledge indexes are built in the background at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from backend_services.generative.experts import ExpertConfig, load_experts
from backend_services.generative.llm import build_chat_model
from backend_services.generative.models import (
    CopyOut,
    DraftOut,
    DraftReply,
    ExpertAnswer,
    ExpertAsk,
    ExpertInfo,
    ExpertList,
    MarketingCopy,
    NoInput,
    SourceRef,
    Summarize,
    SummaryOut,
)
from backend_services.generative.pipelines import Mode, Pipelines
from backend_services.generative.retrieval import KnowledgeError, KnowledgeIndex, minilm_available
from backend_services.generative.settings import GenerativeSettings
from backend_services.runtime import (
    Denied,
    HandlerContext,
    HandlerError,
    Service,
    ServiceContext,
)
from events import subjects
from events.bus import Bus
from events.envelope import Envelope
from events.errors import BusUnavailable
from events.memory import freeze_long_lived
from events.micro import micro_subject
from events.payloads import Reply

service = Service(
    "generative",
    version="0.1.0",
    description="Summaries, reply drafts, marketing copy and expert answers (LangChain)",
)

#: Guests (widget and REST visitors nobody identified) included.
ANYONE = {"guest", "user", "agent", "admin"}
STAFF = {"agent", "admin"}
#: Reading a conversation: how long to wait for its first event, then for each next one
#: before the conversation is considered read to its end.
CONVERSATION_FIRST_SECONDS = 3.0
CONVERSATION_IDLE_SECONDS = 0.3


class Experts:
    """The configured experts and their knowledge indexes (built in worker threads)."""

    def __init__(self, configs: list[ExpertConfig], settings: GenerativeSettings) -> None:
        self.configs = {c.name: c for c in configs}
        self.settings = settings
        self._tasks: dict[str, asyncio.Task[KnowledgeIndex]] = {}

    def start(self) -> None:
        """Start building every index in the background."""
        for name, config in self.configs.items():
            self._tasks[name] = asyncio.create_task(
                asyncio.to_thread(
                    KnowledgeIndex.build,
                    Path(config.knowledge),
                    self.settings.retriever,
                    config.min_similarity
                    if config.min_similarity is not None
                    else self.settings.min_similarity,
                ),
                name=f"knowledge-{name}",
            )
            self._tasks[name].add_done_callback(self._built)

    def _built(self, _task: asyncio.Task[KnowledgeIndex]) -> None:
        """Once every index is built, keep them (and the encoder) out of full collections."""
        if all(task.done() for task in self._tasks.values()):
            freeze_long_lived("building the knowledge indexes")

    def config(self, name: str) -> ExpertConfig:
        """An expert by name, or a clear refusal naming the known ones."""
        config = self.configs.get(name.strip().lower())
        if config is None:
            known = ", ".join(sorted(self.configs))
            raise HandlerError(f"There is no expert '{name}'. Experts: {known}.")
        return config

    async def index(self, name: str) -> KnowledgeIndex:
        """The expert's index (waits for it to be built)."""
        try:
            return await asyncio.shield(self._tasks[name])
        except KnowledgeError as exc:
            raise HandlerError(f"The {name} expert cannot answer: {exc}.", status="error") from None

    async def stop(self) -> None:
        """Forget unfinished builds."""
        for task in self._tasks.values():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@service.on_startup
async def start_generative(ctx: ServiceContext) -> None:
    """Settings, the chat model (or offline mode), the experts' indexes."""
    settings = (
        ctx.settings if isinstance(ctx.settings, GenerativeSettings) else GenerativeSettings()
    )
    ctx.state["settings"] = settings
    model = ctx.state.get("chat_model") or build_chat_model(settings)
    ctx.state["pipelines"] = Pipelines(model)
    experts = Experts(load_experts(settings.experts_file), settings)
    experts.start()
    ctx.state["experts"] = experts


@service.on_shutdown
async def stop_generative(ctx: ServiceContext) -> None:
    """Stop index builds still running."""
    experts = ctx.state.pop("experts", None)
    if experts is not None:
        await experts.stop()


def _pipelines(ctx: HandlerContext) -> Pipelines:
    return ctx.state["pipelines"]  # type: ignore[no-any-return]


def _experts(ctx: HandlerContext) -> Experts:
    return ctx.state["experts"]  # type: ignore[no-any-return]


# -- reading what to summarise -----------------------------------------------------------------


async def read_conversation(bus: Bus, channel: str, conversation_id: str) -> list[str]:
    """``author: text`` lines of a conversation's messages and replies, in bus order."""
    flt = subjects.events_filter(channel=channel, conversation_id=conversation_id)
    lines: list[str] = []
    if await bus.last_sequence() == 0:
        return lines
    events = bus.tail(flt, from_seq=1)
    wait = CONVERSATION_FIRST_SECONDS
    try:
        while True:
            try:
                _, env = await asyncio.wait_for(anext(events), wait)
                wait = CONVERSATION_IDLE_SECONDS
            except (TimeoutError, StopAsyncIteration):
                break
            if env.type == "message.received":
                who = env.actor.name or env.actor.id
                lines.append(f"{who}: {env.payload.get('text', '')}")
            elif env.type == "reply" and env.payload.get("text"):
                lines.append(f"bot: {env.payload['text']}")
    finally:
        aclose = getattr(events, "aclose", None)  # an async generator: unsubscribe now
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    return lines


async def fetch_ticket(ctx: HandlerContext, number: int) -> dict:
    """The ticket from the management service (``fd.svc.management.ticket_get``), as the caller.

    The caller's own signed claim goes along (its audience includes management, see
    ``events.claims.DELEGATIONS``): management checks that *the caller* may see it, and its
    refusal is passed on as it is. Generative cannot make up an actor of its own.
    """
    request = Envelope.new(
        subjects.intent_type("management", "ticket_get"),
        {"ticket": number},
        conversation=ctx.envelope.conversation,
        actor=ctx.actor,
        correlation_id=ctx.correlation_id,
        causation_id=ctx.envelope.id,
        claim=ctx.envelope.claim,
    )
    try:
        raw = await ctx.bus.request(
            micro_subject("management", "ticket_get"), request.to_bytes(), timeout=10.0
        )
    except BusUnavailable:
        raise HandlerError(
            "The management service is not answering, so I cannot read that ticket now.",
            status="error",
        ) from None
    reply = Reply.model_validate(json.loads(raw))
    if reply.status != "ok" or not reply.data:
        raise HandlerError(reply.text or f"Ticket #{number} cannot be read.", status=reply.status)
    return reply.data


def ticket_text(ticket: dict) -> str:
    """A ticket thread as plain text: subject, description, public comments."""
    lines = [f"{ticket.get('subject', '')}.", str(ticket.get("description") or "")]
    for comment in ticket.get("comments") or []:
        if comment.get("public", True):
            who = comment.get("author_name") or comment.get("author") or "someone"
            lines.append(f"{who}: {comment.get('body', '')}")
    return "\n".join(line for line in lines if line.strip())


# -- actions -------------------------------------------------------------------------------------


@service.handler("summarize", roles=ANYONE, summary="Summarise text, a conversation or a ticket")
async def summarize(payload: Summarize, ctx: HandlerContext) -> SummaryOut:
    """Summarise pasted text, inline messages, a ticket thread or a conversation on the bus."""
    if payload.text is not None:
        text, source = payload.text, "the text"
    elif payload.messages is not None:
        text = "\n".join(f"{m.author}: {m.text}" for m in payload.messages)
        source = f"{len(payload.messages)} messages"
    elif payload.ticket is not None:
        text, source = (
            ticket_text(await fetch_ticket(ctx, payload.ticket)),
            f"ticket #{payload.ticket}",
        )
    else:
        conv = payload.conversation
        assert conv is not None
        own = ctx.envelope.conversation
        if (conv.channel, conv.id) != (own.channel, own.id) and not ctx.actor.has_any(STAFF):
            raise Denied("Only agents and admins can summarise someone else's conversation.")
        lines = await read_conversation(ctx.bus, conv.channel, conv.id)
        if not lines:
            raise HandlerError(f"I found no messages in the {conv.channel} conversation {conv.id}.")
        text, source = "\n".join(lines), f"the conversation ({len(lines)} messages)"
    if not text.strip():
        raise HandlerError("There is nothing to summarise.")
    generated = await _pipelines(ctx).summarize(text, payload.sentences)
    return SummaryOut(
        summary=generated.text, source=source, mode=generated.mode, note=generated.note
    )


@service.handler("draft_reply", roles=STAFF, summary="Draft a reply for an agent")
async def draft_reply(payload: DraftReply, ctx: HandlerContext) -> DraftOut:
    """A reply draft to a ticket or message, grounded in an expert's knowledge when relevant."""
    customer = payload.customer_name
    if payload.ticket is not None:
        ticket = await fetch_ticket(ctx, payload.ticket)
        issue = ticket_text(ticket)
        customer = customer or ticket.get("requester_name") or ticket.get("requester_email")
    else:
        issue = payload.text or ""
    experts = _experts(ctx)
    name = payload.expert or next(iter(experts.configs))
    index = await experts.index(experts.config(name).name)
    hits = await index.asearch(issue, k=3)
    steps = await asyncio.to_thread(index.best_sentences, issue, hits, 3) if hits else []
    generated = await _pipelines(ctx).draft_reply(customer, issue, steps, ctx.actor.name)
    return DraftOut(
        draft=generated.text,
        sources=list(dict.fromkeys(h.source for h in hits)),
        mode=generated.mode,
        note=generated.note,
    )


@service.handler("marketing_copy", roles=STAFF, summary="Write marketing copy from a brief")
async def marketing_copy(payload: MarketingCopy, ctx: HandlerContext) -> CopyOut:
    """Headline and body for a product brief (audience, key points, call to action, tone)."""
    headline, body, generated = await _pipelines(ctx).marketing_copy(
        payload.product, payload.audience, payload.key_points, payload.call_to_action, payload.tone
    )
    return CopyOut(headline=headline, body=body, mode=generated.mode, note=generated.note)


def _retrieval_detail(index: KnowledgeIndex) -> str:
    if index.backend == "embeddings":
        return "sentence embeddings (all-MiniLM-L6-v2, offline)"
    if minilm_available():
        return "TF-IDF (configured)"
    return "TF-IDF (the [ml] extra is not installed)"


@service.handler("expert_ask", roles=ANYONE, summary="Ask an expert bot a question")
async def expert_ask(payload: ExpertAsk, ctx: HandlerContext) -> ExpertAnswer:
    """Answer from the expert's knowledge folder, citing files; "I don't know" when nothing fits."""
    experts = _experts(ctx)
    config = experts.config(payload.expert)
    index = await experts.index(config.name)
    hits = await index.asearch(payload.question, k=4)
    pipelines = _pipelines(ctx)

    def answer(
        text: str, known: bool, sources: list[SourceRef], mode: Mode, note: str | None
    ) -> ExpertAnswer:
        return ExpertAnswer(
            expert=config.name,
            question=payload.question,
            answer=text,
            known=known,
            sources=sources,
            mode=mode,
            note=note,
            retrieval="embeddings" if index.backend == "embeddings" else "tfidf",
            retrieval_detail=_retrieval_detail(index),
        )

    if not hits:
        return answer("I don't know.", False, [], pipelines.mode, None)
    extract = await asyncio.to_thread(index.best_sentences, payload.question, hits, 3)
    generated = await pipelines.expert_answer(
        config.persona or f"You are the {config.name} expert: {config.description}.",
        payload.question,
        [(h.source, h.document.page_content) for h in hits],
        extract,
    )
    known = not generated.text.lower().startswith("i don't know")
    sources = [
        SourceRef(source=h.source, heading=h.document.metadata.get("heading"), score=h.score)
        for h in hits
    ]
    return answer(generated.text, known, sources if known else [], generated.mode, generated.note)


@service.handler("expert_list", roles=ANYONE, summary="Which experts can be asked")
async def expert_list(payload: NoInput, ctx: HandlerContext) -> ExpertList:
    """Every configured expert with its description."""
    experts = _experts(ctx)
    return ExpertList(
        experts=[
            ExpertInfo(name=c.name, description=c.description) for c in experts.configs.values()
        ]
    )
