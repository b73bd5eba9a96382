"""django-csp's middleware with the policy built once (issue 20).

django-csp builds the header anew for every response: two dataclass copies and a walk over the
directives, the costliest middleware on a cached page's hit. qbuy's policy is one setting, with
no nonce and no per-view decorator, so the header is the same string for every response and is
built once, at start-up. A response that asks for more (a ``csp`` decorator, a nonce read in a
template, an excluded prefix, DEBUG's error pages) gets django-csp's own handling, unchanged.
"""

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings

# What the csp decorators set on a response: each needs the policy built for it.
_PER_RESPONSE = tuple(
    f"_csp_{what}{ro}" for what in ("config", "update", "replace", "exempt") for ro in ("", "_ro")
)


class CSPMiddleware(DjangoCSPMiddleware):
    def __init__(self, get_response):
        super().__init__(get_response)
        self.headers = {HEADER: build_policy(), HEADER_REPORT_ONLY: build_policy(report_only=True)}
        self.plain = not any(
            (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES")
            for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
        )

    def process_response(self, request, response):
        if (
            not self.plain
            or settings.DEBUG
            or getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in _PER_RESPONSE)
        ):
            return super().process_response(request, response)
        for header, policy in self.headers.items():
            if policy and header not in response:
                response[header] = policy
        return response
