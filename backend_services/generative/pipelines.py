"""The generation pipelines as LangChain runnables, in two modes.

- ``llm``: prompt | chat model | string parser (the model comes from ``llm.build_chat_model``, or
  is injected, e.g. LangChain's fake chat models in tests).
- ``extractive``: the same inputs through ``RunnableLambda`` functions of ``extractive`` (ranked
  sentences, retrieved passages, templates), fully offline.
When the model fails at run time, the pipeline answers in extractive mode and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from backend_services.generative import extractive

log = logging.getLogger("frontdoor.generative")

Mode = Literal["llm", "extractive"]

SUMMARY_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You summarise support conversations and tickets for busy agents. "
            "Write at most {sentences} short sentences: the problem, what was tried, what is open. "
            "Use only facts from the text.",
        ),
        ("human", "{text}"),
    ]
)
DRAFT_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You draft replies for a support agent named {agent}. Be brief, warm and "
            "concrete. Use the knowledge passages when they help; never invent facts. "
            "Return only the reply text.",
        ),
        (
            "human",
            "Customer: {customer}\nTheir message/thread:\n{issue}\n\n"
            "Knowledge passages:\n{context}\n\nDraft the reply.",
        ),
    ]
)
COPY_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You are a marketing copywriter. Tone: {tone}. Answer exactly as:\n"
            "HEADLINE: <one line>\nBODY: <at most 120 words>",
        ),
        (
            "human",
            "Product: {product}\nAudience: {audience}\nKey points: {points}\nCall to action: {cta}",
        ),
    ]
)
EXPERT_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "{persona}\nAnswer only from the context passages below. If they do not "
            "contain the answer, say exactly: I don't know. Cite sources as [file name].\n\n"
            "Context:\n{context}",
        ),
        ("human", "{question}"),
    ]
)


@dataclass(frozen=True)
class Generated:
    """Text and the mode that produced it (with a note when the model failed)."""

    text: str
    mode: Mode
    note: str | None = None


def _chain(prompt: ChatPromptTemplate, model: BaseChatModel) -> Runnable[dict[str, Any], str]:
    return prompt | model | StrOutputParser()


class Pipelines:
    """Every generation task, with a chat model (``llm`` mode) or without (``extractive``)."""

    def __init__(self, model: BaseChatModel | None) -> None:
        self.model = model

    @property
    def mode(self) -> Mode:
        """``llm`` when a chat model is configured."""
        return "llm" if self.model is not None else "extractive"

    async def _run(
        self,
        prompt: ChatPromptTemplate,
        inputs: dict[str, Any],
        offline: Callable[[dict[str, Any]], str],
    ) -> Generated:
        fallback: Runnable[dict[str, Any], str] = RunnableLambda(offline)
        if self.model is None:
            return Generated(await fallback.ainvoke(inputs), "extractive")
        try:
            text = (await _chain(prompt, self.model).ainvoke(inputs)).strip()
        except Exception as exc:  # the model server is down or refused: still answer
            log.warning("chat model failed (%s); answering extractively", type(exc).__name__)
            return Generated(
                await fallback.ainvoke(inputs),
                "extractive",
                note=f"The language model did not answer ({type(exc).__name__}); "
                "this is an extractive fallback.",
            )
        if not text:
            return Generated(
                await fallback.ainvoke(inputs), "extractive", note="empty model answer"
            )
        return Generated(text, "llm")

    async def summarize(self, text: str, sentences: int = 3) -> Generated:
        """A short summary of a conversation or ticket thread."""
        return await self._run(
            SUMMARY_PROMPT,
            {"text": text, "sentences": sentences},
            lambda d: extractive.summarize(d["text"], d["sentences"]),
        )

    async def draft_reply(
        self, customer: str | None, issue: str, steps: list[str], agent: str | None
    ) -> Generated:
        """A reply for an agent to review and send."""
        return await self._run(
            DRAFT_PROMPT,
            {
                "customer": customer or "unknown",
                "issue": issue,
                "context": "\n".join(f"- {s}" for s in steps) or "(none)",
                "agent": agent or "the support team",
                "steps": steps,
            },
            lambda d: extractive.draft_reply(customer, d["issue"], d["steps"], agent),
        )

    async def marketing_copy(
        self,
        product: str,
        audience: str | None,
        points: list[str],
        cta: str | None,
        tone: str,
    ) -> tuple[str, str, Generated]:
        """Headline and body from a brief."""

        def offline(d: dict[str, Any]) -> str:
            headline, body = extractive.marketing_copy(product, audience, points, cta, tone)
            return f"HEADLINE: {headline}\nBODY: {body}"

        out = await self._run(
            COPY_PROMPT,
            {
                "product": product,
                "audience": audience or "everyone",
                "points": "; ".join(points) or "(none)",
                "cta": cta or "(your choice)",
                "tone": tone,
            },
            offline,
        )
        headline, body = split_copy(out.text)
        return headline, body, out

    async def expert_answer(
        self, persona: str, question: str, passages: list[tuple[str, str]], extract: list[str]
    ) -> Generated:
        """An answer grounded in ``passages`` ((source, text) pairs); ``extract`` offline."""
        context = "\n\n".join(f"[{src}]\n{text}" for src, text in passages)
        return await self._run(
            EXPERT_PROMPT,
            {"persona": persona, "question": question, "context": context},
            lambda d: " ".join(extract),
        )


def split_copy(text: str) -> tuple[str, str]:
    """``HEADLINE: ...`` / ``BODY: ...`` -> (headline, body); first line otherwise."""
    head, _, rest = text.partition("BODY:")
    if "HEADLINE:" in head and rest:
        return head.split("HEADLINE:", 1)[1].strip(), rest.strip()
    lines = text.strip().splitlines() or [""]
    return lines[0].removeprefix("HEADLINE:").strip(), "\n".join(lines[1:]).strip()
