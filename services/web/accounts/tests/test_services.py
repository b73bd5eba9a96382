"""Phone login services: issuing SMS codes under rate limits, and turning a code into a user."""

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache
from prometheus_client import REGISTRY

from accounts import services
from accounts.ratelimit import Limit
from qbuy_core import code_store, sms
from qbuy_core.signals import sms_code_issued

PHONE = "+12015550123"
OTHER_PHONE = "+12015559876"
IP = "203.0.113.7"
OTHER_IP = "198.51.100.9"

User = get_user_model()


def issue(phone=PHONE, ip=IP) -> str:
    """Request a code through the service and return it as the SMS carried it."""
    before = len(sms.outbox)
    services.sms_code_request(phone=phone, ip=ip, path="/test/")
    assert len(sms.outbox) == before + 1
    return sms.outbox[-1]["code"]


def wrong_for(code: str) -> str:
    """A code of the same length that is certainly not ``code``."""
    return "".join("1" if c == "0" else "0" for c in code)


def code_key(phone=PHONE) -> str:
    return f"sms:code:{phone}"


@pytest.fixture
def issued_signals():
    """Record every sms_code_issued sent while the test runs."""
    calls = []

    def receiver(sender, **kwargs):
        calls.append({"sender": sender, **kwargs})

    sms_code_issued.connect(receiver, dispatch_uid="test_services.issued_signals")
    try:
        yield calls
    finally:
        assert sms_code_issued.disconnect(dispatch_uid="test_services.issued_signals")


# --- issuing codes ----------------------------------------------------------------------------


def test_request_normalises_phone_and_sends_one_sms():
    phone = services.sms_code_request(phone="+1 (201) 555-0123", ip=IP, path="/test/")

    assert phone == PHONE
    assert len(sms.outbox) == 1
    message = sms.outbox[0]
    assert message["phone"] == PHONE
    assert message["code"] in message["text"]
    assert "expires in 5 minutes" in message["text"]


def test_tests_use_the_locmem_backend(settings):
    assert settings.SMS_BACKEND == "locmem"
    assert isinstance(sms.get_backend(), sms.LocmemSmsBackend)


def test_code_has_six_digits_by_default(settings):
    assert settings.SMS_CODE_LENGTH == 6
    for n in range(5):
        code = issue(phone=f"+120155500{n:02d}")
        assert re.fullmatch(r"[0-9]{6}", code), code


@pytest.mark.parametrize("length", [4, 8, 10])
def test_code_length_follows_setting(settings, length):
    settings.SMS_CODE_LENGTH = length

    code = issue()

    assert re.fullmatch(rf"[0-9]{{{length}}}", code), code
    assert caches["codes"].get(code_key()) == code


def test_generate_code_uses_ascii_digits_only():
    code = services.generate_code(500)

    assert len(code) == 500
    assert set(code) <= set("0123456789")
    assert len(set(code)) > 1  # random, not a constant


def test_codes_differ_between_phones():
    codes = {issue(phone=f"+120155500{n:02d}") for n in range(5)}
    # Five 6-digit codes colliding down to one would mean no randomness at all.
    assert len(codes) > 1


@pytest.mark.parametrize(
    "phone",
    [
        "",
        "12015550123",  # no plus
        "+0155512345",  # country code starting with 0
        "+155512",  # too short
        "+1201555012345678",  # 16 digits: longer than E.164 allows
        "+1201abc0123",  # libphonenumber alone reads letters as keypad digits
        "+12015550123x5",  # or an extension
        "tel:+12015550123",
        "not a phone",
        "+\uff11\uff12\uff10\uff11\uff15\uff15\uff15\uff10\uff11\uff12\uff13",  # fullwidth
        "+1201555\u0660\u0661\u0662\u0663",  # Arabic-Indic digits
        "+15551234567",  # unassigned area code 555
        "+19005550100",  # premium rate
        "+18005550100",  # toll free
        "+15005550100",  # personal number (500)
        "+88299999999",  # non-geographic (international networks)
        "+442071234567",  # a GB landline: no SMS
        "+33612345678",  # a French mobile: France is not in SMS_ALLOWED_COUNTRIES
        "+16705550123",  # +1, but the Northern Mariana Islands
    ],
)
def test_request_rejects_invalid_phone(phone, issued_signals):
    with pytest.raises(services.InvalidPhone):
        services.sms_code_request(phone=phone, ip=IP, path="/test/")

    assert sms.outbox == []
    assert issued_signals == []


# --- where codes live ---------------------------------------------------------------------------


def test_code_is_stored_in_the_codes_redis_cache_with_ttl(settings):
    code = issue()

    cache = caches[settings.SMS_CODE_CACHE]
    assert settings.SMS_CODE_CACHE == "codes"
    assert isinstance(cache, RedisCache)  # shared by all web processes, errors not ignored
    assert cache.get(code_key()) == code
    assert 0 < cache.ttl(code_key()) <= settings.SMS_CODE_TTL
    assert 0 < cache.ttl(f"sms:tries:{PHONE}") <= settings.SMS_CODE_TTL
    assert cache.get(f"sms:owner:{PHONE}") == IP  # the address that asked for it
    assert caches["default"].get(code_key()) is None


def test_code_store_ttl_follows_setting(settings):
    settings.SMS_CODE_TTL = 42

    code_store.save(phone=PHONE, code="123456")

    assert 0 < caches["codes"].ttl(code_key()) <= 42


def test_new_code_replaces_the_previous_one(db, settings):
    settings.SMS_PHONE_INTERVAL = 0  # allow an immediate resend
    settings.SMS_CODE_LENGTH = 12  # two equal codes would make this test meaningless
    first = issue()
    second = issue()
    assert first != second

    with pytest.raises(services.InvalidCode):
        services.sms_code_login(phone=PHONE, code=first, ip=IP)
    assert services.sms_code_login(phone=PHONE, code=second, ip=IP).phone == PHONE


# --- logging in -------------------------------------------------------------------------------


def login(phone=PHONE, code="123456", ip=IP):
    return services.sms_code_login(phone=phone, code=code, ip=ip)


def test_right_code_creates_user_with_unusable_password(db):
    code = issue()

    user = login(code=code)

    assert user.pk is not None
    assert user.phone == PHONE
    assert not user.has_usable_password()
    assert User.objects.filter(phone=PHONE).count() == 1


def test_login_accepts_formatted_phone_and_padded_code(db):
    code = issue()

    formatted = f"{PHONE[:2]} {PHONE[2:5]}-{PHONE[5:8]}-{PHONE[8:]}"  # +1 201-555-0123

    user = login(phone=formatted, code=f"  {code}\n")

    assert user.phone == PHONE


def test_existing_user_is_reused(db, buyer):
    code_store.save(phone=buyer.phone, code="123456", owner=IP)

    user = login(phone=buyer.phone)

    assert user.pk == buyer.pk
    assert User.objects.count() == 1


def test_inactive_user_cannot_log_in(db, buyer):
    buyer.is_active = False
    buyer.save()
    code_store.save(phone=buyer.phone, code="123456", owner=IP)

    with pytest.raises(services.InvalidCode):
        login(phone=buyer.phone)


def test_code_is_single_use(db):
    code = issue()
    login(code=code)

    with pytest.raises(services.InvalidCode):
        login(code=code)
    assert caches["codes"].get(code_key()) is None


def test_never_issued_code_is_invalid(db):
    with pytest.raises(services.InvalidCode):
        login()
    assert not User.objects.exists()


def test_code_is_bound_to_its_phone(db):
    code = issue(phone=PHONE)

    with pytest.raises(services.InvalidCode):
        login(phone=OTHER_PHONE, code=code)
    assert login(code=code).phone == PHONE


@pytest.mark.parametrize("phone", ["", "12345", "+1201abc0123"])
def test_login_rejects_invalid_phone(db, phone):
    with pytest.raises(services.InvalidPhone):
        login(phone=phone)


def test_owners_wrong_codes_kill_the_code_after_max_attempts(db, settings):
    assert settings.SMS_CODE_MAX_ATTEMPTS == 5
    code = issue()

    for _ in range(5):
        with pytest.raises(services.InvalidCode):
            login(code=wrong_for(code))

    assert caches["codes"].get(code_key()) is None
    with pytest.raises(services.InvalidCode):
        login(code=code)
    assert not User.objects.exists()


def test_right_code_still_works_after_four_wrong_tries(db):
    code = issue()
    for _ in range(4):
        with pytest.raises(services.InvalidCode):
            login(code=wrong_for(code))

    assert login(code=code).phone == PHONE


def test_max_attempts_follows_setting(db, settings):
    settings.SMS_CODE_MAX_ATTEMPTS = 2
    code = issue()

    for _ in range(2):
        with pytest.raises(services.InvalidCode):
            login(code=wrong_for(code))

    with pytest.raises(services.InvalidCode):
        login(code=code)


def test_wrong_code_of_other_length_counts_as_a_try(db):
    code = issue()

    with pytest.raises(services.InvalidCode):
        login(code=code + "0")

    assert caches["codes"].get(f"sms:tries:{PHONE}") == 1


def test_code_expires_after_ttl(db, settings):
    settings.SMS_CODE_TTL = 1
    code = issue()
    assert caches["codes"].get(code_key()) == code

    time.sleep(1.5)

    assert caches["codes"].get(code_key()) is None
    with pytest.raises(services.InvalidCode):
        login(code=code)


@pytest.mark.parametrize("counted", [True, False])
def test_racing_checks_with_the_right_code_succeed_once(counted):
    code_store.save(phone=PHONE, code="123456", owner=IP)
    racers = 5  # no more than SMS_CODE_MAX_ATTEMPTS: every racer has a try left
    barrier = threading.Barrier(racers)

    def attempt(_):
        barrier.wait()
        return code_store.check(phone=PHONE, code="123456", counted=counted)

    with ThreadPoolExecutor(racers) as pool:
        verdicts = list(pool.map(attempt, range(racers)))

    assert verdicts.count(code_store.Verdict.OK) == 1
    assert verdicts.count(code_store.Verdict.DEAD) == racers - 1


# --- rate limits ------------------------------------------------------------------------------


def test_second_code_for_same_phone_within_interval_is_rate_limited(settings):
    code = issue()

    with pytest.raises(services.RateLimited) as exc:
        # A different spelling of the same number is the same phone.
        services.sms_code_request(phone="+1 201 555 0123", ip=OTHER_IP, path="/test/")

    assert 0 < exc.value.retry_after <= settings.SMS_PHONE_INTERVAL == 60
    assert len(sms.outbox) == 1
    assert caches["codes"].get(code_key()) == code  # the first code is still the live one


def test_each_code_request_is_counted_for_prometheus_by_what_refused_it(settings):
    """qbuy_sms_codes_total: sent, or refused with the name of the limit that refused."""
    settings.SMS_IP_HOURLY_LIMIT = 1

    def counted(result, reason):
        labels = {"result": result, "reason": reason}
        return REGISTRY.get_sample_value("qbuy_sms_codes_total", labels) or 0

    before = {
        key: counted(*key)
        for key in [("sent", ""), ("refused", "sms-phone-interval"), ("refused", "sms-ip")]
    }
    issue(phone=PHONE, ip=IP)
    for phone, ip in (
        (PHONE, OTHER_IP),
        (OTHER_PHONE, IP),
    ):  # the phone's minute; the address's hour
        with pytest.raises(services.RateLimited):
            services.sms_code_request(phone=phone, ip=ip, path="/test/")

    assert {key: counted(*key) - n for key, n in before.items()} == {
        ("sent", ""): 1,
        ("refused", "sms-phone-interval"): 1,
        ("refused", "sms-ip"): 1,
    }


def test_phone_limit_does_not_affect_other_phones():
    issue(phone=PHONE)

    assert issue(phone=OTHER_PHONE)
    assert {m["phone"] for m in sms.outbox} == {PHONE, OTHER_PHONE}


def test_ip_hourly_limit(settings, issued_signals):
    settings.SMS_IP_HOURLY_LIMIT = 2
    issue(phone="+12015550001", ip=IP)
    issue(phone="+12015550002", ip=IP)

    with pytest.raises(services.RateLimited) as exc:
        services.sms_code_request(phone="+12015550003", ip=IP, path="/test/")

    assert 0 < exc.value.retry_after <= 3600
    assert len(sms.outbox) == 2
    assert len(issued_signals) == 2
    assert caches["codes"].get(code_key("+12015550003")) is None
    # Another address has its own budget.
    issue(phone="+12015550003", ip=OTHER_IP)


# --- caps per phone per day, per country prefix and for the whole site -----------------------

US_PHONES = [f"+120155501{n:02d}" for n in range(100)]
CA_PHONE = "+16135550123"
GB_PHONE = "+447400123456"


def spent(name: str, ident: str, window: int = 3600) -> int:
    """How much of a limit's current window is spent (the limit's count does not matter)."""
    return Limit(name, 1, window).count(ident)


def seconds_to_utc_midnight() -> int:
    return 86400 - int(time.time()) % 86400


def test_phone_daily_limit(settings, issued_signals):
    settings.SMS_PHONE_INTERVAL = 0  # only the daily cap binds
    settings.SMS_PHONE_DAILY_LIMIT = 3
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        issue(ip=ip)

    # From yet another address, and spelled differently: still the same phone.
    with pytest.raises(services.RateLimited) as refused:
        services.sms_code_request(phone="+1 201 555 0123", ip=OTHER_IP, path="/test/")

    assert abs(refused.value.retry_after - seconds_to_utc_midnight()) <= 1  # a UTC day
    assert len(issued_signals) == 3
    issue(phone=OTHER_PHONE)  # another phone has its own day


def test_codes_per_phone_per_day_follow_from_the_limits(settings):
    """The figure: codes one phone can get in a UTC day is min(daily cap, 86400 / interval)."""
    assert (settings.SMS_PHONE_DAILY_LIMIT, settings.SMS_PHONE_INTERVAL) == (5, 60)
    assert min(settings.SMS_PHONE_DAILY_LIMIT, 86400 // settings.SMS_PHONE_INTERVAL) == 5

    # Lowered so the daily cap binds and the test runs in seconds: ask until refused for the day.
    settings.SMS_PHONE_INTERVAL = 1
    expected = min(settings.SMS_PHONE_DAILY_LIMIT, 86400 // settings.SMS_PHONE_INTERVAL)
    sent = 0
    for _ in range(expected + 3):
        try:
            services.sms_code_request(phone=PHONE, ip=IP, path="/test/")
        except services.RateLimited as refused:
            if refused.retry_after > settings.SMS_PHONE_INTERVAL:
                break  # the day's cap (or, a second before midnight, a day about to end)
        else:
            sent += 1
        time.sleep(settings.SMS_PHONE_INTERVAL + 0.05)

    assert sent == expected == 5
    assert [m["phone"] for m in sms.outbox] == [PHONE] * 5


def test_prefix_hourly_limit(settings):
    settings.SMS_PREFIX_HOURLY_LIMIT = 2
    issue(phone=US_PHONES[0])
    issue(phone=US_PHONES[1])

    # Canada shares +1: the prefix, not the country, is what an SMS pumper picks.
    with pytest.raises(services.RateLimited) as refused:
        services.sms_code_request(phone=CA_PHONE, ip=OTHER_IP, path="/test/")

    assert 0 < refused.value.retry_after <= 3600
    assert issue(phone=GB_PHONE, ip=OTHER_IP)  # +44 has its own budget
    assert (spent("sms-prefix", "1"), spent("sms-prefix", "44")) == (2, 1)


def test_global_hourly_limit(settings):
    settings.SMS_GLOBAL_HOURLY_LIMIT = 3
    issue(phone=US_PHONES[0], ip="192.0.2.1")
    issue(phone=CA_PHONE, ip="192.0.2.2")
    issue(phone=GB_PHONE, ip="192.0.2.3")

    with pytest.raises(services.RateLimited) as refused:
        services.sms_code_request(phone=US_PHONES[1], ip="192.0.2.4", path="/test/")

    assert 0 < refused.value.retry_after <= 3600
    assert len(sms.outbox) == 3


def alarms(caplog):
    return [r for r in caplog.records if r.name == "qbuy.sms" and r.levelno >= logging.ERROR]


def test_global_alarm_is_one_error_line_before_the_budget_is_gone(settings, caplog):
    settings.SMS_GLOBAL_HOURLY_LIMIT = 5
    settings.SMS_GLOBAL_ALARM_PERCENT = 60  # the alarm at the 3rd code of 5
    caplog.set_level(logging.INFO, logger="qbuy.sms")
    issue(phone=US_PHONES[0])
    issue(phone=US_PHONES[1])
    assert alarms(caplog) == []

    issue(phone=US_PHONES[2])

    (alarm,) = alarms(caplog)
    assert alarm.levelno == logging.ERROR
    assert "3 of the 5 codes" in alarm.getMessage()
    assert "SMS_GLOBAL_HOURLY_LIMIT" in alarm.getMessage()
    # Once per window: not again for the rest of the budget, nor for the refusals after it.
    issue(phone=US_PHONES[3])
    issue(phone=US_PHONES[4])
    for phone in US_PHONES[5:8]:
        with pytest.raises(services.RateLimited):
            services.sms_code_request(phone=phone, ip=IP, path="/test/")
    assert len(alarms(caplog)) == 1


def test_global_alarm_share_follows_setting(settings, caplog):
    settings.SMS_GLOBAL_HOURLY_LIMIT = 10
    caplog.set_level(logging.INFO, logger="qbuy.sms")
    assert settings.SMS_GLOBAL_ALARM_PERCENT == 80

    for n, phone in enumerate(US_PHONES[:8], start=1):
        issue(phone=phone)
        assert len(alarms(caplog)) == (1 if n == 8 else 0), n


def test_requests_refused_by_their_own_limits_spend_no_shared_budget(settings):
    """An attacker's refused requests (his address spent, his victim's phone waiting) must not
    eat the prefix or site budget: else they would deny everyone's login."""
    settings.SMS_IP_HOURLY_LIMIT = 1
    settings.SMS_GLOBAL_HOURLY_LIMIT = 3
    settings.SMS_PREFIX_HOURLY_LIMIT = 3
    issue(phone=PHONE, ip=IP)

    for phone in US_PHONES[:20]:  # the attacker's address is spent
        with pytest.raises(services.RateLimited):
            services.sms_code_request(phone=phone, ip=IP, path="/test/")
    for n in range(20):  # the victim's phone is in its interval, whatever the address
        with pytest.raises(services.RateLimited):
            services.sms_code_request(phone=PHONE, ip=f"198.51.100.{n}", path="/test/")

    assert (spent("sms-global", "all"), spent("sms-prefix", "1")) == (1, 1)
    assert spent("sms-ip", "198.51.100.0") == 0  # a refusal spends nobody's budget
    issue(phone=OTHER_PHONE, ip=OTHER_IP)  # everyone else still gets codes
    issue(phone=GB_PHONE, ip="192.0.2.9")


def test_a_day_capped_phone_spends_no_shared_budget(settings):
    settings.SMS_PHONE_INTERVAL = 0
    settings.SMS_PHONE_DAILY_LIMIT = 1
    issue()

    for n in range(10):
        with pytest.raises(services.RateLimited):
            services.sms_code_request(phone=PHONE, ip=f"198.51.100.{n}", path="/test/")

    assert (spent("sms-global", "all"), spent("sms-prefix", "1")) == (1, 1)


def test_a_prefix_refusal_spends_no_site_budget(settings):
    settings.SMS_PREFIX_HOURLY_LIMIT = 1
    issue(phone=US_PHONES[0])

    for phone in US_PHONES[1:11]:
        with pytest.raises(services.RateLimited):
            services.sms_code_request(phone=phone, ip=OTHER_IP, path="/test/")

    assert spent("sms-global", "all") == 1
    assert spent("sms-phone-day", US_PHONES[1], window=86400) == 0


def racing(requests: list[tuple[str, str]]) -> list[bool]:
    """Send the (phone, ip) requests at once; True for each code sent."""
    barrier = threading.Barrier(len(requests))

    def send(request):
        phone, ip = request
        barrier.wait()
        try:
            services.sms_code_request(phone=phone, ip=ip, path="/test/")
            return True
        except services.RateLimited:
            return False

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def test_racing_requests_from_one_address_send_its_limit_and_spend_only_that(settings):
    settings.SMS_IP_HOURLY_LIMIT = 5

    sent = racing([(phone, IP) for phone in US_PHONES[:16]])

    assert sent.count(True) == len(sms.outbox) == 5
    assert (spent("sms-global", "all"), spent("sms-prefix", "1")) == (5, 5)


def test_racing_requests_for_one_phone_send_one_code(settings):
    sent = racing([(PHONE, f"198.51.100.{n}") for n in range(12)])

    assert sent.count(True) == len(sms.outbox) == 1
    assert spent("sms-phone-day", PHONE, window=86400) == 1
    assert (spent("sms-global", "all"), spent("sms-prefix", "1")) == (1, 1)


# --- the sms_code_issued signal ---------------------------------------------------------------


def test_signal_is_sent_with_sender_path_phone_and_code(issued_signals):
    def some_view():
        pass

    services.sms_code_request(phone="+1 201 555 0123", ip=IP, path="/login/", sender=some_view)

    assert len(issued_signals) == 1
    call = issued_signals[0]
    assert call["sender"] is some_view
    assert call["path"] == "/login/"
    assert call["phone"] == PHONE
    assert call["code"] == sms.outbox[0]["code"]
    assert caches["codes"].get(code_key()) == call["code"]


def test_signal_sender_defaults_to_the_service(issued_signals):
    services.sms_code_request(phone=PHONE, ip=IP, path="/api/auth/code")

    assert [c["sender"] for c in issued_signals] == [services.sms_code_request]


def test_signal_is_not_sent_when_rate_limited(issued_signals):
    issue()
    with pytest.raises(services.RateLimited):
        services.sms_code_request(phone=PHONE, ip=IP, path="/test/")

    assert len(issued_signals) == 1


def test_temporary_receiver_is_gone_after_disconnect():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    sms_code_issued.connect(receiver)
    try:
        issue(phone=PHONE)
    finally:
        assert sms_code_issued.disconnect(receiver)
    issue(phone=OTHER_PHONE)

    assert [c["phone"] for c in calls] == [PHONE]


# --- SMS backends -----------------------------------------------------------------------------


def test_file_backend_writes_one_json_line(settings, tmp_path):
    path = tmp_path / "sms.jsonl"
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(path)

    services.sms_code_request(phone=PHONE, ip=IP, path="/test/")

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == {"phone", "code", "sent_at"}
    assert record["phone"] == PHONE
    assert record["code"] == caches["codes"].get(code_key())
    assert datetime.fromisoformat(record["sent_at"]).utcoffset() is not None
    assert sms.outbox == []


def test_file_backend_appends(settings, tmp_path):
    path = tmp_path / "sms.jsonl"
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(path)

    services.sms_code_request(phone=PHONE, ip=IP, path="/test/")
    services.sms_code_request(phone=OTHER_PHONE, ip=IP, path="/test/")

    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["phone"] for r in records] == [PHONE, OTHER_PHONE]


def test_file_backend_needs_a_path(settings):
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = ""

    with pytest.raises(ImproperlyConfigured, match="SMS_FILE_PATH"):
        sms.get_backend()


def test_console_backend_logs_the_message(settings, caplog):
    settings.SMS_BACKEND = "console"
    caplog.set_level(logging.INFO, logger="qbuy.sms")

    services.sms_code_request(phone=PHONE, ip=IP, path="/test/")

    code = caches["codes"].get(code_key())
    records = [r for r in caplog.records if r.name == "qbuy.sms"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert PHONE in records[0].getMessage()
    assert f"Your qbuy code is {code}." in records[0].getMessage()
    assert sms.outbox == []


def test_dotted_path_backend(settings):
    settings.SMS_BACKEND = "qbuy_core.sms.LocmemSmsBackend"

    code = issue()

    assert sms.outbox[0]["code"] == code


@pytest.mark.parametrize(
    "name", ["carrier-pigeon", "qbuy_core.sms.NoSuchBackend", "no_such_module.SmsBackend"]
)
def test_unknown_backend_is_improperly_configured(settings, name):
    settings.SMS_BACKEND = name

    with pytest.raises(ImproperlyConfigured, match="Unknown SMS_BACKEND"):
        sms.get_backend()
    with pytest.raises(ImproperlyConfigured):
        services.sms_code_request(phone=PHONE, ip=IP, path="/test/")
