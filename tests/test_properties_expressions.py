"""Properties of the expression language (conversations/expressions.py).

- Any text either parses or raises ExpressionError with a position inside the text: never
  another exception, never a RecursionError, whatever the nesting.
- A parsed expression evaluates against any answers (every kind of value, extreme numbers,
  NaN) without raising, and its canonical text parses back to the same tree.
- Generated well-formed expressions evaluate as a reference evaluator written here says.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

from conversations.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    NAME_RE,
    AnswerValue,
    ExpressionError,
    parse_expression,
)
from tests.properties import PROFILE, extreme_numbers, hostile_text

PARSE_EXAMPLES = 300
GRAMMAR_SOUP_EXAMPLES = 400
NESTING_EXAMPLES = 60
EVALUATE_EXAMPLES = 150
REFERENCE_EXAMPLES = 200
NUMBER_TERM_EXAMPLES = 100

NAMES = ("a", "b", "c", "E3", "Q1", "M", "T", "x_1")

# --- answers ----------------------------------------------------------------------------------


def answer_values() -> st.SearchStrategy[AnswerValue]:
    """Every kind of value an answer can hold, at its extremes."""
    return st.one_of(
        hostile_text(30),
        st.sampled_from(["", "yes", "12", " 12 ", "-3.5", "2026-06-30", "2026-06", "a b"]),
        extreme_numbers(),
        st.lists(st.sampled_from(["online", "school", "none", "a", ""]) | st.text(max_size=5)),
    )


answer_dicts = st.dictionaries(
    st.sampled_from(NAMES) | st.from_regex(NAME_RE, fullmatch=True), answer_values(), max_size=8
)


def assert_result(value: object) -> None:
    assert isinstance(value, bool | int | float | str), repr(value)


def check_parsed_or_error(text: str) -> None:
    """The contract: a tree whose canonical text parses back to it, or ExpressionError."""
    try:
        expression = parse_expression(text)
    except ExpressionError as error:
        assert error.message
        assert 0 <= error.position <= len(text), (error.position, len(text))
        assert str(error).endswith(f"(at character {error.position + 1})")
        return
    canonical = str(expression)
    again = parse_expression(canonical)
    assert again == expression, (text, canonical)
    assert str(again) == canonical
    assert all(NAME_RE.fullmatch(name) for name in expression.references())
    assert_result(expression.evaluate({}))
    assert isinstance(expression.holds({}, current=["a"]), bool)


# --- any text -------------------------------------------------------------------------------


@settings(PROFILE, max_examples=PARSE_EXAMPLES)
@given(hostile_text(80))
@example("-.١")  # regression: a non-ASCII digit after "-." failed an assertion
@example("-.²")
@example("(" * (MAX_DEPTH + 1))
@example("not(" * 2000)
@example("9" * 31)
@example("1" * (MAX_LENGTH + 1))
def test_any_text_parses_or_raises_expression_error(text: str) -> None:
    check_parsed_or_error(text)


GRAMMAR_PIECES = (
    "${a}",
    "${b}",
    "${E3}",
    "${",
    "}",
    "$",
    ".",
    "-",
    "-.",
    "1",
    "0",
    "12.5",
    ".5",
    "١",
    "²",
    "'x'",
    '"y"',
    "'",
    '"',
    "‘",
    "(",
    ")",
    ",",
    "=",
    "!=",
    "==",
    "!",
    "<",
    "<=",
    ">",
    ">=",
    "and",
    "or",
    "AND",
    "not(",
    "not",
    "selected(",
    "count-selected(",
    "string-length(",
    "foo(",
    "yes",
    " ",
    "\t",
    "\n",
    "\x00",
    "+",
    "*",
)


@settings(PROFILE, max_examples=GRAMMAR_SOUP_EXAMPLES)
@given(st.lists(st.sampled_from(GRAMMAR_PIECES), max_size=40).map("".join))
def test_grammar_soup_parses_or_raises_expression_error(text: str) -> None:
    """Random sequences of the language's own tokens: the inputs most likely to get deep
    into the parser."""
    check_parsed_or_error(text)


@settings(PROFILE, max_examples=NESTING_EXAMPLES)
@given(
    st.lists(
        st.sampled_from(["(", "not(", "selected(${a}, ", "count-selected(", "string-length("]),
        max_size=MAX_DEPTH * 3,
    ),
    st.booleans(),
)
def test_deep_nesting_is_refused_without_recursion_errors(openers: list[str], close: bool) -> None:
    """Nesting beyond MAX_DEPTH is a syntax error found before Python's stack runs out; up to
    it, expressions parse and evaluate."""
    text = "".join(openers) + "1" + (")" * len(openers) if close else "")
    if len(openers) > MAX_DEPTH:
        try:
            parse_expression(text)
        except ExpressionError as error:
            assert "nested too deeply" in error.message
        else:
            raise AssertionError("too deep, yet parsed")
    else:
        check_parsed_or_error(text)


# --- evaluation -----------------------------------------------------------------------------


@settings(PROFILE, max_examples=EVALUATE_EXAMPLES)
@given(
    st.lists(st.sampled_from(GRAMMAR_PIECES), min_size=1, max_size=30).map("".join),
    answer_dicts,
    st.none() | answer_values(),
)
@example("${a} < ${b}", {"a": math.nan, "b": 1}, None)
@example("string-length(${a}) > count-selected(.)", {"a": 10**400}, -math.inf)
@example("selected(${a}, .)", {"a": ["x"]}, 1e308)
def test_evaluation_never_raises(
    text: str, answers: dict[str, AnswerValue], current: AnswerValue | None
) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionError:
        return
    assert_result(expression.evaluate(answers, current))
    holds = expression.holds(answers, current)
    assert isinstance(holds, bool)
    assert parse_expression(str(expression)).holds(answers, current) is holds


# --- a reference evaluator for generated expressions ------------------------------------------
#
# Numbers are integers and decimals, from literals, answers (possibly missing), count-selected
# and string-length; booleans come from comparisons, and, or, not(), selected() and the truth
# of an answer. Missing answers follow the documented rules: '' equals only '', and orders
# against nothing.

MISSING = object()
Answers = dict[str, AnswerValue]


@dataclass(frozen=True)
class Tree:
    """Source text, and what the reference evaluator says it means."""

    text: str
    value: Callable[[Answers], object]
    refs: frozenset[str]


NUMBER_NAMES = ("n1", "n2", "n3")
LIST_NAMES = ("m1", "m2")
TEXT_NAMES = ("t1",)
ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _space() -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", "  ", "\t", "\n"])


def _truthy(value: object) -> bool:
    if value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    assert isinstance(value, int | float)
    return value != 0 and value == value  # NaN is false


def _compare(op: str, left: object, right: object) -> bool:
    if op in ("=", "!="):
        if isinstance(left, bool) or isinstance(right, bool):
            equal = _truthy(left) == _truthy(right)
        elif left is MISSING or right is MISSING:
            equal = left is right
        else:
            equal = left == right
        return equal if op == "=" else not equal
    if left is MISSING or right is MISSING:
        return False
    assert isinstance(left, int | float) and isinstance(right, int | float)
    return bool(ORDER[op](left, right))


def _constant(text: str, value: object) -> Tree:
    return Tree(text, lambda _answers: value, frozenset())


def _answer(name: str) -> Tree:
    return Tree(f"${{{name}}}", lambda answers: answers.get(name, MISSING), frozenset({name}))


def _count_selected(name: str) -> Tree:
    def value(answers: Answers) -> int:
        chosen = answers.get(name, [])
        assert isinstance(chosen, list)
        return len(chosen)

    return Tree(f"count-selected(${{{name}}})", value, frozenset({name}))


def _string_length(name: str) -> Tree:
    def value(answers: Answers) -> int:
        text = answers.get(name, "")
        assert isinstance(text, str)
        return len(text)

    return Tree(f"string-length(${{{name}}})", value, frozenset({name}))


def _selected(name: str, code: str) -> Tree:
    def value(answers: Answers) -> bool:
        chosen = answers.get(name, [])
        assert isinstance(chosen, list)
        return code in chosen

    return Tree(f"selected(${{{name}}}, '{code}')", value, frozenset({name}))


def _comparison(left: Tree, op: str, right: Tree, before: str, after: str) -> Tree:
    return Tree(
        f"{left.text}{before}{op}{after}{right.text}",
        lambda answers: _compare(op, left.value(answers), right.value(answers)),
        left.refs | right.refs,
    )


def _junction(word: str, items: list[Tree]) -> Tree:
    combine = all if word == "and" else any
    return Tree(
        f" {word} ".join(f"({item.text})" for item in items),
        lambda answers: combine(_truthy(item.value(answers)) for item in items),
        frozenset().union(*(item.refs for item in items)),
    )


def _negation(item: Tree) -> Tree:
    return Tree(f"not({item.text})", lambda answers: not _truthy(item.value(answers)), item.refs)


def _equality(left: Tree, op: str, right: Tree) -> Tree:
    return Tree(
        f"({left.text}) {op} ({right.text})",
        lambda answers: _compare(op, left.value(answers), right.value(answers)),
        left.refs | right.refs,
    )


number_literals = st.one_of(
    st.integers(-(10**12), 10**12).map(lambda n: _constant(str(n), n)),
    st.tuples(st.integers(-999, 999), st.integers(0, 99))
    .map(lambda pair: f"{pair[0]}.{pair[1]:02d}")
    .map(lambda text: _constant(text, float(text))),
)
number_terms = st.one_of(
    number_literals,
    st.sampled_from(NUMBER_NAMES).map(_answer),
    st.sampled_from(LIST_NAMES).map(_count_selected),
    st.sampled_from(TEXT_NAMES).map(_string_length),
)
boolean_atoms = st.one_of(
    st.builds(
        _comparison,
        number_terms,
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        number_terms,
        _space(),
        _space(),
    ),
    st.builds(_selected, st.sampled_from(LIST_NAMES), st.sampled_from(["a", "b", "c"])),
    st.sampled_from(NUMBER_NAMES).map(_answer),  # the truth of an answer
)


def _combine(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    return st.one_of(
        st.builds(
            _junction, st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)
        ),
        children.map(_negation),
        st.builds(_equality, children, st.sampled_from(["=", "!="]), children),
    )


boolean_trees = st.recursive(boolean_atoms, _combine, max_leaves=12)

reference_answers = st.fixed_dictionaries(
    {},
    optional={
        **{
            name: st.one_of(
                st.integers(-(10**12), 10**12),
                st.sampled_from([2**63, -(2**63), 10**30]),
                st.floats(allow_nan=True, allow_infinity=True),
            )
            for name in NUMBER_NAMES
        },
        **{
            name: st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4)
            for name in LIST_NAMES
        },
        **{name: hostile_text(20) for name in TEXT_NAMES},
    },
)


@settings(PROFILE, max_examples=REFERENCE_EXAMPLES)
@given(boolean_trees, reference_answers)
def test_generated_expressions_agree_with_a_reference_evaluator(
    tree: Tree, answers: Answers
) -> None:
    expression = parse_expression(tree.text)
    expected = _truthy(tree.value(answers))
    assert expression.holds(answers) is expected, (tree.text, answers)
    assert expression.references() == tree.refs
    canonical = parse_expression(str(expression))
    assert canonical == expression
    assert canonical.holds(answers) is expected


@settings(PROFILE, max_examples=NUMBER_TERM_EXAMPLES)
@given(number_terms, reference_answers)
def test_number_terms_evaluate_to_their_reference_value(tree: Tree, answers: Answers) -> None:
    value = parse_expression(tree.text).evaluate(answers)
    expected = tree.value(answers)
    if expected is MISSING:
        assert value == ""
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(value, float) and math.isnan(value)
    else:
        assert value == expected and type(value) is type(expected)


# --- regression -----------------------------------------------------------------------------


def test_regression_non_ascii_digit_after_minus_dot_is_a_syntax_error() -> None:
    """Found by test_grammar_soup_parses_or_raises_expression_error: "-." followed by a digit
    that is not ASCII started a number the number pattern then did not match (an
    AssertionError instead of an ExpressionError)."""
    for text in ("-.١", "-.²", "${a} = -.𝟙"):
        try:
            parse_expression(text)
        except ExpressionError as error:
            assert re.search(r"unexpected", error.message), error.message
        else:
            raise AssertionError(f"{text!r} parsed")
