"""The real bot, polling the sandbox Bot API over HTTP, with virtual graduates to drive it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
from sqlmodel import col, select, update

from bot.app import ALLOWED_UPDATES, GradtrackApp, build_application, on_startup
from bot.clock import FrozenClock
from bot.i18n import language_name, use_language
from bot.runtime import Runtime
from bot.sandbox import RateLimits, SandboxServer
from bot.sandbox.state import SandboxUser, TranscriptEntry
from bot.settings import Settings
from bot.web.server import SECRET_HEADER
from conversations import survey
from conversations.registry import QuestionnaireRegistry
from conversations.rules import new_invite_token
from conversations.waves import WavePlans
from storage.db import Database
from storage.models import (
    ChatState,
    ConsentEvent,
    Graduate,
    Institution,
    Programme,
    SurveyResponse,
)
from storage.queries import get_chat_state
from storage.types import utcnow

TIMEOUT = 15.0


class Harness:
    """One sandbox, one database, and the bot application (which can be restarted)."""

    def __init__(self, sandbox: SandboxServer, db: Database, settings: Settings) -> None:
        self.sandbox = sandbox
        self.db = db
        self.settings = settings
        self.token = sandbox.create_bot(username="gradtrack_test_bot", first_name="GradTrack")
        self.app: GradtrackApp | None = None
        self.questionnaires: QuestionnaireRegistry | None = None
        self.plans: WavePlans | None = None
        self.clock = FrozenClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
        self._web_runners: list[Any] = []

    # -- the bot ---------------------------------------------------------------------

    async def start_bot(self) -> None:
        app = build_application(
            self.settings,
            self.db,
            token=self.token,
            base_url=f"{self.sandbox.url}/bot",
            questionnaires=self.questionnaires,
            plans=self.plans,
            clock=self.clock,
        )
        await app.initialize()
        await app.start()
        await on_startup(app)
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0.0, timeout=5, allowed_updates=ALLOWED_UPDATES
        )
        self.app = app

    async def stop_bot(self) -> None:
        await self.stop_web()
        app, self.app = self.app, None
        if app is None:
            return
        assert app.updater is not None
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    async def restart_bot(self) -> None:
        await self.stop_bot()
        await self.start_bot()

    async def start_web(self) -> str:
        """Serve the dashboard (the service's aiohttp app, without the webhook) on a free
        loopback port; returns its base URL. Login links the bot sends point there."""
        from aiohttp import web

        from bot.web.server import WebLimits, build_web_app, web_runner

        assert self.app is not None, "start the bot first"
        limits = WebLimits.of(self.settings)
        runner = web_runner(build_web_app(self.app, self.db, None, limits=limits))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._web_runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.settings.host, self.settings.port = "127.0.0.1", int(port)
        return self.settings.base_url

    async def stop_web(self) -> None:
        while self._web_runners:
            await self._web_runners.pop().cleanup()

    # -- graduates -------------------------------------------------------------------

    def user(self, language_code: str | None = "en", first_name: str = "Alex") -> SandboxUser:
        return self.sandbox.create_user(
            self.token, first_name=first_name, language_code=language_code
        )

    async def send(self, user: SandboxUser, text: str, expect: int = 1) -> list[TranscriptEntry]:
        """The user sends `text`; returns the bot's next `expect` messages."""
        await self.sandbox.send_text(self.token, user.id, text)
        if expect == 0:
            return []
        return await self.replies(user, expect)

    async def replies(self, user: SandboxUser, count: int) -> list[TranscriptEntry]:
        return await self.sandbox.wait_for_bot_messages(
            self.token, user.id, count=count, timeout=TIMEOUT
        )

    def last_keyboard_message(self, user: SandboxUser) -> TranscriptEntry:
        for entry in reversed(self.sandbox.transcript(self.token, user.id)):
            if entry.kind == "message" and entry.sender == "bot" and entry.buttons:
                return entry
        raise AssertionError("no bot message with buttons in the transcript")

    async def press(
        self,
        user: SandboxUser,
        label: str,
        expect: int = 1,
        message: TranscriptEntry | None = None,
    ) -> list[TranscriptEntry]:
        """Press the button labelled `label` (exactly, or ending with it) on the newest
        message that has buttons, or on `message`; returns the bot's next messages."""
        target = message or self.last_keyboard_message(user)
        data = button_data(target, label)
        await self.sandbox.press_button(self.token, user.id, target.message_id or 0, data)
        if expect == 0:
            return []
        return await self.replies(user, expect)

    async def press_data(self, user: SandboxUser, message: TranscriptEntry, data: str) -> None:
        await self.sandbox.press_button(self.token, user.id, message.message_id or 0, data)

    async def keyboard_shows(self, user: SandboxUser, message: TranscriptEntry, text: str) -> None:
        """Wait until the keyboard of `message` (edited in place) contains `text`."""

        def shown(transcript: list[TranscriptEntry]) -> bool:
            entry = next(e for e in transcript if e.message_id == message.message_id)
            return text in str(entry.reply_markup)

        await self.sandbox.wait_until(self.token, user.id, shown)

    def callback_answers(self, user: SandboxUser) -> list[str]:
        return [
            e.text or ""
            for e in self.sandbox.transcript(self.token, user.id)
            if e.kind == "callback_answer"
        ]

    # -- data --------------------------------------------------------------------------

    async def school(
        self, code: str = "alfa", country: str = "NL", language: str = "nl"
    ) -> Institution:
        async with self.db.session() as session:
            school = Institution(
                code=code,
                name=f"{code.title()} College",
                country=country,
                default_language=language,
                timezone="Europe/Amsterdam",
            )
            session.add(school)
            await session.flush()
            assert school.id is not None
            for pcode, name in (("ICT4", "Software developer"), ("CHEF4", "Cook")):
                session.add(Programme(institution_id=school.id, code=pcode, name=name, eqf_level=4))
        return school

    async def graduate(
        self,
        school: Institution,
        *,
        language: str | None = None,
        birth_year: int | None = 2000,
        ref: str | None = None,
        **extra: Any,
    ) -> Graduate:
        async with self.db.session() as session:
            programme = (
                await session.exec(
                    select(Programme).where(Programme.institution_id == school.id).limit(1)
                )
            ).one()
            assert school.id is not None and programme.id is not None
            graduate = Graduate(
                institution_id=school.id,
                programme_id=programme.id,
                student_ref=ref or new_invite_token()[2:12],
                language=language,
                birth_year=birth_year,
                invite_token=new_invite_token(),
                **{"graduation_date": date(2026, 6, 30), **extra},
            )
            session.add(graduate)
        return graduate

    async def at_consents(self) -> tuple[Institution, Graduate, SandboxUser]:
        """A graduate who opened their invite and chose English: the survey consent is open."""
        school = await self.school()
        graduate = await self.graduate(school)
        user = self.user("en")
        await self.send(user, f"/start {graduate.invite_token}")
        await self.press(user, "English", expect=2)
        return school, graduate, user

    async def consenting_graduate(
        self,
        lang: str = "en",
        school: Institution | None = None,
        answers: tuple[str, ...] = ("Yes", "Yes", "Yes"),
    ) -> tuple[Graduate, SandboxUser]:
        """A graduate who went through onboarding in `lang`, answering the consent questions
        (survey, follow-up, news) with `answers` (a "No" to the survey skips follow-up)."""
        school = school or await self.school()
        graduate = await self.graduate(school, language=lang)
        user = self.user(lang)
        await self.send(user, f"/start {graduate.invite_token}")
        await self.press(user, language_name(lang), expect=2)
        for answer in answers:
            await self.press(user, tr(lang, answer))
        return await self.reload(graduate), user

    async def open_survey(
        self, graduate: Graduate, form_id: str, wave: str | None = None
    ) -> SurveyResponse:
        """Open a response on the deployed `form_id` for the graduate (as an invitation will),
        in `wave` if given."""
        assert self.app is not None
        rt = self.app.bot_data["gradtrack"]
        async with self.db.session() as session:
            stored = await session.get(Graduate, graduate.id)
            assert stored is not None and stored.chat_id is not None
            state = await get_chat_state(session, stored.chat_id)
            response = await survey.begin(rt, session, stored, form_id, state, wave=wave)
        return response

    async def age_chat_state(self, chat_id: int, seconds: float | None = None) -> None:
        """Pretend the chat's state was last written `seconds` ago (by default just longer
        than PROMPT_RESEND_SECONDS: a question it left pending is taken as lost)."""
        if seconds is None:
            seconds = self.settings.prompt_resend_seconds + 1
        async with self.db.session() as session:
            await session.exec(
                update(ChatState)
                .where(col(ChatState.chat_id) == chat_id)
                .values(updated_at=utcnow() - timedelta(seconds=seconds))
            )

    @property
    def runtime(self) -> Runtime:
        assert self.app is not None
        rt = self.app.bot_data["gradtrack"]
        assert isinstance(rt, Runtime)
        return rt

    async def reload(self, graduate: Graduate) -> Graduate:
        async with self.db.session() as session:
            fresh = await session.get(Graduate, graduate.id)
            assert fresh is not None
            return fresh

    async def consent_events(self, graduate: Graduate) -> list[ConsentEvent]:
        async with self.db.session() as session:
            result = await session.exec(
                select(ConsentEvent)
                .where(ConsentEvent.graduate_id == graduate.id)
                .order_by(ConsentEvent.id)  # type: ignore[arg-type]
            )
            return list(result.all())


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = TIMEOUT
) -> None:
    """Wait until `condition()` holds (for effects the user does not see, e.g. rows)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition still false after {timeout}s")
        await asyncio.sleep(0.02)


def button_data(message: TranscriptEntry, label: str) -> str:
    for button in message.buttons:
        text = str(button.get("text", ""))
        if text == label or text.endswith(label):
            return str(button["callback_data"])
    labels = [b.get("text") for b in message.buttons]
    raise AssertionError(f"no button {label!r} on message {message.message_id}: {labels}")


def tr(lang: str, message: str) -> str:
    """`message` as the bot would say it in `lang`."""
    from bot.i18n import gettext

    with use_language(lang):
        return gettext(message)


NO_LIMITS = RateLimits(enabled=False)


@dataclass
class Webhook:
    """The service's web app serving the webhook route for the harness's bot, which the
    sandbox delivers to (polling stopped, webhook set with the secret)."""

    url: str
    secret: str
    session: aiohttp.ClientSession

    async def post(self, body: bytes | dict[str, Any], secret: str | None) -> int:
        """POST `body` (JSON unless bytes) with `secret` in the header (None: no header)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        async with self.session.post(self.url, data=data, headers=headers) as response:
            await response.read()
            return response.status
