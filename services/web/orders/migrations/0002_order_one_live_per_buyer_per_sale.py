# A failed order (sold out, timed out, cancelled) no longer counts towards one order per buyer
# per sale: the gate forgets its buyer, who may buy again. Postgres makes a partial unique
# constraint a unique index; the name is kept.

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("sales", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="order",
            name="order_one_per_buyer_per_sale",
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "failed"), _negated=True),
                fields=("sale", "buyer"),
                name="order_one_per_buyer_per_sale",
            ),
        ),
    ]
