"""``frontdoor bench claims``: what signing and verifying actor claims cost per turn.

The gateway signs one claim per (actor, service, conversation) and reuses it for half its
lifetime; a service verifies each distinct token once and remembers it. So a conversation pays
one signature and one verification for its first intent to a service, and cache look-ups for
the rest. This command measures both paths on this machine, and the per-turn cost of a
conversation of ``--turns`` intents, to set beside ``frontdoor bench e2e``'s stack CPU per turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import typer

from events.claims import ClaimIssuer, ClaimVerifier, KeyRing, SigningKey
from events.envelope import Actor


def _per_call_us(fn: Callable[[int], object], calls: int) -> float:
    """Mean microseconds of ``fn(i)`` over ``calls`` calls (process CPU time)."""
    started = time.process_time()
    for i in range(calls):
        fn(i)
    return (time.process_time() - started) * 1e6 / calls


def run(calls: int, turns: int) -> dict[str, float]:
    """Sign and verify ``calls`` fresh claims and ``calls`` remembered ones."""
    key = SigningKey.generate()
    issuer = ClaimIssuer(key)
    verifier = ClaimVerifier(KeyRing([key.public]), "management")
    actor = Actor(id="site:bench", name="Bench", roles=("member",))

    def sign(i: int) -> str:
        return issuer.issue(actor, "management", conversation=("web", f"w-{i}"))

    sign_us = _per_call_us(sign, calls)  # a new conversation each time: signed
    sign_cached_us = _per_call_us(sign, calls)  # the same ones again: remembered
    tokens = [sign(i) for i in range(calls)]
    verify_us = _per_call_us(lambda i: verifier.verify(tokens[i]), calls)
    verify_cached_us = _per_call_us(lambda i: verifier.verify(tokens[i]), calls)
    per_turn_us = (sign_us + verify_us + (turns - 1) * (sign_cached_us + verify_cached_us)) / turns
    return {
        "sign_us": round(sign_us, 2),
        "sign_cached_us": round(sign_cached_us, 2),
        "verify_us": round(verify_us, 2),
        "verify_cached_us": round(verify_cached_us, 2),
        "turns_per_conversation": turns,
        "per_turn_us": round(per_turn_us, 2),
    }


def register(bench_app: typer.Typer) -> None:
    """Attach ``claims`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("claims")
    def bench_claims(
        calls: int = typer.Option(
            5_000, "--calls", min=100, help="Claims signed and verified in each measurement."
        ),
        turns: int = typer.Option(
            10,
            "--turns",
            min=1,
            help="Intents per conversation and service: the first signs and verifies, the "
            "rest hit the caches.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """CPU cost of signing and verifying actor claims (Ed25519 JWTs), fresh and cached,
        and per turn of a conversation: compare with `bench e2e`'s stack CPU per turn."""
        result = run(calls, turns)
        if as_json:
            typer.echo(json.dumps(result))
            return
        typer.echo(
            f"sign {result['sign_us']:.1f} µs (cached {result['sign_cached_us']:.1f} µs), "
            f"verify {result['verify_us']:.1f} µs (cached {result['verify_cached_us']:.1f} µs); "
            f"{result['per_turn_us']:.1f} µs per turn over {turns} turns"
        )
