"""Verifying codes against guessing, griefing and probing (issue 11).

The requester of a code owns it: only its wrong guesses count against the code. Anyone else's
guesses spend a per-phone daily budget that no new code resets; failures per address are
limited across phones; and the answer never tells whether a phone has a live code.
"""

import pytest
from django.core.cache import caches

from accounts import services
from qbuy_core import sms

PHONE = "+12015550123"
OTHER_PHONE = "+12015550124"
VICTIM_IP = "198.51.100.9"
ATTACKER_IP = "203.0.113.66"

pytestmark = pytest.mark.django_db


def issue(phone=PHONE, ip=VICTIM_IP) -> str:
    services.sms_code_request(phone=phone, ip=ip, path="/test/")
    return sms.outbox[-1]["code"]


def wrong_for(code: str) -> str:
    return "".join("1" if c == "0" else "0" for c in code)


def login(code, phone=PHONE, ip=VICTIM_IP):
    return services.sms_code_login(phone=phone, code=code, ip=ip)


def guess_until_refused(code, ip, phone=PHONE, most=1000) -> tuple[int, int]:
    """Wrong guesses from ``ip`` until a 429; returns (guesses answered, Retry-After)."""
    for n in range(most):
        try:
            login(code, phone=phone, ip=ip)
        except services.InvalidCode:
            continue
        except services.RateLimited as limited:
            return n, limited.retry_after
        pytest.fail("a wrong guess logged in")
    pytest.fail(f"{most} guesses from {ip} and never refused")


def test_victims_right_code_works_while_an_attacker_guesses(settings):
    """Lockout griefing: the attacker guesses from another address before the victim's code
    exists, while it is live, and past its budget; the victim's code still logs in."""
    for _ in range(20):  # nothing live: nothing to burn, nothing charged
        with pytest.raises(services.InvalidCode):
            login("000000", ip=ATTACKER_IP)
    code = issue()
    guessed, _ = guess_until_refused(wrong_for(code), ATTACKER_IP)
    assert guessed == settings.LOGIN_PHONE_DAILY_FAILURES > settings.SMS_CODE_MAX_ATTEMPTS

    assert login(code).phone == PHONE


def test_guesses_without_a_live_code_are_not_charged_to_the_phone(settings):
    settings.LOGIN_IP_HOURLY_FAILURES = 1000
    for _ in range(3 * settings.LOGIN_PHONE_DAILY_FAILURES):
        with pytest.raises(services.InvalidCode):
            login("123456", ip=ATTACKER_IP)
    code = issue()

    # The whole budget is still there once a code is live.
    assert guess_until_refused(wrong_for(code), ATTACKER_IP)[0] == (
        settings.LOGIN_PHONE_DAILY_FAILURES
    )


def test_no_live_code_wrong_code_and_dead_code_are_one_answer():
    answers = []
    for attempt in ("never sent", "wrong", "used"):
        if attempt == "wrong":
            code = wrong_for(issue())
        elif attempt == "used":
            code = issue(phone=OTHER_PHONE)
            login(code, phone=OTHER_PHONE)
        else:
            code = "123456"
        with pytest.raises(services.InvalidCode) as exc:
            login(code, phone=OTHER_PHONE if attempt == "used" else PHONE)
        answers.append((type(exc.value), exc.value.args))
    assert len(set(answers)) == 1


def test_the_phone_budget_is_a_cooldown_a_new_code_does_not_reset(settings):
    settings.SMS_PHONE_INTERVAL = 0
    code = issue()
    _, retry_after = guess_until_refused(wrong_for(code), ATTACKER_IP)
    assert 0 < retry_after <= 86400

    new_code = issue()
    # Still refused, from any other address, and whether or not the code is right: nothing
    # is compared once the budget is spent.
    for ip in (ATTACKER_IP, "203.0.113.67"):
        with pytest.raises(services.RateLimited):
            login(new_code, ip=ip)
    # Also when no code is live: a refusal only while one is live would tell that it is.
    login(new_code)
    with pytest.raises(services.RateLimited):
        login("123456", ip=ATTACKER_IP)


def test_strangers_guesses_never_kill_the_code_and_the_owners_do(settings):
    code = issue()
    settings.LOGIN_PHONE_DAILY_FAILURES = 100
    for _ in range(3 * settings.SMS_CODE_MAX_ATTEMPTS):
        with pytest.raises(services.InvalidCode):
            login(wrong_for(code), ip=ATTACKER_IP)
    assert caches["codes"].get(f"sms:code:{PHONE}") == code

    for _ in range(settings.SMS_CODE_MAX_ATTEMPTS):
        with pytest.raises(services.InvalidCode):
            login(wrong_for(code))  # the owner, who may mistype
    assert caches["codes"].get(f"sms:code:{PHONE}") is None


def test_a_right_code_from_another_address_logs_in():
    """Asked for on Wi-Fi, typed on mobile data: the owner's address is no requirement."""
    code = issue()

    assert login(code, ip="192.0.2.44").phone == PHONE


def test_guesses_per_phone_per_day_reach_the_figure_from_the_settings(settings):
    """The most guesses an attacker can make at one phone in a day, with any number of
    addresses: the strangers' budget, plus every code the phone can get that day guessed to
    death by its requester. Checked by guessing until each way is refused or dead."""
    settings.SMS_PHONE_INTERVAL = 0  # codes as fast as the daily limit allows
    figure = (
        settings.LOGIN_PHONE_DAILY_FAILURES
        + settings.SMS_CODE_MAX_ATTEMPTS * settings.SMS_PHONE_DAILY_LIMIT
    )
    assert figure == 35  # the defaults' figure, in SECURITY.md

    guesses = codes = 0
    for owner in (f"203.0.113.{n}" for n in range(100, 200)):  # an address per code
        try:
            code = issue(ip=owner)
        except services.RateLimited:
            break
        codes += 1
        if codes == 1:  # the strangers' budget, spent on any live code
            guesses += guess_until_refused(wrong_for(code), "203.0.113.1")[0]
        for _ in range(settings.SMS_CODE_MAX_ATTEMPTS):
            with pytest.raises(services.InvalidCode):
                login(wrong_for(code), ip=owner)
            guesses += 1
        # Dead: even the right code no longer logs in, for its owner or anyone else (with no
        # live code, everyone is a stranger, and the strangers' budget is spent).
        for ip in (owner, "203.0.113.2"):
            with pytest.raises(services.RateLimited):
                login(code, ip=ip)

    assert codes == settings.SMS_PHONE_DAILY_LIMIT
    assert guesses == figure
    print(f"\nguesses per phone per day: {guesses}; codes per phone per day: {codes}")
