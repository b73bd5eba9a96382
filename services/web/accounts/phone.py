import re

# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
# ASCII: without it \d also accepts other scripts' digits (e.g. Arabic-Indic), unlike E.164.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$", re.ASCII)
_SEPARATORS = re.compile(r"[\s().-]")


def normalize_phone(raw: str) -> str | None:
    """``"+1 (555) 123-4567"`` -> ``"+15551234567"``; None when it is not a phone number."""
    phone = _SEPARATORS.sub("", raw or "")
    return phone if _E164.match(phone) else None
