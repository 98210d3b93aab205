"""Alumni news as staff meet it (issue 15): Telegram's HTML checked before anything is
saved, `gradtrack news send` refusing what it cannot do, and why deliveries failed shown in
`gradtrack news list`, /broadcasts and the officer's report. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from bot.__main__ import build_parser
from bot.news import dispatch_news
from bot.news_cli import cmd_news
from conversations.news_html import NewsHtmlError, check_news_html
from storage import news
from storage.models import Broadcast, Graduate
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.test_news_delivery import NO_LIMIT, broadcast, readers, received


@pytest.mark.parametrize(
    "text",
    [
        "<b>Open day</b> on <i>12</i> March &amp; <u>more</u> &lt;3 &#8364; &#x1F600; a > b",
        '<a href="https://school.example/open?x=1&amp;y=2">site</a>',
        '<span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler> <s>x</s> <del>y</del>',
        '<pre><code class="language-python">print("&lt;hi&gt;")</code></pre> <code>x</code>',
        "<blockquote expandable>long</blockquote> <blockquote>q</blockquote>",
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        "<strong><em><ins><strike>nested</strike></ins></em></strong>",
    ],
)
def test_telegram_html_is_accepted(text: str) -> None:
    check_news_html(text)


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("Hello <div>x</div>", (1, 7), "<div> is not a tag Telegram accepts"),
        ("<b>bold <i>both</b></i>", (1, 16), "</b> comes before </i>"),
        ("line one\n<b>never closed", (2, 1), "<b> is never closed"),
        ("a </i>", (1, 3), "</i> closes a tag that is not open"),
        ("Fish & chips", (1, 6), 'an "&" that starts no entity'),
        ("5 &euro;", (1, 3), "&euro; is not accepted"),
        ("1 < 2", (1, 3), 'a "<" that starts no tag'),
        ("<a>no link</a>", (1, 1), "<a> needs a link"),
        (
            '<span class="red">x</span>',
            (1, 1),
            '<span> is only accepted as <span class="tg-spoiler">',
        ),
        ('<b class="x">y</b>', (1, 1), "<b> cannot have the attribute class"),
        ("<code><b>x</b></code>", (1, 7), "<b> cannot be inside <code> or <pre>"),
        ('<code class="language-py">x</code>', (1, 1), 'class="language-…"'),
        ("<br/>", (1, 1), "is not a tag Telegram accepts"),
    ],
)
def test_html_telegram_refuses_is_named_with_its_place(
    text: str, where: tuple[int, int], words: str
) -> None:
    with pytest.raises(NewsHtmlError) as caught:
        check_news_html(text)
    assert (caught.value.line, caught.value.column) == where
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"line {where[0]}, column {where[1]}: ")


def test_the_text_as_read_is_returned() -> None:
    assert check_news_html("<b>Fish</b> &amp; chips &lt;3 &#8364;") == "Fish & chips <3 €"


async def _cli(h: Harness, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(["news", *argv])
    code = await cmd_news(h.settings, args)
    out = capsys.readouterr()
    return code, out.out + out.err


async def _broadcasts(h: Harness) -> int:
    async with h.db.session() as session:
        return int((await session.exec(select(func.count()).select_from(Broadcast))).one())


async def test_news_send_checks_html_waves_and_dry_run_writes_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    school = await h.school()
    await readers(h, school, 3, lang="nl")

    code, out = await _cli(h, capsys, "send", "--school", "alfa", "--text", "<b>Open dag")
    assert code == 1
    assert "error: the nl text: line 1, column 1: <b> is never closed" in out
    code, out = await _cli(
        h, capsys, "send", "--school", "alfa", "--text", "ok", "--text-in", "en", "Fish & chips"
    )
    assert code == 1 and 'the en text: line 1, column 6: an "&" that starts no entity' in out
    # A dry run checks the same, and the time.
    code, out = await _cli(h, capsys, "send", "--school", "alfa", "--text", "<i>x</b>", "--dry-run")
    assert code == 1 and "</b> comes before </i>" in out
    code, out = await _cli(
        h,
        capsys,
        "send",
        "--school",
        "alfa",
        "--text",
        "x",
        "--at",
        "2020-01-01 10:00",
        "--dry-run",
    )
    assert code == 1 and "--at is in the past" in out

    # --wave alone would have been ignored: refused, saying what it needs.
    code, out = await _cli(h, capsys, "send", "--school", "alfa", "--text", "x", "--wave", "m2")
    assert code == 1 and "--wave needs --not-responded" in out
    code, out = await _cli(h, capsys, "send", "--school", "alfa", "--text", "x", "--not-responded")
    assert code == 1 and "--not-responded needs --wave" in out
    code, out = await _cli(
        h, capsys, "send", "--school", "alfa", "--text", "x", "--wave", "m99", "--not-responded"
    )
    assert code == 1
    assert "unknown wave 'm99'; the waves are: " in out
    assert "m2 (2 months after graduation)" in out
    assert await _broadcasts(h) == 0

    code, out = await _cli(
        h, capsys, "send", "--school", "alfa", "--text", "<b>Open dag</b> &amp; meer", "--dry-run"
    )
    assert code == 0, out
    assert "3 graduates would receive it (nothing was saved)" in out
    assert await _broadcasts(h) == 0
    code, out = await _cli(
        h,
        capsys,
        "send",
        "--school",
        "alfa",
        "--text",
        "x",
        "--wave",
        "m2",
        "--not-responded",
        "--dry-run",
    )
    assert code == 0 and "0 graduates would receive it" in out

    code, out = await _cli(h, capsys, "send", "--school", "alfa", "--text", "<b>Open dag</b>")
    assert code == 0 and "scheduled now for 3 graduates" in out
    assert await _broadcasts(h) == 1


async def test_why_deliveries_failed_is_shown_to_staff(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    school = await h.school()
    reached = await readers(h, school, 2)
    officer = h.user("nl")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    await h.send(officer, "/start")
    # Two graduates whose chats are gone from Telegram: "chat not found".
    async with h.db.session() as session:
        for n in range(2):
            session.add(
                Graduate(
                    institution_id=school.id or 0,
                    programme_id=reached[0].programme_id,
                    student_ref=f"gone-{n}",
                    graduation_date=reached[0].graduation_date,
                    language="nl",
                    chat_id=7_700_000 + n,
                    consent_news=True,
                )
            )
    sent = await broadcast(h, school, {"en": "Reunion"}, news.Audience(), report_chat_id=officer.id)
    report = await dispatch_news(h.runtime, limiter=NO_LIMIT)
    assert (report.sent, report.failed) == (2, 2)
    assert all(received(h, g) == ["Reunion"] for g in reached)
    async with h.db.session() as session:
        reasons = await news.failure_reasons(session, [sent.id or 0])
    ((error, n),) = reasons[sent.id or 0]
    assert (error, n) == ("Chat not found", 2)  # Telegram's words, as stored

    code, out = await _cli(h, capsys, "list")
    assert code == 0
    assert f"failed 2 ({error} ×2)" in out

    progress = h.sandbox.bot_messages(h.token, officer.id)[-1]
    why = tr("nl", "Why they failed: {reasons}").format(reasons=f"{error} ×2")
    assert why in progress.content
    (listing,) = await h.send(officer, "/broadcasts")
    assert why in listing.content
