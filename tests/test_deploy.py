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


#: The NATS cluster's nodes in docker-compose.yml (tests/test_deploy_cluster.py checks the cluster).
NATS_NODES = ("nats-1", "nats-2", "nats-3")


def test_compose_has_nats_postgres_gateway_and_every_service() -> None:
    services = _compose()["services"]
    assert {*NATS_NODES, "postgres", "gateway"} <= set(services)
    for node in NATS_NODES:
        assert "nats-cluster.conf" in " ".join(services[node]["command"]), node
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
    entrypoint_line = re.search(r"^ENTRYPOINT (.+)$", text, flags=re.M)
    assert entrypoint_line, "the Dockerfile has no ENTRYPOINT"
    entrypoint = json.loads(entrypoint_line.group(1))
    assert entrypoint[0] == "frontdoor"
    assert entrypoint[1] in _cli_commands(), f"`frontdoor {entrypoint[1]}` does not exist"
    cmd_line = re.search(r"^CMD (.+)$", text, flags=re.M)
    assert cmd_line, "the Dockerfile has no CMD"
    cmd = json.loads(cmd_line.group(1))
    assert cmd == ["gateway"]
    for copied in re.findall(r"^COPY (\w+) \./\1$", text, flags=re.M):
        assert (ROOT / copied).is_dir(), copied
    assert {"events", "skills", "bots", "backend_services", "frontdoor"} <= set(
        re.findall(r"^COPY (\w+) \./\1$", text, flags=re.M)
    )


def test_every_registered_service_has_a_nats_compartment_and_no_other() -> None:
    from events.compartments import SERVICE_EVENTS, SERVICES

    assert sorted(SERVICES) == service_names()
    assert sorted(SERVICE_EVENTS) == service_names()


def test_nats_config_is_valid_and_has_a_user_per_component() -> None:
    conf = (DEPLOY / "nats" / "nats-server.conf").read_text()
    assert re.search(r"^jetstream\s*\{", conf, flags=re.M)
    users = set(re.findall(r"user:\s*(\w+)", conf))
    assert {"gateway", *service_names()} <= users
    for name in service_names():
        assert f"$JS.API.CONSUMER.MSG.NEXT.FD_INTENTS.svc_{name}" in conf
        assert f"fd.svc.{name}.>" in conf
    env = {
        **os.environ,
        **{f"FD_NATS_{u.upper()}_PASSWORD": "x" for u in [*users, "sys"]},
    }
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(DEPLOY / "nats" / "nats-server.conf")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_a_nats_server_past_the_known_advisories() -> None:
    """nats:2.12 follows the 2.12 patches (2.12.6+ fixes GHSA-9983-vrx2-fg9c); the 2.10 line
    has no fix for it."""
    for node in NATS_NODES:
        image = _compose()["services"][node]["image"]
        version = re.match(r"nats:(\d+)\.(\d+)", image)
        assert version, image
        assert (int(version.group(1)), int(version.group(2))) >= (2, 12), image


def test_compose_has_no_default_password_and_says_what_to_set() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    refs = re.findall(r"\$\{(\w*PASSWORD\w*)(:?[-?]?)([^}]*)\}", text)
    assert refs, "docker-compose.yml reads no password"
    for var, operator, message in refs:
        assert operator == ":?", f"${{{var}}} must use :? (no default, refuse to start)"
        assert var in message, f"the message of ${{{var}}} must name it"
    assert not re.search(r"PASSWORD\w*:-", text), "a password has a default"
    conf = (DEPLOY / "nats" / "nats-server.conf").read_text()
    cluster_conf = (DEPLOY / "nats" / "nats-cluster.conf").read_text()
    wanted = set(re.findall(r"\$(FD_NATS_\w+_PASSWORD)", cluster_conf))
    assert set(re.findall(r"\$(FD_NATS_\w+_PASSWORD)", conf)) <= wanted
    for node in NATS_NODES:
        env = _compose()["services"][node]["environment"]
        assert {name for name in env if name.endswith("_PASSWORD")} == wanted, node


def test_k8s_does_not_run_without_its_secrets_and_the_example_has_no_usable_value() -> None:
    from frontdoor.settings import nats_credentials_problem

    refs = 0
    for doc in _k8s_docs():
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    refs += 1
                    assert not ref.get("optional"), f"{env['name']} must not be optional"
    assert refs >= 2 * (1 + len(service_names()))
    examples = [
        d for d in yaml.safe_load_all((DEPLOY / "k8s" / "secrets.example.yaml").read_text()) if d
    ]
    nats_urls = next(d for d in examples if d["metadata"]["name"] == "frontdoor-nats")
    assert set(nats_urls["stringData"]) == {"gateway", *service_names()}
    for name, url in nats_urls["stringData"].items():
        assert url.startswith(f"nats://{name}:")
        assert "placeholder" in (nats_credentials_problem(url, name) or ""), name
    for doc in examples:
        for value in doc["stringData"].values():
            assert "CHANGE-ME" in value, value
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert "secrets.example.yaml" not in kustomization["resources"]


def test_the_claims_keys_and_the_session_secret_reach_exactly_who_needs_them() -> None:
    """The signing key is the gateway's only; every service gets the public keys; the gateway
    needs the session secret; nothing has a default value."""
    compose = _compose()
    services = compose["services"]
    gateway_env = services["gateway"]["environment"]
    assert services["gateway"]["secrets"] == ["claims_signing_key"]
    assert gateway_env["FRONTDOOR_CLAIMS_SIGNING_KEY_FILE"] == "/run/secrets/claims_signing_key"
    assert ":?" in gateway_env["FRONTDOOR_SESSION_SECRET"]  # compose refuses to start without it
    for name in service_names():
        assert services[name]["secrets"] == ["claims_public_keys"], name
        env = services[name]["environment"]
        assert env["FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE"] == "/run/secrets/claims_public_keys"
        assert "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE" not in env
    assert set(compose["secrets"]) == {"claims_signing_key", "claims_public_keys"}
    assert all("file" in spec for spec in compose["secrets"].values())

    deployments = {d["metadata"]["name"]: d for d in _k8s_docs() if d["kind"] == "Deployment"}
    for name in ["gateway", *service_names()]:
        pod = deployments[f"frontdoor-{name}"]["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        if name == "gateway":
            assert volumes["claims"]["secret"]["secretName"] == "frontdoor-claims-signing"
            assert "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE" in env
            session = env["FRONTDOOR_SESSION_SECRET"]["valueFrom"]["secretKeyRef"]
            assert session["name"] == "frontdoor-gateway" and not session.get("optional")
        else:
            assert volumes["claims"]["configMap"]["name"] == "frontdoor-claims-public"
            assert "FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE" in env
            assert "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE" not in env
            assert "secret" not in volumes["claims"]


def test_replicated_gateways_share_their_rate_limits() -> None:
    """Compose and Kubernetes count rate limits in NATS KV (``frontdoor up`` keeps memory)."""
    gateway_env = _compose()["services"]["gateway"]["environment"]
    assert gateway_env["FRONTDOOR_RATE_LIMIT_STORAGE"] == "nats"
    docs = _k8s_docs()
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"]["FRONTDOOR_RATE_LIMIT_STORAGE"] == "nats"
    gateway = next(d for d in docs if d["metadata"]["name"] == "frontdoor-gateway")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
