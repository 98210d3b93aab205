"""The questionnaire expression language: a small subset of XLSForm's, parsed, never eval'd.

Grammar (keywords are lowercase, as in XLSForm)::

    expression := or
    or         := and ('or' and)*
    and        := comparison ('and' comparison)*
    comparison := primary (('=' | '!=' | '<' | '<=' | '>' | '>=') primary)?   -- no chaining
    primary    := NUMBER | STRING | '${' NAME '}' | '${last-saved#' NAME '}' | '.'
                | '(' expression ')'
                | 'not' '(' expression ')'
                | ('selected' | 'count-selected' | 'string-length' | 'regex' | 'if'
                   | 'concat' | 'today') '(' arguments ')'
                | COLUMN                            -- only in a choice_filter

``if(condition, a, b)`` is `a` when the condition holds, else `b`; ``concat(a, ...)`` joins
its arguments as text; ``regex(value, 'pattern')`` holds when the pattern (a text in quotes,
checked when the questionnaire loads) matches somewhere in the value, as ODK's; ``today()`` is
the date of the evaluation (``2026-06-30``, or the `today` given to the evaluator).
In a ``choice_filter`` (parsed with ``columns=True``) a bare word is a column of the choice
being filtered: ``region = ${region}``; ``name`` is its code.

Numbers are ASCII digits with an optional decimal part and an optional leading minus sign
written against the digits (``-5``); strings sit between single or double quotes and have no
escapes. Values an expression sees: ``str`` (codes, text, ISO dates), ``int``, ``float`` and
``list[str]`` (the codes of a select_multiple answer); an unanswered question is ``''``.

``${last-saved#NAME}`` (ODK's syntax) is the same graduate's answer to NAME in their most recent
earlier response to the questionnaire (the previous wave), given to the evaluator as `earlier`;
``${last-saved#_month}`` is the month that earlier response was completed (``2026-06``). With no
earlier response, or no answer to NAME in it, the value is ``''``.

Hostile input only ever raises :class:`ExpressionError`: nesting is limited to
:data:`MAX_DEPTH` levels, the text to :data:`MAX_LENGTH` characters and number literals to
:data:`MAX_NUMBER_LENGTH` characters.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

AnswerValue = str | int | float | list[str]
"""An answer: a code or text or ISO date (str), a number, or the codes of a multiple choice."""

Value = bool | int | float | str | list[str]
"""What a sub-expression evaluates to (inside the evaluator)."""

Result = bool | int | float | str
"""What :meth:`Expression.evaluate` returns (a list is given as its codes joined by spaces)."""

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
#: ``${last-saved#NAME}``: the answer to NAME in the graduate's previous response.
LAST_SAVED = "last-saved#"
#: Facts about the previous response itself (no question can be called so: names start with a
#: letter): ``_month``, the month it was completed, as ``YYYY-MM``.
EARLIER_FIELDS = frozenset({"_month"})
#: A ``${name}`` or ``${last-saved#name}`` inside a label or hint text (replaced by the answer
#: as shown). Group 1 is ``last-saved#`` or empty, group 2 the name.
TEXT_REFERENCE_RE = re.compile(r"\$\{(last-saved#)?([^}#]{0,64})\}")
MAX_DEPTH = 50
MAX_LENGTH = 4000
MAX_NUMBER_LENGTH = 30

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
#: Function name -> (fewest, most arguments); None: any number.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "selected": (2, 2),
    "count-selected": (1, 1),
    "string-length": (1, 1),
    "regex": (2, 2),
    "if": (3, 3),
    "concat": (1, None),
    "today": (0, 0),
}
KEYWORDS = frozenset({"and", "or", "not", *FUNCTIONS})
#: A regex() pattern is written by the questionnaire's author and matched against what a
#: graduate typed: patterns that can backtrack for ages (a repeated group that itself repeats,
#: back-references) are refused when the questionnaire loads.
MAX_PATTERN_LENGTH = 200
_BACKREFERENCE_RE = re.compile(r"\\[1-9]|\(\?P=")

_NUMBER_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_NUMERIC_TEXT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_CURLY_QUOTES = "‘’‚‛“”„‟«»′″"


class ExpressionError(ValueError):
    """A syntax error. ``position`` is the 0-based index of the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} (at character {self.position + 1})"


# --- syntax tree --------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: int | float | str
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class LastSaved:
    """``${last-saved#name}``: the answer to `name` in the previous response."""

    name: str


@dataclass(frozen=True)
class Current:
    pass


@dataclass(frozen=True)
class Column:
    """A bare word in a choice_filter: the choice's value in that column (``name``: its code)."""

    name: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Literal | Ref | LastSaved | Current | Column | Compare | And | Or | Not | Call


@dataclass(frozen=True)
class Expression:
    """A parsed expression. Equal when the trees are equal, whatever the spacing was."""

    root: Node
    source: str = field(default="", compare=False)

    def evaluate(
        self,
        answers: Mapping[str, AnswerValue],
        current: AnswerValue | None = None,
        earlier: Mapping[str, AnswerValue] | None = None,
        *,
        choice: Mapping[str, str] | None = None,
        today: date | None = None,
    ) -> Result:
        """`earlier`: the answers of the previous response (``${last-saved#name}``), with
        ``_month``; None or empty: there is none. `choice`: the columns of the choice a
        choice_filter looks at (with ``name``). `today`: what ``today()`` is (by default the
        date of the call)."""
        context = _Context(answers, current, earlier or _NOTHING, choice or {}, today)
        value = _eval(self.root, context)
        return " ".join(value) if isinstance(value, list) else value

    def holds(
        self,
        answers: Mapping[str, AnswerValue],
        current: AnswerValue | None = None,
        earlier: Mapping[str, AnswerValue] | None = None,
        *,
        choice: Mapping[str, str] | None = None,
        today: date | None = None,
    ) -> bool:
        """The truth of the expression: what `relevant`, `constraint`, `carry` and
        `choice_filter` use."""
        context = _Context(answers, current, earlier or _NOTHING, choice or {}, today)
        return truthy(_eval(self.root, context))

    def references(self) -> frozenset[str]:
        """The question names used as ``${name}`` (this response's answers)."""
        names: set[str] = set()
        _walk(self.root, names, set())
        return frozenset(names)

    def earlier_references(self) -> frozenset[str]:
        """The names used as ``${last-saved#name}`` (the previous response's answers)."""
        names: set[str] = set()
        _walk(self.root, set(), names)
        return frozenset(names)

    def columns(self) -> frozenset[str]:
        """The choice columns a choice_filter reads (bare words)."""
        found: set[str] = set()
        _nodes(self.root, lambda node: found.add(node.name) if isinstance(node, Column) else None)
        return frozenset(found)

    @property
    def uses_current(self) -> bool:
        """Whether ``.`` (the answer being checked) appears."""
        return _uses_current(self.root)

    def __str__(self) -> str:
        return _unparse(self.root, 0)


def parse_expression(text: str, *, columns: bool = False) -> Expression:
    """`columns`: a choice_filter, where a bare word names a column of the choices."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be text", 0)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    tokens = _tokenize(text)
    root = _Parser(text, tokens, columns).parse()
    return Expression(root, text.strip())


_NOTHING: Mapping[str, AnswerValue] = {}


def text_references(text: str) -> list[tuple[bool, str]]:
    """The references in a label or hint text, as (earlier, name): ``${name}`` is
    (False, name), ``${last-saved#name}`` (True, name)."""
    return [(bool(match.group(1)), match.group(2)) for match in TEXT_REFERENCE_RE.finditer(text)]


def truthy(value: Value | None) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0 and not math.isnan(value)
    return len(value) > 0


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # ref earlier dot number string op lparen rparen comma word end
    text: str
    pos: int
    value: int | float | str = ""


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    if token.kind == "number":
        return f"the number {token.text}"
    if token.kind == "string":
        return f"the text {token.text}"
    if token.kind in ("ref", "earlier"):
        return f"{token.text}"
    return f"'{token.text}'"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c == "$":
            if not text.startswith("${", i):
                raise ExpressionError("'$' must start a reference like ${name}", i)
            end = text.find("}", i + 2)
            if end < 0:
                raise ExpressionError("'${' is not closed with '}'", i)
            name = text[i + 2 : end]
            if not name.strip():
                raise ExpressionError("'${}' needs a question name inside", i)
            if "#" in name:
                prefix, _hash, earlier = name.partition("#")
                if prefix.strip() != LAST_SAVED[:-1]:
                    shown = prefix if len(prefix) <= 40 else prefix[:40] + "…"
                    raise ExpressionError(
                        f"'{shown}#' is not known in ${{...}}: only ${{last-saved#name}} "
                        "(the answer in the previous wave) is",
                        i + 2,
                    )
                if not (NAME_RE.fullmatch(earlier) or earlier in EARLIER_FIELDS):
                    shown = earlier if len(earlier) <= 40 else earlier[:40] + "…"
                    raise ExpressionError(
                        f"'{shown}' is not a valid question name in ${{last-saved#...}} "
                        "(a letter, then letters, digits or _, at most 32; or _month)",
                        i + 2 + len(LAST_SAVED),
                    )
                tokens.append(_Token("earlier", text[i : end + 1], i, earlier))
                i = end + 1
                continue
            if not NAME_RE.fullmatch(name):
                shown = name if len(name) <= 40 else name[:40] + "…"
                raise ExpressionError(
                    f"'{shown}' is not a valid question name in ${{...}} "
                    "(a letter, then letters, digits or _, at most 32)",
                    i + 2,
                )
            tokens.append(_Token("ref", text[i : end + 1], i, name))
            i = end + 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        starts_number = c.isascii() and c.isdigit()
        starts_number |= c == "." and nxt.isascii() and nxt.isdigit()
        after_dot = text[i + 2 : i + 3]
        starts_number |= c == "-" and (
            (nxt.isascii() and nxt.isdigit())
            or (nxt == "." and after_dot.isascii() and after_dot.isdigit())
        )
        if starts_number:
            match = _NUMBER_RE.match(text, i)
            assert match is not None
            end = match.end()
            if end < n and (text[end].isalnum() or text[end] in "._$"):
                raise ExpressionError(f"'{text[i : end + 1]}' is not a number", i)
            literal = match.group()
            if len(literal) > MAX_NUMBER_LENGTH:
                raise ExpressionError(
                    f"the number is longer than {MAX_NUMBER_LENGTH} characters", i
                )
            value: int | float = float(literal) if "." in literal else int(literal)
            tokens.append(_Token("number", literal, i, value))
            i = end
            continue
        if c == ".":
            tokens.append(_Token("dot", c, i))
            i += 1
            continue
        if c in "'\"":
            end = text.find(c, i + 1)
            if end < 0:
                raise ExpressionError(f"the text starting with {c} is not closed", i)
            tokens.append(_Token("string", text[i : end + 1], i, text[i + 1 : end]))
            i = end + 1
            continue
        if c in _CURLY_QUOTES:
            raise ExpressionError(f"{c} is a curly quote: use a straight ' or \"", i)
        if c in "=!<>":
            two = text[i : i + 2]
            if two == "==":
                raise ExpressionError("use = to compare, not ==", i)
            if two in ("!=", "<=", ">="):
                tokens.append(_Token("op", two, i))
                i += 2
                continue
            if c == "!":
                raise ExpressionError("unexpected '!': write != or not(...)", i)
            tokens.append(_Token("op", c, i))
            i += 1
            continue
        if c == "(":
            tokens.append(_Token("lparen", c, i))
            i += 1
            continue
        if c == ")":
            tokens.append(_Token("rparen", c, i))
            i += 1
            continue
        if c == ",":
            tokens.append(_Token("comma", c, i))
            i += 1
            continue
        word = _WORD_RE.match(text, i)
        if word is not None:
            tokens.append(_Token("word", word.group(), i))
            i = word.end()
            continue
        if c == "-":
            raise ExpressionError("unexpected '-': arithmetic is not supported", i)
        if c in "+*/|[]@":
            raise ExpressionError(f"unexpected '{c}': arithmetic and paths are not supported", i)
        raise ExpressionError(f"unexpected character {c!r}", i)
    tokens.append(_Token("end", "", n))
    return tokens


# --- parser -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, tokens: list[_Token], columns: bool = False) -> None:
        self.text = text
        self.tokens = tokens
        self.columns = columns
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text == word

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExpressionError("the expression is empty", 0)
        node = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            if token.kind == "rparen":
                raise ExpressionError("')' has no matching '('", token.pos)
            if token.kind == "word" and token.text.lower() in ("and", "or"):
                raise ExpressionError(
                    f"'{token.text}' must be written in lowercase: {token.text.lower()}",
                    token.pos,
                )
            raise ExpressionError(
                f"expected 'and', 'or' or the end, found {_describe(token)}", token.pos
            )
        return node

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", token.pos
            )

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_word("or"):
            self.advance()
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for item in items:
            flat.extend(item.items if isinstance(item, Or) else (item,))
        return Or(tuple(flat))

    def parse_and(self) -> Node:
        items = [self.parse_comparison()]
        while self.is_word("and"):
            self.advance()
            items.append(self.parse_comparison())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for item in items:
            flat.extend(item.items if isinstance(item, And) else (item,))
        return And(tuple(flat))

    def parse_comparison(self) -> Node:
        left = self.parse_primary()
        token = self.peek()
        if token.kind != "op":
            return left
        self.advance()
        right = self.parse_primary()
        again = self.peek()
        if again.kind == "op":
            raise ExpressionError("comparisons do not chain: write a < b and b < c", again.pos)
        return Compare(token.text, left, right)

    def expect_rparen(self, opening: _Token) -> None:
        token = self.peek()
        if token.kind != "rparen":
            raise ExpressionError(
                f"expected ')' to close the '(' at character {opening.pos + 1}, "
                f"found {_describe(token)}",
                token.pos,
            )
        self.advance()

    def parse_primary(self) -> Node:
        token = self.advance()
        kind = token.kind
        if kind == "number":
            assert not isinstance(token.value, str)
            return Literal(token.value, token.text)
        if kind == "string":
            return Literal(token.value, token.text)
        if kind == "ref":
            assert isinstance(token.value, str)
            return Ref(token.value)
        if kind == "earlier":
            assert isinstance(token.value, str)
            return LastSaved(token.value)
        if kind == "dot":
            return Current()
        if kind == "lparen":
            self.enter(token)
            node = self.parse_or()
            self.expect_rparen(token)
            self.depth -= 1
            return node
        if kind == "word":
            return self.parse_word(token)
        if kind == "end":
            raise ExpressionError("the expression ends too early: a value is missing", token.pos)
        if kind == "rparen":
            raise ExpressionError("unexpected ')': a value is missing", token.pos)
        raise ExpressionError(f"expected a value, found {_describe(token)}", token.pos)

    def parse_word(self, token: _Token) -> Node:
        word = token.text
        if word in ("and", "or"):
            raise ExpressionError(f"expected a value before '{word}'", token.pos)
        if word not in KEYWORDS:
            if word.lower() in KEYWORDS:
                raise ExpressionError(
                    f"'{word}' must be written in lowercase: {word.lower()}", token.pos
                )
            if self.peek().kind == "lparen":
                known = ", ".join(["not", *FUNCTIONS])
                raise ExpressionError(f"unknown function '{word}' (known: {known})", token.pos)
            if self.columns and NAME_RE.fullmatch(word):
                return Column(word)
            raise ExpressionError(
                f"unexpected word '{word}': refer to a question as ${{name}}, "
                "and put text in quotes",
                token.pos,
            )
        opening = self.peek()
        if opening.kind != "lparen":
            raise ExpressionError(f"'{word}' needs parentheses: {word}(...)", opening.pos)
        self.advance()
        self.enter(opening)
        if word == "not":
            operand = self.parse_or()
            self.expect_rparen(opening)
            self.depth -= 1
            return Not(operand)
        args: list[Node] = []
        if self.peek().kind != "rparen":
            args.append(self.parse_or())
            while self.peek().kind == "comma":
                self.advance()
                args.append(self.parse_or())
        self.expect_rparen(opening)
        self.depth -= 1
        fewest, most = FUNCTIONS[word]
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = str(fewest) if fewest == most else f"at least {fewest}"
            plural = "argument" if fewest == 1 else "arguments"
            raise ExpressionError(f"{word}() takes {wanted} {plural}, not {len(args)}", token.pos)
        if word == "regex":
            _check_pattern(args[1], opening.pos)
        return Call(word, tuple(args))


def _repeats_a_choice(pattern: str) -> bool:
    """Whether a group that repeats (``)*``, ``)+``, ``){2,}``) holds a repetition or an
    alternative inside: ``(a+)+``, ``(a|aa)*``, ``((a*)b)+``. Such a group can match the same
    text in exponentially many ways, and a failing match tries them all."""
    stack: list[bool] = []  # per open group: something inside repeats or alternates
    risky = False  # the group just closed
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            risky = False
            continue
        if c == "[":  # a character class: skip to its end
            end = i + 1
            if pattern[end : end + 1] == "^":
                end += 1
            if pattern[end : end + 1] == "]":
                end += 1
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            i = end + 1
            risky = False
            continue
        if c == "(":
            stack.append(False)
            if pattern.startswith("(?", i):  # (?:  (?=  (?P<name>: not a quantifier
                i += 2
                continue
        elif c == ")":
            risky = stack.pop() if stack else False
            if stack and risky:
                stack[-1] = True
            i += 1
            continue
        elif c in "*+{?|":
            if c in "*+{" and risky:
                return True
            if stack and c != "?":
                stack[-1] = True
        risky = False
        i += 1
    return False


def _check_pattern(node: Node, position: int) -> None:
    """A regex() pattern must be a text in quotes that Python's re compiles, and must not be
    able to backtrack for ages."""
    if not isinstance(node, Literal) or not isinstance(node.value, str):
        raise ExpressionError("regex(): the pattern must be a text in quotes", position)
    pattern = node.value
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ExpressionError(
            f"regex(): the pattern is longer than {MAX_PATTERN_LENGTH} characters", position
        )
    if _repeats_a_choice(pattern) or _BACKREFERENCE_RE.search(pattern):
        raise ExpressionError(
            "regex(): a repeated group that repeats inside, or a back-reference, can take "
            "ages to match; write the pattern without it",
            position,
        )
    try:
        re.compile(pattern)
    except re.error as error:
        raise ExpressionError(f"regex(): the pattern is not valid: {error}", position) from None


# --- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    answers: Mapping[str, AnswerValue]
    current: AnswerValue | None
    earlier: Mapping[str, AnswerValue]
    choice: Mapping[str, str]
    today: date | None


def _eval(node: Node, context: _Context) -> Value:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        value = context.answers.get(node.name)
        return "" if value is None else value
    if isinstance(node, LastSaved):
        value = context.earlier.get(node.name)
        return "" if value is None else value
    if isinstance(node, Current):
        return "" if context.current is None else context.current
    if isinstance(node, Column):
        return context.choice.get(node.name, "")
    if isinstance(node, Compare):
        left = _eval(node.left, context)
        right = _eval(node.right, context)
        return _compare(node.op, left, right)
    if isinstance(node, And):
        return all(truthy(_eval(item, context)) for item in node.items)
    if isinstance(node, Or):
        return any(truthy(_eval(item, context)) for item in node.items)
    if isinstance(node, Not):
        return not truthy(_eval(node.operand, context))
    if node.name == "if":  # only the branch taken is evaluated
        condition = truthy(_eval(node.args[0], context))
        return _eval(node.args[1] if condition else node.args[2], context)
    if node.name == "today":
        return (context.today or date.today()).isoformat()
    args = [_eval(arg, context) for arg in node.args]
    if node.name == "selected":
        return _selected(args[0], args[1])
    if node.name == "count-selected":
        return _count_selected(args[0])
    if node.name == "concat":
        return "".join(to_text(arg) for arg in args)
    if node.name == "regex":
        return re.search(to_text(args[1]), to_text(args[0])) is not None
    return len(to_text(args[0]))


def _flat(value: Value) -> bool | int | float | str:
    """A select_multiple answer compares as its codes joined by spaces (as in ODK)."""
    return " ".join(value) if isinstance(value, list) else value


def number_of(value: Value) -> int | float | None:
    """A number, or a string written as an ASCII decimal number; otherwise None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and len(value) <= MAX_NUMBER_LENGTH:
        text = value.strip()
        if _NUMERIC_TEXT_RE.fullmatch(text):
            return float(text) if "." in text else int(text)
    return None


def to_text(value: Value) -> str:
    if isinstance(value, list):
        return " ".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def _equal(left: Value, right: Value) -> bool:
    a, b = _flat(left), _flat(right)
    if isinstance(a, bool) or isinstance(b, bool):
        return truthy(a) == truthy(b)
    if isinstance(a, int | float) or isinstance(b, int | float):
        na, nb = number_of(a), number_of(b)
        return na is not None and nb is not None and na == nb
    return a == b


def _compare(op: str, left: Value, right: Value) -> bool:
    if op == "=":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    a, b = _flat(left), _flat(right)
    if a == "" or b == "":
        return False
    na, nb = number_of(a), number_of(b)
    if na is not None and nb is not None:
        return bool(_ORDER[op](na, nb))
    if isinstance(a, str) and isinstance(b, str):
        return bool(_ORDER[op](a, b))
    return False  # a number against text that is not a number


def _selected(value: Value, code: Value) -> bool:
    wanted = to_text(code)
    if isinstance(value, list):
        return wanted in value
    if value == "":
        return False
    return _equal(value, wanted)


def _count_selected(value: Value) -> int:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, str):
        return len(value.split())
    return 1  # a single number


def _walk(node: Node, names: set[str], earlier: set[str]) -> None:
    if isinstance(node, Ref):
        names.add(node.name)
    elif isinstance(node, LastSaved):
        earlier.add(node.name)
    elif isinstance(node, Compare):
        _walk(node.left, names, earlier)
        _walk(node.right, names, earlier)
    elif isinstance(node, And | Or):
        for item in node.items:
            _walk(item, names, earlier)
    elif isinstance(node, Not):
        _walk(node.operand, names, earlier)
    elif isinstance(node, Call):
        for arg in node.args:
            _walk(arg, names, earlier)


def _nodes(node: Node, visit: Callable[[Node], None]) -> None:
    """Call `visit` on `node` and every node under it."""
    visit(node)
    if isinstance(node, Compare):
        _nodes(node.left, visit)
        _nodes(node.right, visit)
    elif isinstance(node, And | Or):
        for item in node.items:
            _nodes(item, visit)
    elif isinstance(node, Not):
        _nodes(node.operand, visit)
    elif isinstance(node, Call):
        for arg in node.args:
            _nodes(arg, visit)


def _uses_current(node: Node) -> bool:
    if isinstance(node, Current):
        return True
    if isinstance(node, Compare):
        return _uses_current(node.left) or _uses_current(node.right)
    if isinstance(node, And | Or):
        return any(_uses_current(item) for item in node.items)
    if isinstance(node, Not):
        return _uses_current(node.operand)
    if isinstance(node, Call):
        return any(_uses_current(arg) for arg in node.args)
    return False


# --- canonical text -----------------------------------------------------------------------

_PRECEDENCE_OR, _PRECEDENCE_AND, _PRECEDENCE_COMPARE = 1, 2, 3


def _unparse(node: Node, context: int) -> str:
    """Source text for `node`, parenthesised when it binds looser than its `context`."""
    if isinstance(node, Literal):
        if isinstance(node.value, str):
            quote = '"' if "'" in node.value else "'"
            return f"{quote}{node.value}{quote}"
        return node.text or to_text(node.value)
    if isinstance(node, Ref):
        return f"${{{node.name}}}"
    if isinstance(node, LastSaved):
        return f"${{{LAST_SAVED}{node.name}}}"
    if isinstance(node, Current):
        return "."
    if isinstance(node, Column):
        return node.name
    if isinstance(node, Not):
        return f"not({_unparse(node.operand, 0)})"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_unparse(arg, 0) for arg in node.args)})"
    if isinstance(node, Compare):
        text = (
            f"{_unparse(node.left, _PRECEDENCE_COMPARE + 1)} {node.op} "
            f"{_unparse(node.right, _PRECEDENCE_COMPARE + 1)}"
        )
        precedence = _PRECEDENCE_COMPARE
    elif isinstance(node, And):
        text = " and ".join(_unparse(item, _PRECEDENCE_AND + 1) for item in node.items)
        precedence = _PRECEDENCE_AND
    else:
        text = " or ".join(_unparse(item, _PRECEDENCE_OR + 1) for item in node.items)
        precedence = _PRECEDENCE_OR
    return f"({text})" if precedence < context else text
