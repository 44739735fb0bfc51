"""Frontdoor on a NATS cluster, as deployed: docker-compose.yml's three NATS nodes and
deploy/nats/nats-cluster.conf, the NATS Helm chart's values of deploy/k8s/helm/nats-values.yaml,
PostgreSQL for management, and every component's NATS_URL.

The files are checked statically (YAML parses, every node routes to the others, no default
password, the Helm values use only keys of the chart's own values), then both NATS
configurations run as real three-node clusters of nats-server processes on loopback: the
components' users connect, Frontdoor creates its streams with three replicas, a service answers
an intent, and (compose's configuration) losing the node that leads the event stream loses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from pydantic import BaseModel

from backend_services.registry import service_names
from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus
from events.compartments import (
    COMPONENTS,
    ROUTE_PASSWORD_VARIABLE,
    ROUTE_USER,
    SERVER_NAME_VARIABLE,
    password_variable,
    render_accounts_conf,
    render_cluster_config,
    route_url_variable,
)
from events.embedded import find_nats_server, free_port
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply
from events.streams import BUCKETS, OBJECT_STORES, REPLICAS_ENV, BusLimits
from frontdoor.doctor import run_doctor
from frontdoor.nats_deploy import SERVER_SECRET, SERVER_USERS, pod_host, render_helm_values
from tests.claims import signed, signed_runner
from tests.conftest import TEST_LIMITS

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_CONF = ROOT / "deploy" / "nats" / "nats-cluster.conf"
SINGLE_CONF = ROOT / "deploy" / "nats" / "nats-server.conf"
K8S = ROOT / "deploy" / "k8s"
HELM_VALUES = K8S / "helm" / "nats-values.yaml"
NODES = ("nats-1", "nats-2", "nats-3")
COMPONENT_NAMES = ("gateway", *service_names())

#: Keys of the NATS chart's values (chart ``nats`` 1.x, github.com/nats-io/k8s,
#: helm/charts/nats) the values may use, each read in the chart's own templates or tests:
#: files/config/{config,cluster,jetstream}.yaml, files/stateful-set/{nats-container,
#: pod-template,jetstream-pvc}.yaml, templates/_helpers.tpl (``nats.env``,
#: ``nats.formatConfig``), test/{config,resources}_test.go. Below the keys of ``FREE_FORM`` the
#: content is the chart's to pass on (NATS config, a ConfigMap, env vars, a container spec).
CHART_KEYS = frozenset(
    {
        "config.cluster.enabled",
        "config.cluster.replicas",
        "config.cluster.merge",
        "config.jetstream.enabled",
        "config.jetstream.fileStore.enabled",
        "config.jetstream.fileStore.dir",
        "config.jetstream.fileStore.pvc.enabled",
        "config.jetstream.fileStore.pvc.size",
        "config.jetstream.fileStore.pvc.storageClassName",
        "config.jetstream.fileStore.maxSize",
        "config.jetstream.memoryStore.enabled",
        "config.jetstream.memoryStore.maxSize",
        "config.merge",
        "configMap.merge",
        "container.env",
        "container.merge",
        "podTemplate.topologySpreadConstraints",
        "natsBox.enabled",
    }
)
FREE_FORM = frozenset(
    {
        "config.cluster.merge",
        "config.merge",
        "configMap.merge",
        "container.env",
        "container.merge",
        "podTemplate.topologySpreadConstraints",
    }
)
#: Top-level keys of the chart's values.yaml (1.x).
CHART_TOP_LEVEL = frozenset(
    {
        "global",
        "nameOverride",
        "fullnameOverride",
        "namespaceOverride",
        "tlsCA",
        "config",
        "container",
        "reloader",
        "promExporter",
        "service",
        "statefulSet",
        "podTemplate",
        "headlessService",
        "configMap",
        "ingress",
        "podDisruptionBudget",
        "serviceAccount",
        "natsBox",
        "extraResources",
    }
)


# -- helpers -----------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _k8s_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


def _paths(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key path of ``tree``, not descending below the chart's free-form keys."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and path not in FREE_FORM:
            yield from _paths(value, f"{path}.")
        else:
            yield path


def _bytes(size: str) -> int:
    """A Kubernetes quantity (``10Gi``) or a NATS size (``10GB``: NATS counts in 1024s)."""
    match = re.fullmatch(r"(\d+)\s*([KMGT])(i|B)?", size.strip())
    assert match, size
    return int(match.group(1)) * 1024 ** ("KMGT".index(match.group(2)) + 1)


def _frontdoor_reservation() -> int:
    """Bytes JetStream reserves for everything Frontdoor creates (each ``max_bytes``)."""
    limits = BusLimits()
    streams = limits.event_max_bytes + limits.intent_max_bytes + limits.dead_max_bytes
    buckets = sum(spec.max_bytes for spec in (*BUCKETS.values(), *OBJECT_STORES.values()))
    return streams + buckets


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR:?message}`` interpolation (the only form the file uses)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in env, f"compose would refuse to start: {match.group(0)}"
        return env[name]

    return re.sub(r"\$\{(\w+):\?[^}]*\}", one, value)


def _urls(value: str) -> list[str]:
    return [one.strip() for one in value.split(",") if one.strip()]


# -- static: the rendered files are the renderings ---------------------------------------------


def test_the_cluster_config_is_the_rendering_of_the_compartments() -> None:
    assert CLUSTER_CONF.read_text() == render_cluster_config("frontdoor", 3), (
        "deploy/nats/nats-cluster.conf differs from events/compartments.py: regenerate it with "
        "`frontdoor nats config --cluster frontdoor --nodes 3 -o deploy/nats/nats-cluster.conf`"
    )


def test_the_helm_values_are_the_rendering_of_the_compartments() -> None:
    assert HELM_VALUES.read_text() == render_helm_values(), (
        "deploy/k8s/helm/nats-values.yaml differs from its rendering: regenerate it with "
        "`frontdoor nats helm-values -o deploy/k8s/helm/nats-values.yaml`"
    )


def test_every_nats_config_carries_the_same_accounts() -> None:
    """One source of truth: the single server, a cluster node and the Helm chart's included
    file carry the same accounts, users and permissions, character for character."""
    accounts = render_accounts_conf()
    assert SINGLE_CONF.read_text().endswith(accounts)
    assert CLUSTER_CONF.read_text().endswith(accounts)
    values = _values()
    include = values["config"]["merge"]["$include"]
    assert values["configMap"]["merge"]["data"][include] == accounts


def test_the_cluster_config_is_valid_nats_config(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **{password_variable(u): "x" for u in SERVER_USERS},
        SERVER_NAME_VARIABLE: "nats-1",
        **{route_url_variable(i): f"nats://route:x@nats-{i}:6222" for i in (1, 2, 3)},
    }
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(CLUSTER_CONF)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("nodes", [1, 2])
def test_a_cluster_of_fewer_than_three_nodes_is_refused(nodes: int) -> None:
    with pytest.raises(ValueError, match="at least 3 nodes"):
        render_cluster_config("frontdoor", nodes)


def test_the_cli_renders_the_cluster_config_and_the_helm_values(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from frontdoor import cli

    cli.register_commands()
    runner = CliRunner()
    out = tmp_path / "cluster.conf"
    result = runner.invoke(cli.app, ["nats", "config", "--cluster", "frontdoor", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == CLUSTER_CONF.read_text()
    result = runner.invoke(cli.app, ["nats", "helm-values"])
    assert result.exit_code == 0, result.output
    assert result.output == HELM_VALUES.read_text()
    result = runner.invoke(cli.app, ["nats", "config", "--cluster", "bad name!"])
    assert result.exit_code != 0


# -- static: compose ---------------------------------------------------------------------------


def test_compose_runs_three_nats_nodes_that_route_to_each_other() -> None:
    services = _compose()["services"]
    assert "nats" not in services, "one NATS server is a single point of failure"
    names: set[str] = set()
    volumes: set[str] = set()
    for node in NODES:
        spec = services[node]
        assert spec["command"] == ["-c", "/etc/nats/nats-cluster.conf"], node
        assert "./deploy/nats/nats-cluster.conf:/etc/nats/nats-cluster.conf:ro" in spec["volumes"]
        data = [v for v in spec["volumes"] if v.endswith(":/data")]
        assert len(data) == 1, f"{node} needs its own data volume"
        volumes.add(data[0].split(":")[0])
        env = spec["environment"]
        names.add(env[SERVER_NAME_VARIABLE])
        routes = {
            _interpolate(env[route_url_variable(i)], {ROUTE_PASSWORD_VARIABLE: "pw"})
            for i in (1, 2, 3)
        }
        # every node routes to every node (its own route is skipped by nats-server), with the
        # route user and password the cluster's authorization asks for
        assert routes == {f"nats://{ROUTE_USER}:pw@{other}:6222" for other in NODES}, node
        assert spec["stop_signal"] == "SIGUSR2", "stop in lame duck mode (leaders move first)"
        assert "js-server-only" in " ".join(spec["healthcheck"]["test"])
    assert names == set(NODES), "each node has its own server name"
    assert len(volumes) == 3 and volumes <= set(_compose()["volumes"]), volumes


def test_compose_nats_nodes_run_a_server_past_the_known_advisories() -> None:
    for node in NODES:
        image = _compose()["services"][node]["image"]
        version = re.match(r"nats:(\d+)\.(\d+)", image)
        assert version, image
        assert (int(version.group(1)), int(version.group(2))) >= (2, 12), image


def test_compose_nats_nodes_get_exactly_the_variables_their_config_reads() -> None:
    conf = CLUSTER_CONF.read_text()
    wanted = set(re.findall(r"\$(FD_NATS_\w+)", conf))
    assert set(re.findall(r"\$(FD_NATS_\w+_PASSWORD)", SINGLE_CONF.read_text())) <= wanted
    for node in NODES:
        env = _compose()["services"][node]["environment"]
        assert set(env) == wanted, node
        for name, value in env.items():
            if name.endswith("_PASSWORD"):
                assert value.startswith(f"${{{name}:?"), f"{node}: {name} has a default"


def test_every_component_lists_every_nats_node_with_its_own_user() -> None:
    services = _compose()["services"]
    for name in COMPONENT_NAMES:
        url = services[name]["environment"]["NATS_URL"]
        variable = password_variable(name)
        urls = _urls(_interpolate(url, {variable: "pw"}))
        assert urls == [f"nats://{name}:pw@{node}:4222" for node in NODES], name
        assert services[name]["environment"][REPLICAS_ENV] == "3", name


def test_compose_management_uses_postgresql() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    env = services["management"]["environment"]
    url = env.get("FRONTDOOR_MANAGEMENT_DATABASE_URL") or env["FRONTDOOR_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert "${FD_POSTGRES_PASSWORD:?" in url


# -- static: Kubernetes ------------------------------------------------------------------------


def test_the_helm_values_use_only_the_charts_keys() -> None:
    values = _values()
    assert set(values) <= CHART_TOP_LEVEL, set(values) - CHART_TOP_LEVEL
    used = set(_paths(values))
    assert used <= CHART_KEYS, sorted(used - CHART_KEYS)


def test_the_helm_values_make_a_three_node_jetstream_cluster_big_enough_for_frontdoor() -> None:
    config = _values()["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    js = config["jetstream"]
    assert js["enabled"] is True and js["fileStore"]["enabled"] is True
    assert js["fileStore"]["pvc"]["enabled"] is True
    volume = _bytes(js["fileStore"]["pvc"]["size"])
    limit = _bytes(js["fileStore"]["maxSize"])
    reserved = _frontdoor_reservation()
    # with replicas 3 every node holds a copy of everything Frontdoor reserves
    assert reserved <= limit < volume, (reserved, limit, volume)
    # the same limit as the single server's and the compose nodes' configuration
    single = re.search(r"max_file_store: (\S+)", SINGLE_CONF.read_text())
    cluster = re.search(r"max_file_store: (\S+)", CLUSTER_CONF.read_text())
    assert single and cluster
    assert _bytes(single.group(1)) == _bytes(cluster.group(1)) == limit
    assert reserved <= _bytes(cluster.group(1))


def test_the_helm_values_take_every_password_from_a_secret() -> None:
    values = _values()
    env = values["container"]["env"]
    text = HELM_VALUES.read_text()
    referenced = set(re.findall(r"\$(FD_NATS_\w+)", text))
    assert referenced <= set(env), referenced - set(env)
    for user in SERVER_USERS:
        source = env[password_variable(user)]["valueFrom"]["secretKeyRef"]
        assert source == {"name": SERVER_SECRET, "key": user}, user
    # every password is a NATS variable (``$FD_NATS_...``, ``<< $FD_NATS_... >>`` in the chart's
    # config values), never a value
    written = re.findall(r"password:\s*(?!\$FD_NATS_|<< \$FD_NATS_)(\S+)", text)
    assert not written, f"a password is written in the values: {written}"
    # the chart lists container.env in key order and Kubernetes expands $(VAR) only for
    # variables defined earlier: the route password must sort before the route URLs
    order = sorted(env)
    for i in (1, 2, 3):
        url = env[route_url_variable(i)]
        assert url == (f"nats://{ROUTE_USER}:$({ROUTE_PASSWORD_VARIABLE})@{pod_host(i - 1)}:6222")
        assert order.index(ROUTE_PASSWORD_VARIABLE) < order.index(route_url_variable(i))
    merge = values["config"]["cluster"]["merge"]
    assert merge["authorization"] == {
        "user": ROUTE_USER,
        "password": f"<< ${ROUTE_PASSWORD_VARIABLE} >>",
    }
    assert merge["routes"] == [f"<< ${route_url_variable(i)} >>" for i in (1, 2, 3)]


def test_k8s_components_list_every_nats_node_of_the_chart() -> None:
    examples = _k8s_docs(K8S / "secrets.example.yaml")
    urls = next(d for d in examples if d["metadata"]["name"] == "frontdoor-nats")["stringData"]
    for name in COMPONENT_NAMES:
        hosts = [u.split("@", 1)[1] for u in _urls(urls[name])]
        assert hosts == [f"{pod_host(i)}:4222" for i in range(3)], name
        assert all(u.startswith(f"nats://{name}:") for u in _urls(urls[name])), name
    server = next(d for d in examples if d["metadata"]["name"] == SERVER_SECRET)
    assert server["metadata"]["namespace"] == "nats"
    assert set(server["stringData"]) == set(SERVER_USERS)
    config = next(d for d in _k8s_docs(K8S / "config.yaml") if d["kind"] == "ConfigMap")
    assert config["data"][REPLICAS_ENV] == "3"


def test_k8s_management_with_several_replicas_has_postgresql_from_a_secret() -> None:
    deployment = next(d for d in _k8s_docs(K8S / "management.yaml") if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] > 1
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    url = env.get("FRONTDOOR_MANAGEMENT_DATABASE_URL") or env["FRONTDOOR_DATABASE_URL"]
    ref = url["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "frontdoor-db", "key": "url"}
    example = next(
        d
        for d in _k8s_docs(K8S / "secrets.example.yaml")
        if d["metadata"]["name"] == "frontdoor-db"
    )
    # the database of postgres.yaml, through its read-write Service (always the primary)
    assert example["stringData"]["url"].startswith("postgresql+asyncpg://frontdoor:")
    assert "@frontdoor-postgres-rw:5432/frontdoor" in example["stringData"]["url"]
    (cluster,) = _k8s_docs(K8S / "postgres.yaml")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and cluster["kind"] == "Cluster"
    assert cluster["metadata"]["name"] == "frontdoor-postgres"
    assert cluster["spec"]["instances"] >= 3
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "frontdoor"
    assert cluster["spec"]["bootstrap"]["initdb"]["owner"] == "frontdoor"
    assert cluster["spec"]["minSyncReplicas"] >= 1
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "postgres.yaml" in kustomization["resources"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_k8s_directory() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert kinds.count("Deployment") == len(COMPONENT_NAMES)
    assert "Cluster" in kinds and "ConfigMap" in kinds


# -- real clusters -----------------------------------------------------------------------------


PASSWORDS = {user: f"{user}-pw-{i}" for i, user in enumerate(SERVER_USERS)}


@dataclass
class Node:
    """One nats-server process of a test cluster, on loopback ports."""

    name: str
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, user: str) -> str:
        """This node's URL with ``user``'s credentials."""
        return f"nats://{user}:{PASSWORDS[user]}@127.0.0.1:{self.port}"


def _cluster_url(nodes: list[Node], user: str) -> str:
    return ",".join(node.url(user) for node in nodes)


def _compose_node_config(tmp_path: Path, nodes: list[Node], index: int) -> tuple[Path, dict]:
    """deploy/nats/nats-cluster.conf as compose runs it for ``nodes[index]``, with loopback
    ports and a private store; the environment is compose's, its hosts mapped to loopback."""
    node = nodes[index]
    conf = CLUSTER_CONF.read_text()
    replacements = [
        (r"^port: 4222$", f"listen: 127.0.0.1:{node.port}"),
        (r"^http_port: 8222$", f"http: 127.0.0.1:{node.http_port}"),
        (r"^  port: 6222$", f"  listen: 127.0.0.1:{node.cluster_port}"),
        (r"store_dir: /data/jetstream", f"store_dir: {tmp_path / node.name}"),
    ]
    for pattern, replacement in replacements:
        conf, count = re.subn(pattern, replacement, conf, flags=re.M)
        assert count == 1, pattern
    path = tmp_path / f"{node.name}.conf"
    path.write_text(conf)
    dotenv = {password_variable(user): PASSWORDS[user] for user in SERVER_USERS}
    env = {
        k: _interpolate(str(v), dotenv)
        for k, v in _compose()["services"][NODES[index]]["environment"].items()
    }
    for other, host in zip(nodes, NODES, strict=True):
        for key, value in env.items():
            env[key] = value.replace(f"@{host}:6222", f"@127.0.0.1:{other.cluster_port}")
    return path, env


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's ``mergeOverwrite``: maps merged key by key, anything else replaced."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _chart_config(values: Mapping[str, Any], release: str = "nats") -> dict[str, Any]:
    """The NATS config the chart builds from ``values`` (files/config/config.yaml,
    cluster.yaml and jetstream.yaml: server name, lame duck, ports, routes to every pod, the
    JetStream store), with the values' merges applied."""
    config = values["config"]
    conf: dict[str, Any] = {
        "server_name": "<< $POD_NAME >>",
        "lame_duck_grace_period": "10s",
        "lame_duck_duration": "30s",
        "port": 4222,
        "http_port": 8222,
    }
    cluster = config["cluster"]
    conf["cluster"] = _merge(
        {
            "name": release,
            "port": 6222,
            "no_advertise": True,
            "routes": [
                f"nats://{release}-{i}.{release}-headless:6222" for i in range(cluster["replicas"])
            ],
        },
        cluster.get("merge", {}),
    )
    js = config["jetstream"]
    store = js["fileStore"]
    conf["jetstream"] = _merge(
        {
            "max_memory_store": 0,
            "store_dir": store["dir"],
            "max_file_store": f"<< {store.get('maxSize') or store['pvc']['size']} >>",
        },
        js.get("merge", {}),
    )
    return _merge(conf, config.get("merge", {}))


def _format_chart_config(conf: Mapping[str, Any]) -> str:
    """The chart's ``nats.formatConfig``: JSON, ``"<< x >>"`` unquoted, ``$include`` keys as
    ``include`` directives."""
    text = json.dumps(conf, indent=2, sort_keys=True)
    text = re.sub(r"\".*\$include\": \"(.*)\",?", r"include \1;", text)
    return re.sub(r"\"<<\s+(.*)\s+>>\"", r"\1", text)


def _kubernetes_env(env: Mapping[str, Any], pod: str, secret: Mapping[str, str]) -> dict:
    """The container's environment as Kubernetes makes it: ``POD_NAME`` first, then
    ``container.env`` in key order (the chart's ``nats.env``), Secret references resolved and
    ``$(VAR)`` expanded from the variables defined before."""
    out = {"POD_NAME": pod}
    for name in sorted(env):
        value = env[name]
        if isinstance(value, Mapping):
            ref = value["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SERVER_SECRET
            out[name] = secret[ref["key"]]
        else:
            out[name] = re.sub(
                r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), str(value)
            )
    return out


def _helm_node_config(tmp_path: Path, nodes: list[Node], index: int) -> tuple[Path, dict]:
    """The NATS config the chart makes from deploy/k8s/helm/nats-values.yaml for pod
    ``nats-<index>``, with loopback ports and a private store; the pods' names in the routes
    mapped to the loopback cluster ports."""
    node = nodes[index]
    values = _values()
    conf = _chart_config(values)
    conf.pop("port"), conf.pop("http_port")
    conf["listen"] = f"127.0.0.1:{node.port}"
    conf["http"] = f"127.0.0.1:{node.http_port}"
    conf["cluster"].pop("port")
    conf["cluster"]["listen"] = f"127.0.0.1:{node.cluster_port}"
    conf["jetstream"]["store_dir"] = str(tmp_path / node.name)
    directory = tmp_path / f"config-{node.name}"
    directory.mkdir()
    for name, content in values["configMap"]["merge"]["data"].items():
        (directory / name).write_text(content)
    path = directory / "nats.conf"
    path.write_text(_format_chart_config(conf))
    env = _kubernetes_env(values["container"]["env"], f"nats-{index}", PASSWORDS)
    for i, other in enumerate(nodes):
        for key, value in env.items():
            env[key] = value.replace(f"@{pod_host(i)}:6222", f"@127.0.0.1:{other.cluster_port}")
    return path, env


def test_the_chart_config_of_the_values_is_valid_nats_config(tmp_path: Path) -> None:
    nodes = [Node(f"n{i}") for i in range(3)]
    path, env = _helm_node_config(tmp_path, nodes, 0)
    text = path.read_text()
    assert "include frontdoor-accounts.conf;" in text
    assert "$FD_NATS_ROUTE_PASSWORD" in text and "<<" not in text
    result = subprocess.run(
        [find_nats_server(), "-t", "-c", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.asynccontextmanager
async def _running_cluster(
    tmp_path: Path, shape: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[Node]]:
    """Three nats-server processes running ``shape``'s configuration ("compose" or "helm")."""
    monkeypatch.delenv(REPLICAS_ENV, raising=False)  # the cluster alone must choose 3
    # named as the servers name themselves: compose's nodes, the chart's pods
    names = NODES if shape == "compose" else tuple(f"nats-{i}" for i in range(3))
    nodes = [Node(name) for name in names]
    make = _compose_node_config if shape == "compose" else _helm_node_config
    configs = [make(tmp_path, nodes, i) for i in range(3)]
    binary = find_nats_server()
    try:
        for node, (path, env) in zip(nodes, configs, strict=True):
            node.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [binary, "-c", str(path), "-l", str(tmp_path / f"{node.name}.log")],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        await _wait_for_jetstream(nodes, tmp_path)
        yield nodes
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                os.kill(node.process.pid, signal.SIGKILL)
                node.process.wait(10)


async def _wait_for_jetstream(nodes: list[Node], tmp_path: Path, timeout: float = 30) -> None:
    """Until a component (the gateway's user) gets JetStream's account info: the routes are up
    and the cluster has a meta leader."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        for node in nodes:
            assert node.process is not None and node.process.poll() is None, (
                f"{node.name} exited: "
                + (tmp_path / f"{node.name}.log").read_text(errors="replace")[-2000:]
            )
        try:
            nc = await nats.connect(
                servers=[n.url("gateway") for n in nodes],
                inbox_prefix="_INBOX.gateway",
                connect_timeout=1,
                allow_reconnect=False,
            )
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.2)
            continue
        try:
            await nc.jetstream(timeout=2).account_info()
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.2)
        finally:
            await nc.close()
    logs = "\n".join(
        (tmp_path / f"{n.name}.log").read_text(errors="replace")[-1500:] for n in nodes
    )
    pytest.fail(f"the cluster had no JetStream within {timeout}s: {last!r}\n{logs}")


class Ping(BaseModel):
    """The intent's input."""

    n: int


class Pong(BaseModel):
    """The intent's answer."""

    n: int


async def _answered(gateway: Bus, n: int) -> None:
    """The gateway publishes intent ``n`` for marketing and gets its reply."""
    intent = signed(
        Envelope.new(
            subjects.intent_type("marketing", "ping"),
            {"n": n},
            conversation=Conversation(channel="api", id=f"cluster-{n}"),
            actor=Actor(id="site:u", roles=("user",)),
        )
    )
    replies = gateway.tail(
        subjects.events_filter(channel="api", conversation_id=f"cluster-{n}", envelope_type="reply")
    )
    try:
        await gateway.publish(intent)
        _, reply = await asyncio.wait_for(anext(replies), 45)
    finally:
        if isinstance(replies, AsyncGenerator):
            await replies.aclose()
    assert reply.correlation_id == intent.id
    assert reply.payload_as(Reply).status == "ok"


@pytest.mark.parametrize("shape", ["compose", "helm"])
@pytest.mark.timeout(180)
async def test_a_real_three_node_cluster_from_the_deploy_config(
    tmp_path: Path, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered configuration runs as a three-node cluster: the gateway's user creates the
    streams with three replicas (chosen because the URL lists three nodes), a service's user
    takes and answers an intent; in compose's shape the node leading the event stream is then
    killed and the next intent is still answered."""
    async with _running_cluster(tmp_path, shape, monkeypatch) as nodes:
        gateway = await Bus.connect(
            _cluster_url(nodes, "gateway"), limits=TEST_LIMITS, publish_timeout=30
        )
        marketing = await Bus.connect(
            _cluster_url(nodes, "marketing"), limits=TEST_LIMITS, ensure=False
        )
        svc = Service("marketing")

        @svc.handler("ping")
        async def ping(payload: Ping, ctx: HandlerContext) -> Pong:
            return Pong(n=payload.n)

        runner = signed_runner(svc, marketing)
        try:
            assert gateway.cluster_size == 3 and gateway.replicas == 3
            await marketing.require_streams(10)
            await runner.start()
            await gateway.key_value(subjects.CONVERSATIONS_BUCKET)
            for stream in (
                subjects.INTENT_STREAM,
                subjects.EVENT_STREAM,
                subjects.DEAD_STREAM,
                f"KV_{subjects.CONVERSATIONS_BUCKET}",
            ):
                info = await gateway.js.stream_info(stream)
                assert info.config.num_replicas == 3, stream
                assert info.cluster is not None and len(info.cluster.replicas or []) == 2, stream
            await _answered(gateway, 1)
            # the operator's `frontdoor doctor` (user cli) finds every stream as Frontdoor wants it
            report = await run_doctor(_cluster_url(nodes, "cli"), shown_url="the cluster")
            checks = {c.name: c for c in report.checks}
            assert checks["jetstream"].ok and "3 replica(s)" in checks["jetstream"].detail
            streams = [c for c in report.checks if c.name.startswith("stream ")]
            assert len(streams) == 3 and all(c.ok for c in streams), streams

            if shape == "compose":
                info = await gateway.js.stream_info(subjects.EVENT_STREAM)
                assert info.cluster is not None
                leader = next(n for n in nodes if n.name == info.cluster.leader)
                assert leader.process is not None
                os.kill(leader.process.pid, signal.SIGKILL)
                leader.process.wait(10)
                await _answered(gateway, 2)
                info = await gateway.js.stream_info(subjects.EVENT_STREAM)
                assert info.cluster is not None and info.cluster.leader != leader.name
        finally:
            await runner.stop()
            await marketing.close()
            await gateway.close()


def test_the_components_of_the_tests_are_every_nats_user() -> None:
    assert set(SERVER_USERS) == {*COMPONENTS, "sys", ROUTE_USER}
