"""Walk a questionnaire through the sandbox as a graduate would, checking every question the
bot asks against what the engine says should come, in the graduate's language."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import use_language
from bot.sandbox.state import SandboxUser, TranscriptEntry
from conversations import engine, survey
from conversations.questionnaire import Question, Questionnaire
from tests.harness import Harness, tr

Policy = Callable[[Question], Any]


def label(q: Questionnaire, texts: Any, lang: str) -> str:
    return str(texts.get(lang) or texts.get(q.default_language))


def default_answer(q: Questionnaire, question: Question) -> Any:
    """A valid answer for any question: first choice(s), 3, 4 on a scale, short text."""
    choices = q.choices_for(question) if question.is_select else ()
    if question.type == "select_one":
        return choices[0].name
    if question.type == "select_multiple":
        return [c.name for c in choices[:2]]
    if question.type == "scale":
        return 4
    if question.type == "integer":
        return 3
    if question.type == "decimal":
        return 2.5
    if question.type == "date":
        return "2026-06-30"
    if question.type == "month":
        return "2026-06"
    return "Kok in een restaurant"


def typed_text(question: Question, value: Any) -> str:
    """`value` as a person types it: dates day-month-year, months month-year."""
    text = str(value)
    if question.type == "date":
        year, month, day = text.split("-")
        return f"{day}-{month}-{year}"
    if question.type == "month":
        year, month = text.split("-")
        return f"{month}-{year}"
    return text


@dataclass
class Walk:
    harness: Harness
    user: SandboxUser
    q: Questionnaire
    lang: str
    answers: dict[str, Any] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    #: The progress line of each question asked, as shown.
    headings: list[str] = field(default_factory=list)
    #: Seconds from each answer to the next question on screen.
    timings: list[float] = field(default_factory=list)
    #: The graduate's previous response (its answers and ``_month``), in a later wave.
    earlier: dict[str, Any] = field(default_factory=dict)
    #: The country of the graduate's school (the harness's schools are Dutch): the choices
    #: are shown in its variant.
    country: str = "NL"

    def __post_init__(self) -> None:
        self.q = self.q.for_school(self.country)

    def shown_label(self, question: Question) -> str:
        """The question's label as shown: ``${last-saved#…}`` and ``${name}`` replaced."""
        values = engine.values(self.q, self.answers, self.earlier)
        with use_language(self.lang):
            return survey.piped(
                self.q, self.earlier, label(self.q, question.labels, self.lang), self.lang, values
            )

    def expect_question(self, message: TranscriptEntry, question: Question) -> None:
        with use_language(self.lang):
            heading = survey.progress_heading(self.q, self.answers, question.name, self.earlier)
        self.headings.append(heading)
        text = message.content
        assert text.startswith(heading), (question.name, text[:200])
        assert self.shown_label(question) in text, (question.name, text[:300])

    async def answer(self, message: TranscriptEntry, question: Question, value: Any) -> None:
        """Give `value` to the question shown in `message` (None: skip it)."""
        h, user = self.harness, self.user
        self.asked.append(question.name)
        if value is None:
            assert not question.required
            self.answers.pop(question.name, None)
            await h.press(user, tr(self.lang, "Skip ▶"), expect=0, message=message)
            return
        if question.type == "select_one":
            choice = next(c for c in self.q.choices_for(question) if c.name == value)
            self.answers[question.name] = value
            await h.press(user, label(self.q, choice.labels, self.lang), expect=0, message=message)
            return
        if question.type == "scale":
            self.answers[question.name] = int(value)
            await h.press(user, str(value), expect=0, message=message)
            return
        if question.type == "select_multiple":
            for code in value:
                choice = next(c for c in self.q.choices_for(question) if c.name == code)
                text = label(self.q, choice.labels, self.lang)
                await h.press(user, text, expect=0, message=message)
                await h.keyboard_shows(user, message, f"☑️ {text}")
            self.answers[question.name] = [
                c.name for c in self.q.choices_for(question) if c.name in value
            ]
            await h.press(user, tr(self.lang, "Done ✔"), expect=0, message=message)
            return
        self.answers[question.name] = value
        await h.send(user, typed_text(question, value), expect=0)

    async def next_message(self) -> TranscriptEntry:
        """The bot's next message that asks something (has buttons) or thanks; notes and
        review pages before it are passed over."""
        thanks = tr(self.lang, "Thank you! Your answers have been saved.")
        entries = await self.harness.sandbox.wait_for(
            self.harness.token,
            self.user.id,
            lambda e: (
                bool(e.buttons)
                or e.content == thanks
                or e.content.startswith(tr(self.lang, "Question {k} · the last one").split("{")[0])
            ),
            timeout=15,
            edits=False,
        )
        return entries[-1]

    async def run(
        self, first: TranscriptEntry, policy: Policy, start: str | None = None
    ) -> TranscriptEntry:
        """Answer question after question until the review (or the end), from the first
        question (or `start`, shown in `first`); returns the last message (the review, or the
        thanks)."""
        message = first
        earlier = self.earlier
        position = (
            self.q.question(start)
            if start
            else engine.next_question(self.q, self.answers, None, earlier)
        )
        while position is not None:
            if not position.answerable:
                position = engine.next_question(self.q, self.answers, position.name, earlier)
                continue
            self.expect_question(message, position)
            started = time.perf_counter()
            await self.answer(message, position, policy(position))
            message = await self.next_message()
            self.timings.append(time.perf_counter() - started)
            position = engine.next_question(self.q, self.answers, position.name, earlier)
        return message
