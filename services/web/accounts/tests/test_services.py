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

from accounts import services
from qbuy_core import code_store, sms
from qbuy_core.signals import sms_code_issued

PHONE = "+15551234567"
OTHER_PHONE = "+15559876543"
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
    phone = services.sms_code_request(phone="+1 (555) 123-4567", ip=IP, path="/test/")

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
        code = issue(phone=f"+1555000000{n}")
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
    codes = {issue(phone=f"+1555000000{n}") for n in range(5)}
    # Five 6-digit codes colliding down to one would mean no randomness at all.
    assert len(codes) > 1


@pytest.mark.parametrize(
    "phone",
    [
        "",
        "15551234567",  # no plus
        "+0155512345",  # country code starting with 0
        "+155512",  # too short
        "+1555123456789012",  # 16 digits: longer than E.164 allows
        "+1555abc4567",
        "not a phone",
        "+\uff11\uff15\uff15\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth
        "+1555\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # Arabic-Indic digits
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


@pytest.mark.parametrize("phone", ["", "12345", "+1555abc4567"])
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
        services.sms_code_request(phone="+1 555 123 4567", ip=OTHER_IP, path="/test/")

    assert 0 < exc.value.retry_after <= settings.SMS_PHONE_INTERVAL == 60
    assert len(sms.outbox) == 1
    assert caches["codes"].get(code_key()) == code  # the first code is still the live one


def test_phone_limit_does_not_affect_other_phones():
    issue(phone=PHONE)

    assert issue(phone=OTHER_PHONE)
    assert {m["phone"] for m in sms.outbox} == {PHONE, OTHER_PHONE}


def test_ip_hourly_limit(settings, issued_signals):
    settings.SMS_IP_HOURLY_LIMIT = 2
    issue(phone="+15550000001", ip=IP)
    issue(phone="+15550000002", ip=IP)

    with pytest.raises(services.RateLimited) as exc:
        services.sms_code_request(phone="+15550000003", ip=IP, path="/test/")

    assert 0 < exc.value.retry_after <= 3600
    assert len(sms.outbox) == 2
    assert len(issued_signals) == 2
    assert caches["codes"].get(code_key("+15550000003")) is None
    # Another address has its own budget.
    issue(phone="+15550000003", ip=OTHER_IP)


# --- the sms_code_issued signal ---------------------------------------------------------------


def test_signal_is_sent_with_sender_path_phone_and_code(issued_signals):
    def some_view():
        pass

    services.sms_code_request(phone="+1 555 123 4567", ip=IP, path="/login/", sender=some_view)

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
