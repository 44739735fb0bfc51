"""The gateway's HTTP credentials: ``Authorization: Bearer <token>`` -> a ``Principal``.

One header, three kinds of token, told apart by their form:

- ``fds_...``: a session the gateway issued (a guest's, or a site user's);
- ``fdk_...``: an API key (management issues them);
- anything else that is a JWT: a site user token, verified with the site's key
  (when ``FRONTDOOR_SITE_TOKEN_SECRET`` or ``..._PUBLIC_KEY`` is configured).

A missing or bad credential is a 401 with ``WWW-Authenticate: Bearer`` and a reason; the token
itself is never logged nor echoed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from bots.identity import API_KEY_PREFIX, SESSION_TOKEN_PREFIX, Principal, Unauthenticated
from bots.roles import UnknownApiKey
from bots.web.sessions import InvalidSession
from events.errors import BusUnavailable

if TYPE_CHECKING:
    from bots.web.app import Gateway

CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_token(request: Request) -> str | None:
    """The bearer token of the request, or ``None`` when it sends none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def unauthorized(detail: str) -> HTTPException:
    """A 401 answer with the Bearer challenge."""
    return HTTPException(status_code=401, detail=detail, headers=CHALLENGE)


async def principal_of_token(gateway: Gateway, token: str) -> Principal:
    """What ``token`` proves (roles resolved), or ``HTTPException`` 401/503."""
    if token.startswith(SESSION_TOKEN_PREFIX):
        try:
            session = gateway.signer.verify(token)
        except InvalidSession as exc:
            raise unauthorized(f"The session token is not valid: {exc}.") from None
        return await gateway.roles.with_roles(session.principal)
    if token.startswith(API_KEY_PREFIX):
        try:
            return await gateway.roles.api_key(token)
        except UnknownApiKey:
            raise unauthorized("Unknown or revoked API key.") from None
        except BusUnavailable:
            raise HTTPException(
                503,
                detail="API keys cannot be checked right now (management is not answering).",
                headers={"Retry-After": "5"},
            ) from None
    if gateway.site_tokens is None:
        raise unauthorized(
            "Unknown credential: send a session token (POST /api/session) or an API key."
        )
    try:
        user = gateway.site_tokens.verify(token, time.time())
    except Unauthenticated as exc:
        raise unauthorized(f"The user token is not valid: {exc}.") from None
    return await gateway.roles.with_roles(user.principal())


async def authenticate(gateway: Gateway, request: Request) -> Principal:
    """The caller of ``request`` (401 without a valid credential)."""
    token = bearer_token(request)
    if token is None:
        raise unauthorized(
            "A credential is required: send 'Authorization: Bearer <token>' with a session "
            "token from POST /api/session, a user token signed by your site, or an API key."
        )
    return await principal_of_token(gateway, token)
