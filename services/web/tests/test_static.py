"""Static files without nginx in front (Kubernetes: ingress -> gunicorn) come from WhiteNoise."""

from django.core.management import call_command
from django.test import Client


def test_collected_static_files_are_served_by_the_app(settings, tmp_path):
    settings.STATIC_ROOT = str(tmp_path)
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (tmp_path / "admin/css/base.css").exists()

    r = Client().get("/static/admin/css/base.css")  # a new handler: WhiteNoise rescans

    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/css")
