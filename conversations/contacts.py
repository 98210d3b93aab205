"""Contact data of a graduate: e-mail addresses and mobile numbers, checked and normalised.

Pure functions, no network: an e-mail address is checked for its syntax only (no DNS, no
mailbox check; a bounce tells later), a mobile number against the numbering plans that the
`phonenumbers` package carries (Google's libphonenumber data).

E-mail (`normalise_email`): surrounding white space and a `mailto:` prefix removed; one `@`;
the local part (before it) a dot-atom of at most 64 characters (RFC 5321/5322: letters,
digits and ``!#$%&'*+/=?^_`{|}~-``, dots not first, last or doubled; letters of other scripts
are accepted, RFC 6531) kept as written; the domain lower-cased and converted to ASCII (IDNA
2008 with the UTS 46 mapping: `Jüri@Näide.EE` -> `Jüri@xn--nide-loa.ee`), at least two labels
of letters, digits and inner hyphens (at most 63 each, a TLD not all digits); the whole at
most 254 characters. Quoted local parts and address literals (`user@[192.0.2.1]`) are refused:
no roster needs them, and a typo is likelier.

Mobile (`normalise_mobile`): E.164 (`+31612345678`). A number written with `+` or the
international prefix 00 is read as it stands; a national number (06 1234 5678) in the
numbering plan of the school's country. The number must be valid in that plan (a digit
missing or too many is refused); a fixed-line number is accepted (whether a number takes
texts is not in the numbering plan everywhere).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

import idna
import phonenumbers


class ContactProblem(StrEnum):
    """Why a value is no e-mail address or mobile number (the roster words each for people)."""

    EMAIL_NO_AT = "email_no_at"
    EMAIL_SPACE = "email_space"
    EMAIL_LOCAL = "email_local"
    EMAIL_DOMAIN = "email_domain"
    EMAIL_LONG = "email_long"
    MOBILE_INVALID = "mobile_invalid"
    MOBILE_NOT_A_NUMBER = "mobile_not_a_number"


class ContactError(ValueError):
    def __init__(self, problem: ContactProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


EMAIL_MAX = 254
LOCAL_MAX = 64
LABEL_MAX = 63
DOMAIN_MAX = 253
MOBILE_MAX = 16  # "+" and at most 15 digits (E.164)

# One atom of a dot-atom: ASCII atext, or letters and digits of any script (RFC 6531).
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PHONE_CHARACTERS = re.compile(r"^[0-9+()./\s-]+$")


def _atext(char: str) -> bool:
    if _ATEXT.match(char):
        return True
    return ord(char) > 127 and unicodedata.category(char)[0] in "LNM"


def normalise_email(text: str) -> str:
    """`text` as a normalised e-mail address (see the module docstring), or ContactError."""
    value = unicodedata.normalize("NFC", text).strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:") :].strip()
    if any(c.isspace() for c in value):
        raise ContactError(ContactProblem.EMAIL_SPACE)
    if value.count("@") != 1:
        raise ContactError(ContactProblem.EMAIL_NO_AT)
    local, domain = value.split("@")
    if (
        not local
        or len(local) > LOCAL_MAX
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or not all(c == "." or _atext(c) for c in local)
    ):
        raise ContactError(ContactProblem.EMAIL_LOCAL)
    ascii_domain = _ascii_domain(domain)
    address = f"{local}@{ascii_domain}"
    if len(address.encode("utf-8")) > EMAIL_MAX:
        raise ContactError(ContactProblem.EMAIL_LONG)
    return address


def _ascii_domain(domain: str) -> str:
    domain = domain.rstrip(".") if domain.endswith(".") and not domain.endswith("..") else domain
    if not domain or domain.startswith("["):
        raise ContactError(ContactProblem.EMAIL_DOMAIN)
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError) as error:
        raise ContactError(ContactProblem.EMAIL_DOMAIN) from error
    labels = ascii_domain.split(".")
    if (
        len(labels) < 2
        or len(ascii_domain) > DOMAIN_MAX
        or not all(len(label) <= LABEL_MAX and _LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ContactError(ContactProblem.EMAIL_DOMAIN)
    return ascii_domain


def email_key(address: str) -> str:
    """What makes two normalised addresses the same mailbox for duplicate checks: the case
    of the local part is ignored (servers almost all do)."""
    return address.casefold()


def normalise_mobile(text: str, country: str | None) -> str:
    """`text` as an E.164 number (see the module docstring), or ContactError. `country`: the
    ISO 3166 code of the school, the plan of national numbers (None: only + numbers)."""
    value = unicodedata.normalize("NFKC", text).strip()
    if not value or not _PHONE_CHARACTERS.match(value) or not any(c.isdigit() for c in value):
        raise ContactError(ContactProblem.MOBILE_NOT_A_NUMBER)
    region = (country or "").upper() or None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as error:
        raise ContactError(ContactProblem.MOBILE_INVALID) from error
    if not phonenumbers.is_valid_number(number):
        raise ContactError(ContactProblem.MOBILE_INVALID)
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(formatted) > MOBILE_MAX:
        raise ContactError(ContactProblem.MOBILE_INVALID)
    return formatted


def country_calling_code(country: str) -> int:
    """The international calling code of a country (31 for NL), 0 when unknown."""
    return int(phonenumbers.country_code_for_region(country.upper()))


__all__ = [
    "ContactError",
    "ContactProblem",
    "country_calling_code",
    "email_key",
    "normalise_email",
    "normalise_mobile",
]
