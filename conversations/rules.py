"""Pure onboarding rules: deep-link payloads, language choice, age of digital consent.

No Telegram, no database: plain functions over plain data, tested on their own.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

# The languages gradtrack speaks: the bot's catalogs and every questionnaire cover all of them.
LANGUAGES: tuple[str, ...] = ("nl", "es", "et", "it", "en")

# Telegram: a /start payload is at most 64 characters of A-Z a-z 0-9 _ -
PAYLOAD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
INVITE_PREFIX = "i_"
SCHOOL_PREFIX = "s_"
STAFF_PREFIX = "t_"
SCHOOL_CODE_RE = re.compile(r"^[A-Za-z0-9-]{2,32}$")

# Age of digital consent (GDPR art. 8 as set by each country). Default: the GDPR's 16.
DIGITAL_CONSENT_AGE: dict[str, int] = {"NL": 16, "IT": 14, "ES": 14, "EE": 13}
DEFAULT_DIGITAL_CONSENT_AGE = 16


class PayloadKind(StrEnum):
    NONE = "none"
    INVITE = "invite"
    SCHOOL = "school"
    STAFF = "staff"
    INVALID = "invalid"


@dataclass(frozen=True)
class Payload:
    kind: PayloadKind
    value: str = ""


def parse_start_payload(text: str | None) -> Payload:
    """Read what followed /start: a personal invite, a school's join code, a staff invite
    (`t_`), or nothing."""
    raw = (text or "").strip()
    if not raw:
        return Payload(PayloadKind.NONE)
    if not PAYLOAD_RE.match(raw):
        return Payload(PayloadKind.INVALID, raw[:64])
    if raw.startswith(INVITE_PREFIX) and len(raw) > len(INVITE_PREFIX):
        return Payload(PayloadKind.INVITE, raw)
    if raw.startswith(STAFF_PREFIX) and len(raw) > len(STAFF_PREFIX):
        return Payload(PayloadKind.STAFF, raw)
    if raw.startswith(SCHOOL_PREFIX) and SCHOOL_CODE_RE.match(raw[len(SCHOOL_PREFIX) :]):
        return Payload(PayloadKind.SCHOOL, raw[len(SCHOOL_PREFIX) :])
    return Payload(PayloadKind.INVALID, raw)


def new_invite_token() -> str:
    """An unguessable personal invite payload: 'i_' + 190 random bits, 34 characters."""
    return INVITE_PREFIX + secrets.token_urlsafe(24)


def school_payload(code: str) -> str:
    return SCHOOL_PREFIX + code


def choose_language(
    roster_language: str | None, telegram_language: str | None, school_language: str | None
) -> str:
    """Default language: the roster's, else Telegram's language_code, else the school's."""
    for candidate in (roster_language, telegram_language, school_language):
        code = (candidate or "").replace("_", "-").split("-")[0].lower()
        if code in LANGUAGES:
            return code
    return "en"


def consent_age(country: str | None) -> int:
    return DIGITAL_CONSENT_AGE.get((country or "").upper(), DEFAULT_DIGITAL_CONSENT_AGE)


class AgeCheck(StrEnum):
    OLD_ENOUGH = "ok"
    TOO_YOUNG = "too_young"
    ASK = "ask"


def check_age(birth_year: int | None, today: date, min_age: int) -> AgeCheck:
    """Can this person consent by themselves? With only a birth year, someone who turns
    `min_age` this year may or may not have had their birthday yet: then we ask."""
    if birth_year is None:
        return AgeCheck.ASK
    oldest_possible = today.year - birth_year
    if oldest_possible - 1 >= min_age:
        return AgeCheck.OLD_ENOUGH
    if oldest_possible < min_age:
        return AgeCheck.TOO_YOUNG
    return AgeCheck.ASK


def parse_birth_year(text: str, today: date) -> int | None:
    """A plausible four-digit birth year (10 to 100 years ago), or None."""
    value = text.strip()
    if not re.fullmatch(r"[0-9]{4}", value):
        return None
    year = int(value)
    if today.year - 100 <= year <= today.year - 10:
        return year
    return None


def graduation_years(today: date) -> list[int]:
    """Years a self-registering graduate may pick: two back, this one, one ahead."""
    return [today.year - 2, today.year - 1, today.year, today.year + 1]
