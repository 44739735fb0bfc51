"""Where the claims keys come from: the environment (deployments) or the data directory (``up``).

- The **signing key** (Ed25519, private) is the gateway's and the operator CLI's only:
  ``FRONTDOOR_CLAIMS_SIGNING_KEY`` (PEM) or ``FRONTDOOR_CLAIMS_SIGNING_KEY_FILE``.
- The **public keys** (a JWKS, usually the current key and, while rotating, the previous one)
  are every service's: ``FRONTDOOR_CLAIMS_PUBLIC_KEYS`` (JSON) or ``..._FILE``.

``frontdoor up`` generates both into ``<data dir>/keys/`` on its first start (mode 0600) and
uses them from then on. ``frontdoor serve`` never generates keys: every replica must share the
same ones, so it refuses to start without them and says what to set. Rotation (``frontdoor
keys rotate``, then ``frontdoor keys retire`` once the old claims have expired) is described
in docs/security.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.claims import DEFAULT_TTL_SECONDS, ClaimIssuer, ClaimVerifier, KeyRing, SigningKey
from events.errors import FrontdoorError

KEYS_DIR = "keys"
SIGNING_FILE = "claims-signing.pem"
PUBLIC_FILE = "claims-public.jwks.json"


class KeysNotConfigured(FrontdoorError):
    """No claims keys where they must be (the message says what to set)."""


class ClaimKeySettings(BaseSettings):
    """The claims keys and lifetime from the environment (``FRONTDOOR_CLAIMS_*``)."""

    model_config = SettingsConfigDict(env_prefix="FRONTDOOR_CLAIMS_", extra="ignore")

    signing_key: SecretStr | None = Field(default=None, description="Ed25519 private key (PEM)")
    signing_key_file: Path | None = Field(default=None, description="File with that PEM")
    public_keys: str | None = Field(default=None, description="JWKS of the accepted keys")
    public_keys_file: Path | None = Field(default=None, description="File with that JWKS")
    ttl_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=30, le=3600)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable by its owner only (atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def keys_dir(data_dir: Path) -> Path:
    """``<data dir>/keys``."""
    return data_dir / KEYS_DIR


def ensure_local_keys(data_dir: Path) -> tuple[SigningKey, KeyRing]:
    """The data directory's keys, generated on first use (``frontdoor up``)."""
    folder = keys_dir(data_dir)
    signing_path, public_path = folder / SIGNING_FILE, folder / PUBLIC_FILE
    if not signing_path.exists():
        key = SigningKey.generate()
        _write_private(signing_path, key.to_pem())
        _write_private(public_path, json.dumps(KeyRing([key.public]).to_jwks()).encode())
    key = SigningKey.from_pem(signing_path.read_bytes())
    if not public_path.exists():
        _write_private(public_path, json.dumps(KeyRing([key.public]).to_jwks()).encode())
    ring = KeyRing.from_jwks(public_path.read_text())
    if ring.get(key.kid) is None:
        raise KeysNotConfigured(
            f"{public_path} does not hold the public key of {signing_path}: "
            "run `frontdoor keys rotate` to repair the pair"
        )
    return key, ring


def rotate_local_keys(data_dir: Path) -> tuple[str, str]:
    """A new signing key; the public keys keep the previous one until ``retire``.
    Returns ``(new kid, previous kid)``."""
    old, ring = ensure_local_keys(data_dir)
    new = SigningKey.generate()
    folder = keys_dir(data_dir)
    kept = [k for kid in ring.kids if (k := ring.get(kid)) is not None]
    _write_private(
        folder / PUBLIC_FILE, json.dumps(KeyRing([new.public, *kept]).to_jwks()).encode()
    )
    _write_private(folder / SIGNING_FILE, new.to_pem())
    return new.kid, old.kid


def retire_local_keys(data_dir: Path) -> list[str]:
    """Keep only the current signing key's public key; return the retired kids."""
    key, ring = ensure_local_keys(data_dir)
    retired = [kid for kid in ring.kids if kid != key.kid]
    _write_private(
        keys_dir(data_dir) / PUBLIC_FILE, json.dumps(KeyRing([key.public]).to_jwks()).encode()
    )
    return retired


def _env_signing_key(settings: ClaimKeySettings) -> SigningKey | None:
    if settings.signing_key is not None:
        return SigningKey.from_pem(settings.signing_key.get_secret_value())
    if settings.signing_key_file is not None:
        return SigningKey.from_pem(settings.signing_key_file.read_bytes())
    return None


def _env_key_ring(settings: ClaimKeySettings) -> KeyRing | None:
    if settings.public_keys:
        return KeyRing.from_jwks(settings.public_keys)
    if settings.public_keys_file is not None:
        return KeyRing.from_jwks(settings.public_keys_file.read_text())
    return None


def claim_issuer(settings: ClaimKeySettings, data_dir: Path | None) -> ClaimIssuer:
    """The gateway's (or the CLI's) issuer: the env's key, else (``data_dir``) the local one."""
    try:
        key = _env_signing_key(settings)
    except (OSError, ValueError) as exc:
        raise KeysNotConfigured(f"the claims signing key cannot be read: {exc}") from None
    if key is None:
        if data_dir is None:
            raise KeysNotConfigured(
                "no claims signing key: set FRONTDOOR_CLAIMS_SIGNING_KEY_FILE (or "
                "FRONTDOOR_CLAIMS_SIGNING_KEY) to the Ed25519 PEM made by `frontdoor keys "
                "init`; see docs/security.md"
            )
        key, _ = ensure_local_keys(data_dir)
    return ClaimIssuer(key, ttl_seconds=settings.ttl_seconds)


def claim_verifier(
    settings: ClaimKeySettings, data_dir: Path | None, service: str
) -> ClaimVerifier:
    """A service's verifier: the env's public keys, else (``data_dir``) the local ones."""
    try:
        ring = _env_key_ring(settings)
    except (OSError, ValueError) as exc:
        raise KeysNotConfigured(f"the claims public keys cannot be read: {exc}") from None
    if ring is None:
        if data_dir is None:
            raise KeysNotConfigured(
                "no claims public keys: set FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE (or "
                "FRONTDOOR_CLAIMS_PUBLIC_KEYS) to the JWKS made by `frontdoor keys init`; "
                "see docs/security.md"
            )
        _, ring = ensure_local_keys(data_dir)
    return ClaimVerifier(ring, service)
