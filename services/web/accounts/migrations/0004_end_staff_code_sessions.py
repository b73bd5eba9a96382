# Before this release an SMS code login made a session the admin accepted (issue 19). Such a
# session cannot be told from a password login's by what it holds, so every staff session made
# before the upgrade ends: the session generation is part of the session auth hash. Staff sign
# in again with their password; buyers are not affected.

from django.db import migrations
from django.db.models import F, Q


def end_staff_sessions(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    staff = User.objects.filter(Q(is_staff=True) | Q(is_superuser=True))
    staff.update(session_generation=F("session_generation") + 1)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_phone_help_text")]

    operations = [migrations.RunPython(end_staff_sessions, migrations.RunPython.noop)]
