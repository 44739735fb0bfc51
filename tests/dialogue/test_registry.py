"""Skill declarations: the shipped file loads; broken declarations give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from events.payloads import Reply
from skills.data import SKILLS_FILE
from skills.routing import SkillDeclarationError, SkillRegistry


def _shipped() -> dict:
    return yaml.safe_load(SKILLS_FILE.read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "skills.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_shipped_declarations_load_and_cover_the_services():
    reg = SkillRegistry.load()
    actions = {(s.service, s.action) for s in reg.skills}
    assert ("management", "ticket_create") in actions
    assert ("analysis", "metrics_query") in actions
    assert ("generative", "expert_ask") in actions
    assert ("marketing", "lead_capture") in actions
    assert reg.skill_for_intent("ticket_open").form == "ticket_form"
    assert reg.form_slots("ticket_form") == ["subject", "description", "contact_email", "priority"]
    assert reg.choices("priority") == ["low", "normal", "high", "urgent"]
    assert reg.persona("support").name == "support"
    assert reg.persona("helpdesk").name == "support"
    assert reg.persona("expert:cloud").expert == "cloud"
    assert reg.persona("nobody").name == "chatbot"


def test_unknown_intent_form_and_slot_are_all_reported(tmp_path):
    doc = _shipped()
    doc["skills"]["ticket_create"]["intent"] = "ticket_opn"
    doc["skills"]["ticket_get"]["form"] = "no_form"
    doc["skills"]["ticket_close"]["payload"]["ticket"] = {"slot": "tikcet_id"}
    with pytest.raises(SkillDeclarationError) as err:
        SkillRegistry.load(_write(tmp_path, doc))
    text = str(err.value)
    assert "skill 'ticket_create': intent 'ticket_opn' is not in the domain" in text
    assert "skill 'ticket_get': form 'no_form' is not in the domain" in text
    assert "payload field 'ticket' reads slot 'tikcet_id'" in text
    assert len(err.value.problems) == 3
    assert str(tmp_path / "skills.yml") in text


def test_schema_errors_name_the_line(tmp_path):
    doc = _shipped()
    doc["skills"]["ticket_close"]["payload"]["ticket"] = {"slot": "ticket_id", "value": 3}
    doc["skills"]["ticket_get"]["service"] = "Management!"
    doc["slots"]["ticket_id"]["patterns"] = ["(unclosed"]
    path = _write(tmp_path, doc)
    with pytest.raises(SkillDeclarationError) as err:
        SkillRegistry.load(path)
    text = str(err.value)
    assert "exactly one of `slot`, `source` or `value`" in text
    assert "skills.ticket_get.service" in text
    assert "does not compile" in text
    lines = path.read_text().splitlines()
    service_line = next(n for n, row in enumerate(lines, 1) if "Management!" in row)
    assert f"line {service_line}: skills.ticket_get.service" in text


def test_duplicate_intent_unknown_field_and_bad_persona(tmp_path):
    doc = _shipped()
    doc["skills"]["ticket_get2"] = dict(doc["skills"]["ticket_get"])
    doc["skills"]["ticket_close"]["colour"] = "red"
    doc["personas"]["support"]["skills"] = ["tickets_*"]
    with pytest.raises(SkillDeclarationError) as err:
        SkillRegistry.load(_write(tmp_path, doc))
    assert "skills.ticket_close.colour: Extra inputs are not permitted" in str(err.value)
    doc["skills"]["ticket_close"].pop("colour")
    with pytest.raises(SkillDeclarationError) as err:
        SkillRegistry.load(_write(tmp_path, doc))
    text = str(err.value)
    assert "intent 'ticket_status' is already used by skill 'ticket_get'" in text
    assert "persona 'support': 'tickets_*' matches no skill" in text


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(SkillDeclarationError, match="file not found"):
        SkillRegistry.load(tmp_path / "nope.yml")
    bad = tmp_path / "skills.yml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SkillDeclarationError, match="must be a mapping"):
        SkillRegistry.load(bad)


def test_a_new_skill_is_data_only(tmp_path):
    doc = _shipped()
    doc["skills"]["ticket_reopen"] = {
        "intent": "deny",  # conversation intents are reserved
        "service": "management",
        "action": "ticket_reopen",
        "title": "reopen a ticket",
    }
    with pytest.raises(SkillDeclarationError, match="handled by the dialogue itself"):
        SkillRegistry.load(_write(tmp_path, doc))


def test_reply_template_uses_reply_data(tmp_path):
    doc = _shipped()
    doc["skills"]["ticket_create"]["reply"] = "Done: ticket #{number} ({priority}). {text}"
    reg = SkillRegistry.load(_write(tmp_path, doc))
    reply = Reply(
        text="Opened.",
        service="management",
        action="ticket_create",
        data={"number": 7, "priority": "high"},
    )
    assert reg.render_reply(reply) == "Done: ticket #7 (high). Opened."
    missing = Reply(text="Opened.", service="management", action="ticket_create", data={})
    assert reg.render_reply(missing) == "Opened."


def test_experts_of_the_front_door_can_be_added():
    reg = SkillRegistry.load()
    assert reg.persona("kubernetes").name == "chatbot"  # unknown bot name: the default
    reg.add_experts({"kubernetes": "Clusters and deployments"})
    persona = reg.persona("kubernetes")
    assert persona.kind == "expert" and persona.expert == "kubernetes"
    assert "kubernetes expert" in persona.greeting
    with pytest.raises(SkillDeclarationError, match="already a persona"):
        reg.add_experts(["support"])
    with pytest.raises(SkillDeclarationError, match="not a valid bot name"):
        reg.add_experts(["no spaces please"])
