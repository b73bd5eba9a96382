from django.contrib import admin

from .models import Product, Sale


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price")
    search_fields = ("name",)


@admin.register(Sale)
class SaleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "product",
        "starts_at",
        "ends_at",
        "stock",
        "remaining",
        "per_buyer_limit",
    )
    list_filter = ("starts_at",)
    search_fields = ("name", "product__name")
    list_select_related = ("product",)
    # Sold stock is moved by orders only; editing it by hand would break the invariants.
    readonly_fields = ("remaining", "created_at")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.remaining = obj.stock
        super().save_model(request, obj, form, change)
