"""The generative service: grounded expert answers, summaries, drafts, copy, LLM wiring."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage

from backend_services.generative.experts import ExpertsConfigError, load_experts
from backend_services.generative.llm import LLMConfigError, build_chat_model
from backend_services.generative.retrieval import KnowledgeIndex
from backend_services.generative.service import service
from backend_services.generative.settings import GenerativeSettings
from backend_services.runtime import ServiceRunner
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.micro import MicroEndpoint, MicroResponse, start_micro_service
from events.payloads import Reply
from tests.claims import signed, signed_runner
from tests.services.doors import (
    AGENT,
    USER,
    ask_intent,
    ask_micro,
    http_client,
    http_headers,
    reply_to,
)

HERE = Path(__file__).parent
EXPERTS = HERE / "experts.yml"


class RecordingChatModel(FakeListChatModel):
    """LangChain's fake chat model, remembering the prompts it was given."""

    seen: ClassVar[list[str]] = []

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        self.seen.append("\n".join(str(m.content) for m in messages))
        return super()._call(messages, *args, **kwargs)


class BrokenChatModel(FakeListChatModel):
    """A chat model whose server is down."""

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        raise ConnectionError("connection refused")


def settings() -> GenerativeSettings:
    return GenerativeSettings(retriever="tfidf", experts_file=EXPERTS, llm_provider="none")


async def started(bus: Bus, model: Any = None) -> ServiceRunner:
    runner = signed_runner(service, bus, settings=settings(), instance="gen-test")
    if model is not None:
        runner.context.state["chat_model"] = model
    await runner.start()
    return runner


@pytest.fixture
async def runner(bus: Bus) -> AsyncIterator[ServiceRunner]:
    r = await started(bus)
    try:
        yield r
    finally:
        await r.stop()


async def test_expert_answers_cite_the_right_document(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_intent(
        bus,
        "generative",
        "expert_ask",
        {"expert": "helpdesk", "question": "How do I reset my password? I forgot it."},
        USER,
    )
    assert reply.status == "ok", reply.text
    assert reply.data is not None and reply.data["known"] is True
    assert reply.data["sources"][0]["source"] == "password-reset.md"
    assert "Sources: password-reset.md" in reply.text
    assert "reset link" in reply.data["answer"]
    assert reply.data["mode"] == "extractive" and reply.data["retrieval"] == "tfidf"
    assert "offline extractive answer" in reply.text and "TF-IDF" in reply.text

    vpn = await ask_micro(
        bus,
        "generative",
        "expert_ask",
        {"expert": "helpdesk", "question": "my vpn keeps disconnecting from home"},
        USER,
    )
    assert vpn.data and vpn.data["sources"][0]["source"] == "vpn.md"
    assert "TCP" in vpn.data["answer"] or "5.2" in vpn.data["answer"]


async def test_unrelated_question_gets_i_dont_know(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_intent(
        bus,
        "generative",
        "expert_ask",
        {"expert": "helpdesk", "question": "Who painted the Mona Lisa in Florence?"},
        USER,
    )
    assert reply.status == "ok"
    assert reply.data and reply.data["known"] is False and reply.data["sources"] == []
    assert reply.text.startswith("I don't know")
    unknown = await ask_intent(
        bus, "generative", "expert_ask", {"expert": "chef", "question": "pasta?"}, USER
    )
    assert unknown.status == "invalid" and "Experts: helpdesk" in unknown.text
    listing = await ask_micro(bus, "generative", "expert_list", {}, USER)
    assert "helpdesk: IT helpdesk" in listing.text


async def test_summaries_of_text_messages_and_conversations(
    bus: Bus, runner: ServiceRunner
) -> None:
    thread = (
        "The VPN drops every five minutes since Monday. "
        "I already restarted my laptop twice. "
        "The weather is nice today. "
        "The VPN error says the UDP port is blocked by the router. "
        "Could someone help me fix the VPN soon?"
    )
    async with http_client(bus, runner) as client:
        response = await client.post(
            "/services/generative/summarize",
            json={"text": thread, "sentences": 2},
            headers=http_headers(USER),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mode"] == "extractive"
        assert "VPN" in body["summary"] and "weather" not in body["summary"]
        both = await client.post(
            "/services/generative/summarize",
            json={"text": "a", "ticket": 3},
            headers=http_headers(USER),
        )
        assert both.status_code == 422

    # A conversation read back from the bus, by the user who had it.
    conv = Conversation(channel="web", id="conv-sum")
    for text in ["My invoice shows the wrong billing address.", "It should be Main Street 5."]:
        await bus.publish(
            Envelope.new("message.received", {"text": text}, conversation=conv, actor=USER)
        )
    asked = signed(
        Envelope.new(
            subjects.intent_type("generative", "summarize"),
            {"conversation": {"channel": "web", "id": "conv-sum"}},
            conversation=conv,
            actor=USER,
        )
    )
    await bus.publish(asked)
    _, own = await reply_to(bus, asked)
    assert own.status == "ok", own.text
    assert "billing address" in own.text and "Offline mode" in own.text
    other = await ask_intent(
        bus, "generative", "summarize", {"conversation": {"channel": "web", "id": "conv-sum"}}, USER
    )
    assert other.status == "denied"
    staff = await ask_intent(
        bus,
        "generative",
        "summarize",
        {"conversation": {"channel": "web", "id": "conv-sum"}},
        AGENT,
    )
    assert staff.status == "ok" and "Main Street" in staff.text


async def test_summary_of_a_ticket_asks_management(bus: Bus, runner: ServiceRunner) -> None:
    seen: list[Envelope] = []

    async def ticket_get(data: bytes, headers: dict[str, str]) -> MicroResponse:
        env = Envelope.from_bytes(data)
        seen.append(env)
        if env.payload["ticket"] != 7:
            reply = Reply(text="There is no ticket #8.", status="invalid")
            return MicroResponse(reply.model_dump_json().encode(), 400, reply.text)
        ticket = {
            "number": 7,
            "subject": "Printer on floor 3 jams",
            "description": "The printer on floor 3 jams on every double-sided job.",
            "requester_name": "Cara",
            "comments": [
                {
                    "author": "sam",
                    "author_name": "Sam",
                    "public": True,
                    "body": "Replaced the fuser unit on the printer.",
                },
                {
                    "author": "sam",
                    "author_name": "Sam",
                    "public": False,
                    "body": "SECRET internal note",
                },
            ],
        }
        return MicroResponse(Reply(text="ok", data=ticket).model_dump_json().encode())

    management = await start_micro_service(
        bus, "management", "0.0.1", "fake", [MicroEndpoint("ticket_get", ticket_get)]
    )
    try:
        reply = await ask_intent(bus, "generative", "summarize", {"ticket": 7}, AGENT)
        assert reply.status == "ok", reply.text
        assert "Summary of ticket #7" in reply.text and "printer" in reply.text.lower()
        assert "SECRET" not in reply.text
        assert seen[0].actor.id == AGENT.id  # management authorises the real caller
        missing = await ask_intent(bus, "generative", "summarize", {"ticket": 8}, AGENT)
        assert missing.status == "invalid" and "no ticket #8" in missing.text
        draft = await ask_intent(bus, "generative", "draft_reply", {"ticket": 7}, AGENT)
        assert draft.status == "ok" and draft.text.startswith("Draft reply:\n\nHi Cara,")
    finally:
        await management.stop()


async def test_draft_reply_and_copy_roles_and_content(bus: Bus, runner: ServiceRunner) -> None:
    denied = await ask_intent(
        bus, "generative", "draft_reply", {"text": "I forgot my password"}, USER
    )
    assert denied.status == "denied" and "agent" in denied.text
    draft = await ask_intent(
        bus,
        "generative",
        "draft_reply",
        {"text": "Hello, I forgot my password and cannot sign in.", "customer_name": "Dana Li"},
        Actor(id="U-agent", name="Ada", roles=("agent",)),
    )
    assert draft.status == "ok", draft.text
    assert draft.data and draft.data["sources"] == ["password-reset.md"]
    assert "Hi Dana," in draft.text and "Forgot password" in draft.text and "Ada" in draft.text

    copy = await ask_intent(
        bus,
        "generative",
        "marketing_copy",
        {
            "product": "Frontdoor Cloud",
            "audience": "support teams",
            "key_points": ["answers in Slack", "tickets in one place"],
            "call_to_action": "Start your free trial today.",
        },
        AGENT,
    )
    assert copy.status == "ok", copy.text
    assert copy.data and "Frontdoor Cloud" in copy.data["headline"]
    assert "answers in Slack" in copy.data["body"] and "free trial" in copy.data["body"]
    bad = await ask_intent(
        bus, "generative", "marketing_copy", {"product": "X", "tone": "angry"}, AGENT
    )
    assert bad.status == "invalid" and "tone" in bad.text


async def test_llm_mode_with_langchain_fake_model(bus: Bus) -> None:
    model = RecordingChatModel(
        responses=[
            "Click Forgot password on the sign-in page [password-reset.md].",
            "HEADLINE: Support that answers itself\nBODY: Frontdoor answers in Slack.",
        ]
    )
    RecordingChatModel.seen = []
    runner = await started(bus, model)
    try:
        reply = await ask_intent(
            bus,
            "generative",
            "expert_ask",
            {"expert": "helpdesk", "question": "How do I reset my password?"},
            USER,
        )
        assert reply.data and reply.data["mode"] == "llm"
        assert reply.data["answer"].startswith("Click Forgot password")
        assert "Sources: password-reset.md" in reply.text and "language model" in reply.text
        prompt = RecordingChatModel.seen[0]
        assert "friendly IT helpdesk assistant" in prompt  # the persona
        assert "[password-reset.md]" in prompt and "reset link" in prompt  # the context
        copy = await ask_intent(
            bus, "generative", "marketing_copy", {"product": "Frontdoor"}, AGENT
        )
        assert copy.data == {
            "mode": "llm",
            "note": None,
            "headline": "Support that answers itself",
            "body": "Frontdoor answers in Slack.",
        }
    finally:
        await runner.stop()


async def test_failing_llm_falls_back_to_extractive(bus: Bus) -> None:
    runner = await started(bus, BrokenChatModel(responses=["never"]))
    try:
        reply = await ask_intent(
            bus, "generative", "summarize", {"text": "One sentence. Two sentences."}, USER
        )
        assert reply.status == "ok"
        assert reply.data and reply.data["mode"] == "extractive"
        assert "language model did not answer (ConnectionError)" in reply.text
    finally:
        await runner.stop()


BUILTIN_QUESTIONS = {
    "ops": ("how do I roll back a bad deploy with kubectl?", "deploy-rollback.md"),
    "security": ("I think my API key leaked on github", "keys-and-secrets.md"),
    "network": ("internal hostnames don't resolve", "dns-and-latency.md"),
    "cloud": ("pods are stuck pending", "autoscaling.md"),
    "billing": ("how do I get a refund for my annual plan", "plans-and-refunds.md"),
}


def test_builtin_experts_and_config_errors(tmp_path: Path) -> None:
    experts = load_experts(None)
    assert [e.name for e in experts] == list(BUILTIN_QUESTIONS)
    for expert in experts:
        index = KnowledgeIndex.build(expert.knowledge, "tfidf")
        question, source = BUILTIN_QUESTIONS[expert.name]
        hits = index.search(question)
        assert hits and hits[0].source == source, expert.name
        assert index.search("best pizza topping recipe") == []
    loaded = load_experts(EXPERTS)
    assert loaded[0].knowledge == (HERE / "knowledge").resolve()
    bad = tmp_path / "experts.yml"
    bad.write_text("experts:\n  - name: Bad Name\n    description: x\n    knowledge: k\n")
    with pytest.raises(ExpertsConfigError, match="not valid"):
        load_experts(bad)
    (tmp_path / "broken.yml").write_text("experts: [\n")
    with pytest.raises(ExpertsConfigError, match="not valid YAML"):
        load_experts(tmp_path / "broken.yml")


def test_llm_configuration() -> None:
    assert build_chat_model(GenerativeSettings(llm_provider="none")) is None
    configured = GenerativeSettings(
        llm_provider="openai",
        llm_base_url="http://127.0.0.1:9/v1",
        llm_model="local-model",
        llm_api_key="sk-secret-value",
    )
    assert "sk-secret-value" not in repr(configured)
    try:
        import langchain_openai  # noqa: F401
    except ImportError:
        with pytest.raises(LLMConfigError, match="langchain-openai"):
            build_chat_model(configured)
    else:  # pragma: no cover - only where langchain-openai is installed
        assert build_chat_model(configured) is not None


async def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDOOR_LLM_PROVIDER", "openai")
    monkeypatch.setenv("FRONTDOOR_LLM_BASE_URL", "http://localhost:8080/v1")
    monkeypatch.setenv("FRONTDOOR_EXPERTS_FILE", str(EXPERTS))
    loaded = GenerativeSettings()
    assert loaded.llm_provider == "openai" and loaded.experts_file == EXPERTS
    assert json.loads(loaded.model_dump_json())["llm_base_url"] == "http://localhost:8080/v1"


async def test_expert_with_missing_knowledge_answers_clearly(bus: Bus, tmp_path: Path) -> None:
    experts = tmp_path / "experts.yml"
    experts.write_text(
        "experts:\n  - name: ghost\n    description: nothing\n    knowledge: missing-folder\n"
    )
    runner = signed_runner(
        service,
        bus,
        settings=GenerativeSettings(retriever="tfidf", experts_file=experts),
        instance="gen-ghost",
    )
    await runner.start()
    try:
        reply = await ask_intent(
            bus, "generative", "expert_ask", {"expert": "ghost", "question": "hello?"}, USER
        )
        assert reply.status == "error"
        assert "The ghost expert cannot answer" in reply.text and "does not exist" in reply.text
    finally:
        await runner.stop()
