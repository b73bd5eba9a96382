"""Which phone numbers may receive a login code.

Every code is an SMS someone pays for, and some numbers pay the sender's attacker back
(premium rates, "SMS pumping" through unassigned or non-geographic ranges). So a number must
be one libphonenumber knows as valid, of a type that receives SMS, in a country we serve
(``SMS_ALLOWED_COUNTRIES``). libphonenumber alone is too lenient about the input (it maps
letters to digits, reads extensions, fullwidth and Arabic-Indic digits, ``tel:`` prefixes), so
the text must first look like E.164 once the usual separators are gone.
"""

import re

import phonenumbers
from django.conf import settings
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
# ASCII: without it \d also accepts other scripts' digits (e.g. Arabic-Indic), unlike E.164.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$", re.ASCII)
_SEPARATORS = re.compile(r"[\s().-]")
# US and CA numbers cannot be told apart from landlines by their digits: FIXED_LINE_OR_MOBILE.
_SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

EXAMPLE = "+12015550123"


def normalize_phone(raw: str) -> str | None:
    """``"+1 (201) 555-0123"`` -> ``"+12015550123"``; None when no code may be sent to it."""
    phone = _SEPARATORS.sub("", raw or "")
    if not _E164.match(phone):
        return None
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return None
    if not (
        phonenumbers.is_valid_number(number)
        and phonenumbers.number_type(number) in _SMS_TYPES
        and phonenumbers.region_code_for_number(number) in settings.SMS_ALLOWED_COUNTRIES
    ):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def calling_code(phone: str) -> str:
    """The country calling code of a normalised phone: ``"+12015550123"`` -> ``"1"``."""
    return str(phonenumbers.parse(phone).country_code)


def accepted() -> str:
    """What normalize_phone accepts, for error messages."""
    countries = ", ".join(settings.SMS_ALLOWED_COUNTRIES)
    return f"a mobile number with its country code, e.g. {EXAMPLE}, from {countries}"
