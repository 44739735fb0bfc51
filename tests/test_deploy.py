"""Static checks of deploy/: files parse, every registered service is deployed everywhere,
the Dockerfile runs an existing CLI command, the NATS config gives each component its user."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import typer.main
import yaml

from backend_services.registry import service_names
from events.compartments import REGENERATE, SERVICE_EVENTS, password_env
from events.embedded import find_nats_server

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _k8s_docs() -> list[dict]:
    docs: list[dict] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _cli_commands() -> dict[str, object]:
    from frontdoor import cli

    cli.register_commands()
    group = typer.main.get_command(cli.app)
    return dict(group.commands)  # type: ignore[attr-defined]


def test_compose_has_nats_postgres_gateway_and_every_service() -> None:
    services = _compose()["services"]
    assert {"nats", "postgres", "gateway"} <= set(services)
    assert "-js" in " ".join(services["nats"]["command"]) or "nats-server.conf" in " ".join(
        services["nats"]["command"]
    )
    for name in ["gateway", *service_names()]:
        assert name in services, f"docker-compose.yml has no {name} service"
        assert services[name]["command"] == [name]
        env = services[name]["environment"]
        assert env["NATS_URL"].startswith(f"nats://{name}:"), f"{name} must use its own NATS user"


def test_k8s_has_a_deployment_per_component_and_a_gateway_service() -> None:
    docs = _k8s_docs()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name in ["gateway", *service_names()]:
        dep = deployments.get(f"frontdoor-{name}")
        assert dep is not None, f"deploy/k8s has no Deployment frontdoor-{name}"
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [name]
        nats_env = next(e for e in container["env"] if e["name"] == "NATS_URL")
        assert nats_env["valueFrom"]["secretKeyRef"]["key"] == name
        assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    services = [d for d in docs if d["kind"] == "Service"]
    assert any(
        s["spec"]["selector"] == {"app.kubernetes.io/name": "frontdoor-gateway"} for s in services
    )
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for name in ["gateway", *service_names()]:
        assert f"{name}.yaml" in kustomization["resources"]


def test_dockerfile_is_multistage_non_root_and_runs_an_existing_command() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2, "multi-stage build expected"
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and not user[-1].startswith(("root", "0")), "must run as a non-root user"
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, flags=re.M).group(1))
    assert entrypoint[0] == "frontdoor"
    assert entrypoint[1] in _cli_commands(), f"`frontdoor {entrypoint[1]}` does not exist"
    cmd = json.loads(re.search(r"^CMD (.+)$", text, flags=re.M).group(1))
    assert cmd == ["gateway"]
    for copied in re.findall(r"^COPY (\w+) \./\1$", text, flags=re.M):
        assert (ROOT / copied).is_dir(), copied
    assert {"events", "skills", "bots", "backend_services", "frontdoor"} <= set(
        re.findall(r"^COPY (\w+) \./\1$", text, flags=re.M)
    )


def test_nats_config_is_valid_and_has_a_user_per_component() -> None:
    conf = (DEPLOY / "nats" / "nats-server.conf").read_text()
    assert re.search(r"^jetstream\s*\{", conf, flags=re.M)
    users = set(re.findall(r"user:\s*(\w+)", conf))
    assert {"gateway", "cli", *service_names()} <= users
    for name in service_names():
        assert f"$JS.API.CONSUMER.MSG.NEXT.FD_INTENTS.svc_{name}" in conf
        assert f"fd.svc.{name}.>" in conf
    env = {**os.environ, **{password_env(u): "x" for u in users}}
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(DEPLOY / "nats" / "nats-server.conf")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_config_is_the_rendering_of_the_compartments() -> None:
    """deploy/nats/nats-server.conf is generated: regenerate it with `frontdoor nats config`."""
    from frontdoor.cli_nats import deploy_config

    checked_in = (DEPLOY / "nats" / "nats-server.conf").read_text()
    assert checked_in == deploy_config(), (
        "deploy/nats/nats-server.conf differs from events/compartments.py; regenerate it: "
        f"{REGENERATE}"
    )
    assert REGENERATE in checked_in  # the header says how


def test_every_service_has_a_compartment() -> None:
    """A new service declares the event types it owns in events/compartments.py."""
    assert set(SERVICE_EVENTS) == set(service_names())
