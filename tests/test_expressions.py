"""The expression language: parsing, evaluation, canonical text and hostile input."""

from __future__ import annotations

import random

import pytest

from conversations.expressions import (
    MAX_DEPTH,
    AnswerValue,
    ExpressionError,
    parse_expression,
)

ANSWERS: dict[str, AnswerValue] = {
    "C0": "yes",
    "Q1": "employed",
    "E3": 40,
    "W": 2.5,
    "M": ["online", "school"],
    "M1": ["online"],
    "M0": [],
    "D": "2026-06-30",
    "MO": "2026-06",
    "T": "hello",
    "N": "12",
    "S": 3,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${C0} = 'yes'", True),
        ('${C0} = "yes"', True),
        ("${C0} != 'yes'", False),
        ("${C0}='no'", False),
        ("${missing} = ''", True),
        ("${missing} != ''", False),
        ("${C0} != ''", True),
        ("${E3} = 40", True),
        ("${E3} = '40'", True),
        ("${E3} = 40.0", True),
        ("${N} = 12", True),
        ("${N} > 9", True),
        ("${N} > '9'", True),
        ("${E3} >= 1 and ${E3} <= 80", True),
        ("${E3} > 80 or ${E3} < 1", False),
        ("${W} < 3", True),
        ("${W} = 2.50", True),
        ("${missing} < 5", False),
        ("${missing} > 5", False),
        ("${missing} >= ''", False),
        ("${missing} = 0", False),
        ("${T} > 5", False),
        ("${T} = 5", False),
        ("${D} >= '2026-01-01'", True),
        ("${D} < '2026-06-30'", False),
        ("${MO} <= '2026-06'", True),
        ("${M1} = 'online'", True),
        ("${M} = 'online'", False),
        ("${M} = 'online school'", True),
        ("${M0} = ''", True),
        ("selected(${M}, 'school')", True),
        ("selected(${M}, 'friends')", False),
        ("selected(${M0}, 'school')", False),
        ("selected(${missing}, 'school')", False),
        ("selected(${Q1}, 'employed')", True),
        ("selected(${Q1}, 'employ')", False),
        ("selected(${S}, '3')", True),
        ("selected(${S}, 3)", True),
        ("count-selected(${M}) = 2", True),
        ("count-selected(${M0}) = 0", True),
        ("count-selected(${missing}) = 0", True),
        ("count-selected(${Q1}) = 1", True),
        ("string-length(${T}) = 5", True),
        ("string-length(${missing}) = 0", True),
        ("string-length(${E3}) = 2", True),
        ("not(${C0} = 'no')", True),
        ("not(${C0})", False),
        ("not(${missing})", True),
        ("${C0}", True),
        ("${missing}", False),
        ("(${C0} = 'yes' or ${C0} = 'no') and ${E3} > 10", True),
        ("${C0} = 'yes' or ${C0} = 'no' and ${E3} > 100", True),
        ("(${C0} = 'yes' or ${C0} = 'no') and ${E3} > 100", False),
        ("-5 < 0", True),
        (".5 < 1", True),
        ("${E3} = ${E3}", True),
        ("(${E3} > 1) = (${W} > 1)", True),
        ("0", False),
        ("''", False),
        ("'x'", True),
    ],
)
def test_evaluation(text: str, expected: bool) -> None:
    assert parse_expression(text).holds(ANSWERS) is expected


@pytest.mark.parametrize(
    ("text", "current", "expected"),
    [
        (". >= 1 and . <= 80", 40, True),
        (". >= 1 and . <= 80", 0, False),
        (". >= 1 and . <= 80", 81, False),
        (". >= 1 and . <= 80", None, False),
        ("string-length(.) <= 5", "hello", True),
        ("string-length(.) <= 5", "hello!", False),
        ("count-selected(.) <= 2", ["a", "b"], True),
        ("count-selected(.) <= 2", ["a", "b", "c"], False),
        (". > ${E3}", 41, True),
        (". >= '2020-01'", "2026-06", True),
        (". = ''", None, True),
        ("not(selected(., 'none') and count-selected(.) > 1)", ["none", "x"], False),
        ("not(selected(., 'none') and count-selected(.) > 1)", ["none"], True),
    ],
)
def test_constraint_evaluation(text: str, current: AnswerValue | None, expected: bool) -> None:
    assert parse_expression(text).holds(ANSWERS, current) is expected


def test_evaluate_returns_the_top_value() -> None:
    assert parse_expression("${E3}").evaluate(ANSWERS) == 40
    assert parse_expression("${M}").evaluate(ANSWERS) == "online school"
    assert parse_expression("count-selected(${M})").evaluate(ANSWERS) == 2
    assert parse_expression("string-length(.)").evaluate({}, "abc") == 3
    assert parse_expression("${nothing}").evaluate({}) == ""
    assert parse_expression("1 < 2").evaluate({}) is True
    assert parse_expression("'text'").evaluate({}) == "text"


def test_references_and_current() -> None:
    expression = parse_expression("selected(${Q1}, 'a') and (${E3} > 3 or not(${C0} = .))")
    assert expression.references() == frozenset({"Q1", "E3", "C0"})
    assert expression.uses_current
    assert not parse_expression("${a} = 1").uses_current
    assert parse_expression(". > 1").references() == frozenset()


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("${a}='x'", "${a} = 'x'"),
        ("  ${a}   =   'x'  ", "${a} = 'x'"),
        ('${a} = "it\'s"', '${a} = "it\'s"'),
        ('${a} = "x"', "${a} = 'x'"),
        ("(${a} = 1)", "${a} = 1"),
        ("${a} = 1 or (${b} = 2 and ${c} = 3)", "${a} = 1 or ${b} = 2 and ${c} = 3"),
        ("(${a} = 1 or ${b} = 2) and ${c} = 3", "(${a} = 1 or ${b} = 2) and ${c} = 3"),
        ("(${a} or ${b}) or ${c}", "${a} or ${b} or ${c}"),
        ("(${a} = 1) = (${b} = 2)", "(${a} = 1) = (${b} = 2)"),
        ("not( ${a} )", "not(${a})"),
        ("selected( ${a} ,'x' )", "selected(${a}, 'x')"),
        ("count-selected(.)>=2.50", "count-selected(.) >= 2.50"),
        ("-3 < .", "-3 < ."),
    ],
)
def test_canonical_text_reparses_to_the_same_tree(text: str, canonical: str) -> None:
    expression = parse_expression(text)
    assert str(expression) == canonical
    assert parse_expression(str(expression)) == expression
    assert expression.source == text.strip()


def test_equality_ignores_spacing_and_number_spelling() -> None:
    assert parse_expression("${a}=2.5") == parse_expression("${a} = 2.50")
    assert parse_expression("${a} = 1") != parse_expression("${a} = '1'")
    assert hash(parse_expression("${a}=1")) == hash(parse_expression("${a} = 1"))


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("${a} =", 6, "ends too early"),
        ("${a} = 'x", 7, "not closed"),
        ('${a} = "x', 7, "not closed"),
        ("${a", 0, "not closed with '}'"),
        ("${}", 0, "needs a question name"),
        ("${ a }", 2, "not a valid question name"),
        ("${1a} = 1", 2, "not a valid question name"),
        ("${a-b} = 1", 2, "not a valid question name"),
        ("${" + "a" * 33 + "}", 2, "not a valid question name"),
        ("$a = 1", 0, "'$' must start a reference"),
        ("${a} = 1 2", 9, "expected 'and', 'or' or the end"),
        ("${a} = 1 )", 9, "no matching '('"),
        ("(${a} = 1", 9, "expected ')'"),
        ("${a} < ${b} < ${c}", 12, "do not chain"),
        ("${a} == 1", 5, "use = to compare"),
        ("${a} ! 1", 5, "!="),
        ("${a} = 1 AND ${b} = 2", 9, "lowercase"),
        ("Selected(${a}, 'x')", 0, "lowercase"),
        ("foo(${a})", 0, "unknown function 'foo'"),
        ("true()", 0, "unknown function 'true'"),
        ("${a} = yes", 7, "unexpected word 'yes'"),
        ("not ${a}", 4, "needs parentheses"),
        ("selected(${a})", 0, "takes 2 arguments, not 1"),
        ("count-selected(${a}, 'x')", 0, "takes 1 argument, not 2"),
        ("string-length()", 0, "takes 1 argument, not 0"),
        ("${a} = 1 +", 9, "arithmetic"),
        ("${a} - 1", 5, "arithmetic"),
        ("${a} = ‘x’", 7, "curly quote"),
        ("${a} = 1.2.3", 7, "not a number"),
        ("${a} = 12abc", 7, "not a number"),
        ("${a} = ١", 7, "unexpected character"),
        ("and ${a}", 0, "expected a value before 'and'"),
        ("${a} = ,", 7, "expected a value"),
        ("()", 1, "a value is missing"),
        ("${a} = 1" + " " * 10 + "9" * 31, 18, "longer than 30"),
    ],
)
def test_syntax_errors_have_a_message_and_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert fragment in caught.value.message
    assert caught.value.position == position
    assert f"(at character {position + 1})" in str(caught.value)


def test_nesting_is_limited_without_recursion_errors() -> None:
    ok = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    assert parse_expression(ok).holds({})
    for text in [
        "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
        "(" * 3999,
        "not(" * 999 + "1",
        "selected(" * 400,
        "string-length(" * 200,
    ]:
        with pytest.raises(ExpressionError, match="nested too deeply"):
            parse_expression(text)


def test_long_flat_expressions_are_fine_and_evaluate_iteratively() -> None:
    text = " or ".join(f"${{q{i}}} = {i}" for i in range(200))
    expression = parse_expression(text)
    assert expression.holds({"q199": 199})
    assert not expression.holds({})
    with pytest.raises(ExpressionError, match="longer than 4000 characters"):
        parse_expression("1 or " * 2000 + "1")
    with pytest.raises(ExpressionError, match="longer than 4000 characters"):
        parse_expression("(" * 1_000_000)


def test_huge_numbers_are_refused_not_crashing() -> None:
    with pytest.raises(ExpressionError, match="longer than 30"):
        parse_expression("1" * 3000)
    with pytest.raises(ExpressionError, match="longer than 30"):
        parse_expression("0." + "9" * 400)
    assert parse_expression("9" * 30).holds({})


def test_non_text_input_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        parse_expression(5)  # type: ignore[arg-type]


def test_random_garbage_only_ever_raises_expression_error() -> None:
    rng = random.Random(20261123)
    alphabet = [*"${}()'\". ,=!<>-_aAzZ09\t\n", "and", "or", "not(", "selected(", "${a}"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        try:
            expression = parse_expression(text)
        except ExpressionError as error:
            assert 0 <= error.position <= len(text)
            continue
        assert parse_expression(str(expression)) == expression
        expression.holds({"a": "x"}, current=["a"])
