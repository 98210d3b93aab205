"""The privacy notice (GDPR Art. 13, issue 17): rendered from the school's own details and the
configured retention period in every language, versioned by its text, filled in with
`gradtrack school`, and shown in Telegram and the web chat with consents recording the version
that was shown."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from bot.__main__ import build_parser, cmd_school
from bot.i18n import LANGUAGES, use_language
from bot.settings import Settings
from conversations.notice import (
    AUTHORITIES,
    EDPB_MEMBERS,
    MESSAGE_LIMIT,
    notice_messages,
    notice_version,
    privacy_notice,
    shown_version,
)
from storage.db import Database
from storage.models import Institution
from storage.schools import SchoolError, get_school, upsert_school
from tests.harness import Harness, tr
from tests.webchat import WebGraduate


@dataclass(frozen=True)
class School:
    institution: Institution
    authority: str
    website: str


SCHOOLS: dict[str, School] = {
    "NL": School(
        Institution(
            code="alfa",
            name="Alfa-college",
            country="NL",
            default_language="nl",
            legal_name="Stichting Regionaal Opleidingencentrum Noord",
            privacy_contact="privacy@alfa-college.nl",
            dpo_contact="fg@alfa-college.nl",
        ),
        "Autoriteit Persoonsgegevens",
        "https://autoriteitpersoonsgegevens.nl",
    ),
    "ES": School(
        Institution(
            code="valnalon",
            name="CIFP Valnalón",
            country="ES",
            default_language="es",
            legal_name="Consejería de Educación del Principado de Asturias",
            privacy_contact="Secretaría, Calle Hermanos Felgueroso 78, 33209 Gijón",
        ),
        "Agencia Española de Protección de Datos (AEPD)",
        "https://www.aepd.es",
    ),
    "EE": School(
        Institution(
            code="pkhk",
            name="Pärnumaa Kutsehariduskeskus",
            country="EE",
            default_language="et",
            privacy_contact="andmekaitse@pkhk.ee",
            dpo_contact="Andmekaitsespetsialist, dpo@pkhk.ee",
        ),
        "Andmekaitse Inspektsioon",
        "https://www.aki.ee",
    ),
    "IT": School(
        Institution(
            code="cometa",
            name="Cometa Formazione",
            country="IT",
            default_language="it",
            legal_name="Cometa Formazione Società Cooperativa Sociale",
            privacy_contact="privacy@cometaformazione.it",
        ),
        "Garante per la protezione dei dati personali",
        "https://www.garanteprivacy.it",
    ),
}

MONTHS = {"en": "60 months", "nl": "60 maanden", "es": "60 meses", "et": "60 kuu", "it": "60 mesi"}
TITLE = {
    "en": "Privacy notice (version ",
    "nl": "Privacyverklaring (versie ",
    "es": "Aviso de privacidad (versión ",
    "et": "Privaatsusteade (versioon ",
    "it": "Informativa sulla privacy (versione ",
}
FALLBACK = {
    "en": "the data protection authority of your country",
    "nl": "de toezichthouder op gegevensbescherming in je land",
    "es": "la autoridad de protección de datos de tu país",
    "et": "sinu riigi andmekaitse järelevalveasutus",
    "it": "l'autorità per la protezione dei dati del tuo paese",
}
OFFICE = {
    "en": "ask the office of {school}",
    "nl": "Vraag het aan de administratie van {school}",
    "es": "pregunta en la secretaría de {school}",
    "et": "pöördu kooli kantseleisse ({school})",
    "it": "rivolgiti alla segreteria di {school}",
}
SETTINGS = Settings(retention_months=60, privacy_notice_version="2027-01", _env_file=None)


def _check_common(messages: list[str], lang: str) -> str:
    """What every rendering has: the title with this school's version first, each message
    within Telegram's limit, the retention period and the commands of the rights."""
    assert all(0 < len(m) <= MESSAGE_LIMIT for m in messages), [len(m) for m in messages]
    text = "\n\n".join(messages)
    assert text.startswith(TITLE[lang])
    assert MONTHS[lang] in text
    for command in ("/mydata", "/delete", "/privacy", "/stop"):
        assert command in text
    assert "EQAVET" in text and "Telegram" in text
    return text


@pytest.mark.parametrize("country", list(SCHOOLS))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_notice_names_the_schools_details_in_every_language(country: str, lang: str) -> None:
    school = SCHOOLS[country]
    with use_language(lang):
        messages = notice_messages(SETTINGS, school.institution)
    text = _check_common(messages, lang)
    version = shown_version(SETTINGS, school.institution)
    assert f" {version})" in messages[0].splitlines()[0]
    controller = school.institution.legal_name or school.institution.name
    assert controller in text
    assert school.institution.privacy_contact and school.institution.privacy_contact in text
    if school.institution.dpo_contact:
        assert school.institution.dpo_contact in text
    assert f"{school.authority} ({school.website})" in text
    # The other countries' authorities are not named: the complaint goes to this country's.
    others = [a.name for code, a in AUTHORITIES.items() if code != country]
    assert not [name for name in others if name in text]
    if lang != "en":
        with use_language("en"):
            english = "\n\n".join(notice_messages(SETTINGS, school.institution))
        assert text != english and TITLE["en"] not in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_school_without_details_gets_the_fallbacks(lang: str) -> None:
    """A school of another country, with no privacy details yet: its name as controller, its
    office as the contact, and the European list of authorities to complain to."""
    school = Institution(code="bxl", name="Campus Brussel", country="BE", default_language="nl")
    with use_language(lang):
        messages = notice_messages(SETTINGS, school)
    text = _check_common(messages, lang)
    assert OFFICE[lang].format(school="Campus Brussel") in text
    assert f"{FALLBACK[lang]} ({EDPB_MEMBERS})" in text


def test_the_version_changes_with_the_text_and_the_schools_details() -> None:
    base = SCHOOLS["NL"].institution
    version = notice_version(base, "2027-01", 60)
    assert version == notice_version(base.model_copy(), "2027-01", 60)  # the same text
    assert version.startswith("2027-01-") and len(version) <= 32
    changed = {
        "privacy contact": notice_version(
            base.model_copy(update={"privacy_contact": "avg@alfa-college.nl"}), "2027-01", 60
        ),
        "legal name": notice_version(
            base.model_copy(update={"legal_name": "Stichting Alfa"}), "2027-01", 60
        ),
        "DPO": notice_version(base.model_copy(update={"dpo_contact": None}), "2027-01", 60),
        "country": notice_version(base.model_copy(update={"country": "BE"}), "2027-01", 60),
        "retention": notice_version(base, "2027-01", 48),
        "base version": notice_version(base, "2027-02", 60),
    }
    assert len({version, *changed.values()}) == len(changed) + 1, changed
    # A base version too long for the consent columns is cut, never the hash.
    long = notice_version(base, "x" * 40, 60)
    assert len(long) == 32 and long.endswith(version[-8:])


def test_a_notice_longer_than_one_message_is_split_between_paragraphs() -> None:
    school = SCHOOLS["ES"].institution
    with use_language("es"):
        whole = privacy_notice(school, "2027-01", 60)
        parts = privacy_notice(school, "2027-01", 60, limit=900)
    assert len(whole) == 1 and len(parts) > 2
    assert all(len(p) <= 900 for p in parts)
    assert "\n\n".join(parts) == whole[0]


# Through the chat ---------------------------------------------------------------------------


async def test_privacy_in_telegram_shows_the_details_and_consents_record_the_version(
    harness: Harness,
) -> None:
    school = await harness.school(country="IT", language="it")
    await upsert_school(
        harness.db,
        school.code,
        legal_name="Alfa Scuola Impresa Sociale",
        privacy_contact="privacy@alfa.example",
    )
    graduate, user = await harness.consenting_graduate("it", school=await _reload(harness))
    first = shown_version(harness.settings, await _reload(harness))
    assert graduate.consent_survey_notice == first

    notice, _choices = await harness.send(user, "/privacy", expect=2)
    assert "Alfa Scuola Impresa Sociale" in notice.content
    assert "privacy@alfa.example" in notice.content
    assert "Garante per la protezione dei dati personali" in notice.content
    assert f"(versione {first})" in notice.content

    # The school changes its contact: the notice says so under a new version, and a choice
    # made now records the new version.
    await upsert_school(harness.db, school.code, privacy_contact="dpo@alfa.example")
    second = shown_version(harness.settings, await _reload(harness))
    assert second != first
    notice, choices = await harness.send(user, "/privacy", expect=2)
    assert "dpo@alfa.example" in notice.content and f"(versione {second})" in notice.content
    await harness.press(user, "✅ " + tr("it", "Alumni news"), expect=0, message=choices)
    await harness.keyboard_shows(user, choices, "⬜ " + tr("it", "Alumni news"))
    events = await harness.consent_events(graduate)
    assert [(e.kind, e.granted, e.notice_version) for e in events][-2:] == [
        ("news", True, first),
        ("news", False, second),
    ]


async def test_the_web_chat_shows_the_same_notice(harness: Harness, web: str) -> None:
    school = await harness.school(country="EE", language="et")
    await upsert_school(harness.db, school.code, privacy_contact="andmekaitse@alfa.example")
    graduate = await harness.graduate(school)
    assert graduate.invite_token is not None
    g = WebGraduate(web, graduate.invite_token, "et")
    try:
        await g.start()
        page = await g.press("Eesti")
        texts = " ".join(" ".join(t.split()) for t in page.bot_texts())
        assert "andmekaitse@alfa.example" in texts
        assert "Andmekaitse Inspektsioon (https://www.aki.ee)" in texts
        assert f"{harness.settings.retention_months} kuu" in texts
        version = shown_version(harness.settings, await _reload(harness))
        page = await g.press(tr("et", "Yes"))
        stored = await harness.reload(graduate)
        assert stored.consent_survey is True and stored.consent_survey_notice == version
    finally:
        await g.close()


async def _reload(harness: Harness, code: str = "alfa") -> Institution:
    return await get_school(harness.db, code)


# `gradtrack school` -------------------------------------------------------------------------


async def _school_cli(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["school", *argv])
    assert isinstance(args, argparse.Namespace)
    return await cmd_school(settings, args)


async def test_school_set_stores_the_privacy_details_and_show_prints_them(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=database_url, retention_months=48, _env_file=None)
    assert (
        await _school_cli(settings, "add", "roc-noord", "--name", "ROC Noord", "--country", "NL")
        == 0
    )
    capsys.readouterr()
    assert await _school_cli(settings, "show", "roc-noord") == 0
    out = capsys.readouterr().out
    assert "legal name (controller): ROC Noord" in out
    assert "privacy contact: not set" in out
    assert "supervisory authority: Autoriteit Persoonsgegevens" in out
    assert "retention: 48 months after graduation" in out
    before = next(line for line in out.splitlines() if "privacy notice version:" in line)

    code = await _school_cli(
        settings,
        "set",
        "roc-noord",
        "--legal-name",
        "Stichting ROC Noord",
        "--privacy-contact",
        " privacy@rocnoord.example ",
        "--dpo-contact",
        "FG, Postbus 1, 9700 AA Groningen",
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == (
        "school roc-noord updated (dpo_contact, legal_name, privacy_contact)"
    )
    db = Database(database_url)
    try:
        stored = await get_school(db, "roc-noord")
    finally:
        await db.dispose()
    assert (stored.legal_name, stored.privacy_contact, stored.dpo_contact) == (
        "Stichting ROC Noord",
        "privacy@rocnoord.example",
        "FG, Postbus 1, 9700 AA Groningen",
    )
    assert await _school_cli(settings, "show", "roc-noord") == 0
    out = capsys.readouterr().out
    assert "legal name (controller): Stichting ROC Noord" in out
    assert "privacy contact: privacy@rocnoord.example" in out
    assert "DPO contact: FG, Postbus 1, 9700 AA Groningen" in out
    after = next(line for line in out.splitlines() if "privacy notice version:" in line)
    assert after != before and after.endswith(shown_version(settings, stored))

    # An empty value clears a detail; `set` does not create schools.
    assert await _school_cli(settings, "set", "roc-noord", "--dpo-contact", "") == 0
    assert await _school_cli(settings, "set", "nowhere", "--privacy-contact", "x@y.example") == 1
    assert "unknown school 'nowhere'" in capsys.readouterr().err
    db = Database(database_url)
    try:
        assert (await get_school(db, "roc-noord")).dpo_contact is None
        with pytest.raises(SchoolError, match="longer than 300"):
            await upsert_school(db, "roc-noord", privacy_contact="x" * 301)
    finally:
        await db.dispose()
