# The reason a buyer reads no longer names the staff member who cancelled (issue 19): orders
# cancelled before read "cancelled: by admin <phone>"; they now read "cancelled by the shop",
# and who cancelled is the admin's history (LogEntry) from now on. 160 characters: the fixed
# text and the staff member's optional message (orders.models.CANCEL_MESSAGE_MAX).

from django.db import migrations, models


def hide_who_cancelled(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    Order.objects.filter(reason__startswith="cancelled: ").update(reason="cancelled by the shop")


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_order_one_live_per_buyer_per_sale")]

    operations = [
        migrations.AlterField(
            model_name="order", name="reason", field=models.CharField(blank=True, max_length=160)
        ),
        migrations.RunPython(hide_who_cancelled, migrations.RunPython.noop),
    ]
