from django.contrib import admin, messages

from . import gate, services
from .models import Order, OrderDeletion


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("token", "sale", "buyer", "quantity", "status", "reason", "created_at")
    list_filter = ("status",)
    search_fields = ("token", "buyer__phone", "sale__name")
    list_select_related = ("sale", "buyer")
    # An order's status moves stock in Postgres and Redis: only services change it (the cancel
    # action here), never a form field.
    readonly_fields = (
        "token",
        "sale",
        "buyer",
        "quantity",
        "status",
        "reason",
        "created_at",
        "updated_at",
    )
    actions = ["cancel_orders"]

    def has_add_permission(self, request):
        # Orders come from the buy path, which reserves their stock in the gate first.
        return False

    @admin.action(description="Cancel selected orders (gives their stock back)")
    def cancel_orders(self, request, queryset):
        reason = f"by admin {request.user.get_username()}"
        cancelled = skipped = busy = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                done = services.order_cancel(order_id=pk, reason=reason)
            except gate.Busy:
                busy += 1
                continue
            cancelled += done
            skipped += not done
        summary = f"{cancelled} orders cancelled; {skipped} skipped (already failed)."
        if busy:
            summary += f" {busy} not cancelled: their sale's gate was being rebuilt, try again."
        self.message_user(
            request, summary, messages.SUCCESS if cancelled and not busy else messages.WARNING
        )


@admin.register(OrderDeletion)
class OrderDeletionAdmin(admin.ModelAdmin):
    list_display = ("token", "sale_id_at_deletion", "buyer_phone", "status", "deleted_at")
    search_fields = ("token", "buyer_phone")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
