"""Pure onboarding rules: payloads, language choice, age of digital consent."""

from __future__ import annotations

from datetime import date

import pytest

from conversations.rules import (
    PAYLOAD_RE,
    AgeCheck,
    PayloadKind,
    check_age,
    choose_language,
    consent_age,
    new_invite_token,
    parse_birth_year,
    parse_start_payload,
    school_payload,
)


def test_invite_tokens_fit_telegram_payload_rules_and_differ() -> None:
    tokens = {new_invite_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for token in tokens:
        assert PAYLOAD_RE.match(token), token
        assert len(token) <= 64
        assert parse_start_payload(token).kind is PayloadKind.INVITE


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("", PayloadKind.NONE, ""),
        ("   ", PayloadKind.NONE, ""),
        ("s_demo", PayloadKind.SCHOOL, "demo"),
        ("s_x", PayloadKind.INVALID, "s_x"),
        ("i_", PayloadKind.INVALID, "i_"),
        ("hello world", PayloadKind.INVALID, "hello world"),
        ("i_abc$", PayloadKind.INVALID, "i_abc$"),
        ("x" * 65, PayloadKind.INVALID, "x" * 64),
        ("random", PayloadKind.INVALID, "random"),
    ],
)
def test_parse_start_payload(text: str, kind: PayloadKind, value: str) -> None:
    payload = parse_start_payload(text)
    assert payload.kind is kind
    assert payload.value == value


def test_school_payload_round_trip() -> None:
    assert parse_start_payload(school_payload("alfa-college")).value == "alfa-college"


@pytest.mark.parametrize(
    ("roster", "telegram", "school", "expected"),
    [
        ("et", "es", "nl", "et"),
        (None, "es-ES", "nl", "es"),
        (None, "pt-BR", "it", "it"),
        (None, None, "nl", "nl"),
        ("fr", "de", "xx", "en"),
        (None, "IT", None, "it"),
    ],
)
def test_choose_language_order(
    roster: str | None, telegram: str | None, school: str | None, expected: str
) -> None:
    assert choose_language(roster, telegram, school) == expected


def test_consent_age_per_country() -> None:
    assert consent_age("NL") == 16
    assert consent_age("it") == 14
    assert consent_age("ES") == 14
    assert consent_age("EE") == 13
    assert consent_age("DE") == 16  # GDPR default
    assert consent_age(None) == 16


@pytest.mark.parametrize(
    ("birth_year", "expected"),
    [
        (2000, AgeCheck.OLD_ENOUGH),
        (2009, AgeCheck.OLD_ENOUGH),  # at least 16 on 2026-03-01
        (2010, AgeCheck.ASK),  # 15 or 16
        (2011, AgeCheck.TOO_YOUNG),  # at most 15
        (None, AgeCheck.ASK),
    ],
)
def test_check_age_with_only_a_birth_year(birth_year: int | None, expected: AgeCheck) -> None:
    assert check_age(birth_year, date(2026, 3, 1), 16) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2006", 2006),
        (" 1990 ", 1990),
        ("06", None),
        ("abcd", None),
        ("2020", None),
        ("1900", None),
        ("2006!", None),
        ("٢٠٠٦", None),
    ],
)
def test_parse_birth_year(text: str, expected: int | None) -> None:
    assert parse_birth_year(text, date(2026, 11, 23)) == expected
