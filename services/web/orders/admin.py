from django.contrib import admin

from .models import Order, OrderDeletion


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("token", "sale", "buyer", "quantity", "status", "reason", "created_at")
    list_filter = ("status",)
    search_fields = ("token", "buyer__phone", "sale__name")
    list_select_related = ("sale", "buyer")
    readonly_fields = ("token", "sale", "buyer", "quantity", "created_at", "updated_at")


@admin.register(OrderDeletion)
class OrderDeletionAdmin(admin.ModelAdmin):
    list_display = ("token", "sale_id_at_deletion", "buyer_phone", "status", "deleted_at")
    search_fields = ("token", "buyer_phone")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
