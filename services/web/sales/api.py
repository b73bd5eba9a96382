"""/api/sales/: the sale list and one sale, as the pages show them."""

from django.core.paginator import EmptyPage
from ninja import Query, Router

from common.api_errors import INVALID_PAGE, NO_SUCH_PAGE, NOT_FOUND, ApiError, answers
from common.pagination import page_payload

from . import selectors
from .models import Sale
from .schemas import SaleDetailOut, SalePageOut

router = Router(tags=["sales"])


@router.get(
    "/",
    operation_id="sales_list",
    url_name="api-sale-list",
    **answers(
        {200: SalePageOut},
        INVALID_PAGE,
        NO_SUCH_PAGE,
        links={
            "SaleDetail": {
                "operationId": "sales_detail",
                "parameters": {"pk": "$response.body#/results/0/id"},
            }
        },
    ),
)
def api_sale_list(request, page: int = Query(1, ge=1)):
    """Live sales first (soonest end first), then upcoming (soonest start first), then ended
    (latest end first), SALES_PER_PAGE a page: the order of the /sales/ page."""
    try:
        sales = selectors.sale_page(number=page)
    except EmptyPage:
        raise ApiError(404, "no_such_page") from None
    return {"results": [selectors.sale_payload(s) for s in sales], "page": page_payload(sales)}


@router.get(
    "/{int:pk}",
    operation_id="sales_detail",
    url_name="api-sale-detail",
    **answers(
        {200: SaleDetailOut},
        NOT_FOUND,
        links={"Buy": {"operationId": "sales_buy", "parameters": {"pk": "$response.body#/id"}}},
    ),
)
def api_sale_detail(request, pk: int):
    """One sale, with the server's clock (server_time) to count down to its start."""
    sale = Sale.objects.select_related("product").filter(pk=pk).first()
    if sale is None:
        raise ApiError(404, "not_found")
    return selectors.sale_detail_payload(sale)
