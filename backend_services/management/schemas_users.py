"""User, role, identity and API-key inputs and outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from backend_services.management.identities import parse_identity
from backend_services.management.lifecycle import Role
from backend_services.management.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from backend_services.management.schemas_tickets import MAX_ID

_HANDLE = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _identity_list(value: list[str]) -> list[str]:
    out = []
    for raw in value:
        channel, ident = parse_identity(raw)
        out.append(f"{channel}:{ident}")
    return out


def _lower_roles(value: Any) -> Any:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    return [v.strip().lower() for v in value] if isinstance(value, list) else value


class NoInput(_In):
    """An action without inputs."""


class UserRef(_In):
    """Which user: handle, email, or an identity such as ``slack:U123``."""

    user: str = Field(min_length=1, max_length=320)


class UserCreate(_In):
    """Register a person (admins)."""

    handle: str = Field(pattern=_HANDLE, description="Short unique name, e.g. 'alice'")
    email: EmailStr | None = None
    name: str | None = Field(default=None, max_length=200)
    roles: list[Role] = Field(default_factory=list, description="admin and/or agent")
    identities: list[str] = Field(default_factory=list, description="e.g. ['slack:U123']")

    _roles = field_validator("roles", mode="before")(_lower_roles)
    _ids = field_validator("identities")(_identity_list)

    @field_validator("handle", mode="before")
    @classmethod
    def _handle(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class UserUpdate(UserRef):
    """Change a user's name, email or active flag (admins)."""

    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    active: bool | None = None


class UserSetRoles(UserRef):
    """Replace a user's roles (everyone is implicitly ``user``)."""

    roles: list[Role]

    _roles = field_validator("roles", mode="before")(_lower_roles)


class IdentityLink(UserRef):
    """Link (or unlink) a channel identity such as ``slack:U123`` to a user."""

    identity: str = Field(min_length=3, max_length=300)

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str) -> str:
        channel, ident = parse_identity(value)
        if channel == "api":
            raise ValueError("API keys are created with api_key_create, not linked")
        return f"{channel}:{ident}"


class UserSearch(_In):
    """List users, optionally by role or text in handle/name/email."""

    role: Role | None = None
    text: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=500)


class ApiKeyCreate(UserRef):
    """Issue an API key for a user (the key is shown once)."""

    name: str = Field(default="default", min_length=1, max_length=100)


class ApiKeyRevoke(_In):
    """Revoke an API key by its id."""

    key_id: int = Field(ge=1, le=MAX_ID)


class ResolveActor(_In):
    """Who is this? A proven actor id (``slack:U123``, ``site:42``, ``guest:...``), or an API key.

    Internal (the gateway's): the gateway proved the id before it asks.
    """

    actor: str | None = Field(default=None, min_length=3, max_length=300)
    api_key: str | None = Field(default=None, min_length=8, max_length=300)

    @model_validator(mode="after")
    def _one(self) -> ResolveActor:
        if (self.actor is None) == (self.api_key is None):
            raise ValueError("give exactly one of 'actor' and 'api_key'")
        return self


class PasswordSet(UserRef):
    """Set (or, with ``null``, remove) a user's password for the agent workspace (admins)."""

    password: str | None = Field(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        description=f"At least {MIN_PASSWORD_CHARS} characters; null removes the password",
    )


class PasswordCheck(_In):
    """Internal (the gateway's sign-in): is this the password of this user?"""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    user: str = Field(min_length=1, max_length=320, description="Handle or email")
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)


class PasswordChanged(BaseModel):
    """A user's password was set or removed."""

    user: str
    has_password: bool

    def reply_text(self) -> str:
        """Confirmation (never the password)."""
        verb = "set" if self.has_password else "removed"
        return f"The password of {self.user} is {verb}."


class ApiKeyOut(BaseModel):
    """An API key's metadata (never the key)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class UserOut(BaseModel):
    """A user with roles and identities."""

    id: int
    handle: str
    email: str | None
    name: str | None
    active: bool
    roles: list[str]
    identities: list[str]
    api_keys: list[ApiKeyOut] = Field(default_factory=list)
    message: str | None = None

    def reply_text(self) -> str:
        """``alice (Alice A, alice@example.com): roles admin, user.``"""
        who = ", ".join(x for x in (self.name, self.email) if x)
        line = f"{self.handle}{f' ({who})' if who else ''}: roles {', '.join(self.roles)}"
        if not self.active:
            line += " (deactivated)"
        line += "."
        return f"{self.message} {line}" if self.message else line


class UserList(BaseModel):
    """Users."""

    users: list[UserOut]

    def reply_text(self) -> str:
        """One user per line."""
        if not self.users:
            return "No users match."
        return "\n".join(u.reply_text() for u in self.users)


class ApiKeyCreated(BaseModel):
    """A new API key: ``key`` is shown this once and never stored."""

    id: int
    user: str
    name: str
    prefix: str
    key: str

    def reply_text(self) -> str:
        """Tell the admin to store the key now."""
        return f"API key '{self.name}' for {self.user}: {self.key} (shown once; store it now)."


class ApiKeyRevoked(BaseModel):
    """A revoked key."""

    id: int
    user: str
    name: str

    def reply_text(self) -> str:
        """Confirmation."""
        return f"API key {self.id} ('{self.name}') of {self.user} is revoked."


class ResolvedActor(BaseModel):
    """The roles of an actor: guests are ``guest``, unknown people plain ``user``."""

    actor_id: str = Field(description="The id to put in the envelope's Actor")
    known: bool
    user: str | None = Field(default=None, description="Handle of the user, when known")
    name: str | None = None
    email: str | None = None
    roles: list[str]

    def reply_text(self) -> str:
        """``slack:U123 is alice (roles admin, user).``"""
        who = self.user or "an unknown user"
        return f"{self.actor_id} is {who} (roles {', '.join(self.roles)})."


class PersonErase(_In):
    """Erase a person (admins): a registered user (handle, email, identity such as
    ``slack:U1``), a requester known only by e-mail, or a guest by actor id (``guest:w-…``).

    ``dry_run`` answers what would go and changes nothing. ``conversations`` and ``events`` are
    what the caller (``frontdoor erase user``) already erased of them on the event bus, and
    ``reference`` its erasure reference: both go into the ``privacy.erased`` audit event, so one
    event records the whole erasure."""

    person: str = Field(min_length=1, max_length=320)
    dry_run: bool = False
    conversations: int = Field(default=0, ge=0)
    events: int = Field(default=0, ge=0)
    reference: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class PersonErased(BaseModel):
    """What an erasure removed (or, in a dry run, would remove), in counts; the numbers of the
    erased tickets for the caller (to forget where they were opened), never in the event."""

    message: str
    what: str | None = None
    dry_run: bool = False
    tickets: int = 0
    comments: int = 0
    anonymised: int = 0
    user_record: bool = False
    ticket_numbers: list[int] = Field(default_factory=list)
    reference: str | None = None

    def reply_text(self) -> str:
        """The counts (never the person's data)."""
        return self.message
