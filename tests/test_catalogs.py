"""Every string the bot says exists, complete, in all five languages."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot import i18n

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("bot", "conversations", "storage")


def _source_messages() -> set[str]:
    found: set[str] = set()
    for directory in SOURCE_DIRS:
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT / directory,
            method_map=[("**.py", "python")],
            keywords={"_": None, "N_": None, "gettext": None},
        ):
            if isinstance(message, tuple):
                found.update(m for m in message if m)
            elif message:
                found.add(message)
    return found


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


SOURCE = _source_messages()


def test_the_bot_has_strings_to_translate() -> None:
    assert len(SOURCE) > 30


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_catalog_translates_every_message(lang: str) -> None:
    path = ROOT / "locales" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    problems: list[str] = []
    for msgid in sorted(SOURCE):
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"missing: {msgid!r}")
            continue
        if not entry.string:
            problems.append(f"untranslated: {msgid!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        elif _fields(str(entry.string)) != _fields(msgid):
            problems.append(f"placeholders differ: {msgid!r} -> {entry.string!r}")
    assert not problems, f"{lang}: " + "\n".join(problems)


@pytest.mark.parametrize("lang", [code for code in i18n.LANGUAGES if code != "en"])
def test_translations_are_not_english(lang: str) -> None:
    """A catalog that copies the English text is not a translation."""
    with i18n.use_language(lang):
        same = [m for m in SOURCE if len(m) > 25 and i18n.gettext(m) == m]
    assert same == []


def test_language_is_per_context() -> None:
    with i18n.use_language("nl"):
        dutch = i18n.gettext("Yes")
        with i18n.use_language("it"):
            assert i18n.gettext("Yes") == "Sì"
        assert i18n.gettext("Yes") == dutch == "Ja"
    assert i18n.current_language() == "en"
