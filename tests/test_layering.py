"""The layering rules of DESIGN.md, checked on the source (AST of every module).

frontdoor -> bots -> skills -> events; backend_services -> events (+ skills);
bots and backend_services never import each other; events imports nothing of ours;
skills imports neither bots, backend_services nor frontdoor; nothing imports frontdoor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("frontdoor", "bots", "skills", "backend_services", "events")

#: package -> packages of ours it must never import
FORBIDDEN: dict[str, set[str]] = {
    "events": {"frontdoor", "bots", "skills", "backend_services"},
    "skills": {"frontdoor", "bots", "backend_services"},
    "bots": {"frontdoor", "backend_services"},
    "backend_services": {"frontdoor", "bots"},
    "frontdoor": set(),
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Top-level package names imported by ``path`` (absolute imports), with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add((alias.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add((node.args[0].value.split(".")[0], node.lineno))
    return found


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def test_every_package_exists() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").is_file(), package


@pytest.mark.parametrize("package", PACKAGES)
def test_layering(package: str) -> None:
    violations = []
    for path in _modules(package):
        for imported, line in imported_packages(path):
            if imported in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not violations, f"{package} breaks the layering:\n" + "\n".join(sorted(violations))


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import backend_services.runtime\nfrom bots.web import app\n"
        "def f():\n    import frontdoor.cli\n"
        "import importlib\nimportlib.import_module('skills.nlu')\nfrom . import sibling\n"
    )
    assert {name for name, _ in imported_packages(bad)} == {
        "backend_services",
        "bots",
        "frontdoor",
        "importlib",
        "skills",
    }
