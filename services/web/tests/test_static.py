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


def test_the_site_stylesheet_is_collected_and_served(settings, tmp_path):
    """base.html links qbuy/site.css (the CSP allows no inline <style>): it must be collected."""
    settings.STATIC_ROOT = str(tmp_path)
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (tmp_path / "qbuy/site.css").exists()

    r = Client().get("/static/qbuy/site.css")

    assert r.status_code == 200
    assert b"max-width" in b"".join(r.streaming_content)


def test_the_production_storage_writes_gzip_copies_and_no_brotli(settings, tmp_path):
    """As the images do (they have no brotli): a venv with brotli spent ~30 s per collectstatic
    on copies nothing deployed serves (common/static_storage.py)."""
    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "common.static_storage.GzipManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    names = {p.name for p in tmp_path.rglob("*")}
    assert any(n.startswith("site.") and n.endswith(".css.gz") for n in names)
    assert not [n for n in names if n.endswith(".br")]
    assert (tmp_path / "staticfiles.json").exists()  # the manifest: hashed names
