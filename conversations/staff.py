"""School staff in the chat: the staff invitation link, the check every staff command makes,
and `/news` (graduates: their news choice; staff: composing news)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, overload

from bot.i18n import _, set_language
from bot.runtime import Runtime
from conversations import access
from conversations.channel import Button, Keyboard, Turn, keyboard
from conversations.notice import shown_version
from conversations.prompting import use_chat_language
from conversations.rules import choose_language
from storage.models import ConsentKind, Graduate, Institution, Staff
from storage.processed import claim
from storage.queries import get_chat_state, graduate_by_chat, set_consent
from storage.staff import InviteResult, accept_invite, staff_of

log = logging.getLogger(__name__)

NEWS_PREFIX = "nw:"
NEWS_PATTERN = r"^nw:(on|off)$"

StaffFlow = Callable[[Runtime, Turn, Staff], Awaitable[None]]
Flow = Callable[[Runtime, Turn], Awaitable[None]]


async def _refuse(rt: Runtime, turn: Turn) -> None:
    """Tell someone who is not staff, in their language, that the command is not for them."""
    await use_chat_language(rt, turn)
    text = _("This command is for school staff.")
    if turn.event.kind == "button":
        await turn.notice(text, alert=True)
    else:
        await turn.say(text)


async def refuse_role(turn: Turn, staff: Staff) -> None:
    """Tell a staff member, in their language, that their role may not do this."""
    text = access.refusal_text(staff)
    if turn.event.kind == "button":
        await turn.notice(text, alert=True)
    else:
        await turn.say(text)


@overload
def staff_only(flow: StaffFlow, /) -> Flow: ...
@overload
def staff_only(*, roles: access.Roles) -> Callable[[StaffFlow], Flow]: ...
def staff_only(
    flow: StaffFlow | None = None, /, *, roles: access.Roles = access.WRITERS
) -> Flow | Callable[[StaffFlow], Flow]:
    """Run `flow(rt, turn, staff)` for staff of `roles` (bare: officers and admins); refuse
    everyone else: who is not staff is told the command is for school staff, staff of
    another role that it is not open to their role. The rule is on the flow for the tests
    (`access.rule_of`)."""

    def wrap(inner: StaffFlow) -> Flow:
        @functools.wraps(inner)
        async def wrapper(rt: Runtime, turn: Turn) -> None:
            staff = await load_staff(rt, turn)
            if staff is None:
                await _refuse(rt, turn)
                return
            if not access.permits(roles, staff):
                await refuse_role(turn, staff)
                return
            await inner(rt, turn, staff)

        return access.rule(roles)(wrapper)

    return wrap(flow) if flow is not None else wrap


async def load_staff(rt: Runtime, turn: Turn) -> Staff | None:
    """The staff member behind this turn, or None; sets the turn's language for staff. Staff
    accounts are Telegram accounts: a turn without a sender (a web chat's) has none."""
    sender = turn.event.sender_id
    if sender is None:
        return None
    async with rt.db.session() as session:
        staff = await staff_of(session, sender)
    if staff is not None:
        set_language(choose_language(staff.language, turn.event.language, None))
    return staff


def staff_language(staff: Staff, turn: Turn) -> str:
    return choose_language(staff.language, turn.event.language, None)


async def accept_staff_invite(rt: Runtime, turn: Turn, token: str) -> None:
    """`/start t_<token>`: the opener becomes staff, once, before the link expires. Staff
    accounts are Telegram accounts: a web chat is refused."""
    event = turn.event
    language = choose_language(None, event.language, None)
    set_language(language)
    if event.sender_id is None:
        await turn.say(
            _("I don't recognise this staff link. Please check that you opened the whole link.")
        )
        return
    school_name = ""
    async with rt.db.session() as session:
        await claim(session)
        result, staff = await accept_invite(
            session,
            token,
            event.sender_id,
            name=event.sender_name,
            language=language,
            now=rt.clock.now(),
        )
        if staff is not None:
            language = staff.language or language
            state = await get_chat_state(session, turn.chat_id)
            state.language = language
            session.add(state)
            if staff.institution_id is not None:
                school = await session.get(Institution, staff.institution_id)
                school_name = school.name if school else ""
    set_language(language)
    if result is InviteResult.ACCEPTED:
        assert staff is not None
        where = school_name or _("all schools")
        if staff.role == access.REGIONAL.value:
            where = _("your group of schools")
        if access.permits(access.WRITERS, staff):
            text = _(
                "Welcome! You are now {role} for {school}. Send /news to write alumni news, "
                "/broadcasts to see the news sent, /stats for the response figures and "
                "/dashboard for a login link to the web dashboard."
            )
        else:
            text = _(
                "Welcome! You are now {role} for {school}. Send /stats for the response "
                "figures and /dashboard for a login link to the web dashboard."
            )
        await turn.say(text.format(role=role_name(staff.role), school=where))
    elif result is InviteResult.USED:
        await turn.say(_("This staff link has already been used. Please ask for a new one."))
    elif result is InviteResult.EXPIRED:
        await turn.say(_("This staff link has expired. Please ask for a new one."))
    else:
        await turn.say(
            _("I don't recognise this staff link. Please check that you opened the whole link.")
        )


def role_name(role: str) -> str:
    return access.role_name(role)


# ---------------------------------------------------------------- /news for graduates


def news_status(graduate: Graduate) -> tuple[str, Keyboard]:
    if graduate.consent_news:
        text = _("You receive alumni news from your school.")
        button = Button(_("Stop alumni news"), NEWS_PREFIX + "off")
    else:
        text = _("You do not receive alumni news from your school.")
        button = Button(_("Receive alumni news"), NEWS_PREFIX + "on")
    return text, keyboard([[button]])


@access.rule(access.WRITERS)
async def news_command(rt: Runtime, turn: Turn) -> None:
    """/news: officers and admins compose news (staff of other roles are refused); a graduate
    sees and changes their news choice."""
    from conversations import news_compose

    staff = await load_staff(rt, turn)
    if staff is not None:
        if not access.permits(access.WRITERS, staff):
            await refuse_role(turn, staff)
            return
        await news_compose.begin(rt, turn, staff)
        return
    graduate = await use_chat_language(rt, turn)
    if graduate is None:
        from conversations.onboarding import not_registered_text

        await turn.say(not_registered_text())
        return
    text, buttons = news_status(graduate)
    await turn.say(text, buttons)


@access.rule(access.GRADUATES)
async def on_news_button(rt: Runtime, turn: Turn) -> None:
    """`nw:on` / `nw:off`: a graduate turns alumni news on or off (stored with the trail)."""
    wanted = turn.event.data == NEWS_PREFIX + "on"
    async with rt.db.session() as session:
        await claim(session)
        graduate = await graduate_by_chat(session, turn.chat_id)
        state = await get_chat_state(session, turn.chat_id)
        session.add(state)
        set_language(
            choose_language(
                state.language or (graduate.language if graduate else None),
                turn.event.language,
                None,
            )
        )
        if graduate is None or bool(graduate.consent_news) == wanted:
            await turn.notice(_("This button is no longer active."))
            return
        school = await session.get(Institution, graduate.institution_id)
        assert school is not None
        set_consent(session, graduate, ConsentKind.NEWS, wanted, shown_version(rt.settings, school))
    await turn.notice(_("Saved."))
    text, buttons = news_status(graduate)
    if not await turn.edit(text, buttons):
        log.debug("news message not edited")


# ---------------------------------------------------------------- command line


async def cmd_staff(settings: Any, args: Any) -> int:
    from bot.links import chat_link
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.staff import (
        StaffError,
        add_staff,
        codes,
        create_invite,
        list_staff,
        remove_staff,
    )
    from storage.types import utcnow

    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        if args.action == "add":
            member, created = await add_staff(
                db,
                args.telegram_id,
                args.role,
                school_code=args.school,
                name=args.name,
                programmes=getattr(args, "programmes", None),
                schools=getattr(args, "schools", None),
            )
            where = _where(
                args.school.strip().lower() if args.school else None,
                codes(getattr(args, "programmes", None)),
                codes(getattr(args, "schools", None)),
            )
            print(
                f"staff {member.telegram_user_id} {'added' if created else 'updated'}: "
                f"{member.role} of {where}"
            )
        elif args.action == "remove":
            if not await remove_staff(db, args.telegram_id):
                print(
                    f"error: no staff member with Telegram id {args.telegram_id}", file=sys.stderr
                )
                return 1
            print(f"staff {args.telegram_id} removed")
        elif args.action == "invite":
            if chat_link(settings, "x") is None:
                print(
                    "error: BOT_USERNAME is not set: set it to print the t.me link", file=sys.stderr
                )
                return 1
            invite = await create_invite(
                db,
                args.role,
                args.school,
                args.hours,
                utcnow(),
                programmes=getattr(args, "programmes", None),
                schools=getattr(args, "schools", None),
            )
            print(chat_link(settings, invite.token))
            print(
                f"one-time link for a new {invite.role}, valid until "
                f"{invite.expires_at:%Y-%m-%d %H:%M} UTC"
            )
        else:
            rows = await list_staff(db)
            if not rows:
                print(
                    "no staff yet: add one with `gradtrack staff add` or `gradtrack staff invite`"
                )
            for row in rows:
                name = f"  {row.staff.name}" if row.staff.name else ""
                where = _where(row.school_code, row.programme_codes, row.school_codes)
                print(f"{row.staff.telegram_user_id}  {row.staff.role}  {where}{name}")
    except StaffError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    return 0


def _where(school: str | None, programmes: Sequence[str] = (), schools: Sequence[str] = ()) -> str:
    """Where a staff member's access reaches, for the command line."""
    if schools:
        return "schools " + ",".join(schools)
    where = school or "all schools"
    return f"{where} programmes {','.join(programmes)}" if programmes else where
