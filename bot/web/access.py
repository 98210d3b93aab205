"""The rule of every HTTP route: which staff roles may open it, or that it is no staff route.

Each handler carries its rule, one line above it:

    @access.allow(access.EVERYONE)        # any staff role, with a dashboard session
    @access.allow(access.WRITERS)         # officers and admins
    @access.public                        # no staff session: the login pages, the webhook
    async def handler(request): ...       # (its own secret), a graduate's personal link …

The dashboard's session middleware (bot/web/dashboard.py) looks the rule up for the route a
request matched (`rule_for`) and refuses, with 403 and the dashboard's page in the staff
member's language, a role the rule does not name, and every route without a rule, whoever
asks (fail closed); static files are public. Staff routes live under /dashboard (the session
cookie's path): outside it, only public routes answer. tests/test_roles.py lists the routes from the
application's router and compares each with its own table, so that a route added without a
rule, or with another rule than the table's, fails there.

The role sets are conversations/access.py's: the chat's staff commands use the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute, StaticResource

from conversations.access import (
    ADMIN,
    EVERYONE,
    OFFICER,
    PROGRAMME,
    REGIONAL,
    RESEARCHER,
    ROWS,
    WRITERS,
    Roles,
)

__all__ = [
    "ADMIN",
    "EVERYONE",
    "OFFICER",
    "PROGRAMME",
    "PUBLIC",
    "REGIONAL",
    "RESEARCHER",
    "ROWS",
    "WRITERS",
    "Roles",
    "Rule",
    "allow",
    "public",
    "rule_for",
]

PUBLIC: Literal["public"] = "public"
Rule = Roles | Literal["public"]
ATTRIBUTE = "gradtrack_route_rule"

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def allow(roles: Roles) -> Callable[[H], H]:
    """The staff roles that may open the route this handler answers."""

    def mark(handler: H) -> H:
        setattr(handler, ATTRIBUTE, frozenset(roles))
        return handler

    return mark


def public(handler: H) -> H:
    """No staff route: anyone may ask (the route checks its own secret, if it has one)."""
    setattr(handler, ATTRIBUTE, PUBLIC)
    return handler


def _rule_of(handler: object) -> Rule | None:
    found = getattr(handler, ATTRIBUTE, None)
    if found == PUBLIC:
        return PUBLIC
    return found if isinstance(found, frozenset) else None


def rule_for(route: AbstractRoute | None) -> Rule | None:
    """The rule of `route` (static files: public); None: no rule, refused to everyone."""
    if route is None:
        return None
    if isinstance(route.resource, StaticResource):
        return PUBLIC
    return _rule_of(route.handler)


def matched(request: web.Request) -> bool:
    """Whether `request` matched a route (else it is answered 404 or 405)."""
    return request.match_info.http_exception is None


def request_rule(request: web.Request) -> Rule | None:
    """The rule of the route `request` matched (None: no rule, or no route)."""
    return rule_for(request.match_info.route) if matched(request) else None


def permits(rule: Rule | None, role: str | None) -> bool:
    """Whether a staff member of `role` (None: no session) may open a route of `rule`."""
    if rule == PUBLIC:
        return True
    if rule is None or role is None:
        return False
    return any(role == allowed.value for allowed in rule)
