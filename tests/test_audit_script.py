"""scripts/audit: a known vulnerability fails the test command; packages it could not audit
are said loudly (and fail with --strict), never passed in silence."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "audit"


def _audit():  # type: ignore[no-untyped-def]
    loader = importlib.machinery.SourceFileLoader("fd_audit", str(SCRIPT))
    spec = importlib.util.spec_from_loader("fd_audit", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_a_known_vulnerability_fails() -> None:
    lines, code = _audit().verdict(
        [
            {"name": "ok", "version": "1.0", "vulns": []},
            {"name": "bad", "version": "1.0", "vulns": [{"id": "GHSA-x", "fix_versions": ["1.1"]}]},
        ]
    )
    assert code == 1
    assert "VULNERABLE bad 1.0: GHSA-x (fixed in 1.1)" in lines


def test_unaudited_packages_are_reported_and_fail_only_when_strict() -> None:
    deps = [
        {"name": "ok", "version": "1.0", "vulns": []},
        {"name": "x", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]
    lines, code = _audit().verdict(deps)
    assert code == 0
    assert any(
        line.startswith("WARNING: 1 of 2 distributions could NOT be audited") for line in lines
    )
    assert _audit().verdict(deps, strict=True)[1] == 1
    assert _audit().verdict(deps[:1], strict=True)[1] == 0
