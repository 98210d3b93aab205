"""Choices that fit every school (issue 17): a choice that names a country or its services is
shown in the variant of the school's country, in the graduate's language, and a school can
give its own labels (VDAB in Flanders) with `gradtrack school label`. Through the sandbox on
SQLite and PostgreSQL; the loader, XLSForm and the CLI's checks without it."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import build_parser, cmd_school
from bot.settings import Settings
from bot.web.exports import ResponseRecord, response_sheet
from conversations.questionnaire import (
    ChoiceLabelError,
    Question,
    Questionnaire,
    QuestionnaireError,
    check_choice_label,
    load_questionnaire,
    parse_questionnaire,
)
from conversations.registry import QUESTIONNAIRES_DIR, QuestionnaireRegistry
from conversations.xlsform import export_xlsx, import_xlsx, load_xlsx, to_yaml
from storage.db import Database
from storage.schools import (
    list_choice_labels,
    school_questionnaires,
    set_choice_label,
    upsert_school,
)
from tests.harness import Harness, tr
from tests.survey_walk import Walk, default_answer

TRACKING = load_questionnaire(QUESTIONNAIRES_DIR / "tracking.yaml")
PREGRAD = load_questionnaire(QUESTIONNAIRES_DIR / "pregrad.yaml")
PES = ("job_search", "public_employment_service")
COUNTRIES = ("NL", "ES", "EE", "IT", "BE")


def _choice(q: Questionnaire, list_name: str, code: str) -> Any:
    return next(c for c in q.choices[list_name] if c.name == code)


# -- the questionnaires' variants ---------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "list_name", "code"),
    [
        (TRACKING, "region", "elsewhere_in_country"),
        (TRACKING, *PES),
        (PREGRAD, "region_preferred", "elsewhere_in_country"),
    ],
)
def test_choices_that_name_the_country_have_a_variant_for_each_pilot_country(
    q: Questionnaire, list_name: str, code: str
) -> None:
    choice = _choice(q, list_name, code)
    assert set(choice.countries) == set(COUNTRIES)
    for country in COUNTRIES:
        assert set(choice.countries[country]) == set(q.languages), country
    # The generic label names no country: a school elsewhere shows it.
    generic = " ".join(choice.labels.values())
    for name in ("Nederland", "España", "Eesti", "UWV", "SEPE", "Töötukassa", "VDAB"):
        assert name not in generic


def test_a_school_shows_its_countrys_variant_in_the_graduates_language() -> None:
    elsewhere = ("region", "elsewhere_in_country")
    cases = {
        ("NL", "es"): "En otra parte de los Países Bajos",
        ("NL", "nl"): "Elders in Nederland",
        ("ES", "es"): "En otra parte de España",
        ("ES", "nl"): "Elders in Spanje",
        ("EE", "et"): "Mujal Eestis",
        ("IT", "en"): "Elsewhere in Italy",
        ("BE", "it"): "Altrove in Belgio",
        ("DE", "es"): "En otra parte del país",  # no variant: the generic label
        ("de", "nl"): "Elders in het land",
    }
    for (country, lang), expected in cases.items():
        shown = TRACKING.for_school(country)
        assert _choice(shown, *elsewhere).label(lang) == expected, (country, lang)
        assert _choice(TRACKING, *elsewhere).label(lang, country) == expected
    # Codes, routing and the other texts stay; without a variant nothing changes at all.
    nl = TRACKING.for_school("NL")
    assert nl.questions == TRACKING.questions and nl.choice_lists() == TRACKING.choice_lists()
    assert TRACKING.for_school(None) is TRACKING
    assert PREGRAD.for_school("DE") is PREGRAD


def test_a_schools_own_label_goes_over_the_variant_in_its_language_only() -> None:
    own = {PES: {"nl": "Via de VDAB"}}
    shown = TRACKING.for_school("BE", own)
    pes = _choice(shown, *PES)
    assert pes.label("nl") == "Via de VDAB"
    assert pes.label("es") == "VDAB, Le Forem o Actiris"  # BE's variant
    assert _choice(TRACKING.for_school("NL"), *PES).label("nl") == "Via het UWV"
    assert _choice(TRACKING, *PES).label("nl") == "Via het arbeidsbureau"


# -- the loader ----------------------------------------------------------------------------

SMALL = """\
settings:
  form_id: small
  version: "1"
  default_language: en
  languages: [en, es]
  title: {en: Small, es: Pequeña}
survey:
  - type: select_one where
    name: W
    label: {en: "Where?", es: "¿Dónde?"}
choices:
  where:
    - name: elsewhere
      label: {en: Elsewhere in the country, es: En otra parte del país}
      countries:
COUNTRIES_BLOCK
"""


def _small(countries: str) -> str:
    return SMALL.replace("COUNTRIES_BLOCK", countries)


def _problems(text: str) -> str:
    with pytest.raises(QuestionnaireError) as caught:
        parse_questionnaire(text, "small.yaml")
    return str(caught.value)


def test_the_loader_reads_country_variants() -> None:
    q = parse_questionnaire(
        _small(
            "        NL: {en: Elsewhere in the Netherlands, es: En otra parte de los Países Bajos}"
        )
    )
    assert q.choices["where"][0].countries == {
        "NL": {"en": "Elsewhere in the Netherlands", "es": "En otra parte de los Países Bajos"}
    }


@pytest.mark.parametrize(
    ("countries", "message"),
    [
        (
            "        nl: {en: a, es: b}",
            "small.yaml:16: countries of choice elsewhere: 'nl' is not an ISO 3166-1 alpha-2 "
            "country code (NL, ES, EE, IT, BE ...); write it in capitals: NL",
        ),
        (
            "        XX: {en: a, es: b}",
            "small.yaml:16: countries of choice elsewhere: 'XX' is not an ISO 3166-1 alpha-2 "
            "country code (NL, ES, EE, IT, BE ...)",
        ),
        ("        UK: {en: a, es: b}", "did you mean 'GB'?"),
        ("        NO: {en: a, es: b}", "YAML reads False as something else: put it in quotes"),
        (
            "        NL: {en: Elsewhere in the Netherlands}",
            "small.yaml:16: label of choice elsewhere for NL is missing in es",
        ),
        (
            "        NL: {en: a, es: b, fr: c}",
            "small.yaml:16: label of choice elsewhere for NL has a text in 'fr', not a declared "
            "language",
        ),
        ("        NL: Elders in Nederland", "label of choice elsewhere for NL must give one text"),
        ("        []", "countries of choice elsewhere must map country codes to labels"),
    ],
)
def test_the_loader_names_a_bad_variant(countries: str, message: str) -> None:
    assert message in _problems(_small(countries))


def test_variants_go_through_a_spreadsheet_and_back(tmp_path: Path) -> None:
    xlsx = tmp_path / "tracking.xlsx"
    export_xlsx(TRACKING, xlsx)
    assert load_xlsx(xlsx) == TRACKING
    text = import_xlsx(xlsx)
    assert "countries:" in text and "En otra parte de los Países Bajos" in text
    assert to_yaml(parse_questionnaire(text)) == to_yaml(TRACKING)

    # A hand-made sheet: a country column in the survey sheet, a column whose country is
    # unclear, and a variant missing a language are each named.
    from openpyxl import Workbook

    book = Workbook()
    survey = book.active
    assert survey is not None
    survey.title = "survey"
    survey.append(["type", "name", "label::English (en)", "label::English (en)::NL"])
    survey.append(["select_one where", "W", "Where?", "Waar?"])
    choices = book.create_sheet("choices")
    choices.append(
        ["list_name", "name", "label::en", "label::en::NL", "label::es::Holland", "label::es"]
    )
    choices.append(["where", "elsewhere", "Elsewhere", "Elsewhere in the Netherlands", "x", "Otro"])
    settings = book.create_sheet("settings")
    settings.append(["form_id", "version", "default_language", "languages"])
    settings.append(["hand", "1", "en", "en es"])
    bad = tmp_path / "hand.xlsx"
    book.save(bad)
    with pytest.raises(QuestionnaireError) as caught:
        import_xlsx(bad)
    problems = str(caught.value)
    assert "survey:1: column 'label::English (en)::NL': only choice labels have country" in problems
    assert "choices:1: column 'label::es::Holland': which country is 'Holland'?" in problems

    del choices["E1"]  # the Holland column
    book.save(bad)
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(bad)
    assert "label of choice elsewhere for NL is missing in es" in str(caught.value)


# -- a school's own labels: the checks -----------------------------------------------------


@pytest.mark.parametrize(
    ("target", "lang", "text", "message"),
    [
        ("job_search", "nl", "x", "write it as LIST.CODE"),
        ("jobsearch.public_employment_service", "nl", "x", "did you mean 'job_search'?"),
        ("job_search.public_service", "nl", "x", "did you mean 'public_employment_service'?"),
        ("job_search.public_employment_service", "fr", "x", "the questionnaires are in"),
        ("job_search.public_employment_service", "nl", "  ", "the label is empty"),
        ("job_search.public_employment_service", "nl", "V" * 101, "at most 100"),
    ],
)
def test_a_schools_label_is_checked_against_the_questionnaires(
    target: str, lang: str, text: str, message: str
) -> None:
    with pytest.raises(ChoiceLabelError, match=message):
        check_choice_label([TRACKING, PREGRAD], target, lang, text)


def test_a_label_for_a_choice_of_another_questionnaire_is_accepted() -> None:
    assert check_choice_label(
        [TRACKING, PREGRAD], "region_preferred.home_region", "NL", " In  Vlaanderen "
    ) == ("region_preferred", "home_region", "nl", "In Vlaanderen")


# -- `gradtrack school label / unlabel / labels` -------------------------------------------


async def _school_cli(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["school", *argv])
    assert isinstance(args, argparse.Namespace)
    return await cmd_school(settings, args)


async def test_school_label_commands(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=database_url, _env_file=None)
    add = ("add", "kta-gent", "--name", "KTA Gent", "--country", "BE")
    assert (
        await _school_cli(settings, *add, "--language", "nl", "--timezone", "Europe/Brussels") == 0
    )
    capsys.readouterr()
    target = "job_search.public_employment_service"
    assert (
        await _school_cli(settings, "label", "kta-gent", target, "--lang", "nl", "Via de VDAB") == 0
    )
    assert capsys.readouterr().out.strip() == f"label of {target} in nl set"
    assert (
        await _school_cli(settings, "label", "kta-gent", target, "--lang", "nl", "Via de VDAB") == 0
    )
    assert capsys.readouterr().out.strip() == f"label of {target} in nl unchanged"
    assert await _school_cli(settings, "label", "kta-gent", target, "--lang", "en", "VDAB") == 0
    capsys.readouterr()
    assert await _school_cli(settings, "labels", "kta-gent") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{target}  en  VDAB",
        f"{target}  nl  Via de VDAB",
    ]

    # Bad input: a clear error, exit code 1, nothing stored.
    for argv, error in (
        (
            ("label", "kta-gent", "job_search.public_service", "--lang", "nl", "x"),
            "error: choice list job_search has no choice 'public_service'; did you mean "
            "'public_employment_service'?",
        ),
        (
            ("label", "kta-gent", "regio.abroad", "--lang", "nl", "x"),
            "error: no questionnaire has a choice list 'regio'; did you mean 'region'?",
        ),
        (
            ("label", "kta-gent", target, "--lang", "fr", "x"),
            "error: language 'fr': the questionnaires are in nl, es, et, it, en",
        ),
        (
            ("label", "nowhere", target, "--lang", "nl", "x"),
            "error: unknown school 'nowhere'; add it with `gradtrack school add`",
        ),
        (
            ("unlabel", "kta-gent", "region.nowhere"),
            "error: choice list region has no choice 'nowhere'",
        ),
    ):
        assert await _school_cli(settings, *argv) == 1, argv
        assert capsys.readouterr().err.strip().startswith(error), argv

    assert await _school_cli(settings, "unlabel", "kta-gent", target, "--lang", "en") == 0
    assert "removed 1 label(s)" in capsys.readouterr().out
    assert await _school_cli(settings, "unlabel", "kta-gent", target, "--lang", "en") == 0
    assert capsys.readouterr().out.strip() == f"school kta-gent has no own label for {target} in en"
    db = Database(database_url)
    try:
        labels = await list_choice_labels(db, "kta-gent")
    finally:
        await db.dispose()
    assert [(x.list_name, x.choice, x.language, x.label) for x in labels] == [
        (*PES, "nl", "Via de VDAB")
    ]
    assert await _school_cli(settings, "unlabel", "kta-gent", target) == 0
    assert await _school_cli(settings, "labels", "kta-gent") == 0
    assert "shows the questionnaires' own choice labels" in capsys.readouterr().out


# -- in the chat ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    country: str
    lang: str
    own: dict[tuple[str, str], dict[str, str]]
    service: str
    """The public employment service's button (E10)."""
    region: str
    """The elsewhere-in-the-country button (E12)."""
    absent: tuple[str, ...]
    """Labels of other countries (or the generic one) that must not show."""


CASES = {
    "spanish-reader-at-a-dutch-school": Case(
        "NL",
        "es",
        {},
        "Servicio público de empleo (UWV)",
        "En otra parte de los Países Bajos",
        ("En otra parte de España", "En otra parte del país", "Oficina de empleo (SEPE)"),
    ),
    "flemish-school-with-its-own-label": Case(
        "BE",
        "nl",
        {PES: {"nl": "Via de VDAB"}},
        "Via de VDAB",
        "Elders in België",
        ("Via VDAB, Le Forem of Actiris", "Via het UWV", "Elders in Nederland"),
    ),
    "school-in-a-country-without-a-variant": Case(
        "DE",
        "es",
        {},
        "Servicio público de empleo",
        "En otra parte del país",
        ("En otra parte de España", "Oficina de empleo (SEPE)"),
    ),
}


def _employed(q: Questionnaire) -> Any:
    def choose(question: Question) -> Any:
        if question.name == "C0":
            return "yes"
        if question.name == "Q1":
            return "employed"
        if question.name == "E10":
            return ["public_employment_service"]
        if question.name == "E12":
            return "elsewhere_in_country"
        if not question.required:
            return None
        if question.type == "select_multiple":
            return [q.choices_for(question)[0].name]
        return default_answer(q, question)

    return choose


@pytest.mark.parametrize("name", list(CASES))
async def test_the_chat_shows_the_choices_of_the_schools_country(
    harness: Harness, name: str
) -> None:
    case = CASES[name]
    h = harness
    h.questionnaires = QuestionnaireRegistry()
    await h.restart_bot()
    school = await h.school(code="school-" + case.country.lower(), country=case.country)
    forms = [TRACKING, PREGRAD]
    for (list_name, code), texts in case.own.items():
        for lang, text in texts.items():
            await set_choice_label(h.db, school.code, f"{list_name}.{code}", lang, text, forms)
    graduate, user = await h.consenting_graduate(case.lang, school=school)
    await h.open_survey(graduate, "tracking")
    _welcome, first = await h.send(user, "/survey", expect=2)

    # The walk presses each button by its label as the school shows it.
    walk = Walk(
        h, user, TRACKING.for_school(case.country, case.own), case.lang, country=case.country
    )
    review = await walk.run(first, _employed(TRACKING))
    assert {"E10", "E12"} <= set(walk.asked)

    # The buttons pressed (the press fails unless the bot showed a button with that text).
    assert _choice(walk.q, *PES).label(case.lang) == case.service
    assert _choice(walk.q, "region", "elsewhere_in_country").label(case.lang) == case.region
    assert (
        tr(case.lang, "Please check your answers. Tap a number to change an answer, or send them.")
        in review.content
    )
    assert case.service in review.content and case.region in review.content
    for other in case.absent:
        assert other not in review.content, other

    # /mydata gives the answers with the labels the graduate saw.
    (reply,) = await h.send(user, "/mydata")
    assert reply.document is not None
    data = json.loads(h.sandbox.file_bytes(h.token, reply.document["file_id"]).decode("utf-8"))
    answers = {a["question"]: a for a in data["survey_responses"][0]["answers"]}
    assert answers["E12"]["value"] == "elsewhere_in_country"
    assert answers["E12"]["value_label"] == case.region
    assert answers["E10"]["value_label"] == case.service


# -- exports -------------------------------------------------------------------------------


async def test_an_export_row_has_the_labels_its_school_showed(db: Database) -> None:
    for code, country in (("alfa", "NL"), ("kta", "BE"), ("berlin", "DE")):
        await upsert_school(
            db, code, name=code, country=country, language="en", timezone="Europe/Brussels"
        )
    await set_choice_label(
        db, "kta", "job_search.public_employment_service", "en", "VDAB", [TRACKING]
    )
    async with db.session() as session:
        schools = await school_questionnaires(session, TRACKING)
    answers = {"E10": ["public_employment_service"], "E12": "elsewhere_in_country"}
    records = [
        ResponseRecord(
            respondent=f"r{code}",
            school=code,
            programme="cook",
            cohort=2026,
            wave="m2",
            form_id="tracking",
            version=TRACKING.version,
            status="submitted",
            outcome="completed",
            started=date(2026, 8, 30),
            completed=date(2026, 9, 1),
            answers=answers,
        )
        for code in ("alfa", "kta", "berlin", "gone")
    ]
    sheet = response_sheet(TRACKING, records, "en", schools=schools)
    rows = [dict(zip(sheet.header, row, strict=True)) for row in sheet.rows]
    assert [(r["E10"], r["E10_label"], r["E12_label"]) for r in rows] == [
        (
            "public_employment_service",
            "Public employment service (UWV)",
            "Elsewhere in the Netherlands",
        ),
        ("public_employment_service", "VDAB", "Elsewhere in Belgium"),
        ("public_employment_service", "Public employment service", "Elsewhere in the country"),
        ("public_employment_service", "Public employment service", "Elsewhere in the country"),
    ]
