"""A page that breaks the CSP on purpose (tests/test_browser.py: the check can fail)."""

from django.http import HttpResponse
from django.urls import path


def inline_style(request):
    return HttpResponse("<!doctype html><title>x</title><p style='color: red'>inline</p>")


urlpatterns = [path("inline-style/", inline_style)]
