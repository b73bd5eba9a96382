"""The API's logged-in user: Django's session, as the pages have it.

CSRF stays with CsrfViewMiddleware for every API view (config/api.py gives ninja's views back to
it), so ninja's own CSRF check on the cookie would only repeat it.
"""

from ninja.security import SessionAuth

session_user = SessionAuth(csrf=False)
