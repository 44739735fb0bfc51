"""Offline generation without a language model: ranked sentences and templates."""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from backend_services.generative.retrieval import split_sentences


def rank_sentences(text: str, limit: int = 3) -> list[str]:
    """The ``limit`` most central sentences of ``text``, in their original order.

    Centrality is a sentence's summed TF-IDF cosine similarity to every other sentence, with a
    small bonus for coming early (openings tend to state the problem).
    """
    sentences = split_sentences(text)
    if len(sentences) <= limit:
        return sentences
    try:
        matrix = TfidfVectorizer(stop_words="english").fit_transform(sentences)
    except ValueError:  # only stop words
        return sentences[:limit]
    similarity = (matrix @ matrix.T).toarray()
    np.fill_diagonal(similarity, 0.0)
    position = np.linspace(0.15, 0.0, num=len(sentences))
    scores = similarity.sum(axis=1) + position
    keep = sorted(np.argsort(-scores, kind="stable")[:limit].tolist())
    return [sentences[i] for i in keep]


def summarize(text: str, limit: int = 3) -> str:
    """An extractive summary: the most central sentences."""
    picked = rank_sentences(text, limit)
    return " ".join(s if s.endswith((".", "!", "?")) else f"{s}." for s in picked)


def first_name(name: str | None) -> str:
    """``Cara`` from ``Cara Jones``; ``there`` when unknown."""
    if not name:
        return "there"
    return re.split(r"[\s@]", name.strip())[0] or "there"


def draft_reply(
    customer_name: str | None, issue: str, steps: list[str], agent_name: str | None
) -> str:
    """A polite reply draft: acknowledge, suggest the retrieved steps, offer more help."""
    gist = summarize(issue, 1).rstrip(".") or "your request"
    lines = [f"Hi {first_name(customer_name)},", "", f"Thanks for reaching out about: {gist}."]
    if steps:
        lines += ["", "Here is what should help:"]
        lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    else:
        lines += ["", "We are looking into it and will get back to you shortly."]
    lines += ["", "Let us know if anything is still unclear.", "", "Best regards,"]
    lines.append(agent_name or "The support team")
    return "\n".join(lines)


def marketing_copy(
    product: str,
    audience: str | None,
    key_points: list[str],
    call_to_action: str | None,
    tone: str,
) -> tuple[str, str]:
    """A headline and body from a brief (template)."""
    opener = {
        "friendly": f"Meet {product}",
        "formal": f"Introducing {product}",
        "playful": f"Say hello to {product}!",
        "urgent": f"Don't miss {product}",
    }.get(tone, f"Introducing {product}")
    headline = f"{opener}" + (f" — made for {audience}" if audience else "")
    body = [f"{product} is here" + (f" for {audience}." if audience else ".")]
    if key_points:
        body.append("Why you'll love it:")
        body += [f"• {point.rstrip('.')}" for point in key_points]
    body.append(call_to_action or "Find out more today.")
    return headline, "\n".join(body)
