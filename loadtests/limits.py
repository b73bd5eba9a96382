"""The one way the harnesses raise qbuy's rate limits: settings, never edited files.

Every storm comes from one address (loopback, or the Docker bridge's gateway), so the
per-address limits of Django (SMS codes) and nginx (codes, buys) would refuse the generator
long before the stack is loaded. The native harnesses (loadtests/rig.py users, the storm tests)
put RAISED_LIMITS in their environment; `python -m loadtests.limits` prints them as an env file
for the container suite (scripts/test-stack.sh).
"""

RAISED_LIMITS = {
    "SMS_IP_HOURLY_LIMIT": "1000000",
    "SMS_PHONE_INTERVAL": "1",
    # Thousands of +1 phones in minutes, some asking again after a lost answer.
    "SMS_PHONE_DAILY_LIMIT": "1000000",
    "SMS_PREFIX_HOURLY_LIMIT": "1000000",
    "SMS_GLOBAL_HOURLY_LIMIT": "1000000",
    "NGINX_CODE_RATE": "100000r/s",
    "NGINX_CODE_BURST": "100000",
    "LOGIN_IP_HOURLY_FAILURES": "1000000",
    "NGINX_LOGIN_RATE": "100000r/s",
    "NGINX_LOGIN_BURST": "100000",
    "NGINX_BUY_RATE": "100000r/s",
    "NGINX_BUY_BURST": "100000",
    # Every buyer joins a sale's waiting room from the same address.
    "WAITING_ROOM_JOINS_PER_MINUTE": "1000000",
}

if __name__ == "__main__":
    print("".join(f"{name}={value}\n" for name, value in RAISED_LIMITS.items()), end="")
