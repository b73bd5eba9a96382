from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm

from . import gate, services
from .models import CANCEL_MESSAGE_MAX, Order, OrderDeletion


class OrderActionForm(ActionForm):
    """The actions bar, with the words a cancel shows the buyer after "cancelled by the shop"."""

    message = forms.CharField(
        label="Message to the buyer (optional):",
        required=False,
        max_length=CANCEL_MESSAGE_MAX,
        strip=True,
    )


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
    action_form = OrderActionForm

    def has_add_permission(self, request):
        # Orders come from the buy path, which reserves their stock in the gate first.
        return False

    # Changing an order's status is a change: staff who may only view orders never see it.
    @admin.action(
        description="Cancel selected orders (gives their stock back)", permissions=["change"]
    )
    def cancel_orders(self, request, queryset):
        # The admin validated the actions bar (this form) before calling this: read it again.
        form = self.action_form(request.POST, auto_id=None)
        form.fields["action"].choices = self.get_action_choices(request)
        message = form.cleaned_data["message"] if form.is_valid() else ""
        cancelled = skipped = busy = 0
        for order in queryset.select_related(None).only("pk", "token", "status"):
            try:
                done = services.order_cancel(order_id=order.pk, message=message)
            except gate.Busy:
                busy += 1
                continue
            if done:
                # Who cancelled is the admin's history, never the buyer's answer.
                shown = services.cancel_reason(message)
                self.log_change(request, order, f"Cancelled; the buyer reads {shown!r}.")
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
