"""Signals sent by qbuy; receivers live in receivers.py.

Django 4.0 removed ``providing_args``; the arguments are documented here instead.
"""

from django.dispatch import Signal

# A new SMS verification code was issued.
# Sent with: sender (the view or service class), path (the request path), phone, code, and
# ip (the requesting address: the code's owner, whose wrong guesses alone can kill it).
sms_code_issued = Signal()
