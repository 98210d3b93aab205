"""Translations: Babel gettext catalogs under locales/, and the current update's locale.

The locale of the update being handled lives in a ContextVar (never a global install), so
concurrent updates in different languages never mix. Strings are marked with `_()`; the
catalogs are compiled to .mo by the set-up, and compiled in memory from the .po files when a
.mo is missing or older than its .po (a fresh deploy that skipped the compile step).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as _babel_format_date
from babel.dates import format_skeleton
from babel.dates import format_time as _babel_format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from conversations.rules import LANGUAGES as SUPPORTED

log = logging.getLogger(__name__)


def _locales_dir() -> Path:
    """locales/ beside the packages (a checkout or editable install), else in the working
    directory (an app deployed from its checkout with a regular install)."""
    beside = Path(__file__).resolve().parent.parent / "locales"
    return beside if beside.is_dir() else Path.cwd() / "locales"


LOCALES_DIR = _locales_dir()
DOMAIN = "messages"
LANGUAGES = SUPPORTED
FALLBACK = "en"

_current: ContextVar[str] = ContextVar("gradtrack_locale", default=FALLBACK)


def normalise_language(code: str | None) -> str | None:
    """Map a Telegram language_code such as 'es-ES' or 'NL' to one of ours, or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None


def language_name(code: str) -> str:
    """A language's name in that language, capitalised: 'Nederlands', 'Eesti', ..."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def language_name_here(code: str, capital: bool = True) -> str:
    """A language's name in the current language: 'Engels' for English to a Dutch reader,
    'inglés' to a Spanish one (capitalised for a button or a heading)."""
    name = Locale.parse(code).get_display_name(_current.get()) or code
    return name[:1].upper() + name[1:] if capital else name


def _load(lang: str) -> NullTranslations:
    directory = LOCALES_DIR / lang / "LC_MESSAGES"
    po_path = directory / f"{DOMAIN}.po"
    mo_path = directory / f"{DOMAIN}.mo"
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    if po_path.exists():
        log.warning("compiling %s in memory: run `make catalogs` to compile it once", po_path)
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=lang, domain=DOMAIN)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return Translations(buffer, domain=DOMAIN)
    if lang != FALLBACK:
        log.error("no catalog for %s in %s", lang, LOCALES_DIR)
    return NullTranslations()


@cache
def translations(lang: str) -> NullTranslations:
    """The catalog for `lang` (one of LANGUAGES), loaded once."""
    return _load(lang if lang in LANGUAGES else FALLBACK)


def current_language() -> str:
    return _current.get()


def set_language(lang: str | None) -> None:
    """Set the locale for the rest of this update's handling."""
    _current.set(normalise_language(lang) or FALLBACK)


@contextmanager
def use_language(lang: str | None) -> Iterator[str]:
    """Temporarily speak `lang` (e.g. to message another user)."""
    token = _current.set(normalise_language(lang) or FALLBACK)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def gettext(message: str) -> str:
    """Translate `message` into the current locale."""
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


_ = gettext


def format_date(value: date, fmt: str = "long") -> str:
    """A date written the way the current locale writes it."""
    return _babel_format_date(value, format=fmt, locale=_current.get())


def format_month(year: int, month: int) -> str:
    """A month of a year the way the current locale writes it: "september 2026"."""
    return str(format_skeleton("yMMMM", date(year, month, 1), locale=_current.get()))


def format_datetime(moment: datetime, timezone: str) -> str:
    """A moment as the clock on the wall of `timezone` shows it, written the way the current
    locale writes a date and a time: "1. dets 2026 10:00" in Estonian."""
    local = moment.astimezone(ZoneInfo(timezone))
    lang = _current.get()
    pattern = str(Locale.parse(lang).datetime_formats["medium"])
    day = _babel_format_date(local.date(), format="medium", locale=lang)
    clock = _babel_format_time(local, format="short", tzinfo=local.tzinfo, locale=lang)
    return pattern.replace("{1}", day).replace("{0}", clock)


def month_name(month: int, width: str = "wide") -> str:
    """The stand-alone name of `month` (1-12) in the current locale."""
    names = Locale.parse(_current.get()).months["stand-alone"][width]
    return str(names[month])
