"""Properties of normalize_phone over generated input (hypothesis): whatever a client types,
the answer is None or a number an SMS may be sent to, and the usual ways of writing a valid
number all come back to the same E.164."""

import re
import unicodedata

import phonenumbers
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from accounts.phone import normalize_phone

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# What the module promises to strip; other characters are not separators.
SEPARATORS = st.sampled_from([" ", "  ", "\t", "(", ")", ".", "-"])
ASCII_DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=16)
CALLING_CODES = st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
OTHER_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: c not in "0123456789")


NOT_SMS_TYPES = [t for t in vars(PhoneNumberType).values() if isinstance(t, int)]
NOT_SMS_TYPES = [t for t in NOT_SMS_TYPES if t not in SMS_TYPES]


def _with_example(pairs) -> list[tuple[str, int]]:
    """The pairs whose example number is of that region: the Isle of Man's example mobile,
    for one, is a number libphonenumber gives to GB."""
    out = []
    for region, kind in pairs:
        example = phonenumbers.example_number_for_type(region, kind)
        if example and phonenumbers.region_code_for_number(example) == region:
            out.append((region, kind))
    return out


# Read when drawn, once Django's settings are loaded: (region, number type) to generate.
def allowed_mobiles() -> list[tuple[str, int]]:
    return _with_example((r, PhoneNumberType.MOBILE) for r in settings.SMS_ALLOWED_COUNTRIES)


def other_regions_mobiles() -> list[tuple[str, int]]:
    others = sorted(phonenumbers.SUPPORTED_REGIONS - set(settings.SMS_ALLOWED_COUNTRIES))
    return _with_example((r, PhoneNumberType.MOBILE) for r in others)


def allowed_regions_other_types() -> list[tuple[str, int]]:
    """Landlines (where they can be told apart), toll-free, premium rate, VoIP, pagers..."""
    pairs = _with_example((r, t) for r in settings.SMS_ALLOWED_COUNTRIES for t in NOT_SMS_TYPES)
    # A US example landline is FIXED_LINE_OR_MOBILE, which may receive SMS.
    return [
        (r, t)
        for r, t in pairs
        if phonenumbers.number_type(phonenumbers.example_number_for_type(r, t)) not in SMS_TYPES
    ]


@st.composite
def valid_numbers(draw, kinds=allowed_mobiles) -> str:
    """A valid E.164 number of one of ``kinds()``: the example number libphonenumber has for
    that region and type, with its last digits drawn where the result stays of that kind."""
    region, kind = draw(st.sampled_from(kinds()))
    example = phonenumbers.example_number_for_type(region, kind)
    national = str(example.national_number)
    tail = draw(st.text(alphabet="0123456789", min_size=3, max_size=3))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-3]}{tail}")
    same_kind = (
        phonenumbers.is_valid_number(number)
        and phonenumbers.number_type(number) == phonenumbers.number_type(example)
        and phonenumbers.region_code_for_number(number) == region
    )
    return phonenumbers.format_number(number if same_kind else example, PhoneNumberFormat.E164)


@st.composite
def separated(draw, text: str) -> str:
    """``text`` with separators drawn between (and around) its characters."""
    out = []
    for char in text:
        out.extend(draw(st.lists(SEPARATORS, max_size=2)))
        out.append(char)
    out.extend(draw(st.lists(SEPARATORS, max_size=2)))
    return "".join(out)


def e164_like() -> st.SearchStrategy[str]:
    """A plus, a real country calling code, then digits: mostly invalid, sometimes valid."""
    return st.builds(lambda cc, rest: f"+{cc}{rest}", CALLING_CODES, ASCII_DIGITS)


ANY_INPUT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("+0123456789 ().-\t")),
    ASCII_DIGITS.flatmap(separated),
    e164_like(),
    e164_like().flatmap(separated),
    valid_numbers(),
    valid_numbers().flatmap(separated),
)


def assert_sms_number(phone: str) -> None:
    assert E164.match(phone)
    number = phonenumbers.parse(phone)
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.number_type(number) in SMS_TYPES
    assert phonenumbers.region_code_for_number(number) in settings.SMS_ALLOWED_COUNTRIES
    assert phonenumbers.format_number(number, PhoneNumberFormat.E164) == phone


@given(ANY_INPUT)
def test_any_input_gives_none_or_a_number_that_may_receive_a_code(raw):
    phone = normalize_phone(raw)
    if phone is not None:
        assert_sms_number(phone)


@given(ANY_INPUT)
def test_normalising_twice_changes_nothing(raw):
    phone = normalize_phone(raw)
    assert normalize_phone(phone) == phone


@given(
    st.one_of(e164_like(), valid_numbers()).flatmap(lambda s: st.tuples(st.just(s), separated(s)))
)
def test_separators_do_not_change_the_result(pair):
    plain, with_separators = pair
    assert normalize_phone(with_separators) == normalize_phone(plain)


@given(valid_numbers(), st.sampled_from([PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL]))
def test_a_valid_number_written_in_international_formats_normalises_to_its_e164(phone, fmt):
    formatted = phonenumbers.format_number(phonenumbers.parse(phone), fmt)
    assert normalize_phone(formatted) == phone


@given(valid_numbers(), st.sampled_from([PhoneNumberFormat.NATIONAL, PhoneNumberFormat.RFC3966]))
def test_a_number_without_a_plain_country_code_is_refused(phone, fmt):
    # National numbers are ambiguous across countries; tel: URIs carry extensions and params.
    formatted = phonenumbers.format_number(phonenumbers.parse(phone), fmt)
    assert normalize_phone(formatted) is None


@given(
    valid_numbers(),
    st.integers(min_value=1, max_value=15),
    st.one_of(
        st.characters(categories=["L"]),  # libphonenumber would read letters as keypad digits
        OTHER_DIGITS,
        st.sampled_from(["#", "*", ";", ",", "x", "/", "+"]),
    ),
)
def test_a_valid_number_with_a_foreign_character_is_refused(phone, at, char):
    assert normalize_phone(phone[:at] + char + phone[at:]) is None


@given(valid_numbers(kinds=other_regions_mobiles))
def test_a_mobile_number_of_a_region_not_served_is_refused(phone):
    assert normalize_phone(phone) is None


@given(valid_numbers(kinds=allowed_regions_other_types))
def test_a_number_that_cannot_receive_sms_is_refused(phone):
    assert normalize_phone(phone) is None


@given(valid_numbers(), st.data())
def test_a_digit_written_in_another_script_is_refused(phone, data):
    # libphonenumber reads fullwidth and Arabic-Indic digits as the same digit; E.164 does not.
    at = data.draw(st.integers(min_value=1, max_value=len(phone) - 1))
    other = data.draw(OTHER_DIGITS)
    # Unicode keeps each script's digits 0-9 in ten consecutive code points.
    zero = ord(other) - unicodedata.digit(other)
    assert normalize_phone(phone[:at] + chr(zero + int(phone[at])) + phone[at + 1 :]) is None
