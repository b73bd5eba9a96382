"""The buyer's own pages: personal, so never cached (no path cache pattern matches them)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import InvalidPage
from django.http import Http404
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import selectors


@require_safe
@never_cache
@login_required
def order_list(request):
    """The buyer's orders, newest first, with their sale, state and time."""
    try:
        page = selectors.buyer_order_page(
            buyer=request.user, number=int(request.GET.get("page", "1"))
        )
    except (ValueError, InvalidPage) as exc:
        raise Http404("No such page") from exc
    return TemplateResponse(request, "orders/order_list.html", {"page": page})
