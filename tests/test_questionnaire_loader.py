"""The questionnaire loader: the model it builds, and one test per validation rule.

Every rule is checked for its message and for the line it reports.
"""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from conversations.expressions import parse_expression
from conversations.questionnaire import (
    Group,
    GroupEnd,
    Problem,
    QuestionnaireError,
    QuestionType,
    load_questionnaire,
    parse_questionnaire,
)

DATA = Path(__file__).parent / "data" / "questionnaires"

# 16 lines; the rows a test adds start on line 17.
HEAD = """\
settings:
  form_id: demo
  version: "1"
  default_language: en
  languages: [en, nl]
  title: {en: Demo, nl: Demo}
choices:
  yes_no:
    - name: "yes"
      label: {en: "Yes", nl: Ja}
    - name: "no"
      label: {en: "No", nl: Nee}
survey:
  - type: select_one yes_no
    name: C0
    label: {en: Go, nl: Ga}
"""
FIRST = 17


def form(rows: str = "", head: str = HEAD) -> str:
    return head + textwrap.indent(textwrap.dedent(rows), "  ")


def problems(text: str, **kwargs: object) -> list[Problem]:
    with pytest.raises(QuestionnaireError) as caught:
        parse_questionnaire(text, "demo.yaml", **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def assert_problem(text: str, line: int, fragment: str, **kwargs: object) -> None:
    found = problems(text, **kwargs)
    for problem in found:
        if problem.line == line and fragment in problem.message:
            assert problem.source == "demo.yaml"
            return
    listing = "\n".join(str(p) for p in found)
    pytest.fail(f"no problem on line {line} containing {fragment!r}; got:\n{listing}")


def test_the_head_alone_is_valid() -> None:
    q = parse_questionnaire(form())
    assert q.form_id == "demo"
    assert q.version == "1"
    assert [question.name for question in q.questions] == ["C0"]


# --- the model ----------------------------------------------------------------------------


def test_model_of_the_small_fixture() -> None:
    q = load_questionnaire(DATA / "small.yaml")
    assert q.source == str(DATA / "small.yaml")
    assert q.form_id == "small"
    assert q.version == "1.0"
    assert q.default_language == "en"
    assert q.languages == ("en", "nl")
    assert q.title == {"en": "Small survey", "nl": "Kleine enquête"}
    names = [question.name for question in q.questions]
    assert names == [
        "consent",
        "intro",
        "activity",
        "hours",
        "related",
        "channels",
        "start",
        "since",
        "salary",
        "satisfaction",
        "comment",
        "bye",
    ]
    assert q.index("hours") == 3
    hours = q.question("hours")
    assert hours.type == QuestionType.INTEGER
    assert hours.type == "integer"
    assert hours.group == ("main", "work")
    assert [str(e) for e in hours.group_relevant] == [
        "${consent} = 'yes'",
        "selected(${activity}, 'employed') or selected(${activity}, 'both')",
    ]
    assert hours.relevant is None
    assert hours.constraint == parse_expression(". >= 1 and . <= 80")
    assert hours.constraint_messages == {"en": "Please type 1 to 80.", "nl": "Typ 1 tot 80."}
    assert hours.hints["nl"] == "Een heel getal."
    assert hours.hint("en") == "A whole number."
    assert hours.required and not hours.core and hours.answerable and hours.is_typed
    assert hours.line == 37
    related = q.question("related")
    assert related.core and related.relevant == parse_expression("${hours} >= 12")
    assert len(related.relevance) == 3
    consent = q.question("consent")
    assert consent.is_select and not consent.is_multiple
    assert consent.list_name == "yes_no" and consent.type_text == "select_one yes_no"
    assert [c.name for c in q.choices_for(consent)] == ["yes", "no"]
    assert q.choice(consent, "no") is not None and q.choice(consent, "maybe") is None
    assert q.choices_for(hours) == ()
    assert q.question("activity").columns == 2
    satisfaction = q.question("satisfaction")
    assert satisfaction.scale_range == (1, 5)
    assert satisfaction.scale_values == (1, 2, 3, 4, 5)
    assert q.question("intro").is_note and not q.question("intro").answerable
    assert not q.question("intro").required
    assert not q.question("start").required
    assert consent.label("nl") == "Mogen we je een paar vragen stellen?"
    assert "hours" in q and "work" not in q
    with pytest.raises(KeyError):
        q.question("work")
    assert [g.name for g in q.groups] == ["main", "work"]
    work = q.groups[1]
    assert work.parents == ("main",) and work.labels == {"en": "Your work", "nl": "Je werk"}
    assert work.line == 32
    kinds = [type(row).__name__ for row in q.rows]
    assert kinds[:7] == [
        "Question",
        "Question",
        "Group",
        "Question",
        "Group",
        "Question",
        "Question",
    ]
    assert isinstance(q.rows[7], GroupEnd) and q.rows[7].name == "work"
    assert isinstance(q.rows[-2], GroupEnd) and q.rows[-2].name == "main"
    assert isinstance(q.rows[2], Group)


def test_questionnaires_compare_equal_without_source_and_lines() -> None:
    text = (DATA / "small.yaml").read_text(encoding="utf-8")
    a = parse_questionnaire(text, "a.yaml")
    b = parse_questionnaire("# moved down\n\n" + text, "b.yaml")
    assert a == b
    assert a.question("hours").line != b.question("hours").line
    assert hash(a.question("hours")) == hash(b.question("hours"))
    assert pickle.loads(pickle.dumps(a)) == a
    assert pickle.loads(pickle.dumps(a)).question("comment").name == "comment"


def test_defaults_and_scale_parameters() -> None:
    q = parse_questionnaire(
        form(
            """\
              - type: scale
                name: S
                label: {en: S, nl: S}
              - type: scale
                name: T
                parameters: {min: 0, max: 9}
                label: {en: T, nl: T}
            """
        )
    )
    assert q.question("S").parameters == {}
    assert q.question("S").scale_values == (1, 2, 3, 4, 5)
    assert q.question("T").scale_values == tuple(range(10))
    assert q.question("C0").required and not q.question("C0").core


def test_supported_languages_can_be_passed_in() -> None:
    text = form().replace("languages: [en, nl]", "languages: [en, nl]")
    assert parse_questionnaire(text, supported_languages=["en", "nl", "fr"]).languages == (
        "en",
        "nl",
    )
    assert_problem(text, 5, "language 'nl' is not supported", supported_languages=["en"])


# --- YAML and the file --------------------------------------------------------------------


def test_yaml_syntax_error_reports_its_line() -> None:
    assert_problem(form("  - type: text\n    name: [unclosed\n"), 19, "YAML syntax error")


def test_yaml_tab_indentation_is_a_syntax_error() -> None:
    assert_problem(HEAD + "  - type: text\n\tname: T\n", 18, "YAML syntax error")


def test_unsafe_yaml_tags_are_refused() -> None:
    assert_problem(
        form("  - type: !!python/object/apply:os.system [ls]\n"), 17, "YAML syntax error"
    )


def test_texts_with_a_question_mark_in_braces_need_quotes() -> None:
    text = form("  - type: text\n    name: T\n    label: {en: Why?, nl: Waarom?}\n")
    assert_problem(text, 19, "inside { } or [ ], put texts with , : ? # in quotes")


def test_yaml_alias_bombs_are_reported_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for n in range(8):
        this, previous = chr(98 + n), chr(97 + n)
        lines.append(f"{this}: &{this} [" + ", ".join([f"*{previous}"] * 9) + "]")
    bomb = "\n".join(lines) + "\n"  # 9**9 strings if anything walked it
    text = bomb + form(
        "  - type: *i\n    name: *i\n    label: {en: *i, nl: *i}\n    relevant: *i\n"
    ).replace('version: "1"', "version: *i")
    found = [(p.line, p.message) for p in problems(text)]
    assert (
        12,
        'settings: version must be text in quotes, like version: "…" (YAML reads '
        "an unquoted 1.10 as the number 1.1)",
    ) in found
    assert (26, "type must be text, not a list") in found
    assert (
        27,
        "name must be a letter, then letters, digits or _ (at most 32 characters), not a list",
    ) in found
    assert (28, 'label in en must be text; put it in quotes: en: "…"') in found
    assert (29, "relevant must be an expression, not a list") in found


def test_empty_file_and_non_mapping() -> None:
    assert_problem("", 1, "the file is empty")
    assert_problem("- a\n- b\n", 1, "must be a mapping with settings, survey and choices")


def test_duplicate_keys_are_reported() -> None:
    assert_problem(
        form("  - type: text\n    name: T\n    label: {en: a, nl: b}\n    name: U\n"),
        20,
        "the key 'name' appears twice (also on line 18)",
    )


def test_unknown_top_level_key() -> None:
    assert_problem("servey: []\n" + form(), 1, "unknown top-level key 'servey'")
    assert_problem("servey: []\n" + form(), 1, "did you mean 'survey'?")


def test_missing_survey() -> None:
    head = HEAD.split("survey:")[0]
    assert_problem(head, 1, "survey is missing")


def test_load_questionnaire_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(QuestionnaireError) as caught:
        load_questionnaire(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(caught.value)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(QuestionnaireError, match="cannot read the file"):
        load_questionnaire(bad)


def test_all_problems_are_collected_and_listed_one_per_line() -> None:
    text = form(
        """\
          - type: txt
            name: A
            label: {en: a, nl: a}
          - type: text
            name: 9B
            label: {en: b, nl: b}
          - type: text
            name: C
            label: {en: c}
        """
    )
    found = problems(text)
    assert [(p.line, p.message.split(" ")[0]) for p in found] == [
        (17, "unknown"),
        (21, "name"),
        (25, "label"),
    ]
    with pytest.raises(QuestionnaireError) as caught:
        parse_questionnaire(text, "demo.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("demo.yaml:17: unknown type 'txt'")
    assert lines[2] == "demo.yaml:25: label is missing in nl"


# --- settings -----------------------------------------------------------------------------


def test_settings_missing() -> None:
    text = form().replace("settings:", "setting:", 1)
    assert_problem(text, 1, "settings is missing")


@pytest.mark.parametrize("value", ["Demo", "a-b", "x" * 25, "''", "12 ", "[a]"])
def test_invalid_form_id(value: str) -> None:
    text = form().replace("form_id: demo", f"form_id: {value}")
    assert_problem(text, 2, "form_id must be 1 to 24 of a-z, 0-9 and _")


def test_form_id_missing() -> None:
    assert_problem(form().replace("  form_id: demo\n", ""), 1, "settings: form_id is missing")


@pytest.mark.parametrize("value", ["1.0", "2026.10", "3", "2026-06-01", "yes"])
def test_version_written_as_a_yaml_number_is_refused(value: str) -> None:
    text = form().replace('version: "1"', f"version: {value}")
    assert_problem(text, 3, "version must be text in quotes")


@pytest.mark.parametrize("value", ['""', '"two words"', '"' + "9" * 33 + '"'])
def test_version_must_be_a_short_word(value: str) -> None:
    text = form().replace('version: "1"', f"version: {value}")
    assert_problem(text, 3, "version must be 1 to 32 characters without spaces")


def test_default_language_must_be_declared() -> None:
    text = form().replace("default_language: en", "default_language: it")
    assert_problem(text, 4, "default_language 'it' is not one of the languages")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[]", "languages must be a list of language codes"),
        ("en", "languages must be a list of language codes"),
        ("[en, nl, fr]", "language 'fr' is not supported"),
        ("[en, nl, en]", "language en is listed twice"),
    ],
)
def test_languages(value: str, fragment: str) -> None:
    text = form().replace("languages: [en, nl]", f"languages: {value}")
    assert_problem(text, 5, fragment)


def test_unknown_settings_key() -> None:
    text = form().replace("  title:", "  titel: x\n  title:")
    assert_problem(text, 6, "settings: unknown key 'titel'")


def test_title_in_every_language() -> None:
    text = form().replace("title: {en: Demo, nl: Demo}", "title: {en: Demo}")
    assert_problem(text, 6, "title is missing in nl")


# --- rows ---------------------------------------------------------------------------------


def test_unknown_row_key_suggests_the_right_one() -> None:
    text = form(
        "  - type: text\n    name: T\n    lable: {en: a, nl: a}\n    label: {en: a, nl: a}\n"
    )
    assert_problem(text, 19, "unknown key 'lable'")
    assert_problem(text, 19, "did you mean 'label'?")


def test_unknown_type() -> None:
    text = form("  - type: string\n    name: T\n    label: {en: a, nl: a}\n")
    assert_problem(text, FIRST, "unknown type 'string' (known: select_one")


def test_type_missing() -> None:
    assert_problem(form("  - name: T\n    label: {en: a, nl: a}\n"), FIRST, "the row has no type")


def test_select_without_a_list() -> None:
    text = form("  - type: select_one\n    name: T\n    label: {en: a, nl: a}\n")
    assert_problem(text, FIRST, "select_one needs one choice list: type: select_one LIST_NAME")


def test_select_with_a_list_that_does_not_exist() -> None:
    text = form("  - type: select_multiple yes_noo\n    name: T\n    label: {en: a, nl: a}\n")
    assert_problem(text, FIRST, "choice list yes_noo does not exist; did you mean 'yes_no'?")


def test_types_that_take_no_list() -> None:
    text = form("  - type: integer count\n    name: T\n    label: {en: a, nl: a}\n")
    assert_problem(text, FIRST, "integer takes no list name")


def test_names_are_unique_across_questions_and_groups() -> None:
    text = form(
        """\
          - type: begin_group
            name: C0
          - type: text
            name: T
            label: {en: a, nl: a}
          - type: end_group
          - type: text
            name: T
            label: {en: a, nl: a}
        """
    )
    assert_problem(text, 18, "duplicate name C0 (also used on line 14)")
    assert_problem(text, 24, "duplicate name T (also used on line 19)")


@pytest.mark.parametrize("name", ["1abc", "_x", "a-b", "a b", "é", "x" * 33, "yes", "12"])
def test_name_pattern(name: str) -> None:
    text = form(f"  - type: text\n    name: {name}\n    label: {{en: a, nl: a}}\n")
    assert_problem(text, 18, "must be a letter, then letters, digits or _")


def test_a_name_of_32_characters_is_fine() -> None:
    name = "Q" * 32
    text = form(f"  - type: text\n    name: {name}\n    label: {{en: a, nl: a}}\n")
    assert parse_questionnaire(text).question(name).name == name


def test_name_missing() -> None:
    assert_problem(form("  - type: text\n    label: {en: a, nl: a}\n"), FIRST, "has no name")


def test_label_missing() -> None:
    assert_problem(form("  - type: text\n    name: T\n"), FIRST, "T has no label")


def test_label_in_every_declared_language() -> None:
    assert_problem(
        form("  - type: text\n    name: T\n    label: {en: a}\n"), 19, "label is missing in nl"
    )


def test_label_in_an_undeclared_language() -> None:
    text = form("  - type: text\n    name: T\n    label:\n      en: a\n      nl: b\n      fr: c\n")
    assert_problem(text, 22, "label has a text in 'fr', not a declared language")


def test_label_texts_must_not_be_empty() -> None:
    text = form('  - type: text\n    name: T\n    label:\n      en: a\n      nl: "  "\n')
    assert_problem(text, 21, "label in nl is empty")


def test_label_unquoted_yes_is_not_text() -> None:
    text = form("  - type: text\n    name: T\n    label:\n      en: a\n      nl: Yes\n")
    assert_problem(text, 21, "label in nl must be text; put it in quotes")


def test_label_must_be_a_mapping() -> None:
    text = form("  - type: text\n    name: T\n    label: Hello\n")
    assert_problem(text, 19, "label must give one text per language")


def test_label_length_limit() -> None:
    ok = "a" * 3500
    assert parse_questionnaire(
        form(f"  - type: text\n    name: T\n    label: {{en: {ok}, nl: b}}\n")
    )
    text = form(f"  - type: text\n    name: T\n    label: {{en: {ok}a, nl: b}}\n")
    assert_problem(text, 19, "label in en is 3501 characters, at most 3500")


def test_label_and_hint_together_fit_a_message() -> None:
    text = form(
        f"  - type: text\n    name: T\n    label: {{en: {'a' * 3000}, nl: b}}\n"
        f"    hint: {{en: {'h' * 600}, nl: h}}\n"
    )
    assert_problem(text, 20, "label and hint in en are 3602 characters together")


def test_hint_in_every_language() -> None:
    text = form("  - type: text\n    name: T\n    label: {en: a, nl: a}\n    hint: {nl: h}\n")
    assert_problem(text, 20, "hint is missing in en")


def test_constraint_message_in_every_language() -> None:
    text = form(
        "  - type: integer\n    name: T\n    label: {en: a, nl: a}\n"
        "    constraint: . > 1\n    constraint_message: {en: m}\n"
    )
    assert_problem(text, 21, "constraint_message is missing in nl")


def test_constraint_message_without_constraint() -> None:
    text = form(
        "  - type: integer\n    name: T\n    label: {en: a, nl: a}\n"
        "    constraint_message: {en: m, nl: m}\n"
    )
    assert_problem(text, 20, "constraint_message without a constraint")


@pytest.mark.parametrize("key", ["required", "core"])
@pytest.mark.parametrize("value", ['"yes"', "1", "maybe"])
def test_required_and_core_are_booleans(key: str, value: str) -> None:
    text = form(f"  - type: text\n    name: T\n    label: {{en: a, nl: a}}\n    {key}: {value}\n")
    assert_problem(text, 20, f"{key} must be true or false")


def test_yaml_yes_is_a_boolean_for_required() -> None:
    text = form("  - type: text\n    name: T\n    label: {en: a, nl: a}\n    required: no\n")
    assert not parse_questionnaire(text).question("T").required


def test_a_core_question_must_be_required() -> None:
    text = form(
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n    required: false\n"
        "    core: true\n"
    )
    assert_problem(text, 21, "a core question must be required")


def test_keys_a_note_does_not_take() -> None:
    text = form(
        "  - type: note\n    name: N\n    label: {en: a, nl: a}\n    constraint: . = 1\n"
        "    required: false\n    core: true\n"
    )
    assert_problem(text, 20, "constraint is not allowed on a note")
    assert_problem(text, 21, "required is not allowed on a note")
    assert_problem(text, 22, "core is not allowed on a note")


def test_keys_a_group_does_not_take() -> None:
    text = form(
        "  - type: begin_group\n    name: G\n    hint: {en: a, nl: a}\n"
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n"
        "  - type: end_group\n    label: {en: a, nl: a}\n"
    )
    assert_problem(text, 19, "hint is not allowed on a begin_group row")
    assert_problem(text, 24, "label is not allowed on an end_group row")


# --- groups -------------------------------------------------------------------------------


def test_end_group_without_begin_group() -> None:
    assert_problem(form("  - type: end_group\n"), FIRST, "end_group without a begin_group")


def test_begin_group_without_end_group() -> None:
    text = form(
        "  - type: begin_group\n    name: G\n  - type: text\n    name: T\n"
        "    label: {en: a, nl: a}\n"
    )
    assert_problem(text, FIRST, "group G has no end_group")


def test_nested_groups_close_in_order() -> None:
    text = form(
        "  - type: begin_group\n    name: G\n  - type: begin_group\n    name: H\n"
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n"
        "  - type: end_group\n    name: G\n  - type: end_group\n"
    )
    assert_problem(text, 25, "end_group G closes group H (opened on line 19)")


def test_empty_group() -> None:
    assert_problem(
        form("  - type: begin_group\n    name: G\n  - type: end_group\n"),
        FIRST,
        "group G is empty",
    )


def test_a_group_label_is_optional_but_complete() -> None:
    text = form(
        "  - type: begin_group\n    name: G\n    label: {en: g}\n"
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n  - type: end_group\n"
    )
    assert_problem(text, 19, "label is missing in nl")


# --- expressions --------------------------------------------------------------------------


def test_expression_syntax_error_is_reported_with_the_row_line() -> None:
    text = form(
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n    relevant: ${C0} == 'yes'\n"
    )
    assert_problem(text, 20, "relevant: use = to compare, not == at character 7 in: ${C0} ==")


def test_constraint_syntax_error() -> None:
    text = form(
        "  - type: integer\n    name: T\n    label: {en: a, nl: a}\n    constraint: . >= 1 and\n"
    )
    assert_problem(text, 20, "constraint: the expression ends too early")


def test_reference_to_a_later_question() -> None:
    text = form(
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n    relevant: ${U} = 'x'\n"
        "  - type: text\n    name: U\n    label: {en: a, nl: a}\n"
    )
    assert_problem(text, 20, "relevant refers to U, which comes later (line 21)")


def test_reference_to_itself() -> None:
    text = form(
        "  - type: integer\n    name: T\n    label: {en: a, nl: a}\n    constraint: ${T} > 1\n"
    )
    assert_problem(text, 20, "constraint refers to T itself; use . for the answer")


def test_reference_to_an_unknown_question() -> None:
    text = form("  - type: text\n    name: T\n    label: {en: a, nl: a}\n    relevant: ${c0} = 1\n")
    assert_problem(text, 20, "relevant refers to c0, which does not exist; did you mean 'C0'?")


def test_reference_to_a_group() -> None:
    text = form(
        "  - type: begin_group\n    name: G\n  - type: text\n    name: T\n"
        "    label: {en: a, nl: a}\n    relevant: ${G} = 1\n  - type: end_group\n"
    )
    assert_problem(text, 22, "relevant refers to group G; refer to a question")


def test_reference_to_a_note() -> None:
    text = form(
        "  - type: note\n    name: N\n    label: {en: a, nl: a}\n"
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n    relevant: ${N} = 1\n"
    )
    assert_problem(text, 23, "relevant refers to note N, which has no answer")


def test_group_relevant_cannot_refer_to_its_own_rows() -> None:
    text = form(
        "  - type: begin_group\n    name: G\n    relevant: ${T} = 'x'\n"
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n  - type: end_group\n"
    )
    assert_problem(text, 19, "relevant refers to T, which comes later")


def test_current_value_only_in_constraint() -> None:
    text = form("  - type: text\n    name: T\n    label: {en: a, nl: a}\n    relevant: . = 'x'\n")
    assert_problem(text, 20, "'.' (the answer being checked) can only be used in constraint")


def test_expression_must_be_text() -> None:
    text = form("  - type: text\n    name: T\n    label: {en: a, nl: a}\n    relevant: true\n")
    assert_problem(text, 20, "relevant must be an expression, not True")


def test_a_row_with_a_wrong_type_still_counts_as_a_name() -> None:
    text = form(
        "  - type: strng\n    name: T\n    label: {en: a, nl: a}\n"
        "  - type: text\n    name: U\n    label: {en: a, nl: a}\n    relevant: ${T} = 'x'\n"
    )
    found = problems(text)
    assert [p.line for p in found] == [FIRST]


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ("{min: 1, max: 12}", "a scale from 1 to 12 has 12 buttons; it needs 2 to 11"),
        ("{min: 0, max: 30, step: 2}", "from 0 to 30 in steps of 2 has 16 buttons"),
        ("{min: 3, max: 3}", "a scale from 3 to 3 has 1 buttons"),
        ("{min: 5, max: 1}", "a scale from 5 to 1 has 0 buttons"),
        ("{max: 20}", "a scale from 1 to 20 has 20 buttons"),
        ("{min: one, max: 5}", "parameter min must be a whole number, not 'one'"),
        ("{min: 1.5}", "parameter min must be a whole number"),
        ("{step: 0}", "parameter step must be 1 or more, not 0"),
        ("{steps: 2}", "unknown parameter 'steps' for scale (allowed: min, max, step, columns)"),
        ("min=1 max=5", "parameters must be a mapping"),
    ],
)
def test_scale_parameters(parameters: str, fragment: str) -> None:
    text = form(
        f"  - type: scale\n    name: S\n    label: {{en: a, nl: a}}\n    parameters: {parameters}\n"
    )
    assert_problem(text, 20, fragment)


@pytest.mark.parametrize("columns", [0, 5, -1])
def test_columns_from_1_to_4(columns: int) -> None:
    text = form(
        "  - type: select_one yes_no\n    name: S\n    label: {en: a, nl: a}\n"
        f"    parameters: {{columns: {columns}}}\n"
    )
    assert_problem(text, 20, f"parameter columns must be 1 to 4, not {columns}")


def test_parameters_only_where_they_mean_something() -> None:
    text = form(
        "  - type: text\n    name: T\n    label: {en: a, nl: a}\n    parameters: {columns: 2}\n"
    )
    assert_problem(text, 20, "unknown parameter 'columns' for text (allowed: none)")


# --- choices ------------------------------------------------------------------------------


def choices_form(items: str) -> str:
    head = HEAD.replace("choices:\n", "choices:\n  other:\n" + textwrap.indent(items, "    "))
    return form("  - type: select_one other\n    name: O\n    label: {en: a, nl: a}\n", head)


def test_choices_form_is_valid() -> None:
    assert parse_questionnaire(choices_form("- name: a\n  label: {en: a, nl: a}\n"))


def test_duplicate_choice_codes() -> None:
    text = choices_form("- name: a\n  label: {en: a, nl: a}\n- name: a\n  label: {en: b, nl: b}\n")
    assert_problem(text, 11, "choice a appears twice in other (also on line 9)")


@pytest.mark.parametrize("code", ["'a b'", "'é'", "''", "'" + "x" * 33 + "'", "'a.b'"])
def test_choice_code_pattern(code: str) -> None:
    text = choices_form(f"- name: {code}\n  label: {{en: a, nl: a}}\n")
    assert_problem(text, 9, "must be 1 to 32 of A-Z, a-z, 0-9, _ and -")


@pytest.mark.parametrize(
    ("code", "shown"), [("yes", '"yes"'), ("off", '"no"'), ("1", '"1"'), ("2.5", '"2.5"')]
)
def test_unquoted_choice_codes_that_yaml_turns_into_other_values(code: str, shown: str) -> None:
    text = choices_form(f"- name: {code}\n  label: {{en: a, nl: a}}\n")
    assert_problem(text, 9, f"must be text: put it in quotes, like name: {shown}")


def test_choice_label_in_every_language_and_short() -> None:
    text = choices_form(
        f"- name: a\n  label: {{en: a}}\n- name: b\n  label: {{en: {'x' * 101}, nl: b}}\n"
    )
    assert_problem(text, 10, "label of choice a is missing in nl")
    assert_problem(text, 12, "label of choice b in en is 101 characters, at most 100")


def test_choice_keys() -> None:
    text = choices_form(
        "- name: a\n  label: {en: a, nl: a}\n  filter: x\n- label: {en: a, nl: a}\n"
    )
    assert_problem(text, 11, "unknown key 'filter' in a choice")
    assert_problem(text, 12, "a choice in other has no name")


def test_empty_choice_list() -> None:
    head = HEAD.replace("choices:\n", "choices:\n  other: []\n")
    text = form("  - type: select_one other\n    name: O\n    label: {en: a, nl: a}\n", head)
    assert_problem(text, 8, "choice list other must be a non-empty list of choices")


def test_unused_choice_list() -> None:
    head = HEAD.replace(
        "choices:\n", "choices:\n  spare:\n    - name: a\n      label: {en: a, nl: a}\n"
    )
    assert_problem(form("", head), 8, "choice list spare is not used by any question (a typo?)")


def test_button_data_budget_for_choices() -> None:
    name = "Q" * 32
    code = "c" * 20
    head = HEAD.replace(
        "choices:\n", f"choices:\n  long:\n    - name: {code}\n      label: {{en: a, nl: a}}\n"
    )
    text = form(f"  - type: select_one long\n    name: {name}\n    label: {{en: a, nl: a}}\n", head)
    size = len(f"sv:zzzzzzzz:{name}:{code}".encode())
    assert size == 65
    assert_problem(text, 21, f"button data for {name}/{code} is 65 bytes, Telegram allows 64")
    shorter = text.replace(code, code[:-1])
    assert parse_questionnaire(shorter).question(name)


def test_button_data_budget_for_scales() -> None:
    name = "Q" * 32
    text = form(
        f"  - type: scale\n    name: {name}\n    label: {{en: a, nl: a}}\n"
        "    parameters: {min: -9999999999999999999, max: -9999999999999999990}\n"
    )
    assert_problem(text, 18, f"button data for {name}/-9999999999999999999 is 65 bytes")
