"""Questionnaires: the model, and the loader that validates a YAML questionnaire file.

The format is described in docs/questionnaire-format.md. Plain Python over plain data: no
Telegram, no database. :func:`parse_questionnaire` reports every problem it finds, each with its
file and line, in one :class:`QuestionnaireError`.

Equality ignores where things came from (``source`` and ``line`` fields) and how expressions
were spaced, so ``parse_questionnaire(to_yaml(q)) == q`` holds (see conversations/xlsform.py).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from babel import Locale

from conversations.expressions import (
    EARLIER_FIELDS,
    LAST_SAVED,
    NAME_RE,
    Expression,
    ExpressionError,
    parse_expression,
    text_references,
)
from conversations.rules import LANGUAGES

SUPPORTED_LANGUAGES: tuple[str, ...] = LANGUAGES
FORM_ID_RE = re.compile(r"[a-z0-9_]{1,24}")
CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
VERSION_RE = re.compile(r"\S{1,32}")
MAX_LABEL_LENGTH = 3500
MAX_CHOICE_LABEL_LENGTH = 100
MAX_BUTTON_DATA_BYTES = 64
#: Telegram's most buttons under one message.
MAX_BUTTONS = 100
#: A longer choice list is shown a page at a time (with Earlier and More buttons): a long
#: keyboard is hard to read on a phone, and Telegram shows at most MAX_BUTTONS.
PAGE_CHOICES = 40
#: The most choices one question offers (in pages): past that, typing is quicker.
MAX_CHOICES = 500
DEFAULT_SCALE = (1, 5)
#: A scale's most buttons: 0 to 10 (eleven) is the widest rating forms ask (an XLSForm
#: `range`), and fits two rows of Telegram's at most 8 buttons.
MAX_SCALE_BUTTONS = 11
MAX_COLUMNS = 4
MAX_YAML_DEPTH = 50
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")  # all but tab, line feed, CR


def button_data(question: str, code: str, session: str = "zzzzzzzz") -> str:
    """The callback data of an answer button, as the chat layer builds it (sized by the loader)."""
    return f"sv:{session}:{question}:{code}"


class QuestionType(StrEnum):
    SELECT_ONE = "select_one"
    SELECT_MULTIPLE = "select_multiple"
    INTEGER = "integer"
    DECIMAL = "decimal"
    TEXT = "text"
    DATE = "date"
    MONTH = "month"
    SCALE = "scale"
    NOTE = "note"


BEGIN_GROUP = "begin_group"
END_GROUP = "end_group"
#: A hidden value computed from earlier answers (XLSForm's ``calculate`` row).
CALCULATE = "calculate"
#: The choice ``or_other`` adds to a select's list, and the text question it adds after it
#: (``<name>_other``), as ODK (pyxform) does; their texts in every supported language.
OTHER_CODE = "other"
OTHER_SUFFIX = "_other"
OR_OTHER = "or_other"
OTHER_LABELS: Mapping[str, str] = {
    "en": "Other",
    "nl": "Anders",
    "es": "Otro",
    "et": "Muu",
    "it": "Altro",
}
SPECIFY_OTHER_LABELS: Mapping[str, str] = {
    "en": "Specify other.",
    "nl": "Welke andere?",
    "es": "Especifique otro.",
    "et": "Täpsustage muu.",
    "it": "Specificare altro.",
}
SELECT_TYPES = frozenset({QuestionType.SELECT_ONE, QuestionType.SELECT_MULTIPLE})
TYPED_TYPES = frozenset(
    {QuestionType.INTEGER, QuestionType.DECIMAL, QuestionType.TEXT, QuestionType.DATE}
    | {QuestionType.MONTH}
)

ROW_KEYS = (
    "type",
    "name",
    "label",
    "hint",
    "required",
    "relevant",
    "constraint",
    "constraint_message",
    "parameters",
    "core",
    "carry",
    "choice_filter",
    "calculation",
)
_KEYS_BY_KIND: dict[str, frozenset[str]] = {
    "question": frozenset(ROW_KEYS) - {"calculation"},
    CALCULATE: frozenset({"type", "name", "calculation", "relevant"}),
    "note": frozenset({"type", "name", "label", "hint", "relevant"}),
    BEGIN_GROUP: frozenset({"type", "name", "label", "relevant"}),
    END_GROUP: frozenset({"type", "name"}),
    "invalid": frozenset(ROW_KEYS),  # a row whose type is wrong: checked as far as possible
}
PARAMETERS: dict[str, tuple[str, ...]] = {
    QuestionType.SELECT_ONE: ("columns",),
    QuestionType.SELECT_MULTIPLE: ("columns",),
    QuestionType.SCALE: ("min", "max", "step", "columns"),
    QuestionType.INTEGER: ("min", "max"),
    QuestionType.DECIMAL: ("min", "max"),
}
SETTINGS_KEYS = ("form_id", "version", "default_language", "languages", "title")
TOP_KEYS = ("settings", "survey", "choices")
CHOICE_KEYS = ("name", "label", "countries", "columns")
#: ISO 3166-1 alpha-2 codes: CLDR's territories without the regions it adds (EU, Canary
#: Islands, pseudo-locales ...), which a school's country can never be.
_NOT_ISO_3166 = frozenset(
    ["AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "XK", "ZZ"]
)
COUNTRY_CODES: frozenset[str] = frozenset(
    code
    for code in map(str, Locale("en").territories)
    if len(code) == 2 and code.isalpha() and code not in _NOT_ISO_3166
)


# --- model --------------------------------------------------------------------------------


#: A school's own choice labels: (list name, choice code) -> {language: text}.
ChoiceLabels = Mapping[tuple[str, str], Mapping[str, str]]


@dataclass(frozen=True)
class Choice:
    name: str
    labels: Mapping[str, str] = field(hash=False)
    line: int = field(default=0, compare=False)
    countries: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)
    """Country variants: ISO country code -> {language: text}, for a label that names a
    country or one of its services ("Elsewhere in the Netherlands", "UWV"). A school in that
    country shows its variant; every other school the generic `labels`."""
    columns: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Further columns of the choices sheet (``region: north``), read by a question's
    `choice_filter` (cascading selects)."""

    def filter_values(self) -> dict[str, str]:
        """What a choice_filter sees of this choice: its columns and ``name`` (its code)."""
        return {**self.columns, "name": self.name}

    def label(self, lang: str, country: str | None = None) -> str:
        variant = self.countries.get(country.upper(), {}) if country else {}
        return (
            variant.get(lang)
            or self.labels.get(lang)
            or next(iter(self.labels.values()), self.name)
        )


@dataclass(frozen=True)
class Question:
    """A survey row that is shown to the graduate: a question, or a note (no answer)."""

    name: str
    type: QuestionType
    list_name: str | None
    labels: Mapping[str, str] = field(hash=False)
    hints: Mapping[str, str] = field(hash=False)
    required: bool
    relevant: Expression | None
    group_relevant: tuple[Expression, ...]
    constraint: Expression | None
    constraint_messages: Mapping[str, str] = field(hash=False)
    core: bool
    parameters: Mapping[str, object] = field(hash=False)
    group: tuple[str, ...]
    line: int = field(default=0, compare=False)
    carry: Expression | None = None
    """When it holds (and the previous response has an answer to this question), the question
    is not asked: that earlier answer is this response's answer, marked as carried."""
    choice_filter: Expression | None = None
    """Which choices of the list are offered: those for which it holds (a bare word is a
    column of the choice, ``${name}`` an earlier answer), as XLSForm's choice_filter."""
    or_other: bool = False
    """``select_one LIST or_other``: the list gets the choice ``other``, and the question
    ``<name>_other`` (text) follows when it is chosen."""
    other_of: str | None = None
    """The select question this text question was added for by ``or_other`` (not a row of the
    file: export writes ``or_other`` instead)."""

    @property
    def is_select(self) -> bool:
        return self.type in SELECT_TYPES

    @property
    def is_multiple(self) -> bool:
        return self.type == QuestionType.SELECT_MULTIPLE

    @property
    def is_note(self) -> bool:
        return self.type == QuestionType.NOTE

    @property
    def answerable(self) -> bool:
        return self.type != QuestionType.NOTE

    @property
    def is_typed(self) -> bool:
        """Answered by typing (integer, decimal, text, date, month), not with buttons."""
        return self.type in TYPED_TYPES

    @property
    def type_text(self) -> str:
        """The `type` as written in the file: ``select_one yes_no``, ``integer``…"""
        if not self.list_name:
            return str(self.type)
        return f"{self.type} {self.list_name}" + (f" {OR_OTHER}" if self.or_other else "")

    @property
    def relevance(self) -> tuple[Expression, ...]:
        """Every expression that decides whether the question is asked, outermost first."""
        own = (self.relevant,) if self.relevant is not None else ()
        return self.group_relevant + own

    @property
    def scale_range(self) -> tuple[int, int]:
        """(min, max) of a scale question, defaults 1 and 5."""
        low = self.parameters.get("min", DEFAULT_SCALE[0])
        high = self.parameters.get("max", DEFAULT_SCALE[1])
        assert isinstance(low, int) and isinstance(high, int)
        return low, high

    @property
    def scale_values(self) -> tuple[int, ...]:
        """The points of a scale question: min to max, `step` apart (default 1)."""
        if self.type != QuestionType.SCALE:
            return ()
        low, high = self.scale_range
        step = self.parameters.get("step", 1)
        return tuple(range(low, high + 1, step if isinstance(step, int) and step > 0 else 1))

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        """(min, max) a typed number must keep to (integer and decimal questions), None where
        the file sets none."""
        if self.type not in (QuestionType.INTEGER, QuestionType.DECIMAL):
            return None, None
        low, high = self.parameters.get("min"), self.parameters.get("max")
        return (
            low if isinstance(low, int) else None,
            high if isinstance(high, int) else None,
        )

    @property
    def columns(self) -> int | None:
        """Buttons per row, when the file says so."""
        value = self.parameters.get("columns")
        return value if isinstance(value, int) else None

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or next(iter(self.labels.values()), self.name)

    def hint(self, lang: str) -> str | None:
        return self.hints.get(lang) or None


@dataclass(frozen=True)
class Group:
    name: str
    labels: Mapping[str, str] = field(hash=False)
    relevant: Expression | None
    parents: tuple[str, ...]
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class GroupEnd:
    name: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Calculation:
    """A ``calculate`` row: a hidden value from earlier answers, never shown, never stored.
    Expressions and texts after it read it as ``${name}``; when it (or one of its groups) is
    not relevant, its value is ``''``."""

    name: str
    calculation: Expression
    relevant: Expression | None
    group_relevant: tuple[Expression, ...]
    position: int
    """The index in `Questionnaire.questions` of the first question after it."""
    line: int = field(default=0, compare=False)

    @property
    def relevance(self) -> tuple[Expression, ...]:
        own = (self.relevant,) if self.relevant is not None else ()
        return self.group_relevant + own


Row = Question | Group | GroupEnd | Calculation


@dataclass(frozen=True)
class Questionnaire:
    form_id: str
    version: str
    default_language: str
    languages: tuple[str, ...]
    title: Mapping[str, str] = field(hash=False)
    questions: tuple[Question, ...]
    choices: Mapping[str, tuple[Choice, ...]] = field(hash=False)
    groups: tuple[Group, ...] = ()
    rows: tuple[Row, ...] = ()
    """Every survey row in file order, with groups' begin and end (what export reproduces)."""
    calculations: tuple[Calculation, ...] = ()
    """The calculate rows in file order."""
    source: str = field(default="<string>", compare=False)
    _positions: dict[str, int] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._positions.update((q.name, i) for i, q in enumerate(self.questions))

    def question(self, name: str) -> Question:
        """The question (or note) called `name`; KeyError if there is none."""
        return self.questions[self._positions[name]]

    def index(self, name: str) -> int:
        """Position of the question (or note) `name` in file order; KeyError if there is none."""
        return self._positions[name]

    def __contains__(self, name: object) -> bool:
        return name in self._positions

    def choices_for(self, question: Question) -> tuple[Choice, ...]:
        """The question's whole list (with ``other`` for or_other); engine.choices_offered
        applies the choice_filter."""
        if question.list_name is None:
            return ()
        items = self.choices.get(question.list_name, ())
        if question.or_other:
            labels = {lang: OTHER_LABELS.get(lang, OTHER_LABELS["en"]) for lang in self.languages}
            items = (*items, Choice(OTHER_CODE, labels))
        return items

    def choice(self, question: Question, code: str) -> Choice | None:
        for choice in self.choices_for(question):
            if choice.name == code:
                return choice
        return None

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title.get(self.default_language) or self.form_id

    def for_school(self, country: str | None, own: ChoiceLabels | None = None) -> Questionnaire:
        """The questionnaire as a school's graduates and staff see it: every choice labelled
        in the variant of the school's `country` where it has one, and the school's `own`
        labels (``(list, code) -> {language: text}``) over those. Codes, routing and every
        other text stay as they are; without variants or own labels this is `self`. A
        choice so labelled has no variants left: adapting the result again changes nothing."""
        key = country.strip().upper() if country else ""
        own = own or {}
        lists: dict[str, tuple[Choice, ...]] = {}
        changed = False
        for list_name, items in self.choices.items():
            adapted: list[Choice] = []
            for choice in items:
                variant = choice.countries.get(key, {})
                mine = own.get((list_name, choice.name), {})
                if variant or mine:
                    labels = {**choice.labels, **variant, **mine}
                    # resolved: no variants left
                    adapted.append(Choice(choice.name, labels, choice.line, {}, choice.columns))
                    changed = True
                else:
                    adapted.append(choice)
            lists[list_name] = tuple(adapted)
        return replace(self, choices=lists) if changed else self

    def choice_lists(self) -> dict[str, tuple[str, ...]]:
        """Each choice list's codes, in display order."""
        return {name: tuple(c.name for c in items) for name, items in self.choices.items()}


class ChoiceLabelError(ValueError):
    """A school's own choice label that no questionnaire can show; the message says why."""


def check_choice_label(
    questionnaires: Iterable[Questionnaire],
    target: str,
    lang: str | None,
    text: str | None = None,
) -> tuple[str, str, str | None, str | None]:
    """(list, code, language, text) of a school's own label for the choice `target`
    (``LIST.CODE``, e.g. ``job_search.public_employment_service``) in `lang`, checked against
    the questionnaires' choice lists and languages; `text` None checks only the target and
    the language (`lang` None: only the target), to remove labels. ChoiceLabelError with a
    clear message otherwise."""
    forms = list(questionnaires)
    list_name, dot, code = target.strip().partition(".")
    if not dot or not list_name or not code:
        raise ChoiceLabelError(
            f"choice {target!r}: write it as LIST.CODE, e.g. job_search.public_employment_service"
        )
    having = [q for q in forms if list_name in q.choices]
    if not having:
        lists = sorted({name for q in forms for name in q.choices})
        raise ChoiceLabelError(
            f"no questionnaire has a choice list {list_name!r}"
            + (_suggest(list_name, lists) or f" (lists: {', '.join(lists)})")
        )
    codes = list(dict.fromkeys(c.name for q in having for c in q.choices[list_name]))
    if code not in codes:
        raise ChoiceLabelError(
            f"choice list {list_name} has no choice {code!r}"
            + (_suggest(code, codes) or f" (choices: {', '.join(codes)})")
        )
    if lang is None:
        return list_name, code, None, None
    lang = lang.strip().lower()
    languages = list(dict.fromkeys(x for q in having for x in q.languages))
    if lang not in languages:
        raise ChoiceLabelError(
            f"language {lang!r}: the questionnaires are in {', '.join(languages)}"
        )
    if text is None:
        return list_name, code, lang, None
    label = " ".join(text.split())
    if not label:
        raise ChoiceLabelError("the label is empty")
    if _CONTROL_RE.search(label):
        raise ChoiceLabelError("the label holds a control character; remove it")
    if len(label) > MAX_CHOICE_LABEL_LENGTH:
        raise ChoiceLabelError(
            f"the label is {len(label)} characters, at most {MAX_CHOICE_LABEL_LENGTH} "
            "(it is a phone button: keep it short)"
        )
    return list_name, code, lang, label


# --- problems -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    """1-based line (or spreadsheet row); 0 when the problem is about the whole file."""
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.source}:{self.line}: {self.message}"
        return f"{self.source}: {self.message}"


class QuestionnaireError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


# --- YAML with line numbers ---------------------------------------------------------------


class _LineDict(dict[Any, Any]):
    line: int = 0
    key_lines: dict[Any, int]


class _LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences remember their lines (1-based)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str, int]] = []
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # PyYAML composes nested nodes recursively: thousands of levels of [ or - would end
        # in a RecursionError. No questionnaire nests more than a few levels.
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"the file nests more than {MAX_YAML_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_LineDict]:
    data = _LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                loader.duplicates.append((line, key_node.value, seen[key_node.value]))
            seen.setdefault(key_node.value, line)
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found a key that is not a plain value",
                key_node.start_mark,
            )
        data[key] = loader.construct_object(value_node)
        data.key_lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[_LineList]:
    data = _LineList()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_object(item) for item in node.value)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


# --- loading ------------------------------------------------------------------------------


def load_questionnaire(
    path: str | Path, *, supported_languages: Iterable[str] = SUPPORTED_LANGUAGES
) -> Questionnaire:
    """Read and validate a questionnaire YAML file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise QuestionnaireError([Problem(source, 0, f"cannot read the file: {error}")]) from None
    return parse_questionnaire(text, source, supported_languages=supported_languages)


def parse_questionnaire(
    text: str,
    source: str = "<string>",
    *,
    supported_languages: Iterable[str] = SUPPORTED_LANGUAGES,
) -> Questionnaire:
    """Validate questionnaire YAML; raise QuestionnaireError listing every problem found."""
    return _parse(text, source, tuple(supported_languages), _line_words)


def _parse(
    text: str, source: str, supported: tuple[str, ...], where: Callable[[int], str]
) -> Questionnaire:
    """`where(line)` words a reference to another line in a message ("line 12")."""
    return _Builder(source, supported, where).build(text)


def _line_words(line: int) -> str:
    return f"line {line}"


def _suggest(word: str, options: Iterable[str]) -> str:
    """ "; did you mean 'label'?" when an option is close to `word` (ignoring case first)."""
    choices = [str(option) for option in options]
    same = [option for option in choices if option.lower() == word.lower()]
    close = same or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _show(value: object) -> str:
    """A short repr of a scalar; lists and mappings are only named (YAML aliases can make
    them astronomically large)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _plain(value: object) -> str:
    """A scalar as the file would show it once quoted (for "put it in quotes" hints)."""
    if isinstance(value, list | dict):
        return "…"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text if len(text) <= 60 else text[:60] + "…"


@dataclass
class _Row:
    kind: str  # "question", "note", BEGIN_GROUP, END_GROUP
    line: int
    data: _LineDict
    name: str | None = None
    type: QuestionType | None = None
    list_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    required: bool = True
    core: bool = False
    relevant: Expression | None = None
    constraint: Expression | None = None
    constraint_messages: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, object] = field(default_factory=dict)
    carry: Expression | None = None
    choice_filter: Expression | None = None
    calculation: Expression | None = None
    or_other: bool = False

    def key_line(self, key: str) -> int:
        return self.data.key_lines.get(key, self.line)


class _Builder:
    def __init__(
        self, source: str, supported: tuple[str, ...], where: Callable[[int], str]
    ) -> None:
        self.source = source
        self.supported = supported
        self.where = where  # how a message refers to another line ("line 12", "survey row 5")
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] | None = None

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.source, line, message))

    # -- the whole file --

    def build(self, text: str) -> Questionnaire:
        data = self.load_yaml(text)
        if data is None:
            raise QuestionnaireError(self.problems)
        for key in data:
            if key not in TOP_KEYS:
                self.problem(
                    data.key_lines.get(key, 1),
                    f"unknown top-level key {_show(key)} (known: {', '.join(TOP_KEYS)})"
                    + _suggest(str(key), TOP_KEYS),
                )
        settings = self.settings(data)
        rows = self.survey(data)
        choices = self.choices(data)
        questions, groups = self.check_rows(rows, choices)
        calculations: list[Calculation] = []
        shown: list[Question] = []
        for item in questions:
            if isinstance(item, Question):
                shown.append(item)
            elif isinstance(item, Calculation):
                calculations.append(replace(item, position=len(shown)))
        if self.problems:
            self.problems.sort(key=lambda p: p.line)
            raise QuestionnaireError(self.problems)
        assert settings is not None and self.languages is not None
        return Questionnaire(
            form_id=settings["form_id"],
            version=settings["version"],
            default_language=settings["default_language"],
            languages=self.languages,
            title=settings["title"],
            questions=tuple(shown),
            choices={name: items for name, (items, _) in choices.items()},
            groups=groups,
            rows=tuple(
                replace(item, position=0) if isinstance(item, Calculation) else item
                for item in questions
                if not (isinstance(item, Question) and item.other_of)
            ),
            calculations=tuple(calculations),
            source=self.source,
        )

    def load_yaml(self, text: str) -> _LineDict | None:
        try:
            loader = _LineLoader(text)
        except yaml.reader.ReaderError as error:  # checked before anything is parsed
            self.problem(
                text.count("\n", 0, error.position) + 1,
                f"the character U+{error.character:04X} is not allowed in YAML; remove it",
            )
            return None
        try:
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else 0
            what = error.problem or error.context or "unreadable"
            if error.context and error.problem:
                what = f"{error.problem} ({error.context})"
            if "flow" in (error.context or ""):
                what += "; inside { } or [ ], put texts with , : ? # in quotes"
            self.problem(line, f"YAML syntax error: {what}")
            return None
        except yaml.YAMLError as error:
            self.problem(0, f"YAML syntax error: {error}")
            return None
        finally:
            loader.dispose()
        for line, key, first in loader.duplicates:
            self.problem(line, f"the key {_show(key)} appears twice (also on {self.where(first)})")
        if data is None:
            self.problem(1, "the file is empty")
            return None
        if not isinstance(data, _LineDict):
            self.problem(1, "the file must be a mapping with settings, survey and choices")
            return None
        return data

    # -- texts in every language --

    def texts(self, value: object, line: int, what: str, limit: int) -> dict[str, str]:
        if not isinstance(value, dict):
            self.problem(line, f"{what} must give one text per language, like {{en: ..., nl: ...}}")
            return {}
        key_lines = value.key_lines if isinstance(value, _LineDict) else {}
        result: dict[str, str] = {}
        for lang, text in value.items():
            at = key_lines.get(lang, line)
            if self.languages is not None and lang not in self.languages:
                self.problem(at, f"{what} has a text in {_show(lang)}, not a declared language")
                continue
            if not isinstance(text, str):
                self.problem(
                    at,
                    f'{what} in {lang} must be text; put it in quotes: {lang}: "{_plain(text)}"',
                )
                continue
            if not text.strip():
                self.problem(at, f"{what} in {lang} is empty")
                continue
            control = _CONTROL_RE.search(text)
            if control:  # never meant, and a spreadsheet cannot hold them (export failed)
                self.problem(
                    at,
                    f"{what} in {lang} holds the control character "
                    f"U+{ord(control.group()):04X}; remove it",
                )
            if len(text) > limit:
                self.problem(at, f"{what} in {lang} is {len(text)} characters, at most {limit}")
            result[str(lang)] = text
        if self.languages is not None:
            missing = [lang for lang in self.languages if lang not in value]
            if missing:
                self.problem(line, f"{what} is missing in {', '.join(missing)}")
            return {lang: result[lang] for lang in self.languages if lang in result}
        return result

    # -- settings --

    def settings(self, data: _LineDict) -> dict[str, Any] | None:
        if "settings" not in data:
            self.problem(1, "settings is missing (form_id, version, default_language, ...)")
            return None
        settings = data["settings"]
        settings_line = data.key_lines["settings"]
        if not isinstance(settings, _LineDict):
            self.problem(settings_line, "settings must be a mapping")
            return None

        def line_of(key: str) -> int:
            return settings.key_lines.get(key, settings.line)

        for key in settings:
            if key not in SETTINGS_KEYS:
                self.problem(
                    line_of(key),
                    f"settings: unknown key {_show(key)} (known: {', '.join(SETTINGS_KEYS)})"
                    + _suggest(str(key), SETTINGS_KEYS),
                )
        result: dict[str, Any] = {}
        ok = True
        for key in SETTINGS_KEYS:
            if key not in settings:
                self.problem(settings_line, f"settings: {key} is missing")
                ok = False

        form_id = settings.get("form_id")
        if "form_id" in settings and not (
            isinstance(form_id, str) and FORM_ID_RE.fullmatch(form_id)
        ):
            self.problem(
                line_of("form_id"),
                f"settings: form_id must be 1 to 24 of a-z, 0-9 and _, not {_show(form_id)}",
            )
            ok = False
        result["form_id"] = form_id

        version = settings.get("version")
        if "version" in settings:
            if isinstance(version, bool) or not isinstance(version, str):
                self.problem(
                    line_of("version"),
                    f'settings: version must be text in quotes, like version: "{_plain(version)}" '
                    "(YAML reads an unquoted 1.10 as the number 1.1)",
                )
                ok = False
            elif not VERSION_RE.fullmatch(version):
                self.problem(
                    line_of("version"),
                    "settings: version must be 1 to 32 characters without spaces",
                )
                ok = False
        result["version"] = version

        languages = settings.get("languages")
        if "languages" in settings:
            declared = self.check_languages(languages, line_of("languages"))
            if declared is None:
                ok = False
            else:
                self.languages = declared

        default = settings.get("default_language")
        if "default_language" in settings and (
            not isinstance(default, str)
            or (self.languages is not None and default not in self.languages)
        ):
            self.problem(
                line_of("default_language"),
                f"settings: default_language {_show(default)} is not one of the languages",
            )
            ok = False
        result["default_language"] = default

        if "title" in settings:
            result["title"] = self.texts(settings["title"], line_of("title"), "title", 200)
        return result if ok else None

    def check_languages(self, value: object, line: int) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.problem(line, "settings: languages must be a list of language codes, like [en]")
            return None
        ok = True
        seen: list[str] = []
        for lang in value:
            if not isinstance(lang, str) or lang not in self.supported:
                self.problem(
                    line,
                    f"settings: language {_show(lang)} is not supported "
                    f"(supported: {', '.join(self.supported)})",
                )
                ok = False
            elif lang in seen:
                self.problem(line, f"settings: language {lang} is listed twice")
                ok = False
            else:
                seen.append(lang)
        return tuple(seen) if ok else None

    # -- survey rows --

    def survey(self, data: _LineDict) -> list[_Row]:
        if "survey" not in data:
            self.problem(1, "survey is missing")
            return []
        survey = data["survey"]
        line = data.key_lines["survey"]
        if not isinstance(survey, _LineList) or not survey:
            self.problem(line, "survey must be a list of rows (type, name, label, ...)")
            return []
        rows: list[_Row] = []
        for item, item_line in zip(survey, survey.item_lines, strict=True):
            if not isinstance(item, _LineDict):
                self.problem(item_line, "a survey row must be a mapping (type: ..., name: ...)")
                continue
            rows.append(self.row(item))
        return rows

    def row(self, data: _LineDict) -> _Row:
        line = data.line

        def at(key: str) -> int:
            return data.key_lines.get(key, line)

        for key in data:
            if key not in ROW_KEYS:
                self.problem(
                    at(key),
                    f"unknown key {_show(key)} (known: {', '.join(ROW_KEYS)})"
                    + _suggest(str(key), ROW_KEYS),
                )
        kind, qtype, list_name = self.row_type(data)
        row = _Row(kind or "invalid", line, data, type=qtype, list_name=list_name)
        allowed = _KEYS_BY_KIND[row.kind]
        type_name = {
            "note": "a note",
            CALCULATE: "a calculate row",
            BEGIN_GROUP: "a begin_group row",
            END_GROUP: "an end_group row",
        }.get(row.kind, f"a {qtype} question")
        for key in data:
            if key in ROW_KEYS and key not in allowed:
                self.problem(at(key), f"{key} is not allowed on {type_name}")

        name = data.get("name")
        if "name" not in data:
            if kind != END_GROUP:
                self.problem(line, "the row has no name")
        elif not isinstance(name, str) or not NAME_RE.fullmatch(name):
            self.problem(
                at("name"),
                "name must be a letter, then letters, digits or _ (at most 32 characters), "
                f"not {_show(name)}",
            )
        else:
            row.name = name

        what = f"{row.name or 'row'}"
        if "label" in data and "label" in allowed:
            row.labels = self.texts(data["label"], at("label"), "label", MAX_LABEL_LENGTH)
        elif row.kind in ("question", "note", "invalid"):
            self.problem(line, f"{what} has no label")
        if "hint" in data and "hint" in allowed:
            row.hints = self.texts(data["hint"], at("hint"), "hint", MAX_LABEL_LENGTH)
        for lang, hint in row.hints.items():
            total = len(row.labels.get(lang, "")) + 2 + len(hint)
            if total > MAX_LABEL_LENGTH:
                self.problem(
                    at("hint"),
                    f"label and hint in {lang} are {total} characters together, "
                    f"at most {MAX_LABEL_LENGTH}",
                )
        if kind == "question":
            row.required = self.flag(data, "required", True, at)
            row.core = self.flag(data, "core", False, at)
            if row.core and not row.required:
                self.problem(
                    at("core"),
                    "a core question must be required: skipping it would leave every "
                    "response partial",
                )
        else:
            row.required = False
        if "relevant" in data and "relevant" in allowed:
            row.relevant = self.expression(data["relevant"], at("relevant"), "relevant")
        if "constraint" in data and "constraint" in allowed:
            row.constraint = self.expression(data["constraint"], at("constraint"), "constraint")
        if "carry" in data and "carry" in allowed:
            row.carry = self.expression(data["carry"], at("carry"), "carry")
        if "calculation" in data and "calculation" in allowed:
            row.calculation = self.expression(data["calculation"], at("calculation"), "calculation")
        elif row.kind == CALCULATE:
            self.problem(line, f"calculate row {what} has no calculation")
        if "choice_filter" in data and "choice_filter" in allowed:
            if qtype not in SELECT_TYPES:
                self.problem(
                    at("choice_filter"),
                    "choice_filter is only for select_one and select_multiple questions",
                )
            else:
                row.choice_filter = self.expression(
                    data["choice_filter"], at("choice_filter"), "choice_filter", columns=True
                )
        if isinstance(data.get("type"), str) and data["type"].split()[-1:] == [OR_OTHER]:
            row.or_other = qtype in SELECT_TYPES
        if "constraint_message" in data and "constraint_message" in allowed:
            row.constraint_messages = self.texts(
                data["constraint_message"],
                at("constraint_message"),
                "constraint_message",
                MAX_LABEL_LENGTH,
            )
            if "constraint" not in data:
                self.problem(at("constraint_message"), "constraint_message without a constraint")
        if "parameters" in data and "parameters" in allowed and qtype is not None:
            row.parameters = self.parameters(data["parameters"], at("parameters"), qtype)
        low, high = row.parameters.get("min"), row.parameters.get("max")
        if (
            qtype != QuestionType.SCALE
            and isinstance(low, int)
            and isinstance(high, int)
            and low > high
        ):
            self.problem(at("parameters"), f"parameter min {low} is above max {high}")
        if qtype == QuestionType.SCALE:
            low = row.parameters.get("min", DEFAULT_SCALE[0])
            high = row.parameters.get("max", DEFAULT_SCALE[1])
            step = row.parameters.get("step", 1)
            if isinstance(step, int) and step < 1:
                self.problem(at("parameters"), f"parameter step must be 1 or more, not {step}")
            elif isinstance(low, int) and isinstance(high, int) and isinstance(step, int):
                count = len(range(low, high + 1, step))
                steps = f" in steps of {step}" if step != 1 else ""
                if not 2 <= count <= MAX_SCALE_BUTTONS:
                    self.problem(
                        at("parameters"),
                        f"a scale from {low} to {high}{steps} has {count} buttons; "
                        f"it needs 2 to {MAX_SCALE_BUTTONS}",
                    )
        return row

    def row_type(self, data: _LineDict) -> tuple[str | None, QuestionType | None, str | None]:
        line = data.key_lines.get("type", data.line)
        value = data.get("type")
        if "type" not in data:
            self.problem(data.line, "the row has no type")
            return None, None, None
        if not isinstance(value, str) or not value.split():
            self.problem(line, f"type must be text, not {_show(value)}")
            return None, None, None
        words = value.split()
        head = words[0]
        known = [*(str(t) for t in QuestionType), BEGIN_GROUP, END_GROUP, CALCULATE]
        if head in (BEGIN_GROUP, END_GROUP, CALCULATE):
            if len(words) > 1:
                self.problem(line, f"{head} takes no list name")
            return head, None, None
        if head not in QuestionType.__members__.values():
            self.problem(
                line,
                f"unknown type {_show(value)} (known: {', '.join(known)})"
                + _suggest(head.replace(" ", "_"), known),
            )
            return None, None, None
        qtype = QuestionType(head)
        if qtype in SELECT_TYPES:
            if len(words) == 3 and words[2] == OR_OTHER:
                if qtype == QuestionType.SELECT_MULTIPLE:
                    self.problem(
                        line,
                        f"{OR_OTHER} is only for select_one here: add an 'other' choice and a "
                        "text question relevant when it is selected",
                    )
                    return None, None, None
                return "question", qtype, words[1]
            if len(words) != 2:
                self.problem(
                    line,
                    f"{qtype} needs one choice list: type: {qtype} LIST_NAME "
                    f"(and {OR_OTHER} after it, to add 'Other')",
                )
                return None, None, None
            return "question", qtype, words[1]
        if len(words) > 1:
            self.problem(line, f"{qtype} takes no list name")
            return None, None, None
        return ("note" if qtype == QuestionType.NOTE else "question"), qtype, None

    def flag(self, data: _LineDict, key: str, default: bool, at: Callable[[str], int]) -> bool:
        if key not in data:
            return default
        value = data[key]
        if not isinstance(value, bool):
            self.problem(at(key), f"{key} must be true or false, not {_show(value)}")
            return default
        return value

    def expression(
        self, value: object, line: int, key: str, *, columns: bool = False
    ) -> Expression | None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(line, f"{key} must be an expression, not {_show(value)}")
            return None
        text = str(value)
        try:
            return parse_expression(text, columns=columns)
        except ExpressionError as error:
            self.problem(
                line, f"{key}: {error.message} at character {error.position + 1} in: {text.strip()}"
            )
            return None

    def parameters(self, value: object, line: int, qtype: QuestionType | None) -> dict[str, object]:
        if not isinstance(value, dict):
            self.problem(line, "parameters must be a mapping, like {min: 1, max: 5}")
            return {}
        allowed = PARAMETERS.get(str(qtype), ())
        result: dict[str, object] = {}
        for key, item in value.items():
            if key not in allowed:
                self.problem(
                    line,
                    f"unknown parameter {_show(key)} for {qtype} "
                    f"(allowed: {', '.join(allowed) or 'none'})",
                )
                continue
            if isinstance(item, bool) or not isinstance(item, int):
                self.problem(line, f"parameter {key} must be a whole number, not {_show(item)}")
                continue
            if key == "columns" and not 1 <= item <= MAX_COLUMNS:
                self.problem(line, f"parameter columns must be 1 to {MAX_COLUMNS}, not {item}")
                continue
            result[str(key)] = item
        return result

    # -- choices --

    def choices(self, data: _LineDict) -> dict[str, tuple[tuple[Choice, ...], int]]:
        if "choices" not in data or data["choices"] is None:
            return {}
        choices = data["choices"]
        if not isinstance(choices, _LineDict):
            self.problem(
                data.key_lines["choices"], "choices must map each list name to its choices"
            )
            return {}
        result: dict[str, tuple[tuple[Choice, ...], int]] = {}
        for list_name, items in choices.items():
            line = choices.key_lines[list_name]
            if not isinstance(list_name, str) or not NAME_RE.fullmatch(list_name):
                self.problem(
                    line,
                    f"choice list name {_show(list_name)} must be a letter, then letters, "
                    "digits or _ (at most 32 characters)",
                )
                continue
            if not isinstance(items, _LineList) or not items:
                self.problem(line, f"choice list {list_name} must be a non-empty list of choices")
                result[list_name] = ((), line)
                continue
            parsed: list[Choice] = []
            codes: dict[str, int] = {}
            for item, item_line in zip(items, items.item_lines, strict=True):
                choice = self.choice(item, item_line, list_name)
                if choice is None:
                    continue
                if choice.name in codes:
                    self.problem(
                        item_line,
                        f"choice {choice.name} appears twice in {list_name} "
                        f"(also on {self.where(codes[choice.name])})",
                    )
                    continue
                codes[choice.name] = item_line
                parsed.append(choice)
            result[list_name] = (tuple(parsed), line)
        return result

    def choice(self, item: object, line: int, list_name: str) -> Choice | None:
        if not isinstance(item, _LineDict):
            self.problem(line, f"a choice in {list_name} must be a mapping with name and label")
            return None
        for key in item:
            if key not in CHOICE_KEYS:
                self.problem(
                    item.key_lines.get(key, line),
                    f"unknown key {_show(key)} in a choice (known: {', '.join(CHOICE_KEYS)})"
                    + _suggest(str(key), CHOICE_KEYS),
                )
        code = item.get("name")
        name_line = item.key_lines.get("name", line)
        ok = True
        if "name" not in item:
            self.problem(line, f"a choice in {list_name} has no name")
            ok = False
        elif not isinstance(code, str):
            shown = _plain(code)
            self.problem(
                name_line,
                f"choice name {_show(code)} in {list_name} must be text: put it in quotes, "
                f'like name: "{shown}" (YAML reads unquoted yes, no, on, off, true, false '
                "and numbers as something else)",
            )
            ok = False
        elif not CODE_RE.fullmatch(code):
            self.problem(
                name_line,
                f"choice name {_show(code)} in {list_name} must be 1 to 32 of A-Z, a-z, 0-9, "
                "_ and -",
            )
            ok = False
        labels: dict[str, str] = {}
        if "label" in item:
            labels = self.texts(
                item["label"],
                item.key_lines.get("label", line),
                f"label of choice {_plain(code)}",
                MAX_CHOICE_LABEL_LENGTH,
            )
        else:
            self.problem(line, f"choice {_plain(code)} in {list_name} has no label")
        countries: dict[str, dict[str, str]] = {}
        if "countries" in item:
            countries = self.country_variants(
                item["countries"], item.key_lines.get("countries", line), _plain(code)
            )
        columns: dict[str, str] = {}
        if "columns" in item:
            columns = self.choice_columns(item["columns"], item.key_lines.get("columns", line))
        if not ok:
            return None
        assert isinstance(code, str)
        return Choice(code, labels, line, countries, columns)

    def choice_columns(self, value: object, line: int) -> dict[str, str]:
        """`columns:` of a choice: column name -> value, read by choice_filter expressions."""
        if not isinstance(value, dict) or not value:
            self.problem(line, "columns of a choice must map column names to values")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not NAME_RE.fullmatch(key) or key == "name":
                self.problem(
                    line,
                    f"column {_show(key)} must be a letter, then letters, digits or _ (and not "
                    "name, which is the choice's code)",
                )
            elif isinstance(item, bool) or not isinstance(item, str | int | float):
                self.problem(line, f"column {key} must be text, not {_show(item)}")
            else:
                result[key] = str(item)
        return result

    def country_variants(self, value: object, line: int, code: str) -> dict[str, dict[str, str]]:
        """`countries:` of a choice: ISO country code -> one text per declared language."""
        if not isinstance(value, dict) or not value:
            self.problem(
                line,
                f"countries of choice {code} must map country codes to labels, like "
                "countries: {NL: {en: ..., nl: ...}}",
            )
            return {}
        key_lines = value.key_lines if isinstance(value, _LineDict) else {}
        result: dict[str, dict[str, str]] = {}
        for country, texts in value.items():
            at = key_lines.get(country, line)
            name = country if isinstance(country, str) else _plain(country)
            if not isinstance(country, str):
                self.problem(
                    at,
                    f"countries of choice {code}: the country code must be text; YAML reads "
                    f'{_show(country)} as something else: put it in quotes ("NO" for Norway)',
                )
                continue
            if name not in COUNTRY_CODES:
                hint = (
                    f"; write it in capitals: {name.upper()}"
                    if name.upper() in COUNTRY_CODES
                    else "; did you mean 'GB'?"
                    if name.upper() == "UK"
                    else ""
                )
                self.problem(
                    at,
                    f"countries of choice {code}: {_show(country)} is not an ISO 3166-1 "
                    f"alpha-2 country code (NL, ES, EE, IT, BE ...){hint}",
                )
                continue
            labels = self.texts(
                texts, at, f"label of choice {code} for {name}", MAX_CHOICE_LABEL_LENGTH
            )
            if labels:
                result[name] = labels
        return result

    # -- across rows --

    def check_rows(
        self, rows: list[_Row], choices: dict[str, tuple[tuple[Choice, ...], int]]
    ) -> tuple[list[Row], tuple[Group, ...]]:
        first_line: dict[str, int] = {}
        kinds: dict[str, str] = {}
        for row in rows:
            if row.name is None or row.kind == END_GROUP:
                continue
            if row.name in first_line:
                self.problem(
                    row.key_line("name"),
                    f"duplicate name {row.name} (also used on {self.where(first_line[row.name])})",
                )
                continue
            first_line[row.name] = row.line
            kinds[row.name] = row.kind

        used_lists: set[str] = set()
        stack: list[tuple[_Row, Group | None]] = []
        result: list[Row] = []
        groups: list[Group] = []
        earlier: set[str] = set()
        has_content: dict[int, bool] = {}
        for row in rows:
            for key, expression in (
                ("relevant", row.relevant),
                ("constraint", row.constraint),
                ("carry", row.carry),
                ("choice_filter", row.choice_filter),
                ("calculation", row.calculation),
            ):
                if expression is not None:
                    self.check_references(row, key, expression, earlier, first_line, kinds)
            for key, texts in (("label", row.labels), ("hint", row.hints)):
                for lang, text in texts.items():
                    for is_earlier, name in text_references(text):
                        what = f"{key} in {lang}"
                        if is_earlier:
                            self.check_earlier(row, what, key, name, first_line, kinds)
                        else:
                            self.check_reference(row, what, key, name, earlier, first_line, kinds)
            if row.kind == BEGIN_GROUP:
                for opened, _ in stack:
                    has_content[id(opened)] = True
                group = None
                if row.name is not None:
                    group = Group(
                        row.name,
                        row.labels,
                        row.relevant,
                        tuple(r.name or "" for r, _ in stack),
                        row.line,
                    )
                    groups.append(group)
                    result.append(group)
                stack.append((row, group))
                has_content[id(row)] = False
                continue
            if row.kind == END_GROUP:
                if not stack:
                    self.problem(row.line, "end_group without a begin_group")
                    continue
                opened, _ = stack.pop()
                if row.name is not None and row.name != opened.name:
                    self.problem(
                        row.key_line("name"),
                        f"end_group {row.name} closes group {opened.name} "
                        f"(opened on {self.where(opened.line)})",
                    )
                if not has_content[id(opened)]:
                    self.problem(opened.line, f"group {opened.name} is empty")
                result.append(GroupEnd(opened.name or "", row.line))
                continue
            for opened, _ in stack:
                has_content[id(opened)] = True
            if row.name is not None and row.kind in ("question", "note", "invalid", CALCULATE):
                earlier.add(row.name)
            if row.kind == CALCULATE:
                if row.name is not None and row.calculation is not None:
                    result.append(
                        Calculation(
                            row.name,
                            row.calculation,
                            row.relevant,
                            tuple(r.relevant for r, _ in stack if r.relevant is not None),
                            0,
                            row.line,
                        )
                    )
                continue
            if row.type in SELECT_TYPES and row.list_name is not None:
                used_lists.add(row.list_name)
                if row.list_name not in choices:
                    self.problem(
                        row.key_line("type"),
                        f"choice list {row.list_name} does not exist"
                        + _suggest(row.list_name, choices),
                    )
                else:
                    items = choices[row.list_name][0]
                    for choice in items:
                        self.check_button(row, choice.name)
                    self.check_button_count(row, len(items) + (1 if row.or_other else 0))
                    if row.choice_filter is not None:
                        self.check_columns(row, row.choice_filter, items)
                    if row.or_other:
                        self.check_button(row, OTHER_CODE)
                        self.check_or_other(row, items, first_line)
            if row.type == QuestionType.SCALE:
                low = row.parameters.get("min", DEFAULT_SCALE[0])
                high = row.parameters.get("max", DEFAULT_SCALE[1])
                if isinstance(low, int) and isinstance(high, int) and high - low < 100:
                    for number in range(low, high + 1):
                        self.check_button(row, str(number))
            if row.type is None or row.name is None:
                continue
            result.append(
                Question(
                    name=row.name,
                    type=row.type,
                    list_name=row.list_name,
                    labels=row.labels,
                    hints=row.hints,
                    required=row.required,
                    relevant=row.relevant,
                    group_relevant=tuple(r.relevant for r, _ in stack if r.relevant is not None),
                    constraint=row.constraint,
                    constraint_messages=row.constraint_messages,
                    core=row.core,
                    parameters=row.parameters,
                    group=tuple(r.name or "" for r, _ in stack),
                    line=row.line,
                    carry=row.carry,
                    choice_filter=row.choice_filter,
                    or_other=row.or_other,
                )
            )
            if row.or_other and row.type == QuestionType.SELECT_ONE:
                other = parse_expression(f"selected(${{{row.name}}}, '{OTHER_CODE}')")
                result.append(
                    Question(
                        name=row.name + OTHER_SUFFIX,
                        type=QuestionType.TEXT,
                        list_name=None,
                        labels={
                            lang: SPECIFY_OTHER_LABELS.get(lang, SPECIFY_OTHER_LABELS["en"])
                            for lang in (self.languages or row.labels)
                        },
                        hints={},
                        required=False,
                        relevant=other,
                        group_relevant=tuple(
                            r.relevant for r, _ in stack if r.relevant is not None
                        ),
                        constraint=None,
                        constraint_messages={},
                        core=False,
                        parameters={},
                        group=tuple(r.name or "" for r, _ in stack),
                        line=row.line,
                        other_of=row.name,
                    )
                )
        for opened, _ in stack:
            self.problem(opened.line, f"group {opened.name} has no end_group")
        if rows and not any(row.kind in ("question", "note", "invalid") for row in rows):
            self.problem(rows[0].line, "the survey has no questions")
        for list_name, (_, line) in choices.items():
            if list_name not in used_lists:
                self.problem(line, f"choice list {list_name} is not used by any question (a typo?)")
        return result, tuple(groups)

    def check_columns(self, row: _Row, expression: Expression, items: Iterable[Choice]) -> None:
        """A choice_filter reads columns the list has (or ``name``, the code)."""
        have = {"name"} | {key for choice in items for key in choice.columns}
        for column in sorted(expression.columns() - have):
            self.problem(
                row.key_line("choice_filter"),
                f"choice_filter reads the column {column}, which no choice of {row.list_name} "
                "has" + _suggest(column, have),
            )

    def check_or_other(
        self, row: _Row, items: Iterable[Choice], first_line: dict[str, int]
    ) -> None:
        """or_other adds the choice ``other`` and the question ``<name>_other``: neither may
        exist already."""
        line = row.key_line("type")
        if any(choice.name == OTHER_CODE for choice in items):
            self.problem(
                line,
                f"{row.name}: {OR_OTHER} adds the choice {OTHER_CODE}, but {row.list_name} has "
                f"one already; remove {OR_OTHER} or that choice",
            )
        other = (row.name or "") + OTHER_SUFFIX
        if other in first_line:
            self.problem(
                line,
                f"{row.name}: {OR_OTHER} adds the question {other}, but "
                f"{self.where(first_line[other])} has that name already",
            )
        elif row.name is not None and not NAME_RE.fullmatch(other):
            self.problem(
                line,
                f"{row.name}: {OR_OTHER} adds the question {other}, a name longer than 32 "
                "characters; shorten the question's name",
            )

    def check_button(self, row: _Row, code: str) -> None:
        size = len(button_data(row.name or "", code).encode())
        if size > MAX_BUTTON_DATA_BYTES:
            self.problem(
                row.key_line("name"),
                f"button data for {row.name}/{code} is {size} bytes, "
                f"Telegram allows {MAX_BUTTON_DATA_BYTES}",
            )

    def check_button_count(self, row: _Row, count: int) -> None:
        """A select question with more than PAGE_CHOICES choices shows them a page at a time
        (a page's choices, Done, Back and Next or Skip, Earlier and More: well within
        Telegram's MAX_BUTTONS), up to MAX_CHOICES choices."""
        if count > MAX_CHOICES:
            self.problem(
                row.key_line("type"),
                f"{row.name} offers {count} choices; the chat shows at most {MAX_CHOICES} "
                f"(in pages of {PAGE_CHOICES} buttons: Telegram shows at most {MAX_BUTTONS} "
                "under a message): split the list or ask for typed text",
            )

    def check_references(
        self,
        row: _Row,
        key: str,
        expression: Expression,
        earlier: set[str],
        first_line: dict[str, int],
        kinds: dict[str, str],
    ) -> None:
        line = row.key_line(key)
        if key in ("relevant", "carry") and expression.uses_current:
            self.problem(
                line, f"{key}: '.' (the answer being checked) can only be used in constraint"
            )
        if key != "constraint" and expression.uses_current and key not in ("relevant", "carry"):
            self.problem(
                line, f"{key}: '.' (the answer being checked) can only be used in constraint"
            )
        for name in sorted(expression.earlier_references()):
            self.check_earlier(row, key, key, name, first_line, kinds)
        for name in sorted(expression.references()):
            self.check_reference(row, key, key, name, earlier, first_line, kinds)

    def check_reference(
        self,
        row: _Row,
        what: str,
        key: str,
        name: str,
        earlier: set[str],
        first_line: dict[str, int],
        kinds: dict[str, str],
    ) -> None:
        """``${name}`` in an expression or a text: an earlier question or calculate row."""
        line = row.key_line(key)
        if not NAME_RE.fullmatch(name):
            self.problem(
                line,
                f"{what}: ${{{name}}} names no question (a letter, then letters, digits or _)",
            )
        elif name == row.name:
            hint = "; use . for the answer being checked" if key == "constraint" else ""
            self.problem(line, f"{what} refers to {row.name} itself{hint}")
        elif name not in first_line:
            self.problem(
                line,
                f"{what} refers to {name}, which does not exist" + _suggest(name, first_line),
            )
        elif kinds[name] in (BEGIN_GROUP,):
            self.problem(line, f"{what} refers to group {name}; refer to a question")
        elif kinds[name] == "note":
            self.problem(line, f"{what} refers to note {name}, which has no answer")
        elif name not in earlier:
            self.problem(
                line,
                f"{what} refers to {name}, which comes later "
                f"({self.where(first_line[name])}); refer only to earlier questions",
            )

    def check_earlier(
        self,
        row: _Row,
        what: str,
        key: str,
        name: str,
        first_line: dict[str, int],
        kinds: dict[str, str],
    ) -> None:
        """``${last-saved#name}``: any question of the questionnaire (the previous wave
        answered all of it, so later ones too), or a fact about that response (``_month``)."""
        line = row.key_line(key)
        reference = "${" + LAST_SAVED + name + "}"
        if name in EARLIER_FIELDS:
            return
        if not NAME_RE.fullmatch(name):
            self.problem(
                line,
                f"{what}: {reference} names no question (a letter, then letters, digits or _; "
                f"or {', '.join(sorted(EARLIER_FIELDS))})",
            )
        elif name not in first_line:
            self.problem(
                line,
                f"{what} refers to {reference}, but {name} is not a question of this "
                "questionnaire" + _suggest(name, first_line),
            )
        elif kinds[name] == BEGIN_GROUP:
            self.problem(line, f"{what} refers to {reference}, a group; refer to a question")
        elif kinds[name] == "note":
            self.problem(line, f"{what} refers to {reference}, a note, which has no answer")
        elif kinds[name] == CALCULATE:
            self.problem(
                line,
                f"{what} refers to {reference}, a calculate row, which is not stored; "
                "calculate it again from the earlier answers it reads",
            )
