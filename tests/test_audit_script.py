"""scripts/audit (run by scripts/test): a known vulnerability fails the test command, a clean
report passes, and packages it could not audit are reported, never passed over in silence.

pip-audit itself is replaced by a stand-in that writes the report (the real one asks PyPI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _audit(tmp_path: Path, report: dict, status: int) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "fake" / "pip_audit"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        "import json, sys\n"
        "out = sys.argv[sys.argv.index('--output') + 1]\n"
        f"json.dump({report!r}, open(out, 'w'))\n"
        f"sys.exit({status})\n"
    )
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "audit"), sys.executable],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_known_vulnerability_fails_the_audit(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {
                "name": "aiohttp",
                "version": "3.9.0",
                "vulns": [{"id": "GHSA-x", "fix_versions": ["3.9.2"]}],
            },
            {"name": "nats-py", "version": "2.16.0", "vulns": []},
        ]
    }
    done = _audit(tmp_path, report, 1)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "VULNERABLE aiohttp 3.9.0: GHSA-x (fixed in 3.9.2)" in done.stdout


def test_a_clean_audit_passes_and_says_what_it_could_not_check(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {"name": "nats-py", "version": "2.16.0", "vulns": []},
            {"name": "torch", "skip_reason": "Dependency not found on PyPI: torch (2.13.0+cpu)"},
        ]
    }
    done = _audit(tmp_path, report, 0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 packages audited, 0 vulnerable, 1 not audited" in done.stdout
    assert "1 of 2 packages could not be audited" in done.stderr and "torch" in done.stderr
