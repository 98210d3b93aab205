"""Meaning is kept for real forms (issue 19): three XLSForms written as KoboToolbox, Excel and
ODK's documentation write them. For each, the questions ODK Collect would show on several
answer paths (which of them are required, which choices each select offers) are worked out by
hand below, and the engine must take exactly those routes: on the imported form, and on the
form exported to a workbook and imported again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.sandbox.state import TranscriptEntry
from conversations import engine
from conversations.expressions import AnswerValue
from conversations.questionnaire import Questionnaire, QuestionnaireError, QuestionType
from conversations.xlsform import export_xlsx, import_xlsx, load_xlsx
from storage.models import Answer
from tests.harness import Harness
from tests.test_real_updates import _deploy, _rows
from tests.test_xlsform_standard import write_workbook

Route = tuple[list[str], list[str], dict[str, tuple[str, ...]]]


def walk(q: Questionnaire, plan: dict[str, Any]) -> Route:
    """The rows the engine shows in order (notes too) when the graduate answers as `plan` says
    (an optional question missing from the plan is skipped), the required questions among
    them, and the choices each select question offers when it is asked."""
    answers: dict[str, Any] = {}
    shown: list[str] = []
    required: list[str] = []
    offered: dict[str, tuple[str, ...]] = {}
    question = engine.next_question(q, answers, None)
    while question is not None:
        shown.append(question.name)
        if question.answerable and question.required:
            required.append(question.name)
        if question.is_select:
            values = engine.values(q, answers)
            offered[question.name] = tuple(
                c.name for c in engine.choices_offered(q, question, values)
            )
        if question.answerable and question.name in plan:
            value = plan[question.name]
            if question.type == QuestionType.SELECT_ONE:
                value = engine.check_choice(q, question, value, answers)
            elif question.type == QuestionType.SELECT_MULTIPLE:
                assert set(value) <= set(offered[question.name]), (question.name, value)
            elif isinstance(value, str) and question.type != QuestionType.TEXT:
                value = engine.parse_typed(question, value)  # as the graduate types it
            assert engine.check_constraint(q, question, value, answers), (question.name, value)
            answers[question.name] = value
        else:
            assert not question.required or not question.answerable, question.name
        question = engine.next_question(q, answers, question.name)
    assert engine.first_unanswered(q, answers) is None
    return shown, required, offered


def round_tripped(q: Questionnaire, folder: Path) -> Questionnaire:
    """`q` exported as a workbook and imported again."""
    export_xlsx(q, folder / f"{q.form_id}-exported.xlsx")
    return load_xlsx(folder / f"{q.form_id}-exported.xlsx")


# --- 1. KoboToolbox ------------------------------------------------------------------------
# As KoboToolbox's "Download XLS" writes a form made in its form builder: labels and hints in
# `label::English (en)` columns (here English and Spanish), `required` as true/false, the
# metadata rows start, end and deviceid first, and its own `$kuid`/`$autoname` columns.

KOBO_HEADERS: list[object] = [
    "type", "name", "label::English (en)", "label::Español (es)", "hint::English (en)",
    "hint::Español (es)", "required", "relevant", "constraint",
    "constraint_message::English (en)", "constraint_message::Español (es)", "calculation",
    "$kuid", "$autoname",
]  # fmt: skip


def kobo_row(
    type_: str,
    name: str,
    en: str | None = None,
    es: str | None = None,
    *,
    required: str | None = "false",
    relevant: str | None = None,
    constraint: str | None = None,
    message: tuple[str, str] | None = None,
    calculation: str | None = None,
) -> list[object]:
    hint = (None, None)
    return [
        type_, name, en, es, *hint, required, relevant, constraint,
        *(message or (None, None)), calculation, f"k-{name}", name,
    ]  # fmt: skip


KOBO_SURVEY: list[Sequence[object]] = [
    KOBO_HEADERS,
    ["start", "start", None, None, None, None, None, None, None, None, None, None, "a1", "start"],
    ["end", "end", None, None, None, None, None, None, None, None, None, None, "a2", "end"],
    ["deviceid", "deviceid", None, None, None, None, None, None, None, None, None, None, "a3",
     "deviceid"],
    kobo_row("select_one yes_no", "employed", "Do you have a paid job?",
             "¿Tienes un trabajo remunerado?", required="true"),
    kobo_row("begin_group", "job", "Your job", "Tu trabajo", required=None,
             relevant="${employed} = 'yes'"),
    kobo_row("text", "employer", "Who do you work for?", "¿Para quién trabajas?",
             required="true"),
    kobo_row("select_one sector", "sector", "In which sector?", "¿En qué sector?",
             required="true"),
    kobo_row("integer", "hours", "Hours a week?", "¿Horas por semana?",
             constraint=". > 0 and . <= 80",
             message=("From 1 to 80 hours", "De 1 a 80 horas")),
    kobo_row("end_group", "", required=None),
    kobo_row("select_one yes_no", "seeking", "Are you looking for work?", "¿Buscas trabajo?",
             required="true", relevant="${employed} = 'no'"),
    kobo_row("select_multiple barriers", "barriers", "What makes it hard?",
             "¿Qué lo hace difícil?", relevant="${seeking} = 'yes'",
             constraint="count-selected(.) <= 2",
             message=("Choose at most two", "Elige dos como máximo")),
    kobo_row("text", "barrier_other", "What else?", "¿Qué más?", required="true",
             relevant="selected(${barriers}, 'other')"),
    kobo_row("calculate", "situation", required=None,
             calculation="if(${employed} = 'yes', 'working', 'not working')"),
    kobo_row("note", "thanks", "Thank you (${situation}).", "Gracias (${situation})."),
]  # fmt: skip
KOBO_CHOICES: list[Sequence[object]] = [
    ["list_name", "name", "label::English (en)", "label::Español (es)", "$kuid", "$autovalue"],
    ["yes_no", "yes", "Yes", "Sí", "c1", "yes"],
    ["yes_no", "no", "No", "No", "c2", "no"],
    ["sector", "care", "Care", "Cuidados", "c3", "care"],
    ["sector", "tech", "Technology", "Tecnología", "c4", "tech"],
    ["sector", "trade", "Trade", "Comercio", "c5", "trade"],
    ["barriers", "transport", "Transport", "Transporte", "c6", "transport"],
    ["barriers", "language", "Language", "Idioma", "c7", "language"],
    ["barriers", "childcare", "Childcare", "Cuidado infantil", "c8", "childcare"],
    ["barriers", "other", "Other", "Otro", "c9", "other"],
]
KOBO_SETTINGS: list[Sequence[object]] = [
    ["form_title", "version", "default_language"],
    ["Tracer 2026", "vKobo3xZ", "English (en)"],
]


def kobo_form(folder: Path) -> Path:
    sheets = {"survey": KOBO_SURVEY, "choices": KOBO_CHOICES, "settings": KOBO_SETTINGS}
    return write_workbook(folder / "tracer_2026.xlsx", sheets)


# By hand, as ODK Collect shows the form: `employed` always (required); the `job` group only
# after yes, with employer and sector required and hours optional; `seeking` only after no
# (required); the barriers (optional, at most two) only when seeking; "what else" (required)
# only when "other" is among the barriers; the closing note always. Every select offers its
# whole list (no choice_filter). The metadata rows are never shown.
YES_NO = ("yes", "no")
BARRIERS = ("transport", "language", "childcare", "other")
KOBO_ROUTES: list[tuple[str, dict[str, Any], Route]] = [
    (
        "employed, hours given",
        {"employed": "yes", "employer": "City hospital", "sector": "care", "hours": "32"},
        (
            ["employed", "employer", "sector", "hours", "thanks"],
            ["employed", "employer", "sector"],
            {"employed": YES_NO, "sector": ("care", "tech", "trade")},
        ),
    ),
    (
        "employed, hours skipped",
        {"employed": "yes", "employer": "Own shop", "sector": "trade"},
        (
            ["employed", "employer", "sector", "hours", "thanks"],
            ["employed", "employer", "sector"],
            {"employed": YES_NO, "sector": ("care", "tech", "trade")},
        ),
    ),
    (
        "seeking, held back by transport and something else",
        {"employed": "no", "seeking": "yes", "barriers": ["transport", "other"],
         "barrier_other": "My health"},
        (
            ["employed", "seeking", "barriers", "barrier_other", "thanks"],
            ["employed", "seeking", "barrier_other"],
            {"employed": YES_NO, "seeking": YES_NO, "barriers": BARRIERS},
        ),
    ),
    (
        "seeking, barriers skipped",
        {"employed": "no", "seeking": "yes"},
        (
            ["employed", "seeking", "barriers", "thanks"],
            ["employed", "seeking"],
            {"employed": YES_NO, "seeking": YES_NO, "barriers": BARRIERS},
        ),
    ),
    (
        "not seeking",
        {"employed": "no", "seeking": "no"},
        (["employed", "seeking", "thanks"], ["employed", "seeking"],
         {"employed": YES_NO, "seeking": YES_NO}),
    ),
]  # fmt: skip


def test_the_kobo_form_imports_with_its_metadata_left_out(tmp_path: Path) -> None:
    warnings: list[str] = []
    q = load_xlsx(kobo_form(tmp_path), warnings=warnings)
    assert q.languages == ("en", "es") and q.default_language == "en"
    # XLSForm's form_title is one text whatever the labels' languages: shown in Spanish too
    assert q.title == {"en": "Tracer 2026", "es": "Tracer 2026"}
    assert [w for w in warnings if "recorded by ODK itself" in w] == [
        "survey: row 2: start (start) is recorded by ODK itself, never asked: left out",
        "survey: row 3: end (end) is recorded by ODK itself, never asked: left out",
        "survey: row 4: deviceid (deviceid) is recorded by ODK itself, never asked: left out",
    ]
    assert any("'$kuid'" in w for w in warnings)  # Kobo's own columns: ignored, said so
    assert "start" not in [question.name for question in q.questions]


@pytest.mark.parametrize(("name", "plan", "expected"), KOBO_ROUTES)
def test_the_kobo_form_takes_odks_routes(
    tmp_path: Path, name: str, plan: dict[str, Any], expected: Route
) -> None:
    q = load_xlsx(kobo_form(tmp_path))
    assert walk(q, plan) == expected, name
    assert walk(round_tripped(q, tmp_path), plan) == expected, name


def test_the_kobo_forms_checks_are_odks(tmp_path: Path) -> None:
    q = load_xlsx(kobo_form(tmp_path))
    hours, barriers = q.question("hours"), q.question("barriers")
    assert not engine.check_constraint(q, hours, 0, {})
    assert not engine.check_constraint(q, hours, 81, {})
    assert engine.constraint_message(hours, "es") == "De 1 a 80 horas"
    assert engine.check_constraint(q, barriers, ["transport", "language"], {})
    assert not engine.check_constraint(q, barriers, ["transport", "language", "other"], {})
    # answers that no longer apply are not kept: back to "employed", yes after no
    answers: dict[str, AnswerValue] = {
        "employed": "yes",
        "seeking": "yes",
        "barriers": ["other"],
        "barrier_other": "x",
    }
    assert engine.relevant_answers(q, answers) == {"employed": "yes"}
    assert engine.values(q, answers)["situation"] == "working"


# --- 2. Excel, in Estonian -----------------------------------------------------------------
# As a school writes it in Excel from the XLSForm documentation: one bare `label` column in
# Estonian, headers capitalised ("Constraint Message"), no settings sheet, codes typed as
# numbers (Excel stores them as numbers), and `required` as yes, Y, 1 and Excel's own TRUE
# (a boolean cell). A county, then the towns of that county (choice_filter).

ET_SURVEY: list[Sequence[object]] = [
    ["Type", "Name", "Label", "Hint", "Required", "Relevant", "Constraint",
     "Constraint Message", "choice_filter"],
    ["select_one maakond", "maakond", "Millises maakonnas sa elad?", None, "yes"],
    ["select_one linn", "linn", "Mis linnas?", None, "Y", None, None, None,
     "maakond=${maakond}"],
    ["integer", "vanus", "Kui vana sa oled?", "Täisaastates", True, None,
     ". >= 15 and . <= 70", "Vanus peab olema 15 kuni 70"],
    ["select_one jah_ei", "tootab", "Kas sa töötad?", None, 1],
    ["text", "amet", "Mis on su amet?", None, "yes", "${tootab} = 1"],
    ["decimal", "palk", "Kuupalk eurodes?", "Võid vahele jätta", None, "${tootab} = 1",
     ". >= 0", "Palk ei saa olla negatiivne"],
    ["select_one jah_ei", "oppib", "Kas sa õpid edasi?", None, "yes",
     "${tootab} = 2 or ${vanus} < 25"],
    ["note", "lopp", "Aitäh, ${amet}!", None, "no"],
]  # fmt: skip
ET_CHOICES: list[Sequence[object]] = [
    ["List Name", "Name", "Label", "maakond"],
    ["maakond", "harju", "Harjumaa"],
    ["maakond", "tartu", "Tartumaa"],
    ["linn", "tallinn", "Tallinn", "harju"],
    ["linn", "keila", "Keila", "harju"],
    ["linn", "tartu", "Tartu", "tartu"],
    ["linn", "elva", "Elva", "tartu"],
    ["jah_ei", 1, "Jah"],
    ["jah_ei", 2, "Ei"],
]


def estonian_form(folder: Path) -> Path:
    return write_workbook(
        folder / "Vilistlased 2026.xlsx", {"survey": ET_SURVEY, "choices": ET_CHOICES}
    )


# By hand: county and town always, both required, the towns only those of the county; the age
# (required, 15 to 70); "do you work" (required); the job (required) and the monthly pay
# (optional) only after "jah" (code 1, compared as a number as ODK does); "do you study"
# (required) after "ei" (2) or under 25; the closing note always.
JAH_EI = ("1", "2")
ET_ROUTES: list[tuple[str, dict[str, Any], Route]] = [
    (
        "working in Keila, 30",
        {"maakond": "harju", "linn": "keila", "vanus": "30", "tootab": "1", "amet": "kokk",
         "palk": "1850,50"},
        (
            ["maakond", "linn", "vanus", "tootab", "amet", "palk", "lopp"],
            ["maakond", "linn", "vanus", "tootab", "amet"],
            {"maakond": ("harju", "tartu"), "linn": ("tallinn", "keila"), "tootab": JAH_EI},
        ),
    ),
    (
        "not working in Elva, 20",
        {"maakond": "tartu", "linn": "elva", "vanus": "20", "tootab": "2", "oppib": "1"},
        (
            ["maakond", "linn", "vanus", "tootab", "oppib", "lopp"],
            ["maakond", "linn", "vanus", "tootab", "oppib"],
            {"maakond": ("harju", "tartu"), "linn": ("tartu", "elva"), "tootab": JAH_EI,
             "oppib": JAH_EI},
        ),
    ),
    (
        "working in Tartu at 22, pay skipped",
        {"maakond": "tartu", "linn": "tartu", "vanus": "22", "tootab": "1", "amet": "kassapidaja",
         "oppib": "2"},
        (
            ["maakond", "linn", "vanus", "tootab", "amet", "palk", "oppib", "lopp"],
            ["maakond", "linn", "vanus", "tootab", "amet", "oppib"],
            {"maakond": ("harju", "tartu"), "linn": ("tartu", "elva"), "tootab": JAH_EI,
             "oppib": JAH_EI},
        ),
    ),
]  # fmt: skip


def test_the_estonian_excel_form_imports_in_estonian(tmp_path: Path) -> None:
    path = estonian_form(tmp_path)
    with pytest.raises(QuestionnaireError, match="names no language"):
        load_xlsx(path)  # a bare label, no settings: the language is asked at import
    q = load_xlsx(path, language="et")
    assert q.languages == ("et",) and q.form_id == "vilistlased_2026"
    assert q.question("linn").label("et") == "Mis linnas?"
    assert q.question("vanus").hints == {"et": "Täisaastates"}
    assert [q.question(n).required for n in ("maakond", "linn", "vanus", "tootab", "palk")] == [
        True, True, True, True, False,
    ]  # fmt: skip
    assert engine.constraint_message(q.question("palk"), "et") == "Palk ei saa olla negatiivne"


@pytest.mark.parametrize(("name", "plan", "expected"), ET_ROUTES)
def test_the_estonian_form_takes_odks_routes(
    tmp_path: Path, name: str, plan: dict[str, Any], expected: Route
) -> None:
    q = load_xlsx(estonian_form(tmp_path), language="et")
    assert walk(q, plan) == expected, name
    assert walk(round_tripped(q, tmp_path), plan) == expected, name


def test_the_estonian_forms_checks_are_odks(tmp_path: Path) -> None:
    q = load_xlsx(estonian_form(tmp_path), language="et")
    vanus, palk = q.question("vanus"), q.question("palk")
    assert not engine.check_constraint(q, vanus, 14, {})
    assert engine.check_constraint(q, vanus, 70, {})
    assert not engine.check_constraint(q, palk, -1.5, {})
    assert engine.parse_typed(palk, "1850,50") == 1850.5
    # a town of another county, left from before the county changed, does not count
    assert "linn" not in engine.relevant_answers(q, {"maakond": "tartu", "linn": "keila"})


# --- 3. ODK's documentation style ----------------------------------------------------------
# As ODK's XLSForm documentation writes forms: a bare `label` with the default language in the
# settings (`English (en)`), groups with relevance, one group inside another, a
# select_multiple read with selected() and count-selected(), constraints with `.`, and
# `required` in each spelling XLSForm accepts (yes, true(), TRUE, blank, no).

ODK_SURVEY: list[Sequence[object]] = [
    ["type", "name", "label", "hint", "required", "relevant", "constraint",
     "constraint_message", "calculation"],
    ["select_multiple activities", "activities", "What are you doing now?",
     "Choose all that apply", "yes", None,
     "not(selected(., 'none') and count-selected(.) > 1)", "'None' goes alone"],
    ["begin group", "study", "Your studies", None, None, "selected(${activities}, 'study')"],
    ["select_one level", "level", "At what level?", None, "true()"],
    ["text", "course", "Which course?", None, "TRUE"],
    ["begin group", "higher", None, None, None,
     "${level} = 'bachelor' or ${level} = 'master'"],
    ["integer", "credits", "Credits so far?", None, None, None, ". >= 0 and . <= 360",
     "0 to 360"],
    ["end group"],
    ["end group"],
    ["begin group", "work", "Your work", None, None, "selected(${activities}, 'work')"],
    ["integer", "work_hours", "Hours a week?", None, "yes", None, ". >= 1 and . <= 80"],
    ["select_one yes_no", "related", "Related to what you learned?", None, "no"],
    ["end group"],
    ["calculate", "n_activities", None, None, None, None, None, None,
     "count-selected(${activities})"],
    ["select_one yes_no", "too_much", "${n_activities} things at once: too much?", None, "yes",
     "count-selected(${activities}) >= 2"],
    ["note", "bye", "Thank you!"],
]  # fmt: skip
ODK_CHOICES: list[Sequence[object]] = [
    ["list_name", "name", "label"],
    ["activities", "study", "Studying"],
    ["activities", "work", "Working"],
    ["activities", "care", "Caring for family"],
    ["activities", "none", "None of these"],
    ["level", "vocational", "Vocational"],
    ["level", "bachelor", "Bachelor"],
    ["level", "master", "Master"],
    ["yes_no", "yes", "Yes"],
    ["yes_no", "no", "No"],
]
ODK_SETTINGS: list[Sequence[object]] = [
    ["form_title", "form_id", "version", "default_language"],
    ["Next steps", "next_steps", "2026061501", "English (en)"],
]


def odk_form(folder: Path) -> Path:
    sheets = {"survey": ODK_SURVEY, "choices": ODK_CHOICES, "settings": ODK_SETTINGS}
    return write_workbook(folder / "next_steps.xlsx", sheets)


# By hand: the activities always (required; "none" only alone). The `study` group when study
# is ticked: level (required, true()) and course (required, TRUE); inside it the `higher`
# group only for a bachelor or master: credits (blank: optional). The `work` group when work
# is ticked: hours (required), related (no: optional). "Too much?" (required) when two or more
# are ticked. The note always. No choice_filter: each select offers its whole list.
ACTIVITIES = ("study", "work", "care", "none")
LEVELS = ("vocational", "bachelor", "master")
ODK_ROUTES: list[tuple[str, dict[str, Any], Route]] = [
    (
        "studying for a bachelor",
        {"activities": ["study"], "level": "bachelor", "course": "Nursing", "credits": "120"},
        (
            ["activities", "level", "course", "credits", "bye"],
            ["activities", "level", "course"],
            {"activities": ACTIVITIES, "level": LEVELS},
        ),
    ),
    (
        "vocational study and work",
        {"activities": ["study", "work"], "level": "vocational", "course": "Welding",
         "work_hours": "16", "too_much": "no"},
        (
            ["activities", "level", "course", "work_hours", "related", "too_much", "bye"],
            ["activities", "level", "course", "work_hours", "too_much"],
            {"activities": ACTIVITIES, "level": LEVELS, "related": YES_NO, "too_much": YES_NO},
        ),
    ),
    (
        "working only",
        {"activities": ["work"], "work_hours": "40", "related": "yes"},
        (
            ["activities", "work_hours", "related", "bye"],
            ["activities", "work_hours"],
            {"activities": ACTIVITIES, "related": YES_NO},
        ),
    ),
    (
        "none of these",
        {"activities": ["none"]},
        (["activities", "bye"], ["activities"], {"activities": ACTIVITIES}),
    ),
    (
        "caring and studying for a master",
        {"activities": ["study", "care"], "level": "master", "course": "Law", "too_much": "yes"},
        (
            ["activities", "level", "course", "credits", "too_much", "bye"],
            ["activities", "level", "course", "too_much"],
            {"activities": ACTIVITIES, "level": LEVELS, "too_much": YES_NO},
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "plan", "expected"), ODK_ROUTES)
def test_the_odk_form_takes_odks_routes(
    tmp_path: Path, name: str, plan: dict[str, Any], expected: Route
) -> None:
    q = load_xlsx(odk_form(tmp_path))
    assert walk(q, plan) == expected, name
    assert walk(round_tripped(q, tmp_path), plan) == expected, name


def test_the_odk_forms_checks_and_texts(tmp_path: Path) -> None:
    q = load_xlsx(odk_form(tmp_path))
    activities = q.question("activities")
    assert not engine.check_constraint(q, activities, ["none", "work"], {})
    assert engine.check_constraint(q, activities, ["care", "work"], {})
    assert engine.constraint_message(activities, "en") == "'None' goes alone"
    assert not engine.check_constraint(q, q.question("credits"), 400, {})
    assert engine.values(q, {"activities": ["study", "work", "care"]})["n_activities"] == 3
    # leaving the study out afterwards drops the level, the course and the credits
    answers: dict[str, AnswerValue] = {
        "activities": ["work"],
        "level": "master",
        "course": "Law",
        "credits": 30,
    }
    assert engine.relevant_answers(q, answers) == {"activities": ["work"]}
    assert engine.first_unanswered(q, answers) == q.question("work_hours")
    assert "n_activities" not in import_xlsx(odk_form(tmp_path)).split("survey:")[0]


@pytest.mark.parametrize(
    ("required", "row_type", "expected"),
    [
        ("${activities} = 'work'", "text", "required \"${activities} = 'work'\" is not supported"),
        (
            "selected(${activities}, 'work')",
            "integer",
            "required \"selected(${activities}, 'work')\" is not supported",
        ),
    ],
)
def test_a_required_that_depends_on_answers_is_refused_clearly(
    tmp_path: Path, required: str, row_type: str, expected: str
) -> None:
    survey = [*ODK_SURVEY[:-1], [row_type, "why", "Why?", None, required], ODK_SURVEY[-1]]
    path = write_workbook(
        tmp_path / "dynamic.xlsx",
        {"survey": survey, "choices": ODK_CHOICES, "settings": ODK_SETTINGS},
    )
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{path}:survey:{len(survey) - 1}: {expected}")


def test_arithmetic_in_a_calculation_is_refused_naming_the_row(tmp_path: Path) -> None:
    """ODK forms add and multiply in calculations; our expressions do not: a clear problem."""
    survey = [*ODK_SURVEY, ["calculate", "total", None, None, None, None, None, None,
                            "${work_hours} * 4"]]  # fmt: skip
    path = write_workbook(
        tmp_path / "arithmetic.xlsx",
        {"survey": survey, "choices": ODK_CHOICES, "settings": ODK_SETTINGS},
    )
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{path}:survey:{len(survey)}: calculation: unexpected '*'")
    assert "arithmetic and paths are not supported" in problem.message


# --- a choice_filter on a CSV list ---------------------------------------------------------

MUNICIPALITIES = (
    "name;label::English (en);label::Nederlands (nl);Province;population\n"
    "groningen;Groningen;Groningen;gr;230000\n"
    "delfzijl;Delfzijl;Delfzijl;gr;25000\n"
    "utrecht;Utrecht;Utrecht;ut;360000\n"
    "zeist;Zeist;Zeist;ut;65000\n"
)


def csv_filtered_form(folder: Path, choice_filter: str = "province=${province}") -> Path:
    (folder / "municipalities.csv").write_text(MUNICIPALITIES, encoding="utf-8")
    survey: list[Sequence[object]] = [
        ["type", "name", "label::English (en)", "label::Nederlands (nl)", "required",
         "choice_filter"],
        ["select_one provinces", "province", "Province?", "Provincie?", "yes"],
        ["select_one_from_file municipalities.csv", "municipality", "Municipality?",
         "Gemeente?", "yes", choice_filter],
    ]  # fmt: skip
    choices: list[Sequence[object]] = [
        ["list_name", "name", "label::English (en)", "label::Nederlands (nl)"],
        ["provinces", "gr", "Groningen", "Groningen"],
        ["provinces", "ut", "Utrecht", "Utrecht"],
    ]
    return write_workbook(folder / "places.xlsx", {"survey": survey, "choices": choices})


def test_a_choice_filter_reads_a_column_of_the_csv_file(tmp_path: Path) -> None:
    """The CSV's Province column is kept because the filter reads it (ODK filters the file's
    rows the same way); the population column, which nothing reads, is left out, said so."""
    warnings: list[str] = []
    q = load_xlsx(csv_filtered_form(tmp_path), warnings=warnings)
    assert warnings == [
        "municipalities.csv: columns 'population' are not read (only the name, the labels and "
        "the columns a choice_filter reads)"
    ]
    assert q.choices["municipalities_csv"][0].columns == {"province": "gr"}
    by_province = {"gr": ("groningen", "delfzijl"), "ut": ("utrecht", "zeist")}
    for province, towns in by_province.items():
        plan = {"province": province, "municipality": towns[1]}
        expected = (["province", "municipality"], ["province", "municipality"],
                    {"province": ("gr", "ut"), "municipality": towns})  # fmt: skip
        assert walk(q, plan) == expected
        # the YAML holds the column: the CSV file is not needed any more
        assert walk(round_tripped(q, tmp_path), plan) == expected
    with pytest.raises(engine.AnswerError):
        engine.check_choice(q, q.question("municipality"), "zeist", {"province": "gr"})
    assert "columns: {province: gr}" in import_xlsx(tmp_path / "places.xlsx")


def test_a_choice_filter_on_a_column_the_csv_file_lacks_names_the_row(tmp_path: Path) -> None:
    path = csv_filtered_form(tmp_path, "region=${province}")
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{path}:survey:3: choice_filter reads the column region")


# --- every feature, through the chat -------------------------------------------------------
# One form with every XLSForm feature the chat asks: a formatted note, a region, then the
# schools of that region from a CSV file (choice_filter on its region column; the north has
# 45, so they come a page at a time), an age in bounds and a calculation from it, a group only
# for adults with a job (or_other, ${school} in the hint), a start date not in the future
# (today()) and a monthly pay in bounds, a range as buttons, a postcode checked with regex(),
# and a closing note with ${school} and a concat()/if() calculation.

EVERY_SURVEY: list[Sequence[object]] = [
    ["type", "name", "label::English (en)", "hint::English (en)", "required", "relevant",
     "constraint", "constraint_message::English (en)", "choice_filter", "calculation",
     "parameters"],
    ["note", "intro", "**Welcome** to the *graduate survey*"],
    ["select_one regions", "region", "Where is your school?", None, "yes"],
    ["select_one_from_file schools.csv", "school", "Which school in ${region}?", None, "yes",
     None, None, None, "region=${region}"],
    ["integer", "age", "How old are you?", None, "yes", None, None, None, None, None,
     "min=15 max=99"],
    ["calculate", "adult", None, None, None, None, None, None, None,
     "if(${age} >= 18, 'yes', 'no')"],
    ["begin_group", "work", "Your work", None, None, "${adult} = 'yes'"],
    ["select_one jobs or_other", "job", "What do you do now?", "Since leaving ${school}", "yes"],
    ["date", "started", "When did you start?", None, "yes", "not(selected(${job}, 'study'))",
     ". <= today()", "That date is still to come"],
    ["decimal", "salary", "Monthly pay in euros?", None, None, None, None, None, None, None,
     "min=0 max=20000"],
    ["end_group"],
    ["range", "happy", "How happy are you?", None, "yes", None, None, None, None, None,
     "start=1 end=5"],
    ["text", "postcode", "Your postcode?", None, "yes", None, "regex(., '^[0-9]{4} ?[A-Z]{2}$')",
     "Write it like 1234 AB"],
    ["calculate", "summary", None, None, None, None, None, None, None,
     "concat('age ', ${age}, ', ', if(${adult} = 'yes', 'adult', 'minor'))"],
    ["note", "done", "Thank you, ${school} graduate (${summary})."],
]  # fmt: skip
EVERY_CHOICES: list[Sequence[object]] = [
    ["list_name", "name", "label::English (en)"],
    ["regions", "north", "North"],
    ["regions", "south", "South"],
    ["jobs", "work", "Working"],
    ["jobs", "study", "Studying"],
]
EVERY_SCHOOLS = "name,label::English (en),region\n" + "".join(
    [f"n{i},North School {i},north\n" for i in range(1, 46)]
    + [f"s{i},South School {i},south\n" for i in range(1, 4)]
)


@pytest.fixture
async def everything(harness: Harness, tmp_path: Path) -> Harness:
    """The harness with the form of every feature imported and deployed."""
    folder = tmp_path / "form"
    folder.mkdir()
    (folder / "schools.csv").write_text(EVERY_SCHOOLS, encoding="utf-8")
    sheets: dict[str, Sequence[Sequence[object]]] = {
        "survey": EVERY_SURVEY,
        "choices": EVERY_CHOICES,
        "settings": [["form_id", "version", "default_language"], ["everything", "1", "en"]],
    }
    text = import_xlsx(write_workbook(folder / "everything.xlsx", sheets))
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    await _deploy(harness, deployed, text, "everything")
    return harness


def buttons(message: TranscriptEntry) -> list[list[str]]:
    return [[str(b["text"]) for b in row] for row in _rows(message)]


async def stored(h: Harness) -> dict[str, object]:
    async with h.db.session() as session:
        return {a.question: a.value for a in (await session.exec(select(Answer))).all()}


async def test_every_feature_tapped_and_typed_in_the_chat(everything: Harness) -> None:
    h = everything
    graduate, user = await h.consenting_graduate("en")
    await h.open_survey(graduate, "everything")
    _welcome, intro, region = await h.send(user, "/survey", expect=3)
    assert intro.text == "Welcome to the graduate survey"  # bold and italic, no markers
    assert [(e["type"], e["offset"], e["length"]) for e in intro.entities or []] == [
        ("bold", 0, 7),
        ("italic", 15, 15),
    ]
    assert buttons(region) == [["North"], ["South"]]

    # the northern schools only, from the CSV file, 40 to a page
    (school,) = await h.press(user, "North", message=region)
    assert "Which school in North?" in (school.text or "")
    shown = buttons(school)
    assert shown[:2] == [["North School 1"], ["North School 2"]]
    assert shown[39:41] == [["North School 40"], ["More ▶"]]
    assert not any("South" in text for row in shown for text in row)
    await h.press(user, "More ▶", expect=0, message=school)
    await h.keyboard_shows(user, school, "North School 45")
    shown = buttons(school)
    assert shown[:6] == [[f"North School {i}"] for i in range(41, 46)] + [["◀ Earlier"]]
    (age,) = await h.press(user, "North School 44", message=school)
    assert "How old are you?" in (age.text or "")

    (error,) = await h.send(user, "12")
    assert error.text == "Please type a number from 15 to 99."
    (job,) = await h.send(user, "24")
    # the adults' group; the hint names the school chosen
    assert "What do you do now?" in (job.text or "")
    assert "Since leaving North School 44" in (job.text or "")
    assert buttons(job)[:3] == [["Working"], ["Studying"], ["Other"]]
    (other,) = await h.press(user, "Other", message=job)
    assert "Specify other." in (other.text or "")

    (started,) = await h.send(user, "Own bakery")
    assert "When did you start?" in (started.text or "")
    (error,) = await h.send(user, "1-1-2999")
    assert error.text == "That date is still to come"
    (salary,) = await h.send(user, "1-9-2025")
    assert "Monthly pay in euros?" in (salary.text or "")
    (error,) = await h.send(user, "25000")
    assert error.text == "Please type a number from 0 to 20000."
    (happy,) = await h.send(user, "2500,50")
    assert buttons(happy)[0] == ["1", "2", "3", "4", "5"]  # the range as buttons

    (_postcode,) = await h.press(user, "4", message=happy)
    (error,) = await h.send(user, "12")
    assert error.text == "Write it like 1234 AB"
    done, review = await h.send(user, "1234 AB", expect=2)
    assert done.text == "Thank you, North School 44 graduate (age 24, adult)."
    for line in ("North School 44", "Other", "Own bakery", "→ Sep 1, 2025", "→ 2500.5", "1234 AB"):
        assert line in (review.text or ""), line
    await h.press(user, "✅ Send my answers", message=review)
    assert await stored(h) == {
        "region": "north",
        "school": "n44",
        "age": 24,
        "job": "other",
        "job_other": "Own bakery",
        "started": "2025-09-01",
        "salary": 2500.5,
        "happy": 4,
        "postcode": "1234 AB",
    }


async def test_a_minor_skips_the_adults_group_in_the_chat(everything: Harness) -> None:
    """A school in the south (three: one page), 16 years old: straight from the age to the
    range, and the closing note says so."""
    h = everything
    graduate, user = await h.consenting_graduate("en")
    await h.open_survey(graduate, "everything")
    _welcome, _intro, region = await h.send(user, "/survey", expect=3)
    (school,) = await h.press(user, "South", message=region)
    assert buttons(school)[:4] == [["South School 1"], ["South School 2"], ["South School 3"],
                                   ["◀ Back"]]  # fmt: skip
    await h.press(user, "South School 2", message=school)
    (happy,) = await h.send(user, "16")
    assert "How happy are you?" in (happy.text or "")
    (_postcode,) = await h.press(user, "2", message=happy)
    done, review = await h.send(user, "5611AA", expect=2)
    assert done.text == "Thank you, South School 2 graduate (age 16, minor)."
    assert "What do you do now?" not in (review.text or "")
    await h.press(user, "✅ Send my answers", message=review)
    assert await stored(h) == {
        "region": "south",
        "school": "s2",
        "age": 16,
        "happy": 2,
        "postcode": "5611AA",
    }


def test_a_read_only_question_is_refused_and_a_read_only_note_is_not(tmp_path: Path) -> None:
    """ODK shows a read_only question without letting it be answered; a chat would ask it."""
    header = [*ODK_SURVEY[0], "read_only"]
    survey = [
        header,
        *ODK_SURVEY[1:-1],
        ["integer", "shown", "Hours counted", None, None, None, None, None, None, "yes"],
        ["note", "bye", "Thank you!", None, None, None, None, None, None, "TRUE"],
        ["text", "editable", "Anything else?", None, None, None, None, None, None, "no"],
    ]
    path = write_workbook(
        tmp_path / "read_only.xlsx",
        {"survey": survey, "choices": ODK_CHOICES, "settings": ODK_SETTINGS},
    )
    with pytest.raises(QuestionnaireError) as caught:
        load_xlsx(path)
    [problem] = caught.value.problems
    assert str(problem) == (
        f"{path}:survey:{len(survey) - 2}: shown: read_only 'yes' is not supported: ODK shows "
        "such a question without letting it be answered, a chat would ask it; use a note (a "
        "value shows in its label as ${name})"
    )
    del survey[-3]
    write_workbook(path, {"survey": survey, "choices": ODK_CHOICES, "settings": ODK_SETTINGS})
    q = load_xlsx(path)
    assert q.question("editable").answerable and not q.question("bye").answerable
