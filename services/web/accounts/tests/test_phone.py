"""Which numbers may get a login code (accounts.phone), and the allowlist setting."""

import os
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest

from accounts.phone import accepted, calling_code, normalize_phone
from loadtests import storm

WEB = Path(__file__).resolve().parents[2]  # services/web


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("+12015550123", "+12015550123"),
        ("+1 (201) 555-0123", "+12015550123"),
        ("+1.201.555.0123", "+12015550123"),
        ("+1 613 555 0123", "+16135550123"),  # Canada
        ("+44 7400 123456", "+447400123456"),  # a GB mobile
    ],
)
def test_valid_mobile_numbers_of_allowed_countries_are_normalised(raw, e164):
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "+15551234567",  # unassigned: no area code 555
        "+19005550100",  # premium rate
        "+18005550100",  # toll free
        "+15005550100",  # personal numbers (500)
        "+88299999999",  # non-geographic: international networks, VoIP
        "+442071234567",  # a GB landline
        "+447911123456",  # +44, but Guernsey
        "+33612345678",  # a valid French mobile, France not allowed
        "+16705550123",  # +1, but the Northern Mariana Islands
        "+1201555012",  # one digit short
        "+1201abc0123",  # keypad letters: libphonenumber alone would read 2220123
        "+12015550123;ext=5",
        "tel:+12015550123",
        "+1201555\u0660\u0661\u0662\u0663",  # Arabic-Indic digits, which libphonenumber reads
    ],
)
def test_numbers_that_cost_or_cannot_receive_an_sms_are_refused(raw):
    assert normalize_phone(raw) is None


def test_the_allowlist_follows_the_setting(settings):
    assert settings.SMS_ALLOWED_COUNTRIES == ["US", "CA", "GB"]
    settings.SMS_ALLOWED_COUNTRIES = ["FR"]

    assert normalize_phone("+33612345678") == "+33612345678"
    assert normalize_phone("+12015550123") is None
    assert "from FR" in accepted()


def test_calling_code():
    assert calling_code("+12015550123") == "1"
    assert calling_code("+447400123456") == "44"


def _django_setup(**env_overrides):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env_overrides}
    code = "import django; django.setup(); from django.conf import settings as s;"
    code += " print(s.SMS_ALLOWED_COUNTRIES)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=WEB, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("value", ["US,XX", "USA", ",", "US,ca,uk"])
def test_an_unknown_country_in_the_setting_stops_the_start(value):
    done = _django_setup(SMS_ALLOWED_COUNTRIES=value)

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "SMS_ALLOWED_COUNTRIES" in done.stderr


def test_the_setting_takes_lower_case_codes():
    done = _django_setup(SMS_ALLOWED_COUNTRIES="us,ca")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['US', 'CA']"


@pytest.mark.parametrize("value", ["0", "100", "150"])
def test_an_alarm_share_outside_1_to_99_stops_the_start(value):
    done = _django_setup(SMS_GLOBAL_ALARM_PERCENT=value)

    assert done.returncode != 0
    assert "SMS_GLOBAL_ALARM_PERCENT" in done.stderr


def test_the_storm_phones_are_distinct_and_accepted():
    """The harnesses log in thousands of buyers: each must get a code under the default rules."""
    span = storm.PHONES
    sample = [*range(0, 20_000, 7), *range(span - 500, span)]
    phones = [storm.phone(n) for n in sample]

    assert len(set(phones)) == len(phones)
    assert all(normalize_phone(p) == p for p in phones), [
        p for p in phones if normalize_phone(p) != p
    ]
    with pytest.raises(ValueError):
        storm.phone(span)


def test_every_storm_area_code_is_a_us_one():
    for area in storm.AREA_CODES:
        number = phonenumbers.parse(f"+1{area}5550000")
        assert phonenumbers.region_code_for_number(number) == "US", area
