"""The privacy notice (GDPR Art. 13) a graduate reads at onboarding and with /privacy.

It is rendered from the school's own details (controller, contact, data protection officer,
the supervisory authority of its country) and the real retention period, in the reader's
language. Its version is the configured base version plus a short hash of the English
rendering: when the wording, the school's details or the retention period change, the version
changes, and consents record the version that was shown.

Pure functions: no database, no channel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.i18n import _, ngettext, use_language
from bot.settings import Settings
from storage.models import Institution

#: Telegram's limit for the text of one message.
MESSAGE_LIMIT = 4096
#: Consent columns hold 32 characters: base version, "-", and the hash.
VERSION_MAX = 32
HASH_CHARS = 8


@dataclass(frozen=True)
class Authority:
    """A data protection supervisory authority (GDPR Art. 51) a graduate can complain to."""

    name: str
    website: str


#: The supervisory authorities of the pilot countries, by ISO country code. Their own names,
#: in their own language: that is how a graduate finds them.
AUTHORITIES: dict[str, Authority] = {
    "NL": Authority("Autoriteit Persoonsgegevens", "https://autoriteitpersoonsgegevens.nl"),
    "ES": Authority("Agencia Española de Protección de Datos (AEPD)", "https://www.aepd.es"),
    "EE": Authority("Andmekaitse Inspektsioon", "https://www.aki.ee"),
    "IT": Authority(
        "Garante per la protezione dei dati personali", "https://www.garanteprivacy.it"
    ),
}
#: Where the authorities of every EEA country are listed (the fallback's website).
EDPB_MEMBERS = "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en"


def supervisory_authority(country: str) -> Authority:
    """The authority of the school's country; for other countries, a translated description
    with the European list of authorities (call within the reader's language)."""
    known = AUTHORITIES.get(country.strip().upper())
    if known is not None:
        return known
    return Authority(_("the data protection authority of your country"), EDPB_MEMBERS)


def controller_name(school: Institution) -> str:
    return school.legal_name or school.name


def _paragraphs(school: Institution, retention_months: int) -> list[str]:
    """The notice's paragraphs without its title, in the current language."""
    controller = controller_name(school)
    if school.privacy_contact:
        who = _(
            "Who is responsible: {controller} is responsible for your data in this chat "
            "(the controller). For questions about your data, write to {contact}."
        ).format(controller=controller, contact=school.privacy_contact)
    else:
        who = _(
            "Who is responsible: {controller} is responsible for your data in this chat "
            "(the controller). For questions about your data, ask the office of {school}."
        ).format(controller=controller, school=school.name)
    if school.dpo_contact:
        who += " " + _("The school's data protection officer: {dpo}.").format(
            dpo=school.dpo_contact
        )
    authority = supervisory_authority(school.country)
    return [
        who,
        _(
            "Why: the school learns what its graduates do after their training (work, further "
            "study or something else), to check and improve the quality of its programmes, as "
            "European quality assurance for vocational education (EQAVET) asks. Alumni news "
            "is only sent to you if you want it."
        ),
        _(
            "On what basis: tracking its graduates is part of the school's public task or "
            "legitimate interest. Later follow-up questionnaires and alumni news need your "
            "consent; you can withdraw it at any time. Answering is always up to you."
        ),
        _(
            "Who sees what: the school's staff see totals, never figures for groups of fewer "
            "than five people, and read what you write in your own words (such as what your "
            "programme should do better) without your name. Only the school's administrators, "
            "and researchers it appoints (under a code, without what you wrote in your own "
            "words), can download the answers one response per row (with programme and year, "
            "never your name, student number or chat), for analysis."
        ),
        _(
            "If you ask the school for help finding work, or offer to help it (a guest lesson, "
            "mentoring, an internship place), and you agreed that we may ask you again, the "
            "school's staff see your name with that answer, so that they can get back to you."
        ),
        _(
            "Who handles it for the school: Telegram carries the chat messages; Telegram is "
            "based outside the EU and works under its own terms. The school's hosting "
            "provider runs this service and stores the data. If the school e-mails you, its "
            "e-mail provider delivers the e-mails."
        ),
        ngettext(
            "What we keep: your answers, your language, your choices and your contact "
            "details, linked to your student record. We delete them {months} month after "
            "your graduation; only totals without names remain.",
            "What we keep: your answers, your language, your choices and your contact "
            "details, linked to your student record. We delete them {months} months after "
            "your graduation; only totals without names remain.",
            retention_months,
        ).format(months=retention_months),
        _(
            "Your rights, right here in the chat: /mydata sends you a copy of your data, "
            "/delete deletes it. With /privacy you read this notice again and change or "
            "withdraw your choices; with /stop you object to all further contact."
        ),
        _(
            "If you think the school handles your data wrongly, you can complain to "
            "{authority} ({website})."
        ).format(authority=authority.name, website=authority.website),
    ]


def _title(version: str) -> str:
    return _("Privacy notice (version {version})").format(version=version)


def notice_version(school: Institution, base_version: str, retention_months: int) -> str:
    """The version of the notice this school's graduates are shown: the configured base and
    a hash of the English text with the school's details and the retention period in it."""
    with use_language("en"):
        body = "\n\n".join(_paragraphs(school, retention_months))
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{base_version[: VERSION_MAX - HASH_CHARS - 1]}-{digest}"


def _pack(paragraphs: list[str], limit: int) -> list[str]:
    """Paragraphs joined into as few messages as fit `limit` characters each (a paragraph
    longer than the limit, which the school's details could make, is cut at the limit)."""
    messages: list[str] = []
    current = ""
    for paragraph in paragraphs:
        while len(paragraph) > limit:
            if current:
                messages.append(current)
                current = ""
            messages.append(paragraph[:limit])
            paragraph = paragraph[limit:]
        joined = f"{current}\n\n{paragraph}" if current else paragraph
        if len(joined) <= limit:
            current = joined
        else:
            messages.append(current)
            current = paragraph
    if current:
        messages.append(current)
    return messages


def privacy_notice(
    school: Institution, base_version: str, retention_months: int, *, limit: int = MESSAGE_LIMIT
) -> list[str]:
    """The notice in the current language, as the messages to send (one, unless it is longer
    than a Telegram message allows)."""
    version = notice_version(school, base_version, retention_months)
    return _pack([_title(version), *_paragraphs(school, retention_months)], limit)


def notice_messages(settings: Settings, school: Institution) -> list[str]:
    """The notice as configured for this service (base version, `RETENTION_MONTHS`)."""
    return privacy_notice(school, settings.privacy_notice_version, settings.retention_months)


def shown_version(settings: Settings, school: Institution) -> str:
    """The version `notice_messages` shows: what a consent given now records."""
    return notice_version(school, settings.privacy_notice_version, settings.retention_months)
