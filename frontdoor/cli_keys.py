"""``frontdoor keys``: the Ed25519 keys the gateway signs actor claims with.

``init`` writes a new key pair for a deployment (the signing key goes to the gateway only, the
public JWKS to every service); ``rotate`` and ``retire`` rotate the keys of a local data
directory; ``show`` prints which keys are in use. See docs/security.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from events.claims import KeyRing, SigningKey
from frontdoor.keys import (
    PUBLIC_FILE,
    SIGNING_FILE,
    ensure_local_keys,
    keys_dir,
    retire_local_keys,
    rotate_local_keys,
)

keys_app = typer.Typer(help="The keys the gateway signs actor claims with (docs/security.md).")

DATA_DIR = typer.Option(
    Path(".frontdoor"), "--data-dir", envvar="FRONTDOOR_DATA_DIR", help="Frontdoor's data dir"
)


def register(app: typer.Typer) -> None:
    """Attach ``frontdoor keys ...``."""
    app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def init(
    out: Path = typer.Argument(..., help="Directory to write the new key pair into"),
) -> None:
    """Write a new signing key (PEM, for the gateway) and its public JWKS (for the services)."""
    out.mkdir(parents=True, exist_ok=True)
    signing, public = out / SIGNING_FILE, out / PUBLIC_FILE
    if signing.exists():
        typer.echo(f"error: {signing} exists; refusing to overwrite a key", err=True)
        raise typer.Exit(2)
    key = SigningKey.generate()
    signing.touch(mode=0o600)
    signing.write_bytes(key.to_pem())
    public.write_text(json.dumps(KeyRing([key.public]).to_jwks(), indent=2) + "\n")
    typer.echo(
        f"signing key {key.kid}: {signing} (gateway only: FRONTDOOR_CLAIMS_SIGNING_KEY_FILE)"
    )
    typer.echo(f"public keys: {public} (every service: FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE)")


@keys_app.command("show")
def show(data_dir: Path = DATA_DIR) -> None:
    """The key ids of a data directory's keys (created on first use)."""
    key, ring = ensure_local_keys(data_dir)
    typer.echo(f"signing key : {key.kid}  ({keys_dir(data_dir) / SIGNING_FILE})")
    for kid in ring.kids:
        note = "current" if kid == key.kid else "retiring (still accepted)"
        typer.echo(f"accepted key: {kid}  {note}")


@keys_app.command("rotate")
def rotate(data_dir: Path = DATA_DIR) -> None:
    """Sign with a new key from now on; the previous one stays accepted until `retire`.

    Restart (or let `up` restart) so the gateway signs with the new key; after the claims
    lifetime (10 minutes by default) run `frontdoor keys retire`.
    """
    new, old = rotate_local_keys(data_dir)
    typer.echo(f"new signing key {new}; {old} is still accepted until `frontdoor keys retire`")


@keys_app.command("retire")
def retire(data_dir: Path = DATA_DIR) -> None:
    """Stop accepting every key but the current signing key."""
    retired = retire_local_keys(data_dir)
    typer.echo(f"retired: {', '.join(retired) or 'nothing (only the current key was accepted)'}")
