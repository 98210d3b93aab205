"""Who may do what: the staff roles and the sets of roles that the rules of every dashboard
route (bot/web/access.py) and every staff command and button in the chat are written with.

- officer: one school; its figures, alumni news, roster and the aggregate exports;
- admin: one school or all; everything, with the responses row by row;
- programme team: read-only, the figures of its programmes (`Staff.programme_ids`);
- researcher: the figures and the responses with a pseudonym per graduate, without free
  text; one school or all; no names, no news, no messages;
- regional: the aggregates of a group of schools (`Staff.school_ids`), with breakdowns by
  school and country; no row-level data.

A rule names the roles allowed; whatever has no rule is refused to everyone (fail closed).
Pure Python: no Telegram, no aiohttp."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from bot.i18n import _
from storage.models import Staff, StaffRole

OFFICER, ADMIN = StaffRole.OFFICER, StaffRole.ADMIN
PROGRAMME, RESEARCHER, REGIONAL = StaffRole.PROGRAMME, StaffRole.RESEARCHER, StaffRole.REGIONAL

Roles = frozenset[StaffRole]

EVERYONE: Roles = frozenset(StaffRole)
"""Every staff role: the figures, with the suppression of groups under five."""
WRITERS: Roles = frozenset({OFFICER, ADMIN})
"""Those who write to graduates or change what is stored: alumni news, the roster."""
TEAMS: Roles = frozenset({OFFICER, ADMIN, PROGRAMME})
"""Those who work on programmes: read their actions and comments (without names)."""
ROWS: Roles = frozenset({ADMIN, RESEARCHER})
"""The responses row by row (a researcher's without free text, under a pseudonym)."""

GRADUATES: Roles = frozenset()
"""No staff role: a graduate's own button among the staff's (their alumni news choice)."""

RULE_ATTRIBUTE = "gradtrack_roles"

F = TypeVar("F", bound=Callable[..., object])


def rule(roles: Roles) -> Callable[[F], F]:
    """Mark a flow (a staff command or button) with the roles it is for; the tests check that
    every staff command and button has one (tests/test_roles.py)."""

    def mark(flow: F) -> F:
        setattr(flow, RULE_ATTRIBUTE, frozenset(roles))
        return flow

    return mark


def rule_of(flow: object) -> Roles | None:
    found = getattr(flow, RULE_ATTRIBUTE, None)
    return found if isinstance(found, frozenset) else None


def role_of(staff: Staff) -> StaffRole | None:
    """The staff member's role; None for a value this version does not know (refused)."""
    try:
        return StaffRole(staff.role)
    except ValueError:
        return None


def permits(roles: Roles | None, staff: Staff) -> bool:
    role = role_of(staff)
    return roles is not None and role is not None and role in roles


def role_name(role: str) -> str:
    """A role as staff read it, in the current language."""
    return {
        "admin": _("admin"),
        "officer": _("alumni officer"),
        "programme": _("programme team"),
        "researcher": _("researcher"),
        "regional": _("regional staff"),
    }.get(role, role)


def refusal_text(staff: Staff) -> str:
    """What a staff member is told when their role may not do something."""
    return _("This is not open to your role ({role}).").format(role=role_name(staff.role))
