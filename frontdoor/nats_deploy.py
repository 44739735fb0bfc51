"""The values of the official NATS Helm chart for Frontdoor (``deploy/k8s/helm/nats-values.yaml``).

A JetStream cluster of three nodes (the chart's StatefulSet), a file store on a PVC per node,
and the accounts, users and permissions of ``events.compartments`` (the same text as
``deploy/nats/nats-server.conf``, added to the chart's ConfigMap and included from its
``nats.conf``). No password is in the values: each comes from the Kubernetes Secret
``frontdoor-nats-server`` through the container's environment, as ``$FD_NATS_<USER>_PASSWORD``.

Only keys of the chart's own values are used (chart ``nats`` 1.x, github.com/nats-io/k8s,
``helm/charts/nats``): ``config.cluster``, ``config.jetstream``, ``config.merge``,
``configMap.merge``, ``container.env``, ``container.merge``, ``podTemplate`` and ``natsBox``. In
the chart's config values, ``"<< $VAR >>"`` is written unquoted (a NATS variable, resolved from
the environment) and a key ending in ``$include`` becomes an ``include`` directive.
"""

from __future__ import annotations

from typing import Final

from events.compartments import (
    CLUSTER_PORT,
    COMPONENTS,
    ROUTE_PASSWORD_VARIABLE,
    ROUTE_USER,
    password_variable,
    render_accounts_conf,
    route_url_variable,
)

#: The Helm release and namespace the values assume (the pods are ``<release>-<i>``).
RELEASE: Final = "nats"
NAMESPACE: Final = "nats"
#: Nodes of the cluster (the chart's StatefulSet replicas).
NODES: Final = 3
#: The Secret (in the release's namespace) holding one password per NATS user, key = user.
SERVER_SECRET: Final = "frontdoor-nats-server"
#: The file added to the chart's ConfigMap with the accounts, included by its nats.conf.
ACCOUNTS_FILE: Final = "frontdoor-accounts.conf"
#: The JetStream store: its limit (``max_file_store``) and each node's volume.
MAX_FILE_STORE: Final = "10Gi"
VOLUME_SIZE: Final = "20Gi"
#: Users whose password the server needs: every component, ``sys`` (monitoring), the routes.
SERVER_USERS: Final = (*COMPONENTS, "sys", ROUTE_USER)


def pod_host(node: int, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """The DNS name of node ``node`` (0-based, the StatefulSet's ordinal) through the chart's
    headless Service: ``nats-0.nats-headless.nats.svc``."""
    return f"{release}-{node}.{release}-headless.{namespace}.svc"


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(f"{pad}{line}\n" if line else "\n" for line in text.splitlines())


HEADER: Final = """\
# Values of the official NATS Helm chart (github.com/nats-io/k8s, chart `nats`, 1.x) for
# Frontdoor: a JetStream cluster of {nodes} nodes, a file store on a PVC per node, the accounts,
# users and permissions of deploy/nats/nats-server.conf, every password from a Kubernetes Secret.
# GENERATED from events/compartments.py: do not edit. Regenerate with
#     frontdoor nats helm-values -o deploy/k8s/helm/nats-values.yaml
# (tests/test_deploy_cluster.py fails when this file and the rendering differ, and runs the NATS
# configuration these values make as a real {nodes}-node cluster).
#
# Install it as release `{release}` in namespace `{namespace}` (the routes below and the NATS_URLs
# in ../secrets.example.yaml name its pods {host0} ...), after the
# Secret `{secret}` with one password per user (docs/scaling.md shows how), keys:
#     {users}
# then:
#     helm repo add nats https://nats-io.github.io/k8s/helm/charts/
#     helm install {release} nats/nats -n {namespace} -f deploy/k8s/helm/nats-values.yaml
# Use a chart release whose nats image is 2.12.6 or later (`helm show chart nats/nats`).
"""


def render_helm_values(
    release: str = RELEASE, namespace: str = NAMESPACE, nodes: int = NODES
) -> str:
    """``deploy/k8s/helm/nats-values.yaml`` for a release ``release`` in ``namespace``."""
    if nodes < 3:
        raise ValueError(f"a JetStream cluster needs at least 3 nodes, not {nodes}")
    out = HEADER.format(
        nodes=nodes,
        release=release,
        namespace=namespace,
        host0=pod_host(0, release, namespace),
        secret=SERVER_SECRET,
        users=" ".join(SERVER_USERS),
    )
    routes = "".join(f"        - << ${route_url_variable(i)} >>\n" for i in range(1, nodes + 1))
    out += f"""
config:
  cluster:
    enabled: true
    replicas: {nodes}
    merge:
      # The routes between the nodes are authenticated. The chart's route list carries no
      # credentials and NATS does not expand a variable inside a URL, so each route comes whole
      # from the environment (container.env below).
      authorization:
        user: {ROUTE_USER}
        password: << ${ROUTE_PASSWORD_VARIABLE} >>
      routes:
{routes}  jetstream:
    enabled: true
    fileStore:
      enabled: true
      dir: /data
      pvc:
        enabled: true
        # Frontdoor's streams, buckets and object stores reserve about 8 GiB (events/streams.py),
        # and with replicas 3 every node holds a copy of each. The store's limit is that of
        # nats-server.conf; the volume has room beyond it for JetStream's own files (indexes,
        # raft logs) and to raise a limit. Set storageClassName to a class that can expand.
        size: {VOLUME_SIZE}
      maxSize: {MAX_FILE_STORE}
    memoryStore:
      enabled: false
  merge:
    # the accounts, users and permissions (configMap below)
    $include: {ACCOUNTS_FILE}

configMap:
  merge:
    data:
      {ACCOUNTS_FILE}: |
{_indent(render_accounts_conf(), 8)}
container:
  env:
    # Each user's password, from the Secret; every component's NATS_URL carries the same one.
"""
    for user in SERVER_USERS:
        out += (
            f"    {password_variable(user)}:\n"
            f"      valueFrom:\n"
            f"        secretKeyRef: {{name: {SERVER_SECRET}, key: {user}}}\n"
        )
    out += (
        "    # Every node's route, the password expanded by Kubernetes: the chart lists these\n"
        f"    # variables in name order, so {ROUTE_PASSWORD_VARIABLE} is defined before them.\n"
    )
    for i in range(1, nodes + 1):
        host = pod_host(i - 1, release, namespace)
        out += (
            f"    {route_url_variable(i)}: "
            f"nats://{ROUTE_USER}:$({ROUTE_PASSWORD_VARIABLE})@{host}:{CLUSTER_PORT}\n"
        )
    out += """\
    GOMEMLIMIT: 1800MiB
  merge:
    resources:
      requests: {cpu: 500m, memory: 1Gi}
      limits: {memory: 2Gi}

podTemplate:
  # one NATS node per Kubernetes node where there are enough: losing a machine loses one node
  topologySpreadConstraints:
    kubernetes.io/hostname:
      maxSkew: 1
      whenUnsatisfiable: DoNotSchedule

natsBox:
  # nats-box has no user of this account; the operator's tool is `frontdoor` as the user `cli`
  enabled: false
"""
    return out
