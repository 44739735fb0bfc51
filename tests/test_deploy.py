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


#: ``${VAR...}`` references in compose: (name, operator, message).
_REFERENCE = re.compile(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")


def test_compose_has_no_default_secret_and_refuses_to_start_without_each() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    references = _REFERENCE.findall(text)
    assert references, "docker-compose.yml reads its secrets from the environment"
    for name, operator, message in references:
        assert operator == ":?", f"${{{name}}} must be ${{{name}:?<what to set>}}, not {operator}"
        assert name in message and len(message) > len(name) + 10, f"say what {name} is"
    assert not re.search(r"(?i)(password|secret)\w*:\s*[\w-]+-dev\b", text)
    needed = {name for name, _, _ in references}
    conf = (DEPLOY / "nats" / "nats-server.conf").read_text()
    nats_env = _compose()["services"]["nats"]["environment"]
    for var in set(re.findall(r"\$(FD_NATS_\w+_PASSWORD)", conf)):
        assert var in nats_env and var in needed, f"compose gives nats no {var}"
    assert {"FD_POSTGRES_PASSWORD", "FRONTDOOR_SESSION_SECRET", "FRONTDOOR_KEYS_DIR"} <= needed


def test_compose_gives_the_signing_key_to_the_gateway_only() -> None:
    compose = _compose()
    services = compose["services"]
    secrets = compose["secrets"]
    assert secrets["claims_signing_key"]["file"].endswith("/claims-signing.pem")
    assert secrets["claims_public_keys"]["file"].endswith("/claims-public.jwks.json")
    gateway = services["gateway"]
    assert gateway["secrets"] == ["claims_signing_key"]
    assert gateway["environment"]["FRONTDOOR_CLAIMS_SIGNING_KEY_FILE"] == (
        "/run/secrets/claims_signing_key"
    )
    assert gateway["environment"]["FRONTDOOR_SESSION_SECRET"].startswith(
        "${FRONTDOOR_SESSION_SECRET:?"
    )
    for name in service_names():
        service = services[name]
        assert service["secrets"] == ["claims_public_keys"], name
        env = service["environment"]
        assert env["FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE"] == "/run/secrets/claims_public_keys"
        assert not any("SIGNING" in key or "SESSION" in key for key in env), name


def test_compose_runs_a_nats_server_without_the_known_advisories() -> None:
    image = _compose()["services"]["nats"]["image"]
    version = re.match(r"nats:(\d+)\.(\d+)", image)
    assert version, image
    assert (int(version.group(1)), int(version.group(2))) >= (2, 12), image


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


def _containers() -> dict[str, tuple[dict, dict]]:
    """Each component's container and pod spec."""
    out = {}
    for doc in _k8s_docs():
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            out[pod["containers"][0]["args"][0]] = (pod["containers"][0], pod)
    return out


def test_k8s_secrets_are_required_files_and_the_signing_key_is_the_gateways() -> None:
    containers = _containers()
    for name, (container, pod) in containers.items():
        for env in container["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert "optional" not in ref, f"{name}: {env['name']} must be required"
        secret_volumes = {
            v["secret"]["secretName"]: v["name"] for v in pod["volumes"] if "secret" in v
        }
        env = {e["name"]: e for e in container["env"]}
        if name == "gateway":
            assert set(secret_volumes) == {"frontdoor-claims-signing"}
            assert env["FRONTDOOR_CLAIMS_SIGNING_KEY_FILE"]["value"].endswith("claims-signing.pem")
            assert env["FRONTDOOR_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
                "name": "frontdoor-gateway",
                "key": "session-secret",
            }
        else:
            assert set(secret_volumes) == {"frontdoor-claims-public"}, name
            assert env["FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE"]["value"].endswith(
                "claims-public.jwks.json"
            )
            assert not any("SIGNING" in key or "SESSION" in key for key in env), name
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        for volume in secret_volumes.values():
            assert mounts[volume]["readOnly"] is True
            mount = mounts[volume]["mountPath"]
            path = next(e["value"] for e in env.values() if e.get("value", "").startswith(mount))
            assert path.startswith(mount + "/")


def test_k8s_secrets_example_holds_no_usable_value() -> None:
    example = DEPLOY / "k8s" / "secrets.example.yaml"
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    names = {d["metadata"]["name"] for d in docs}
    assert {
        "frontdoor-nats",
        "frontdoor-db",
        "frontdoor-gateway",
        "frontdoor-claims-signing",
        "frontdoor-claims-public",
    } <= names
    for doc in docs:
        assert doc.get("data") is None
        for key, value in doc["stringData"].items():
            assert value == "", f"{doc['metadata']['name']}/{key} must not hold a usable value"
    nats = next(d for d in docs if d["metadata"]["name"] == "frontdoor-nats")
    assert {"gateway", "cli", *service_names()} <= set(nats["stringData"])
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert "secrets.example.yaml" not in kustomization["resources"]


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
