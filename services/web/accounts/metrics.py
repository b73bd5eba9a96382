"""SMS codes sent and refused, by reason: the SMS bill and the limits at work (qbuy_core.metrics
serves them)."""

from prometheus_client import Counter

SMS_CODES = Counter(
    "qbuy_sms_codes",
    "SMS code requests: sent, or refused with the limit or failure that refused them.",
    ["result", "reason"],
)


def sms_sent() -> None:
    SMS_CODES.labels("sent", "").inc()


def sms_refused(reason: str) -> None:
    SMS_CODES.labels("refused", reason).inc()
