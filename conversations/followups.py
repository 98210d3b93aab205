"""Follow-up lists as staff read them (storage/followups.py holds who is on them): the
lists' names and what a graduate offered, in the current language."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.i18n import _, current_language
from conversations.questionnaire import Questionnaire
from storage.followups import DEFAULT_OFFERS, NO_OFFER, OFFER_QUESTION, WORK, ListKey


def offer_codes(questionnaire: Questionnaire | None) -> tuple[str, ...]:
    """The A7 choices one can offer (all but "none"), in the questionnaire's order."""
    if questionnaire is None or OFFER_QUESTION not in questionnaire:
        return DEFAULT_OFFERS
    question = questionnaire.question(OFFER_QUESTION)
    codes = tuple(c.name for c in questionnaire.choices_for(question) if c.name != NO_OFFER)
    return codes or DEFAULT_OFFERS


def offer_label(code: str, questionnaire: Questionnaire | None) -> str:
    """An A7 choice ("Give a guest lesson") in the current language, as graduates saw it."""
    if questionnaire is not None and OFFER_QUESTION in questionnaire:
        choice = questionnaire.choice(questionnaire.question(OFFER_QUESTION), code)
        if choice is not None:
            return choice.label(current_language())
    return code


def offered(value: Any, questionnaire: Questionnaire | None) -> list[str]:
    """What an A7 answer offers, labelled ("none" left out)."""
    codes: Sequence[Any] = value if isinstance(value, list) else [value]
    return [offer_label(str(code), questionnaire) for code in codes if code != NO_OFFER]


def list_label(key: str, questionnaire: Questionnaire | None = None) -> str:
    """A list's name: "Asked for help finding work", "Offered: Give a guest lesson" …"""
    try:
        parsed = ListKey.parse(key, offer_codes(questionnaire))
    except ValueError:
        return key
    if parsed.name == WORK:
        return _("Asked for help finding work")
    if parsed.choice:
        return _("Offered: {what}").format(what=offer_label(parsed.choice, questionnaire))
    return _("Offered to help the school")
