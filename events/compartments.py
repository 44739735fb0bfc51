"""NATS permissions of every Frontdoor component: the one source of truth.

Each component connects as its own NATS user (``gateway``, one per service, and ``cli`` for the
operator's commands) and may do exactly what its ``Compartment`` lists:

- its own inbox prefix ``_INBOX.<user>`` (replies, JetStream acks and deliveries arrive there)
  and no other inbox;
- a service publishes only the event types it owns (``fd.event.<channel>.<conversation>.<type>``),
  the replies, failures and security events every service sends, and its own lifecycle events
  (``fd.event.system.<service>.service.*``); it takes only its own intents (consumer
  ``svc_<service>``), serves only its own request/reply doors ``fd.svc.<service>.*`` and its own
  ``$SRV`` discovery subjects, and calls only the doors listed in ``SERVICE_CALLS``;
- only the gateway (and ``cli``) publish intents; only the gateway creates the streams;
- the gateway hears JetStream's advisory about intents nobody answered and dead-letters them.

``render_deploy_config()`` is ``deploy/nats/nats-server.conf`` (``frontdoor nats config``
writes it; a test fails when the checked-in file differs), ``render_cluster_config()`` one node of
a JetStream cluster (``deploy/nats/nats-cluster.conf``, ``frontdoor nats config --cluster``),
``render_accounts_conf()`` the accounts alone (what the Helm values of ``deploy/k8s/helm``
include), ``render_embedded_config()`` the configuration of the embedded server of
``frontdoor up`` (same users and permissions, generated passwords).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from events import subjects

GATEWAY: Final = "gateway"
CLI: Final = "cli"
#: The backend services (``backend_services/registry.py`` must register exactly these).
SERVICES: Final = ("management", "marketing", "analysis", "generative")
#: Every NATS user of the ``FRONTDOOR`` account, in the order of the rendered configuration.
COMPONENTS: Final = (GATEWAY, *SERVICES, CLI)
#: The service ``frontdoor bench bus`` runs (as the ``cli`` user).
BENCH_SERVICE: Final = "benchecho"
#: The event types ``frontdoor bench bus`` publishes (``bench.event``).
BENCH_EVENTS: Final = "bench.>"

#: Event types every service publishes (into the conversation of the intent it answers).
COMMON_SERVICE_EVENTS: Final = ("reply", "intent.failed", "security.>")
#: Event types each service owns besides the common ones.
SERVICE_EVENTS: Final[Mapping[str, tuple[str, ...]]] = {
    "management": ("ticket.>", "user.roles_changed", "privacy.erased"),
    "marketing": ("campaign.>", "lead.>", "segment.>"),
    "analysis": (),
    "generative": (),
}
#: Conversation events of the gateway (web, Slack, headless API, hand-offs).
GATEWAY_EVENTS: Final = (
    "message.received",
    "intent.detected",
    "reply",
    "handoff.>",
    "conversation.>",
    "security.>",
)
#: Request/reply doors (``<service>.<action>``) a service may call on another service.
SERVICE_CALLS: Final[Mapping[str, tuple[str, ...]]] = {
    "generative": ("management.ticket_get",),
}
#: Services that read the event bus (a JetStream consumer on FD_EVENTS). Consumers may deliver
#: to any subject, so no other service may create one.
SERVICES_READING_EVENTS: Final = ("management", "analysis", "generative")
#: Services with a database (SQLite by default): they look for another instance of their own.
SERVICES_ON_SQLITE: Final = ("management", "marketing")
#: Bucket streams: KV buckets and object stores (``KV_<bucket>``, ``OBJ_<bucket>``).
GATEWAY_KV: Final = (
    subjects.CONVERSATIONS_BUCKET,
    subjects.MODELS_POINTER_BUCKET,
    subjects.CURSORS_BUCKET,
    subjects.SLACK_SEEN_BUCKET,
    subjects.SLACK_THREADS_BUCKET,
    subjects.DELIVERED_BUCKET,
    subjects.HANDOFFS_BUCKET,
    subjects.LIMITS_BUCKET,
    subjects.WORKSPACE_BUCKET,
    subjects.AGENT_SIGNOUTS_BUCKET,
    subjects.TICKET_CONVERSATIONS_BUCKET,
)
#: The gateway serves chart images from ``fd_charts`` (analysis renders them).
GATEWAY_OBJECTS: Final = (subjects.MODELS_BUCKET, subjects.CHARTS_BUCKET)

_SRV_VERBS: Final = ("PING", "INFO", "STATS")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_JS = "$JS.API"


def inbox_prefix(user: str) -> str:
    """The inbox prefix of a NATS user: ``_INBOX.<user>`` (its only subscribable inbox)."""
    if not _TOKEN.match(user):
        raise ValueError(f"invalid NATS user name {user!r} for an inbox prefix")
    return f"_INBOX.{user}"


def password_variable(user: str) -> str:
    """The environment variable the deploy config reads ``user``'s password from."""
    return f"FD_NATS_{user.upper()}_PASSWORD"


@dataclass(frozen=True)
class Grant:
    """Subjects granted together, with the reason shown in the rendered configuration."""

    why: str
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class Compartment:
    """What one NATS user may publish and subscribe to."""

    user: str
    about: str
    publish: tuple[Grant, ...]
    subscribe: tuple[Grant, ...]
    publish_deny: tuple[str, ...] = ()
    #: may answer requests it received (micro services); everyone else publishes only its allow
    allow_responses: bool = False

    def publish_subjects(self) -> list[str]:
        """Every allowed publish subject, in order."""
        return [s for grant in self.publish for s in grant.subjects]

    def subscribe_subjects(self) -> list[str]:
        """Every allowed subscription subject, in order."""
        return [s for grant in self.subscribe for s in grant.subjects]


# -- building blocks --------------------------------------------------------------------------


def _events(*types: str) -> tuple[str, ...]:
    """Publish subjects of event types, in any channel and conversation."""
    return tuple(f"{subjects.EVENT_PREFIX}.*.*.{t}" for t in types)


def _lifecycle(service: str) -> str:
    return f"{subjects.EVENT_PREFIX}.system.{service}.service.>"


def _streams_info() -> Grant:
    return Grant(
        "JetStream account and stream info",
        (
            f"{_JS}.INFO",
            f"{_JS}.STREAM.INFO.{subjects.INTENT_STREAM}",
            f"{_JS}.STREAM.INFO.{subjects.EVENT_STREAM}",
            f"{_JS}.STREAM.INFO.{subjects.DEAD_STREAM}",
        ),
    )


def _read_events() -> Grant:
    stream = subjects.EVENT_STREAM
    return Grant(
        "ordered readers of the event bus",
        (
            f"{_JS}.CONSUMER.CREATE.{stream}",
            f"{_JS}.CONSUMER.CREATE.{stream}.>",
            f"{_JS}.CONSUMER.INFO.{stream}.>",
            f"{_JS}.CONSUMER.DELETE.{stream}.>",
            f"$JS.FC.{stream}.>",
        ),
    )


def _intent_consumer(service: str) -> Grant:
    """The service's own durable work-queue consumer. It can only be created with its own
    filter (the filter is part of the create subject), so it cannot take other intents."""
    stream = subjects.INTENT_STREAM
    consumer = subjects.service_consumer(service)
    return Grant(
        "its own durable intents consumer, filtered on its own intents, and nobody else's",
        (
            f"{_JS}.CONSUMER.INFO.{stream}.{consumer}",
            f"{_JS}.CONSUMER.CREATE.{stream}.{consumer}.{subjects.service_intents_filter(service)}",
            f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",
        ),
    )


def _bucket_stream(stream: str) -> tuple[str, ...]:
    return (
        f"{_JS}.STREAM.CREATE.{stream}",
        f"{_JS}.STREAM.INFO.{stream}",
        f"{_JS}.CONSUMER.CREATE.{stream}",
        f"{_JS}.CONSUMER.CREATE.{stream}.>",
        f"{_JS}.CONSUMER.DELETE.{stream}.>",
        f"{_JS}.DIRECT.GET.{stream}.>",
        f"{_JS}.STREAM.MSG.GET.{stream}",
        f"{_JS}.STREAM.PURGE.{stream}",
        f"$JS.FC.{stream}.>",
    )


def _stream_lookup() -> Grant:
    return Grant(
        "stream lookup by subject (nats-py's object store reads)", (f"{_JS}.STREAM.NAMES",)
    )


def _kv(bucket: str) -> Grant:
    return Grant(f"KV bucket {bucket}", (*_bucket_stream(f"KV_{bucket}"), f"$KV.{bucket}.>"))


def _typing() -> Grant:
    return Grant(
        "typing indicators between the agent workspace and the widget (core NATS, not stored)",
        (f"{subjects.TYPING_PREFIX}.>",),
    )


def _objects(bucket: str) -> Grant:
    return Grant(f"object store {bucket}", (*_bucket_stream(f"OBJ_{bucket}"), f"$O.{bucket}.>"))


def _srv_subjects(service: str) -> tuple[str, ...]:
    """The ``$SRV`` subjects a micro service named ``service`` listens on."""
    out: list[str] = []
    for verb in _SRV_VERBS:
        out.extend((f"$SRV.{verb}", f"$SRV.{verb}.{service}", f"$SRV.{verb}.{service}.>"))
    return tuple(out)


def _doors(service: str) -> Grant:
    return Grant(
        "its own request/reply doors and $SRV discovery",
        (f"{subjects.SERVICE_PREFIX}.{service}.>", *_srv_subjects(service)),
    )


def _inbox(user: str) -> Grant:
    return Grant("its own inbox only", (f"{inbox_prefix(user)}.>",))


# -- the compartments ------------------------------------------------------------------------


def _gateway() -> Compartment:
    return Compartment(
        user=GATEWAY,
        about=(
            "The gateway (web, Slack, headless API): creates the streams, publishes intents and "
            "conversation events, reads the event bus, keeps conversation state, cursors, Slack "
            "sets and hand-offs (KV) and NLU models (object store), calls the services' "
            "request/reply doors (resolve_actor, the headless API). It never takes intents."
        ),
        publish=(
            Grant("intents, for every service", (f"{subjects.INTENT_PREFIX}.>",)),
            Grant("its conversation events", _events(*GATEWAY_EVENTS)),
            Grant("the services' request/reply doors", (f"{subjects.SERVICE_PREFIX}.>",)),
            _streams_info(),
            Grant(
                "it creates the streams (the only one that does)",
                (
                    f"{_JS}.STREAM.CREATE.{subjects.INTENT_STREAM}",
                    f"{_JS}.STREAM.CREATE.{subjects.EVENT_STREAM}",
                    f"{_JS}.STREAM.CREATE.{subjects.DEAD_STREAM}",
                ),
            ),
            Grant(
                "intents nobody answered: read, dead-lettered, answered and removed",
                (
                    f"{_JS}.STREAM.MSG.GET.{subjects.INTENT_STREAM}",
                    f"{_JS}.STREAM.MSG.DELETE.{subjects.INTENT_STREAM}",
                    f"{subjects.DEAD_PREFIX}.>",
                    *_events("intent.failed"),
                ),
            ),
            _read_events(),
            Grant(
                "durable readers of the event bus, and single events by sequence",
                (
                    f"{_JS}.STREAM.MSG.GET.{subjects.EVENT_STREAM}",
                    f"{_JS}.CONSUMER.DURABLE.CREATE.{subjects.EVENT_STREAM}.>",
                    f"{_JS}.CONSUMER.MSG.NEXT.{subjects.EVENT_STREAM}.>",
                    f"$JS.ACK.{subjects.EVENT_STREAM}.>",
                ),
            ),
            *(_kv(bucket) for bucket in GATEWAY_KV),
            *(_objects(bucket) for bucket in GATEWAY_OBJECTS),
            _stream_lookup(),
            _typing(),
        ),
        publish_deny=(
            f"{_JS}.CONSUMER.MSG.NEXT.{subjects.INTENT_STREAM}.>",
            f"$JS.ACK.{subjects.INTENT_STREAM}.>",
        ),
        subscribe=(
            _inbox(GATEWAY),
            _typing(),
            Grant(
                "JetStream's advisory when an intent ran out of deliveries",
                (f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{subjects.INTENT_STREAM}.*",),
            ),
        ),
    )


_SERVICE_ABOUT: Final[Mapping[str, str]] = {
    "management": (
        "management: tickets, people, roles; follows service.* and intent.failed on the event "
        "bus and asks $SRV.STATS for services_status."
    ),
    "marketing": "marketing: campaigns, leads, segments. It does not read the event bus.",
    "analysis": "analysis: replays the event bus, stores chart PNGs (object store fd_charts).",
    "generative": (
        "generative: reads conversations on the event bus, and tickets through management's "
        "ticket_get door only."
    ),
}


def _service(name: str) -> Compartment:
    publish = [
        Grant(
            "the events it owns, and its own lifecycle",
            (*_events(*COMMON_SERVICE_EVENTS, *SERVICE_EVENTS[name]), _lifecycle(name)),
        ),
        Grant(
            "dead letters of its own intents (given up on after the last delivery)",
            (f"{subjects.DEAD_PREFIX}.{name}.>",),
        ),
        _streams_info(),
        _intent_consumer(name),
    ]
    if name in SERVICES_READING_EVENTS:
        publish.append(_read_events())
    if name in SERVICES_ON_SQLITE:
        publish.append(
            Grant(
                "$SRV discovery of its own instances (another one before using SQLite)",
                (f"$SRV.PING.{name}",),
            )
        )
    if name == "management":
        publish.append(Grant("$SRV discovery (services_status)", ("$SRV.STATS",)))
    if name == "analysis":
        publish.extend((_objects(subjects.CHARTS_BUCKET), _stream_lookup()))
    if calls := SERVICE_CALLS.get(name):
        publish.append(
            Grant(
                "the request/reply doors of other services it needs",
                tuple(f"{subjects.SERVICE_PREFIX}.{door}" for door in calls),
            )
        )
    return Compartment(
        user=name,
        about=_SERVICE_ABOUT[name],
        publish=tuple(publish),
        subscribe=(_inbox(name), _doors(name)),
        allow_responses=True,
    )


def _cli() -> Compartment:
    return Compartment(
        user=CLI,
        about=(
            "cli: the operator's commands (frontdoor doctor, nlu publish, bench bus, transcript, "
            "erase): JetStream "
            "and stream info, $SRV discovery, NLU models, intents; `bench bus` runs the "
            f"'{BENCH_SERVICE}' service on channel system. It never creates the streams."
        ),
        publish=(
            _streams_info(),
            Grant("$SRV discovery", (*(f"$SRV.{v}" for v in _SRV_VERBS), "$SRV.*.>")),
            Grant("intents, for every service", (f"{subjects.INTENT_PREFIX}.>",)),
            _read_events(),
            _kv(subjects.MODELS_POINTER_BUCKET),
            _objects(subjects.MODELS_BUCKET),
            _stream_lookup(),
            Grant(
                "dead letters: `frontdoor dead list` reads them, `replay` removes them",
                (
                    f"{_JS}.STREAM.MSG.GET.{subjects.DEAD_STREAM}",
                    f"{_JS}.STREAM.MSG.DELETE.{subjects.DEAD_STREAM}",
                ),
            ),
            Grant(
                "erasure (`frontdoor erase`): purge a conversation's events, delete its dialogue "
                "state, hand-off thread and ticket notices' record, publish the audit event",
                (
                    f"{_JS}.STREAM.PURGE.{subjects.EVENT_STREAM}",
                    f"{subjects.EVENT_PREFIX}.system.cli.privacy.erased",
                ),
            ),
            _kv(subjects.CONVERSATIONS_BUCKET),
            _kv(subjects.HANDOFFS_BUCKET),
            _kv(subjects.TICKET_CONVERSATIONS_BUCKET),
            Grant(
                f"the '{BENCH_SERVICE}' service of `frontdoor bench bus`",
                (
                    f"{subjects.EVENT_PREFIX}.system.*.{BENCH_EVENTS}",
                    f"{subjects.EVENT_PREFIX}.system.*.reply",
                    _lifecycle(BENCH_SERVICE),
                    *_intent_consumer(BENCH_SERVICE).subjects,
                ),
            ),
        ),
        subscribe=(_inbox(CLI), _doors(BENCH_SERVICE)),
        allow_responses=True,
    )


def compartments() -> list[Compartment]:
    """Every component's compartment, in ``COMPONENTS`` order."""
    return [_gateway(), *(_service(name) for name in SERVICES), _cli()]


def compartment(user: str) -> Compartment:
    """The compartment of ``user`` (KeyError when there is none)."""
    for found in compartments():
        if found.user == user:
            return found
    raise KeyError(f"no NATS compartment {user!r}; known: {', '.join(COMPONENTS)}")


# -- rendering ---------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return json.dumps(value)


def _wrap(text: str, indent: str, width: int = 96) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(indent) + 2 + len(line) + 1 + len(word) > width:
            lines.append(f"{indent}# {line}")
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(f"{indent}# {line}")
    return lines


def _subject_list(grants: tuple[Grant, ...], indent: str) -> list[str]:
    out: list[str] = []
    for grant in grants:
        out.append(f"{indent}# {grant.why}")
        out.extend(f"{indent}{_quoted(s)}," for s in grant.subjects)
    return out


def _render_user(c: Compartment, password: str, indent: str) -> list[str]:
    i1, i2, i3, i4 = (indent + "  " * n for n in (1, 2, 3, 4))
    out = [*_wrap(c.about, indent), f"{indent}{{"]
    out += [f"{i1}user: {c.user}", f"{i1}password: {password}", f"{i1}permissions: {{"]
    out += [f"{i2}publish: {{", f"{i3}allow: ["]
    out += _subject_list(c.publish, i4)
    out.append(f"{i3}]")
    if c.publish_deny:
        out.append(f"{i3}deny: [{', '.join(_quoted(s) for s in c.publish_deny)}]")
    out += [f"{i2}}}", f"{i2}subscribe: {{", f"{i3}allow: ["]
    out += _subject_list(c.subscribe, i4)
    out += [f"{i3}]", f"{i2}}}"]
    if c.allow_responses:
        out.append(f"{i2}allow_responses: true")
    out += [f"{i1}}}", f"{indent}}}"]
    return out


def render_accounts(
    passwords: Mapping[str, str] | None = None, *, system_user: bool = False
) -> str:
    """The ``accounts`` block: the ``FRONTDOOR`` account with one user per compartment.

    ``passwords`` maps user -> password (the embedded server); without it each password is the
    environment reference ``$FD_NATS_<USER>_PASSWORD`` (the deploy config). ``system_user`` adds
    the ``SYS`` account with the user ``sys`` (monitoring), password from the environment.
    """
    out = ["accounts {", "  FRONTDOOR {", "    jetstream: enabled", "    users: ["]
    for c in compartments():
        if passwords is None:
            password = f"${password_variable(c.user)}"
        else:
            password = _quoted(passwords[c.user])
        out += _render_user(c, password, "      ")
    out += ["    ]", "  }"]
    if system_user:
        out.append(f"  SYS {{ users: [{{ user: sys, password: ${password_variable('sys')} }}] }}")
    out.append("}")
    return "\n".join(out) + "\n"


DEPLOY_HEADER: Final = """\
# NATS for Frontdoor: JetStream on, one account, one user per component with least privilege.
# GENERATED from events/compartments.py: do not edit. Regenerate with
#     frontdoor nats config > deploy/nats/nats-server.conf
# (tests/test_deploy_nats_permissions.py fails when this file and the rendering differ, and runs
# it on a real nats-server to prove what each user may and may not do).
# Passwords come from the environment of the nats container (FD_NATS_<USER>_PASSWORD).
# Check the syntax with:  nats-server -t -c deploy/nats/nats-server.conf
"""


#: Where a deployed server listens: clients, monitoring (``/healthz``), routes between nodes.
CLIENT_PORT: Final = 4222
MONITOR_PORT: Final = 8222
CLUSTER_PORT: Final = 6222
#: The JetStream store of a deployed server, and its limit. Frontdoor's streams, buckets and
#: object stores reserve about 8 GiB (``events.streams``); with replicas 3 every node of a
#: three-node cluster holds a copy of each, so every node needs that much.
STORE_DIR: Final = "/data/jetstream"
MAX_FILE_STORE: Final = "10GB"
#: The user the nodes of a cluster authenticate each other's routes with.
ROUTE_USER: Final = "route"
#: Environment variables of a cluster node's configuration (``render_cluster_config``).
SERVER_NAME_VARIABLE: Final = "FD_NATS_SERVER_NAME"
ROUTE_PASSWORD_VARIABLE: Final = "FD_NATS_ROUTE_PASSWORD"


def route_url_variable(node: int) -> str:
    """The environment variable holding the route URL of node ``node`` (1-based):
    ``nats://route:<password>@<host>:6222`` (NATS does not expand variables inside a string, so
    the URL with its password comes whole from the environment)."""
    if node < 1:
        raise ValueError(f"nodes are numbered from 1, not {node}")
    return f"FD_NATS_ROUTE_URL_{node}"


def render_accounts_conf() -> str:
    """The ``accounts`` block and the system account of a deployment (passwords from the
    environment): what ``nats-server.conf`` and a cluster node carry, and what the Helm values
    include."""
    return render_accounts(system_user=True) + "system_account: SYS\n"


def render_deploy_config() -> str:
    """``deploy/nats/nats-server.conf``: passwords from the environment, a ``SYS`` account."""
    return (
        DEPLOY_HEADER
        + f"\nport: {CLIENT_PORT}\nhttp_port: {MONITOR_PORT}\nserver_name: frontdoor-nats\n\n"
        + f"jetstream {{\n  store_dir: {STORE_DIR}\n  max_file_store: {MAX_FILE_STORE}\n}}\n\n"
        + render_accounts_conf()
    )


def _cluster_header(name: str, nodes: int) -> str:
    return f"""\
# NATS for Frontdoor, one node of the JetStream cluster {name!r} ({nodes} nodes): JetStream on, one
# account, one user per component with least privilege (the users of nats-server.conf).
# GENERATED from events/compartments.py: do not edit. Regenerate with
#     frontdoor nats config --cluster {name} --nodes {nodes} -o deploy/nats/nats-cluster.conf
# (tests/test_deploy_cluster.py fails when this file and the rendering differ, and runs it as a
# real {nodes}-node cluster).
# Every node runs this same file; its environment says which node it is:
#   {SERVER_NAME_VARIABLE}     this node's name: unique, and the same at every start (its
#                           JetStream store and its place in the cluster belong to it)
#   {ROUTE_PASSWORD_VARIABLE}  the password of the routes between the nodes (user {ROUTE_USER!r})
#   {route_url_variable(1)}..{nodes}  every node's route, nats://{ROUTE_USER}:<password>@<node>:{CLUSTER_PORT}
#                           (a node skips the route to itself)
#   FD_NATS_<USER>_PASSWORD each component's password, as for nats-server.conf
# Check the syntax with:  nats-server -t -c deploy/nats/nats-cluster.conf
"""


def render_cluster_config(name: str = "frontdoor", nodes: int = 3) -> str:
    """``deploy/nats/nats-cluster.conf``: one node of a ``nodes``-node JetStream cluster named
    ``name`` (every node runs the same file; name, routes and passwords come from the
    environment), with the users and permissions of ``render_deploy_config``.

    Routes are authenticated (user ``route``). ``no_advertise`` keeps clients on the URLs they
    were given: each of those carries the component's user and password, an advertised address
    would not. A node being stopped with SIGUSR2 (lame duck mode) first hands its clients and
    its stream leaders to the other nodes.
    """
    if not _TOKEN.match(name):
        raise ValueError(f"invalid cluster name {name!r}: letters, digits, '_' and '-' only")
    if nodes < 3:
        raise ValueError(
            f"a JetStream cluster needs at least 3 nodes to survive losing one, not {nodes}"
        )
    routes = "\n".join(f"    ${route_url_variable(i)}" for i in range(1, nodes + 1))
    return (
        _cluster_header(name, nodes)
        + f"\nport: {CLIENT_PORT}\nhttp_port: {MONITOR_PORT}\n"
        + f"server_name: ${SERVER_NAME_VARIABLE}\n"
        + "# stopped with SIGUSR2 (lame duck mode), a node hands its clients and its stream\n"
        + "# leaders to the others before it exits\n"
        + "lame_duck_grace_period: 10s\nlame_duck_duration: 30s\n\n"
        + f"jetstream {{\n  store_dir: {STORE_DIR}\n  max_file_store: {MAX_FILE_STORE}\n}}\n\n"
        + "cluster {\n"
        + f"  name: {name}\n"
        + f"  port: {CLUSTER_PORT}\n"
        + "  # clients keep to the URLs they were given, which carry their credentials\n"
        + "  no_advertise: true\n"
        + f"  authorization {{\n    user: {ROUTE_USER}\n"
        + f"    password: ${ROUTE_PASSWORD_VARIABLE}\n  }}\n"
        + f"  routes: [\n{routes}\n  ]\n"
        + "}\n\n"
        + render_accounts_conf()
    )


def render_embedded_config(
    *, host: str, port: int, store_dir: str, log_file: str, passwords: Mapping[str, str]
) -> str:
    """The configuration of ``frontdoor up``'s embedded server (generated passwords)."""
    return (
        "# Written by `frontdoor up` from events/compartments.py (rewritten at every start).\n"
        f"listen: {_quoted(f'{host}:{port}')}\n"
        "server_name: frontdoor-embedded\n"
        f"log_file: {_quoted(log_file)}\n"
        f"jetstream {{\n  store_dir: {_quoted(store_dir)}\n}}\n\n" + render_accounts(passwords)
    )
