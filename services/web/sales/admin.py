from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from orders import live
from orders import services as order_services

from .models import Product, Sale

STATES = {"upcoming": "Upcoming", "open": "Open", "sold_out": "Sold out", "ended": "Ended"}


def _short(moment) -> str:
    return date_format(timezone.localtime(moment), "j\u00a0M\u00a0Y H:i")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price")
    search_fields = ("name",)


class SaleStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return list(STATES.items())

    def queryset(self, request, queryset):
        if self.value() in STATES:
            return queryset.in_state(self.value())
        return queryset


class SaleForm(forms.ModelForm):
    class Meta:
        model = Sale
        fields = [
            "name",
            "product",
            "starts_at",
            "ends_at",
            "stock",
            "per_buyer_limit",
            "waiting_room",
            "admission_rate",
        ]

    def clean_stock(self):
        # Checked here so the common refusal is an error on the field; save_model's service
        # checks again under the row lock, where a buyer who came in between is seen.
        stock = self.cleaned_data["stock"]
        if self.instance.pk and stock != self.instance.stock:
            try:
                order_services.sale_stock_check(sale=self.instance, stock=stock)
            except order_services.StockChangeRefused as refused:
                raise forms.ValidationError(str(refused)) from None
        return stock


@admin.register(Sale)
class SaleAdmin(admin.ModelAdmin):
    form = SaleForm
    list_display = ("name", "state_label", "stock_left", "starts", "ends")
    list_filter = (SaleStateFilter,)
    search_fields = ("name", "product__name")
    list_select_related = ("product",)
    # Sold stock is moved by orders only; editing it by hand would break the invariants.
    readonly_fields = ("remaining", "created_at")

    @admin.display(description="state")
    def state_label(self, sale):
        return STATES[sale.state()]

    @admin.display(description="remaining / stock", ordering="remaining")
    def stock_left(self, sale):
        return f"{sale.remaining} / {sale.stock}"

    # Short dates ("26 Nov 2026 10:02", breaking only before the time): Django's long form
    # pushed the end out of the table's view at 1280 px, beside the navigation and the filter.
    @admin.display(description="starts", ordering="starts_at")
    def starts(self, sale):
        return _short(sale.starts_at)

    @admin.display(description="ends", ordering="ends_at")
    def ends(self, sale):
        return _short(sale.ends_at)

    def get_urls(self):
        # Before the model's own: its "<path:object_id>/" would take ".../live/" for an id.
        view = self.admin_site.admin_view
        return [
            path("<int:sale_id>/live/", view(self.live_view), name="sales_sale_live"),
            path("<int:sale_id>/live/data/", view(self.live_data), name="sales_sale_live_data"),
            *super().get_urls(),
        ]

    def _live_sale(self, request, sale_id: int) -> Sale:
        # The permission first: a clerk without it learns nothing, not even which ids exist.
        if not self.has_view_permission(request):
            raise PermissionDenied
        sale = self.get_object(request, str(sale_id))
        if sale is None:
            raise Http404("No such sale.")
        return sale

    def live_view(self, request, sale_id: int):
        """The sale as it happens: static/qbuy/live.js polls live_data and draws the charts."""
        sale = self._live_sale(request, sale_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Live: {sale.name}",
            "opts": self.opts,
            "original": sale,
            "state": STATES[sale.state()],
            "data_url": reverse("admin:sales_sale_live_data", args=[sale.pk]),
        }
        return TemplateResponse(request, "admin/sales/sale/live.html", context)

    def live_data(self, request, sale_id: int):
        self._live_sale(request, sale_id)
        return JsonResponse(live.sale_live(sale_id))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.remaining = obj.stock
            super().save_model(request, obj, form, change)
            return
        # Only the fields the form changed: a full save would also write back ``remaining`` as
        # it was read, undoing orders confirmed meanwhile. The stock goes through its service.
        obj.save(update_fields=[name for name in form.changed_data if name != "stock"])
        if "stock" in form.changed_data:
            # After the admin's COMMIT: the service must own its transaction (it changes Redis
            # under the row lock and undoes that if its own COMMIT fails).
            transaction.on_commit(lambda: self._change_stock(request, obj.pk, obj.stock))

    def _change_stock(self, request, sale_id, stock):
        try:
            order_services.sale_stock_change(sale_id=sale_id, stock=stock)
        except order_services.StockChangeRefused as refused:
            self.message_user(request, f"Stock not changed: {refused}", messages.ERROR)
