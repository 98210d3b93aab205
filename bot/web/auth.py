"""Dashboard login without passwords, sessions and CSRF.

- `/dashboard` in the chat makes a one-time login link for a staff member: a random token, of
  which only the SHA-256 hash is stored, valid for LINK_MINUTES. Opening the link shows a page
  with a "Log in" button; only pressing it (a POST) uses the token up, so that a link preview
  that fetches the page does not spend it.
- The session is a cookie encrypted and authenticated with Fernet (AES-128-CBC + HMAC-SHA256)
  under a key derived from SECRET_KEY. It holds the login row's id, that row's token hash and
  the session's CSRF token; every request checks that row and its staff member: logged out,
  expired, the row gone (a database may reuse its id) or the staff member removed ends the
  session.
- Every form carries the CSRF token; a POST without the right one is refused (403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from cryptography.fernet import Fernet, InvalidToken
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import Database
from storage.models import DashboardLogin, Staff

LINK_MINUTES = 10
SESSION_HOURS = 8
COOKIE_NAME = "gradtrack_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_login(session: AsyncSession, staff_id: int, now: datetime) -> str:
    """A new one-time login token for `staff_id` in `session`'s transaction (returned once,
    stored hashed)."""
    token = secrets.token_urlsafe(32)
    session.add(
        DashboardLogin(
            token_hash=token_hash(token),
            staff_id=staff_id,
            created_at=now,
            expires_at=now + timedelta(minutes=LINK_MINUTES),
        )
    )
    return token


class LoginProblem(Enum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


async def check_login(
    db: Database, token: str, now: datetime
) -> tuple[DashboardLogin, Staff] | LoginProblem:
    """What the link `token` is, without using it up."""
    async with db.session() as session:
        row = (
            await session.exec(
                select(DashboardLogin).where(DashboardLogin.token_hash == token_hash(token))
            )
        ).first()
        staff = await session.get(Staff, row.staff_id) if row is not None else None
    if row is None or staff is None or staff.removed_at is not None:
        return LoginProblem.UNKNOWN
    if row.used_at is not None:
        return LoginProblem.USED
    if row.expires_at <= now:
        return LoginProblem.EXPIRED
    return row, staff


async def redeem_login(
    db: Database, token: str, now: datetime
) -> tuple[DashboardLogin, Staff] | LoginProblem:
    """Use the link `token` up (once, even under concurrent presses) and open the session."""
    checked = await check_login(db, token, now)
    if isinstance(checked, LoginProblem):
        return checked
    login, staff = checked
    async with db.session() as session:
        result = await session.exec(
            update(DashboardLogin)
            .where(
                col(DashboardLogin.id) == login.id,
                col(DashboardLogin.used_at).is_(None),
                col(DashboardLogin.expires_at) > now,
            )
            .values(used_at=now, session_expires_at=now + timedelta(hours=SESSION_HOURS))
        )
        if result.rowcount != 1:
            return LoginProblem.USED
        fresh = await session.get(DashboardLogin, login.id)
    assert fresh is not None
    return fresh, staff


@dataclass(frozen=True)
class Session:
    login_id: int
    csrf: str
    staff: Staff


class Cookies:
    """Seals and opens the session cookie."""

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(b"gradtrack-dashboard-session:" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, login: DashboardLogin, csrf: str) -> str:
        """The cookie of the session `login` opened: bound to that row's id and token hash."""
        payload = json.dumps({"l": login.id, "h": login.token_hash, "c": csrf}).encode()
        return self._fernet.encrypt(payload).decode()

    def open(self, value: str) -> tuple[int, str, str] | None:
        """(login id, login token hash, CSRF token), or None for a cookie not sealed by us,
        too old or of an older format."""
        try:
            data = json.loads(self._fernet.decrypt(value.encode(), ttl=SESSION_HOURS * 3600 + 60))
        except (InvalidToken, ValueError, UnicodeError):
            return None
        if not isinstance(data, dict):
            return None
        login_id, bound, csrf = data.get("l"), data.get("h"), data.get("c")
        if not isinstance(login_id, int) or not isinstance(bound, str) or not isinstance(csrf, str):
            return None
        return login_id, bound, csrf


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(session: Session, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), session.csrf.encode())


async def load_session(
    db: Database, cookies: Cookies, value: str | None, now: datetime
) -> Session | None:
    if not value:
        return None
    opened = cookies.open(value)
    if opened is None:
        return None
    login_id, bound, csrf = opened
    async with db.session() as session:
        login = await session.get(DashboardLogin, login_id)
        if (
            login is None
            or not hmac.compare_digest(bound.encode(), login.token_hash.encode())
            or login.used_at is None
            or login.ended_at is not None
            or login.session_expires_at is None
            or login.session_expires_at <= now
        ):
            return None
        staff = await session.get(Staff, login.staff_id)
    if staff is None or staff.removed_at is not None:
        return None
    return Session(login_id=login_id, csrf=csrf, staff=staff)


async def end_session(db: Database, login_id: int, now: datetime) -> None:
    async with db.session() as session:
        login = await session.get(DashboardLogin, login_id)
        if login is not None and login.ended_at is None:
            login.ended_at = now
            session.add(login)
