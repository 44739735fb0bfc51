"""``frontdoor test conversations FILE...``: play scenario files against a live front door.

Format (tests/scenarios/README.md): ``scenarios: [{name, bot, sender?, turns: [{user, expect,
save?}]}]``. Each turn is sent through the REST webhook; ``expect`` (a Python regex) is searched
in all reply texts of the turn joined by newlines; ``save: {var: regex}`` captures group 1 (or
the whole match) for ``{var}`` in later ``user`` lines. Each scenario is a new visitor: a fresh
guest session (``POST /api/session``), whose conversation it is; a file's ``sender`` is only a
label kept for compatibility with the shared scenario format.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.errors import FrontdoorError

_VAR = re.compile(r"\{(\w+)\}")


class ScenarioError(FrontdoorError):
    """A scenario file cannot be read or does not validate."""


class ScenarioTurn(BaseModel):
    """One user line and what must come back."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1)
    expect: str
    save: dict[str, str] = Field(default_factory=dict)


class Scenario(BaseModel):
    """A multi-turn conversation with one bot."""

    model_config = ConfigDict(extra="forbid")

    name: str
    bot: str = "chatbot"
    sender: str | None = Field(default=None, description="ignored: each run is a new session")
    turns: list[ScenarioTurn] = Field(min_length=1)


class ScenarioFile(BaseModel):
    """A file of scenarios."""

    model_config = ConfigDict(extra="forbid")

    scenarios: list[Scenario] = Field(min_length=1)


def load_scenarios(path: Path) -> list[Scenario]:
    """Read and validate one scenario file (regexes are compiled to catch typos early)."""
    try:
        parsed = ScenarioFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ScenarioError(f"{path} is not a valid scenario file: {exc}") from exc
    for scenario in parsed.scenarios:
        for i, turn in enumerate(scenario.turns, 1):
            for pattern in [turn.expect, *turn.save.values()]:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ScenarioError(
                        f"{path}: scenario {scenario.name!r} turn {i}: bad regex {pattern!r}: {exc}"
                    ) from exc
    return parsed.scenarios


@dataclass
class TurnFailure:
    """A turn that did not get what it expected."""

    scenario: str
    turn: int
    user: str
    expected: str
    got: list[str]
    reason: str = "no reply matched"


@dataclass
class ScenarioResult:
    """The outcome of one scenario."""

    name: str
    turns_run: int = 0
    failure: TurnFailure | None = None
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every turn matched."""
        return self.failure is None


def _substitute(text: str, variables: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise KeyError(name)
        return variables[name]

    return _VAR.sub(repl, text)


async def _guest_headers(client: httpx.AsyncClient, timeout: float) -> dict[str, str]:
    """A new guest session for a scenario: the REST channel's ``Authorization`` header."""
    response = await client.post("/api/session", json={}, timeout=timeout)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def run_scenario(
    client: httpx.AsyncClient, scenario: Scenario, run_id: str, timeout: float = 30.0
) -> ScenarioResult:
    """Play one scenario through ``POST /webhooks/rest/webhook``; stop at the first failure."""
    result = ScenarioResult(scenario.name)
    try:
        headers = await _guest_headers(client, timeout)
    except httpx.HTTPError as exc:
        result.failure = TurnFailure(
            scenario.name, 0, "", "", [], f"no guest session (POST /api/session): {exc!r}"
        )
        return result
    for number, turn in enumerate(scenario.turns, 1):
        try:
            text = _substitute(turn.user, result.variables)
        except KeyError as exc:
            result.failure = TurnFailure(
                scenario.name, number, turn.user, turn.expect, [], f"variable {exc} was not saved"
            )
            return result
        body: dict[str, Any] = {
            "message": text,
            "metadata": {"bot": scenario.bot, "message_id": f"{run_id}-{number}"},
        }
        try:
            response = await client.post(
                "/webhooks/rest/webhook", json=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            result.failure = TurnFailure(
                scenario.name, number, text, turn.expect, [], f"request failed: {exc!r}"
            )
            return result
        result.turns_run = number
        if response.status_code != 200:
            result.failure = TurnFailure(
                scenario.name,
                number,
                text,
                turn.expect,
                [response.text[:500]],
                f"HTTP {response.status_code}",
            )
            return result
        texts = [str(item.get("text", "")) for item in response.json()]
        joined = "\n".join(texts)
        if not re.search(turn.expect, joined):
            result.failure = TurnFailure(scenario.name, number, text, turn.expect, texts)
            return result
        for name, pattern in turn.save.items():
            match = re.search(pattern, joined)
            if match is None:
                result.failure = TurnFailure(
                    scenario.name, number, text, pattern, texts, f"nothing to save as {name!r}"
                )
                return result
            result.variables[name] = match.group(1) if match.groups() else match.group(0)
    return result


async def run_files(
    url: str, files: list[Path], *, timeout: float = 30.0, concurrency: int = 4
) -> list[ScenarioResult]:
    """Run every scenario of ``files`` (a fresh session each) and return the results in order."""
    scenarios = [s for path in files for s in load_scenarios(path)]
    run = uuid.uuid4().hex[:8]
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url.rstrip("/")) as client:

        async def one(i: int, scenario: Scenario) -> ScenarioResult:
            async with slots:
                return await run_scenario(client, scenario, f"{run}-{i}", timeout)

        return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(scenarios))))


def format_report(results: list[ScenarioResult]) -> str:
    """Human-readable report: each failing turn, then ``N passed, M failed``."""
    lines: list[str] = []
    for result in results:
        if result.passed:
            lines.append(f"PASS  {result.name}")
            continue
        f = result.failure
        assert f is not None
        lines.append(f"FAIL  {result.name}  (turn {f.turn}: {f.reason})")
        lines.append(f"      user:     {f.user}")
        lines.append(f"      expected: /{f.expected}/")
        got = " | ".join(t.replace("\n", " ") for t in f.got) if f.got else "(no reply)"
        lines.append(f"      got:      {got}")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``frontdoor test conversations``."""
    test_app = typer.Typer(help="Test a running front door.")
    app.add_typer(test_app, name="test")

    @test_app.command("conversations")
    def conversations(
        files: list[Path] = typer.Argument(..., help="Scenario YAML files", exists=True),
        url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of the front door"),
        timeout: float = typer.Option(30.0, help="Seconds to wait for one turn"),
        concurrency: int = typer.Option(4, min=1, help="Scenarios played at once"),
    ) -> None:
        """Play conversation scenarios through the REST webhook and report failing turns."""
        try:
            results = asyncio.run(run_files(url, files, timeout=timeout, concurrency=concurrency))
        except ScenarioError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(format_report(results))
        sys.stdout.flush()
        if not all(r.passed for r in results):
            raise typer.Exit(1)
