"""NATS compartments: what each component of Frontdoor may publish and subscribe to.

The one source of truth for NATS permissions. ``deploy/nats/nats-server.conf`` (rendered by
``frontdoor nats config``) and the embedded server of ``frontdoor up`` (``events.local_auth``)
are both rendered from here; ``tests/test_deploy_nats_permissions.py`` runs the rendering on a
real nats-server and proves each denial.

The components: the ``gateway`` (web, Slack, headless API), one user per backend service, and
``cli``, the operator's tools (``frontdoor doctor``, ``nlu publish``, ``dead list|replay``).

- Inboxes: component ``c`` connects with the inbox prefix ``_INBOX.c`` (``inbox_prefix``) and
  may subscribe only to ``_INBOX.c.>``, so nobody reads another component's answers.
- Events (``fd.event.<channel>.<conversation>.<type...>``): a service publishes only the event
  types it owns (``SERVICE_EVENTS``), plus what every service sends (``reply``,
  ``intent.failed``, ``security.>``) and its own lifecycle on
  ``fd.event.system.<service>.service.>``. The gateway publishes the conversation events
  (``GATEWAY_EVENTS``).
- Intents (``fd.intent.>``): the gateway and the CLI only. Services take their own intents from
  their own durable consumer ``svc_<service>`` and nobody else's.
- Request/reply doors (``fd.svc.<service>.<action>``): the gateway calls any; a service only
  what ``SERVICE_CALLS`` lists; nobody but the gateway calls ``INTERNAL_ACTIONS``. A service
  answers only its own doors and its own ``$SRV`` discovery subjects.
- Streams: the gateway creates them (services never create streams); KV buckets and object
  stores belong to who uses them (the gateway's state and NLU models, analysis's charts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from events import subjects

GATEWAY: Final = "gateway"
CLI: Final = "cli"

#: The event types each backend service owns (``fd.event.*.*.<type>``). A new service adds
#: its line here; ``tests/test_deploy.py`` fails until every registered service has one.
SERVICE_EVENTS: Final[Mapping[str, tuple[str, ...]]] = {
    "management": ("ticket.>", "user.roles_changed"),
    "marketing": ("campaign.>", "lead.>", "segment.>"),
    "analysis": (),
    "generative": (),
}
#: What every service publishes about the intents it handles.
EVERY_SERVICE_EVENTS: Final = ("reply", "intent.failed", "security.>")
#: The conversation events of the gateway (channels, dialogue, hand-offs, dead letters).
GATEWAY_EVENTS: Final = (
    "message.received",
    "intent.detected",
    "reply",
    "handoff.>",
    "intent.failed",
    "security.>",
)
#: Request/reply doors (``<service>.<action>``) a service may call on another one.
SERVICE_CALLS: Final[Mapping[str, tuple[str, ...]]] = {
    "generative": ("management.ticket_get",),
}
#: Doors only the gateway may call (never a service, whatever ``SERVICE_CALLS`` says).
INTERNAL_ACTIONS: Final = ("management.resolve_actor",)
#: ``$SRV`` discovery verbs of NATS micro services.
SRV_VERBS: Final = ("PING", "INFO", "STATS")
#: Services that ask ``$SRV`` who is up (management's ``services_status``), and the verbs.
#: Besides, every service may ping its own name (are other instances of it running?).
SRV_ASKERS: Final[Mapping[str, tuple[str, ...]]] = {"management": ("STATS",)}
#: JetStream advisory the gateway hears when an intent ran out of deliveries.
MAX_DELIVERIES_ADVISORY: Final = (
    f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{subjects.INTENT_STREAM}.*"
)
#: The NATS account every component lives in.
ACCOUNT: Final = "FRONTDOOR"

_STREAMS: Final = (subjects.INTENT_STREAM, subjects.EVENT_STREAM, subjects.DEAD_STREAM)
_API: Final = "$JS.API"


@dataclass(frozen=True)
class Compartment:
    """One NATS user: what it may publish (allow minus deny) and subscribe to."""

    name: str
    description: str
    publish_allow: tuple[str, ...]
    publish_deny: tuple[str, ...]
    subscribe_allow: tuple[str, ...]
    #: may answer requests it received (on the requester's reply subject), once each
    allow_responses: bool = True


def inbox_prefix(component: str) -> str:
    """The inbox prefix of ``component``'s connections (``_INBOX.<component>``)."""
    return f"_INBOX.{component}"


def password_env(component: str) -> str:
    """The environment variable with ``component``'s password in the deploy config."""
    return f"FD_NATS_{component.upper()}_PASSWORD"


def components(services: Iterable[str] | None = None) -> list[str]:
    """Every component: the gateway, each service (``SERVICE_EVENTS`` by default), the CLI."""
    return [GATEWAY, *(services if services is not None else sorted(SERVICE_EVENTS)), CLI]


# -- building blocks ------------------------------------------------------------------------------


def _events(types: Iterable[str]) -> list[str]:
    return [f"{subjects.EVENT_PREFIX}.*.*.{t}" for t in types]


def _ordered_readers(stream: str) -> list[str]:
    """Ephemeral ordered consumers of ``stream`` (``Bus.tail``, KV watches, object reads)."""
    return [
        f"{_API}.CONSUMER.CREATE.{stream}",
        f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.INFO.{stream}.*",
        f"{_API}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _bucket(stream: str, data_subjects: str, *, write: bool) -> list[str]:
    """A KV bucket or object store (its stream ``stream``): created on first use, read, and
    with ``write`` written (its data subjects, purges)."""
    return [
        f"{_API}.STREAM.CREATE.{stream}",
        f"{_API}.STREAM.INFO.{stream}",
        f"{_API}.STREAM.MSG.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}",
        f"{_API}.DIRECT.GET.{stream}.>",
        *_ordered_readers(stream),
        *([f"{_API}.STREAM.PURGE.{stream}", data_subjects] if write else []),
    ]


def _kv(bucket: str) -> list[str]:
    return _bucket(f"KV_{bucket}", f"$KV.{bucket}.>", write=True)


def _objects(bucket: str, *, write: bool = True) -> list[str]:
    # reading an object looks its stream up by subject (nats-py: ``$JS.API.STREAM.NAMES``)
    return [
        *_bucket(f"OBJ_{bucket}", f"$O.{bucket}.>", write=write),
        f"{_API}.STREAM.NAMES",
    ]


def _door(call: str) -> str:
    service, action = call.split(".", 1)
    return f"fd.svc.{service}.{action}"


def _srv_answers(service: str) -> list[str]:
    """The ``$SRV`` subjects a micro service named ``service`` listens on."""
    out: list[str] = []
    for verb in SRV_VERBS:
        out += [f"$SRV.{verb}", f"$SRV.{verb}.{service}", f"$SRV.{verb}.{service}.>"]
    return out


# -- the compartments ---------------------------------------------------------------------------


def gateway() -> Compartment:
    """The gateway: creates the streams, publishes intents and conversation events, reads the
    bus, keeps conversation state, hand-offs and Slack bookkeeping (KV) and NLU models (objects),
    serves analysis's charts (read only), calls every service's request/reply door,
    dead-letters intents nobody answered. It never takes intents."""
    kv = [
        subjects.CONVERSATIONS_BUCKET,
        subjects.CURSORS_BUCKET,
        subjects.SLACK_SEEN_BUCKET,
        subjects.SLACK_THREADS_BUCKET,
        subjects.HANDOFFS_BUCKET,
        subjects.MODELS_POINTER_BUCKET,
    ]
    allow = [
        subjects.ALL_INTENTS,
        *_events(GATEWAY_EVENTS),
        subjects.ALL_DEAD,
        "fd.svc.>",
        f"{_API}.INFO",
        *(f"{_API}.STREAM.CREATE.{s}" for s in _STREAMS),
        *(f"{_API}.STREAM.INFO.{s}" for s in _STREAMS),
        # an intent that ran out of deliveries: read it, answer it, dead-letter it, remove it
        f"{_API}.STREAM.MSG.GET.{subjects.INTENT_STREAM}",
        f"{_API}.STREAM.MSG.DELETE.{subjects.INTENT_STREAM}",
        *_ordered_readers(subjects.EVENT_STREAM),
    ]
    for bucket in kv:
        allow += _kv(bucket)
    allow += _objects(subjects.MODELS_BUCKET)
    # it serves analysis's chart images (any instance rendered them), and writes none
    allow += [a for a in _objects(subjects.CHARTS_BUCKET, write=False) if a not in allow]
    return Compartment(
        name=GATEWAY,
        description=gateway.__doc__ or "",
        publish_allow=tuple(allow),
        publish_deny=(
            f"{_API}.CONSUMER.MSG.NEXT.{subjects.INTENT_STREAM}.>",
            f"$JS.ACK.{subjects.INTENT_STREAM}.>",
        ),
        subscribe_allow=(f"{inbox_prefix(GATEWAY)}.>", MAX_DELIVERIES_ADVISORY),
    )


def service(name: str) -> Compartment:
    """A backend service: its own intents, its own event types, its own doors."""
    consumer = subjects.service_consumer(name)
    intents = subjects.INTENT_STREAM
    allow = [
        *_events(EVERY_SERVICE_EVENTS),
        *_events(SERVICE_EVENTS.get(name, ())),
        f"{subjects.EVENT_PREFIX}.system.{name}.service.>",
        f"{subjects.DEAD_PREFIX}.{name}.>",
        *(f"{_API}.STREAM.INFO.{s}" for s in _STREAMS),
        # its own durable intents consumer (created with its own filter), and nobody else's
        f"{_API}.CONSUMER.INFO.{intents}.{consumer}",
        f"{_API}.CONSUMER.CREATE.{intents}.{consumer}.{subjects.service_intents_filter(name)}",
        f"{_API}.CONSUMER.MSG.NEXT.{intents}.{consumer}",
        f"$JS.ACK.{intents}.{consumer}.>",
        *_ordered_readers(subjects.EVENT_STREAM),
        *(_door(call) for call in SERVICE_CALLS.get(name, ())),
        *(f"$SRV.{verb}" for verb in SRV_ASKERS.get(name, ())),
        f"$SRV.PING.{name}",
    ]
    if name == "analysis":
        allow += _objects(subjects.CHARTS_BUCKET)
    return Compartment(
        name=name,
        description=SERVICE_DESCRIPTIONS.get(name, f"The {name} service."),
        publish_allow=tuple(allow),
        publish_deny=(subjects.ALL_INTENTS, *(_door(call) for call in INTERNAL_ACTIONS)),
        subscribe_allow=(
            f"{inbox_prefix(name)}.>",
            f"fd.svc.{name}.>",
            *_srv_answers(name),
        ),
    )


SERVICE_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "management": "management: tickets, people and roles; asks $SRV.STATS who is up.",
    "marketing": "marketing: campaigns, leads and segments.",
    "analysis": "analysis: replays the event bus, keeps its chart PNGs (object store fd_charts).",
    "generative": "generative: reads a ticket through management's ticket_get door, nothing more.",
}


def cli() -> Compartment:
    """The operator's tools: ``frontdoor doctor`` (JetStream, streams, ``$SRV.PING``), ``nlu
    publish`` (NLU models), ``dead list|replay`` (dead letters, intents)."""
    allow = [
        subjects.ALL_INTENTS,
        f"{_API}.INFO",
        *(f"{_API}.STREAM.INFO.{s}" for s in _STREAMS),
        f"{_API}.STREAM.MSG.GET.{subjects.DEAD_STREAM}",
        f"{_API}.STREAM.MSG.DELETE.{subjects.DEAD_STREAM}",
        *_ordered_readers(subjects.EVENT_STREAM),
        *_objects(subjects.MODELS_BUCKET),
        *_kv(subjects.MODELS_POINTER_BUCKET),
        *(f"$SRV.{verb}" for verb in SRV_VERBS),
        *(f"$SRV.{verb}.*" for verb in SRV_VERBS),
    ]
    return Compartment(
        name=CLI,
        description=cli.__doc__ or "",
        publish_allow=tuple(allow),
        publish_deny=(),
        subscribe_allow=(f"{inbox_prefix(CLI)}.>",),
    )


def compartments(services: Iterable[str] | None = None) -> dict[str, Compartment]:
    """Every component's compartment, by name (``services``: ``SERVICE_EVENTS`` by default)."""
    names = list(services if services is not None else sorted(SERVICE_EVENTS))
    return {
        GATEWAY: gateway(),
        **{name: service(name) for name in names},
        CLI: cli(),
    }


# -- rendering ------------------------------------------------------------------------------------


def env_password(component: str) -> str:
    """The deploy config's password: a reference to ``FD_NATS_<COMPONENT>_PASSWORD``."""
    return f"${password_env(component)}"


def literal_password(passwords: Mapping[str, str]) -> Callable[[str], str]:
    """Passwords written into the config (the embedded server's private config file)."""

    def password(component: str) -> str:
        value = passwords[component]
        if not value or any(ch in value for ch in "\"\\\n'"):
            raise ValueError(f"unusable password for {component}")
        return f'"{value}"'

    return password


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _wrapped(items: tuple[str, ...], indent: str) -> str:
    """``items`` as a bracketed list, one subject per line."""
    if not items:
        return "[]"
    lines = [f"{indent}  {_quoted([item])}," for item in items]
    return "[\n" + "\n".join(lines) + f"\n{indent}]"


def _comment(text: str, indent: str) -> str:
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    line = ""
    for word in words:
        if len(indent) + len(line) + len(word) + 3 > 100 and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return "\n".join(f"{indent}# {one}" for one in lines)


def render_user(compartment: Compartment, password: str, indent: str = "      ") -> str:
    """One entry of the account's ``users`` list."""
    inner = indent + "  "
    perms = inner + "  "
    items = perms + "  "
    publish = f"{perms}publish: {{\n{items}allow: {_wrapped(compartment.publish_allow, items)}"
    if compartment.publish_deny:
        publish += f"\n{items}deny: {_wrapped(compartment.publish_deny, items)}"
    publish += f"\n{perms}}}"
    subscribe = (
        f"{perms}subscribe: {{ allow: {_wrapped(compartment.subscribe_allow, perms + '  ')} }}"
    )
    responses = f"{perms}allow_responses: {'true' if compartment.allow_responses else 'false'}"
    return "\n".join(
        [
            _comment(compartment.description, indent),
            f"{indent}{{",
            f"{inner}user: {compartment.name}",
            f"{inner}password: {password}",
            f"{inner}permissions: {{",
            publish,
            subscribe,
            responses,
            f"{inner}}}",
            f"{indent}}}",
        ]
    )


def render_accounts(
    password: Callable[[str], str],
    *,
    services: Iterable[str] | None = None,
    system_user: bool = False,
) -> str:
    """The ``accounts`` block: account ``FRONTDOOR`` with JetStream and one user per component
    (``password(component)`` gives each one's password as it appears in the config); with
    ``system_user`` also the ``SYS`` account with the user ``sys`` (monitoring)."""
    users = "\n".join(render_user(c, password(c.name)) for c in compartments(services).values())
    block = [
        "accounts {",
        f"  {ACCOUNT} {{",
        "    jetstream: enabled",
        "    users: [",
        users,
        "    ]",
        "  }",
    ]
    if system_user:
        block.append(f"  SYS {{ users: [{{ user: sys, password: {password('sys')} }}] }}")
    block.append("}")
    if system_user:
        block.append("system_account: SYS")
    return "\n".join(block) + "\n"


REGENERATE: Final = "frontdoor nats config > deploy/nats/nats-server.conf"


def render_deploy_config(services: Iterable[str] | None = None) -> str:
    """The whole ``deploy/nats/nats-server.conf`` (passwords from the nats-server's environment)."""
    header = f"""\
# NATS for Frontdoor: JetStream on, one account, one user per component with least privilege.
# GENERATED from events/compartments.py; do not edit. Regenerate with:
#   {REGENERATE}
# Passwords come from the environment of the nats-server (FD_NATS_<COMPONENT>_PASSWORD).
# Check the syntax with:  nats-server -t -c deploy/nats/nats-server.conf
# tests/test_deploy_nats_permissions.py runs this file on a real nats-server.

port: 4222
http_port: 8222
server_name: frontdoor-nats

jetstream {{
  store_dir: /data/jetstream
  max_file_store: 10GB
}}

"""
    return header + render_accounts(env_password, services=services, system_user=True)
